"""Leaderboard rows with a fine-tuned backbone: ``hybridml baseline --finetune``.

Two kinds of row per text backbone, next to the frozen rows:

- ``"contrastive"`` (kind ``"tuned"``): a :class:`~hybridml.ContrastiveFineTuner`
  on each text column, then logistic regression (SetFit's recipe);
- ``"end_to_end"`` (kind ``"finetuned"``): the backbone with a classification
  head, fine-tuned end to end on the first text column
  (:func:`~hybridml.make_finetune_classifier`).

Both are steps of the cross-validated pipeline, so every fold tunes its own
copy of the backbone on its own training rows (no leakage from the held-out
fold); the row's ``fit_s`` column is that cost, tuning included, per fold.
"""

from __future__ import annotations

import os
from operator import itemgetter
from typing import Any

from .. import _heads
from .._validation import split_names

__all__ = ["KINDS", "TUNED_HEAD", "check_finetune", "finetune_candidates"]

TUNED_HEAD = "logreg"
KINDS = ("contrastive", "end_to_end")


def check_finetune(value: Any) -> tuple[str, ...]:
    """The row kinds ``finetune=`` asks for: False/None none, True both."""
    if value is None or value is False:
        return ()
    if value is True:
        return KINDS
    try:
        kinds = tuple(dict.fromkeys(str(k) for k in split_names(value)))
    except TypeError:
        kinds = ("?",)
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise ValueError(
            f"finetune: got {value!r}. Expected True, False, or some of "
            f"{', '.join(map(repr, KINDS))}. Pass e.g. finetune='contrastive'."
        )
    return kinds


def finetune_candidates(
    specs: list,
    names: list[str],
    modalities: list[str],
    text: list[str],
    tab: list,
    task: str,
    seed: int | None,
    params: dict | None = None,
    kinds: tuple[str, ...] = ("contrastive",),
) -> list[dict]:
    """Candidate dicts (as ``run._candidates`` makes) for the tuned rows.

    Only text backbones on classification tasks are tuned (the tuner learns
    from class labels; image columns are not in the leaderboard's design
    matrix). Returns an empty list otherwise.
    """
    from ..embed.contrastive import ContrastiveFineTuner

    if task != "classification" or not text:
        return []
    out = []
    suffix = " + tabular" if tab else ""
    for spec, name, modality in zip(specs, names, modalities, strict=True):
        if modality != "text":
            continue
        if "end_to_end" in kinds and isinstance(spec, (str, os.PathLike)):
            # make_finetune_classifier builds a task from a preset; a model
            # instance given as a backbone gets no end-to-end row
            out.append(_end_to_end(os.fspath(spec), name, text[0], seed))
        if "contrastive" not in kinds:
            continue
        parts = [
            (
                f"tuned_{col}",
                ContrastiveFineTuner(spec, random_state=seed, **(params or {})),
                col,
            )
            for col in text
        ]
        model = _heads.select(
            "features", [*parts, *tab], _heads.make_head(TUNED_HEAD, task, seed)
        )
        out.append(
            dict(
                kind="tuned",
                features=f"{name} (tuned){suffix}",
                head=TUNED_HEAD,
                model=model,
                embed_s=0.0,
            )
        )
    return out


def describe(candidates: list[dict[str, Any]]) -> str:
    """One line for the progress printer: what the tuned rows cost."""
    kinds = sorted({c["kind"] for c in candidates})
    return (
        f"fine-tuning {len(candidates)} row(s) ({', '.join(kinds)}) inside each "
        "fold: their fit_s includes the tuning"
    )


def _end_to_end(spec: Any, name: str, column: str, seed: int | None) -> dict:
    """The backbone plus a classification head, trained end to end."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    from ..finetune_models import make_finetune_classifier

    model = Pipeline(
        [
            ("select", FunctionTransformer(itemgetter(column))),  # raw strings
            # the preset's own token length: always within the backbone's limit
            (
                "head",
                make_finetune_classifier(spec, sequence_length=None, random_state=seed),
            ),
        ]
    )
    return dict(
        kind="finetuned",
        features=f"{name} (fine-tuned end to end)",
        head="dense",
        model=model,
        embed_s=0.0,
    )
