"""Format a leaderboard for the terminal and write it as CSV, JSON and PNG."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._atomic import atomic_path, atomic_write_text

_COLOURS = {
    "deep": "#3b75af",
    "tuned": "#2e8b57",
    "classical": "#a0a0a0",
    "stack": "#e1812c",
    "chance": "#dddddd",
}


def format_leaderboard(board: pd.DataFrame) -> str:
    """Render a leaderboard from ``run_baseline`` as a plain-text table.

    Parameters
    ----------
    board : pandas.DataFrame
        What :func:`hybridml.run_baseline` returned.

    Returns
    -------
    str
        A header line with the settings, one line per model (best first) and,
        when there is a stack, a line naming its members.

    Examples
    --------
    >>> import pandas as pd
    >>> from hybridml.baseline import format_leaderboard
    >>> board = pd.DataFrame({"rank": [1], "features": ["tfidf"], "head": ["logreg"],
    ...     "kind": ["classical"], "metric": ["accuracy"], "mean": [0.8125],
    ...     "std": [0.01], "embed_s": [0.0], "fit_s": [0.21], "dims": [900]})
    >>> print(format_leaderboard(board))
    rank  features  head    accuracy         embed s  fit s  dims
       1  tfidf     logreg  0.812 +/- 0.010      0.0   0.21   900
    """
    meta = board.attrs
    metric = str(board["metric"].iloc[0]) if len(board) else meta.get("metric", "")
    table = pd.DataFrame(
        {
            "rank": board["rank"].astype(int),
            "features": [_short(f) for f in board["features"]],
            "head": board["head"],
            metric: [
                f"{_num(m)} +/- {_num(s)}"
                for m, s in zip(board["mean"], board["std"], strict=True)
            ],
            "embed s": [f"{x:.1f}" for x in board["embed_s"]],
            "fit s": [f"{x:.2f}" for x in board["fit_s"]],
            "dims": [_dims(d) for d in board["dims"]],
        }
    )
    lines = []
    if meta:
        better = "higher" if meta.get("greater_is_better", True) else "lower"
        split = "stratified " if meta.get("task") == "classification" else ""
        if meta.get("groups"):
            split += f"CV grouped by {meta['groups']!r}"
        else:
            split += "CV"
        lines.append(
            f"{meta.get('task', '')} of {meta.get('target')!r}: "
            f"{meta.get('n_rows')} rows, {meta.get('cv')}-fold {split}, "
            f"{metric} ({better} is better), mean +/- std over folds"
        )
    left = {"features", "head", metric}
    widths = {
        col: max(len(str(col)), *(len(str(v)) for v in table[col]))
        for col in table.columns
    }
    cells = []
    for col in table.columns:
        pad = str.ljust if col in left else str.rjust
        cells.append(
            [pad(str(col), widths[col])]
            + [pad(str(v), widths[col]) for v in table[col]]
        )
    for row in zip(*cells, strict=True):
        lines.append("  ".join(row).rstrip())
    for members in [f for f in board["features"] if str(f).startswith("stack of")]:
        lines.append(f"{_short(members)} = {members.split(': ', 1)[1]}")
    for model, notes in (meta.get("warnings") or {}).items():
        note = "; ".join(notes)
        lines.append(
            f"warning, {model}: {note[:150]}{'...' if len(note) > 150 else ''}"
        )
    return "\n".join(lines)


def write_report(board: pd.DataFrame, output: str | os.PathLike) -> Path:
    """Write ``leaderboard.csv``, ``leaderboard.json`` and ``scores.png``.

    Parameters
    ----------
    board : pandas.DataFrame
        What :func:`hybridml.run_baseline` returned.
    output : str or path-like
        The report folder (created if missing; files in it are replaced).

    Returns
    -------
    pathlib.Path
        The report folder.

    Examples
    --------
    >>> import tempfile
    >>> import pandas as pd
    >>> from hybridml.baseline import write_report
    >>> board = pd.DataFrame({"rank": [1], "features": ["tfidf"], "head": ["logreg"],
    ...     "kind": ["classical"], "metric": ["accuracy"], "mean": [0.81],
    ...     "std": [0.01], "embed_s": [0.0], "fit_s": [0.2], "dims": [900],
    ...     "scores": [[0.8, 0.82]]})
    >>> folder = write_report(board, tempfile.mkdtemp())
    >>> sorted(p.name for p in folder.iterdir())
    ['leaderboard.csv', 'leaderboard.json', 'scores.png']
    """
    folder = Path(output).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    flat = board.drop(columns=["scores"], errors="ignore")
    if "scores" in board:
        folds = pd.DataFrame(
            board["scores"].tolist(),
            columns=[f"fold{i + 1}" for i in range(len(board["scores"].iloc[0]))],
            index=board.index,
        )
        flat = pd.concat([flat, folds], axis=1)
    payload = {
        "settings": _jsonable(board.attrs),
        "leaderboard": _jsonable(board.to_dict(orient="records")),
    }
    # each file under a temporary name first: a crash leaves no half file
    with atomic_path(folder / "leaderboard.csv") as tmp:
        flat.to_csv(tmp, index=False)
    atomic_write_text(folder / "leaderboard.json", json.dumps(payload, indent=2) + "\n")
    with atomic_path(folder / "scores.png") as tmp:
        plot_scores(board, tmp)
    return folder


def plot_scores(board: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Horizontal bars of the mean score with the fold std as error bars."""
    from matplotlib.figure import Figure  # no pyplot: the user's backend is untouched
    from matplotlib.patches import Patch

    n = len(board)
    fig = Figure(figsize=(8.0, 1.4 + 0.38 * n), layout="constrained")
    ax = fig.subplots()
    names = {"prior": "chance (majority class)", "mean": "chance (mean target)"}
    labels = [
        names.get(h, f"chance ({h})") if k == "chance" else f"{_short(f)} + {h}"
        for f, h, k in zip(board["features"], board["head"], board["kind"], strict=True)
    ]
    ypos = np.arange(n)[::-1]
    colours = [_COLOURS.get(k, "#777777") for k in board["kind"]]
    ax.barh(
        ypos,
        board["mean"],
        xerr=board["std"],
        color=colours,
        capsize=3,
        error_kw={"elinewidth": 1},
    )
    ax.set_yticks(ypos, labels, fontsize=8)
    for y, m, s in zip(ypos, board["mean"], board["std"], strict=True):
        ax.text(m + s, y, f"  {_num(m)}", va="center", fontsize=7)
    meta = board.attrs
    metric = str(board["metric"].iloc[0]) if n else ""
    better = "higher" if meta.get("greater_is_better", True) else "lower"
    ax.set_xlabel(f"{metric} ({better} is better), mean +/- std over folds")
    if meta:
        grouped = f" grouped by {meta['groups']!r}" if meta.get("groups") else ""
        ax.set_title(
            f"{meta.get('target')!r}: {meta.get('n_rows')} rows, "
            f"{meta.get('cv')}-fold CV{grouped}",
            fontsize=10,
        )
    hi = float(np.nanmax(board["mean"] + board["std"])) if n else 1.0
    lo = min(0.0, float(np.nanmin(board["mean"] - board["std"]))) if n else 0.0
    ax.set_xlim(lo, hi + 0.12 * (hi - lo or 1.0))
    kinds = [k for k in _COLOURS if k in set(board["kind"])]
    ax.legend(
        handles=[Patch(color=_COLOURS[k], label=k) for k in kinds],
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize=8,
    )
    ax.grid(axis="x", alpha=0.3)
    fig.savefig(path, dpi=120)
    return Path(path)


def _short(features: Any) -> str:
    text = str(features)
    return text.split(":", 1)[0] if text.startswith("stack of") else text


def _num(x: float) -> str:
    return f"{x:.3f}" if abs(x) < 100 else f"{x:.1f}"


def _dims(d: Any) -> str:
    return "-" if d is None or (isinstance(d, float) and math.isnan(d)) else str(int(d))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
