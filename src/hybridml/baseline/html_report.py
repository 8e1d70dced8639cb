"""``report.html``: one self-contained page a person opens after a run.

No network and no external files: the CSS is inline and every plot is a PNG
in a ``data:`` URI. The page holds the leaderboard (mean, spread, timing), the
scores plot, the best model's out-of-fold confusion matrix and per-class
precision / recall / F1 (classification) or residual plot (regression), a
learning curve on the cached embeddings, the data summary and the exact
command that reproduces it. Diagnostics refit only heads: the embeddings of
the run are reused.
"""

from __future__ import annotations

import base64
import html
import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.exceptions import FitFailedWarning
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support
from sklearn.model_selection import cross_val_predict, learning_curve
from threadpoolctl import threadpool_limits

from .._atomic import atomic_write_text

TRAIN_SIZES = (0.2, 0.4, 0.7, 1.0)
_CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;
color:#222}table{border-collapse:collapse;margin:.5em 0}td,th{padding:.2em .6em;
border-bottom:1px solid #ddd;text-align:right}th{background:#f3f3f3}
td.l,th.l{text-align:left}tr.best{background:#eef5ff}code,pre{background:#f6f6f6;
padding:.4em;white-space:pre-wrap}img{max-width:100%}h2{margin-top:1.6em}
.note{color:#666;font-size:.9em}"""


def write_html(session: Any, folder: str | Path, command: str) -> Path:
    """Write ``report.html`` into ``folder`` (atomically) and return its path."""
    board, plan = session.board, session.plan
    folder = Path(folder)
    diag_row, diag = _pick(session, single=True)
    curve_row, curve = _pick(session, single=True, deep=True)
    sections = [
        f"<h1>hybridml leaderboard: {html.escape(plan.target)}</h1>",
        _summary(board, plan),
        "<h2>Leaderboard</h2>" + _table(board),
        _scores_png(folder),
        _diagnostics(session, diag_row, diag),
        _curve(session, curve_row, curve),
        "<h2>Reproduce</h2><pre>" + html.escape(command) + "</pre>",
    ]
    page = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>hybridml report: {html.escape(plan.target)}</title>"
        f"<style>{_CSS}</style></head><body>" + "\n".join(sections) + "</body></html>"
    )
    path = folder / "report.html"
    atomic_write_text(path, page)
    return path


def _pick(session: Any, *, single: bool, deep: bool = False) -> tuple[dict, Any]:
    """The best row (a single model, a deep one if asked) and its unfitted model."""
    board = session.board
    for _, row in board.iterrows():
        if row["kind"] == "chance" or (single and row["kind"] == "stack"):
            continue
        if deep and row["kind"] != "deep":
            continue
        result = session.result_for(row)
        if result is not None:
            return row.to_dict(), result["_model"]
    return ({}, None) if not deep else _pick(session, single=single)


def _summary(board: Any, plan: Any) -> str:
    attrs = board.attrs
    roles = [
        ("target", [plan.target]), ("text", plan.text), ("image", plan.image),
        ("numeric", plan.numeric), ("categorical", plan.categorical),
        ("groups", plan.group), ("ignored", plan.ignored),
    ]  # fmt: skip
    items = [
        f"<li><b>rows</b>: {attrs['n_rows']}, task {plan.task}, "
        f"{attrs['cv']}-fold {attrs['splitter']}, metric {attrs['metric']}</li>"
    ]
    if plan.task == "classification":
        counts = dict(zip(*np.unique(plan.y, return_counts=True), strict=True))
        shown = ", ".join(
            f"{html.escape(c)}: {counts.get(i, 0)}"
            for i, c in enumerate(attrs["classes"])
        )
        items.append(f"<li><b>classes</b> ({len(attrs['classes'])}): {shown}</li>")
    for role, cols in roles:
        if cols:
            items.append(f"<li><b>{role}</b>: {html.escape(', '.join(cols))}</li>")
    if attrs.get("backbones"):
        items.append(
            f"<li><b>backbones</b>: {html.escape(', '.join(attrs['backbones']))}</li>"
        )
    tuning = attrs.get("tuning")
    line = "defaults, untuned" if tuning is None else "; ".join(tuning) or "defaults"
    items.append(f"<li><b>heads</b>: {html.escape(line)}</li>")
    return "<h2>Data</h2><ul>" + "".join(items) + "</ul>"


def _table(board: Any) -> str:
    head = ["rank", "features", "head", "kind", "mean", "std", "min", "max",
            "embed s", "fit s", "dims"]  # fmt: skip
    rows = [
        "<tr>" + "".join(
            f"<th class='l'>{h}</th>" if h in ("features", "head", "kind")
            else f"<th>{h}</th>" for h in head
        ) + "</tr>"
    ]  # fmt: skip
    for _, r in board.iterrows():
        scores = list(r["scores"])
        dims = "" if r["dims"] is None or r["dims"] != r["dims"] else int(r["dims"])
        cells = [
            r["rank"], r["features"], r["head"], r["kind"], f"{r['mean']:.4f}",
            f"{r['std']:.4f}", f"{min(scores):.4f}", f"{max(scores):.4f}",
            f"{r['embed_s']:.1f}", f"{r['fit_s']:.2f}", dims,
        ]  # fmt: skip
        tds = "".join(
            f"<td class='l'>{html.escape(str(c))}</td>" if i in (1, 2, 3)
            else f"<td>{html.escape(str(c))}</td>" for i, c in enumerate(cells)
        )  # fmt: skip
        cls = " class='best'" if r["rank"] == 1 else ""
        rows.append(f"<tr{cls}>{tds}</tr>")
    return "<table id='leaderboard'>" + "".join(rows) + "</table>"


def _img(fig: Any, alt: str) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{data}'>"


def _scores_png(folder: Path) -> str:
    png = folder / "scores.png"
    if not png.is_file():
        return ""
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    return (
        "<h2>Scores per fold</h2><img alt='scores per fold' "
        f"src='data:image/png;base64,{data}'>"
    )


def _diagnostics(session: Any, row: dict, model: Any) -> str:
    if model is None:
        return ""
    plan = session.plan
    with threadpool_limits(limits=1):
        pred = cross_val_predict(
            clone(model), session.X, plan.y, groups=plan.group_ids, cv=session.splitter
        )
    name = html.escape(f"{row['features']} + {row['head']}")
    title = (
        f"<h2>Best single model: {name}</h2><p class='note'>Out-of-fold "
        "predictions under the leaderboard's folds.</p>"
    )
    if plan.task == "classification":
        return title + _classification(plan, pred)
    return title + _residuals(plan, pred)


def _classification(plan: Any, pred: np.ndarray) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = plan.frame[plan.target].astype(str)
    names = sorted(classes.unique())
    labels = np.arange(len(names))
    cm = confusion_matrix(plan.y, pred, labels=labels)
    p, r, f, s = precision_recall_fscore_support(
        plan.y, pred, labels=labels, zero_division=0
    )
    rows = "".join(
        f"<tr><td class='l'>{html.escape(n)}</td><td>{p[i]:.3f}</td>"
        f"<td>{r[i]:.3f}</td><td>{f[i]:.3f}</td><td>{s[i]}</td></tr>"
        for i, n in enumerate(names)
    )
    table = (
        "<table id='per-class'><tr><th class='l'>class</th><th>precision</th>"
        f"<th>recall</th><th>F1</th><th>support</th></tr>{rows}</table>"
    )
    size = 2.5 + 0.45 * len(names)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        colour = "white" if v > cm.max() / 2 else "black"
        ax.text(j, i, str(v), ha="center", va="center", color=colour)
    ax.set(xticks=labels, yticks=labels, xlabel="predicted", ylabel="true")
    ax.set_xticklabels(names, rotation=45, ha="right")
    ax.set_yticklabels(names)
    ax.set_title("confusion matrix (out of fold)")
    return table + _img(fig, "confusion matrix")


def _residuals(plan: Any, pred: np.ndarray) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    resid = plan.y - pred
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(pred, resid, s=10, alpha=0.6)
    ax.axhline(0, color="grey", lw=1)
    ax.set(xlabel="predicted", ylabel="true - predicted", title="residuals")
    rmse = float(np.sqrt(np.mean(resid**2)))
    return (
        f"<p id='residuals'>RMSE out of fold {rmse:.4g}, mean residual "
        f"{float(resid.mean()):.3g}</p>" + _img(fig, "residual plot")
    )


def _curve(session: Any, row: dict, model: Any) -> str:
    if model is None:
        return ""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plan = session.plan
    # the smallest sizes can be too small for a tuned head's inner CV: those
    # points come back NaN and are left out below, without a warning per fit
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore", FitFailedWarning)
        sizes, _, test = learning_curve(
            clone(model), session.X, plan.y, groups=plan.group_ids,
            train_sizes=TRAIN_SIZES, cv=session.splitter, scoring=plan.scorer,
            shuffle=True, random_state=plan.random_state, error_score=np.nan,
        )  # fmt: skip
    test = plan.sign * test
    ok = ~np.isnan(test).any(axis=1)  # too few rows for a tuned head's inner CV
    sizes, test = sizes[ok], test[ok]
    if not len(sizes):
        plt.close("all")
        return ""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.errorbar(sizes, test.mean(1), yerr=test.std(1), marker="o", capsize=3)
    ax.set(xlabel="training rows", ylabel=plan.metric_name)
    name = f"{row['features']} + {row['head']}"
    ax.set_title(f"learning curve: {name}")
    points = "".join(
        f"<tr><td>{n}</td><td>{m:.4f}</td><td>{s:.4f}</td></tr>"
        for n, m, s in zip(sizes, test.mean(1), test.std(1), strict=True)
    )
    return (
        f"<h2>Learning curve: {html.escape(name)}</h2><table id='learning-curve'>"
        f"<tr><th>training rows</th><th>mean</th><th>std</th></tr>{points}</table>"
        + _img(fig, "learning curve")
    )
