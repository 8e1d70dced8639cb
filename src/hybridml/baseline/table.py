"""Reading and validating the leaderboard's table, before any expensive work.

Every check raises with what was wrong, what was expected and how to fix it, so
``hybridml baseline`` can print it as a one-line ``error: ...``.
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import get_scorer, get_scorer_names
from sklearn.model_selection import (
    GroupKFold,
    KFold,
    StratifiedGroupKFold,
    StratifiedKFold,
)
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.multiclass import type_of_target

from .._columns import column_kind
from .._heads import HEADS
from .._validation import split_names


def make_printer(verbose: int) -> Callable[[str], None]:
    def say(message: str) -> None:
        if verbose:
            print(f"[hybridml] {message}", file=sys.stderr, flush=True)

    return say


def read_data(data: Any) -> tuple[pd.DataFrame, Path | None]:
    if isinstance(data, pd.DataFrame):
        return data.reset_index(drop=True), None
    if not isinstance(data, (str, os.PathLike)):
        raise TypeError(
            f"data: got {type(data).__name__}. Expected a pandas DataFrame or the "
            "path of a CSV or Parquet file. Pass pd.read_csv(...) or a file name."
        )
    path = Path(data).expanduser()
    if not path.is_file():
        where = "a folder" if path.is_dir() else "no such file"
        raise FileNotFoundError(
            f"data file: got {str(path)!r} ({where}). Expected an existing CSV "
            "or Parquet file. Check the path and the working directory."
        )
    frame = _read_file(path)
    if len(frame) == 0:
        raise ValueError(
            f"data file {str(path)!r}: got 0 rows (columns: "
            f"{', '.join(map(repr, map(str, frame.columns[:10])))}). Expected a "
            "header line and at least one row of data. Check that this is the "
            "right file and that it was saved completely."
        )
    return frame, path.resolve().parent


_OTHER_SEPARATORS = {";": "semicolon", "\t": "tab", "|": "pipe"}


def _read_file(path: Path) -> pd.DataFrame:
    """Read a CSV / TSV / Parquet file; every failure names the file and a fix."""
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        return _parse(path, "Parquet", pd.read_parquet)
    sep = "\t" if name.endswith((".tsv", ".tsv.gz", ".tab")) else ","
    try:
        frame = _parse(path, "CSV", pd.read_csv, sep=sep)
    except UnicodeDecodeError as exc:
        frame = _read_cp1252(path, sep, exc)
    if sep == "," and frame.shape[1] == 1:
        header = str(frame.columns[0])
        for other, word in _OTHER_SEPARATORS.items():
            if other in header:
                raise ValueError(
                    f"data file {str(path)!r}: got one column named "
                    f"{header[:60]!r}, which looks {word}-separated. Expected "
                    "comma-separated values (or a .tsv file for tabs). Save it "
                    f"with commas, e.g. pd.read_csv(path, sep={other!r})"
                    ".to_csv('fixed.csv', index=False), or pass that DataFrame "
                    "to run_baseline."
                )
    return frame


def _parse(path: Path, kind: str, reader: Callable, **kwargs: Any) -> pd.DataFrame:
    """Call ``reader``; turn its parse errors into one line naming the file."""
    try:
        return reader(path, **kwargs)
    except UnicodeDecodeError:
        raise  # the caller retries another encoding
    except pd.errors.EmptyDataError as exc:
        raise ValueError(
            f"data file {str(path)!r}: got an empty file. Expected a header line "
            "and rows of data. Check that this is the right file."
        ) from exc
    except (pd.errors.ParserError, OSError, ValueError) as exc:
        if isinstance(exc, OSError) and exc.strerror is not None:
            raise  # permission denied etc.: the CLI names the file and the cause
        cause = " ".join(str(exc).split())[:200]
        raise ValueError(
            f"data file {str(path)!r}: cannot be read as {kind} ({cause}). "
            f"Expected a valid {kind} file. Check the file (quotes, a truncated "
            "copy) or export it again."
        ) from exc


def _read_cp1252(path: Path, sep: str, exc: UnicodeDecodeError) -> pd.DataFrame:
    """Retry a file that is not UTF-8 as Windows-1252, and say so."""
    import warnings

    try:
        frame = _parse(path, "CSV", pd.read_csv, sep=sep, encoding="cp1252")
    except UnicodeDecodeError:
        raise ValueError(
            f"data file {str(path)!r}: got bytes that are neither UTF-8 nor "
            f"Windows-1252 ({exc.reason} at byte {exc.start}). Expected a UTF-8 "
            "text file. Save it as UTF-8, or read it with pd.read_csv(path, "
            "encoding=...) and pass the DataFrame to run_baseline."
        ) from exc
    warnings.warn(
        f"data file {str(path)!r} is not UTF-8 ({exc.reason} at byte {exc.start}); "
        "read it as Windows-1252 (cp1252). If accented letters look wrong, save "
        "the file as UTF-8.",
        UserWarning,
        stacklevel=4,
    )
    return frame


def check_columns(frame: pd.DataFrame, names: Any, role: str) -> list[str]:
    if names is None:
        return []
    names = split_names(names)
    columns = [str(c) for c in frame.columns]
    for name in names:
        if name not in frame.columns:
            close = difflib.get_close_matches(str(name), columns, n=1, cutoff=0.5)
            hint = f"Did you mean {close[0]!r}? " if close else ""
            shown = ", ".join(repr(c) for c in columns[:30])
            more = f" and {len(columns) - 30} more" if len(columns) > 30 else ""
            raise ValueError(
                f"{role} column: got {name!r}, which is not in the data. Expected "
                f"one of the {len(columns)} columns: {shown}{more}. {hint}"
                "Column names are case-sensitive."
            )
    return names


def check_roles(target: str | None, text: list, image: list, group: list = ()) -> None:
    seen: dict[str, str] = {} if target is None else {target: "target"}
    for role, cols in (("text", text), ("image", image), ("groups", group)):
        for col in cols:
            if col in seen:
                raise ValueError(
                    f"{role} column: got {col!r}, which is already the "
                    f"{seen[col]} column. Expected each column in one role. "
                    "Remove it from one of them."
                )
            seen[col] = role


def split_tabular(
    frame: pd.DataFrame, spec: Any, used: list
) -> tuple[list, list, list]:
    if spec is None or (not isinstance(spec, str) and len(spec) == 0):
        return [], [], []
    if isinstance(spec, str) and spec != "auto":
        spec = split_names(spec)
    if spec == "auto":
        # the package's one column rule (hybridml._columns); text and image
        # columns not named as such are not tabular features
        numeric, categorical, ignored = [], [], []
        for col in frame.columns:
            if col in used:
                continue
            kind = column_kind(frame[col])
            {"numeric": numeric, "categorical": categorical}.get(kind, ignored).append(
                col
            )
        return numeric, categorical, ignored
    cols = check_columns(frame, spec, "tabular")
    for col in cols:
        if col in used:
            raise ValueError(
                f"tabular column: got {col!r}, which is already the target, a "
                "text, image or groups column. Expected each column in one "
                "role. Remove it from tabular."
            )
    numeric = [
        c
        for c in cols
        if pd.api.types.is_numeric_dtype(frame[c])
        or pd.api.types.is_bool_dtype(frame[c])
    ]
    return numeric, [c for c in cols if c not in numeric], []


def warn_unused(frame: pd.DataFrame, ignored: list) -> None:
    """Name, in one warning line each, a text or image column the run leaves out."""
    import warnings

    for col in ignored:
        kind = column_kind(frame[col])
        if kind in ("text", "image"):
            what = "free text" if kind == "text" else "image paths"
            warnings.warn(
                f"column {col!r} looks like {what} and is not used: add --{kind} "
                f"{col} ({kind}={col!r} in Python) to use it.",
                UserWarning,
                stacklevel=4,
            )


def check_heads(heads: Any) -> list[str]:
    if heads is None:
        default = list(HEADS)
        try:
            import xgboost  # noqa: F401
        except ImportError:
            default.remove("xgb")
        return default
    heads = split_names(heads)
    for head in heads:
        if head not in HEADS:
            close = difflib.get_close_matches(str(head), HEADS, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"head: got {head!r}. Expected some of {', '.join(HEADS)}.{hint}"
            )
    if len(set(heads)) != len(heads):
        raise ValueError(f"heads: got {heads!r}. Expected each head once.")
    return heads


def infer_task(y: pd.Series, task: str, target: str) -> str:
    if task not in ("auto", "classification", "regression"):
        raise ValueError(
            f"task: got {task!r}. Expected 'auto', 'classification' or 'regression'."
        )
    if y.isna().any():
        where = np.flatnonzero(y.isna().to_numpy())[:5].tolist()
        raise ValueError(
            f"target {target!r}: got {int(y.isna().sum())} missing values (rows "
            f"{where}...). Expected a label in every row. Drop or fill those rows."
        )
    if task != "auto":
        if task == "regression" and not pd.api.types.is_numeric_dtype(y):
            raise ValueError(
                f"target {target!r}: got dtype {y.dtype} with task='regression'. "
                "Expected numbers. Use task='classification' for labels."
            )
        return task
    kind = type_of_target(y.to_numpy())
    return (
        "regression"
        if kind in ("continuous", "continuous-multioutput")
        else ("classification")
    )


def get_metric(metric: str | None, task: str) -> tuple[Any, str, int]:
    if metric is None:
        metric = "accuracy" if task == "classification" else "r2"
    names = get_scorer_names()
    if metric not in names:
        close = difflib.get_close_matches(metric, names, n=3)
        hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise ValueError(
            f"metric: got {metric!r}. Expected a scikit-learn scorer name such "
            f"as 'accuracy', 'f1_macro', 'roc_auc' or 'r2'.{hint}"
        )
    if metric.startswith("neg_"):
        return get_scorer(metric), metric[4:], -1
    return get_scorer(metric), metric, 1


def subsample(
    frame: pd.DataFrame, target: str, limit: int | None, task: str, seed: Any
) -> pd.DataFrame:
    if limit is None or limit >= len(frame):
        return frame
    rng = np.random.RandomState(seed)
    if task == "classification":
        # Proportional per class, at least one row of each, then trimmed.
        order = rng.permutation(len(frame))
        labels = frame[target].to_numpy()[order]
        rank = pd.Series(labels).groupby(labels).cumcount().to_numpy()
        size = pd.Series(labels).map(pd.Series(labels).value_counts()).to_numpy()
        take = order[np.argsort(rank / size, kind="stable")[:limit]]
    else:
        take = rng.permutation(len(frame))[:limit]
    return frame.iloc[np.sort(take)].reset_index(drop=True)


def check_target(y: pd.Series, task: str, cv: int, target: str) -> np.ndarray:
    if task == "regression":
        if len(y) < 2 * cv:
            raise ValueError(
                f"rows: got {len(y)} for cv={cv}. Expected at least {2 * cv} rows "
                "(two per fold). Lower cv or use more rows (check limit)."
            )
        return y.to_numpy(dtype=np.float64)
    counts = y.astype(str).value_counts()
    if len(counts) < 2:
        raise ValueError(
            f"target {target!r}: got a single class {counts.index[0]!r} "
            f"({counts.iloc[0]} rows). Expected at least two classes. Check the "
            "target column (or the rows kept by limit)."
        )
    rare = counts[counts < cv]
    if len(rare):
        shown = ", ".join(f"{k!r}: {v}" for k, v in rare.head(5).items())
        raise ValueError(
            f"rows per class: got {shown} with cv={cv}. Expected at least {cv} rows "
            f"in every class for {cv}-fold stratified CV. Lower cv to "
            f"{max(2, int(rare.min()))}, add rows, or drop or merge the rare "
            "classes (or raise limit)."
        )
    return LabelEncoder().fit_transform(y.astype(str))


def check_groups(values: pd.Series, cv: int) -> np.ndarray:
    if values.isna().any():
        where = np.flatnonzero(values.isna().to_numpy())[:5].tolist()
        raise ValueError(
            f"groups column {values.name!r}: got {int(values.isna().sum())} missing "
            f"values (rows {where}...). Expected a group in every row. Fill or drop "
            "those rows."
        )
    codes, uniques = pd.factorize(values)
    if len(uniques) < cv:
        raise ValueError(
            f"groups column {values.name!r}: got {len(uniques)} distinct groups for "
            f"cv={cv}. Expected at least {cv} groups (one per fold). Lower cv or "
            "use a finer grouping."
        )
    return codes


def make_splitter(task: str, cv: int, grouped: bool, seed: Any) -> Any:
    classify = task == "classification"
    if grouped:
        cls = StratifiedGroupKFold if classify else GroupKFold
    else:
        cls = StratifiedKFold if classify else KFold
    return cls(n_splits=cv, shuffle=True, random_state=seed)


def class_names(y: pd.Series, task: str) -> list:
    return sorted(y.astype(str).unique()) if task == "classification" else []


def value_kind(values: pd.Series) -> str:
    """What a column holds, as a model file records it: number, bool, string."""
    if pd.api.types.is_bool_dtype(values):
        return "bool"
    if pd.api.types.is_numeric_dtype(values):
        return "number"
    present = values.dropna()
    if len(present) and present.map(lambda v: isinstance(v, str)).all():
        return "string"
    return "mixed"


def check_text(values: pd.Series, col: str) -> None:
    bad = values.isna() | ~values.map(lambda v: isinstance(v, str))
    if bad.any():
        where = np.flatnonzero(bad.to_numpy())
        raise ValueError(
            f"text column {col!r}: got {len(where)} missing or non-text values "
            f"(rows {where[:5].tolist()}{'...' if len(where) > 5 else ''}). "
            "Expected a string in every row. Fill them (e.g. with '') or drop "
            "those rows."
        )


def image_items(values: pd.Series, col: str, base: Path | None) -> list:
    """Resolve the paths of an image column; report every missing file at once."""
    items, missing = [], []
    for i, item in enumerate(values):
        if isinstance(item, (str, os.PathLike)):
            path = Path(item).expanduser()
            if not path.is_absolute():
                near = base is not None and (base / path).is_file()
                path = (base if near else Path.cwd()) / path
            if not path.is_file():
                missing.append((i, str(item)))
            items.append(str(path))
        elif item is None or (isinstance(item, float) and np.isnan(item)):
            missing.append((i, "<empty>"))
        else:
            items.append(item)
    if missing:
        shown = ", ".join(f"row {i}: {p!r}" for i, p in missing[:3])
        where = f"{str(base)!r} (the data file's folder), then in " if base else ""
        raise FileNotFoundError(
            f"image column {col!r}: got {len(missing)} of {len(values)} paths that "
            f"do not exist ({shown}{', ...' if len(missing) > 3 else ''}). Expected "
            f"image files; relative paths are looked up in {where}the working "
            f"directory {str(Path.cwd())!r}. Fix the paths or drop those rows."
        )
    check_images_decode(items, col)
    return items


def check_images_decode(items: list, col: str) -> None:
    """Decode every image file now, so a bad one is named before embedding.

    ``verify()`` passes a truncated JPEG; a full decode does not. JPEGs decode
    at 1/8 scale (``draft``), which reads the whole file at a fraction of the
    cost. Every bad file is reported at once.
    """
    from PIL import Image

    bad = []
    paths = [(i, p) for i, p in enumerate(items) if isinstance(p, str)]
    for i, path in paths:
        try:
            with Image.open(path) as img:
                img.draft("RGB", (64, 64))  # JPEG only; a no-op for the others
                img.load()
        except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError...
            bad.append((i, path, " ".join(f"{type(exc).__name__}: {exc}".split())))
    if bad:
        shown = "; ".join(f"row {i}: {p!r} ({why[:120]})" for i, p, why in bad[:3])
        raise ValueError(
            f"image column {col!r}: got {len(bad)} of {len(paths)} files that "
            f"cannot be decoded ({shown}{'; ...' if len(bad) > 3 else ''}). "
            "Expected complete image files (PNG, JPEG, ...). Replace those files "
            "or drop their rows."
        )


def write_table(frame: pd.DataFrame, output: str | os.PathLike) -> None:
    """Write ``frame`` as CSV or Parquet (by suffix), atomically; ``-``: stdout."""
    import sys

    from .._atomic import atomic_path

    if os.fspath(output) == "-":
        frame.to_csv(sys.stdout, index=False)
        return
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(output) as tmp:
        if output.suffix.lower() == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
