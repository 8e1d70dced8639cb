"""Leaderboard rows with a fine-tuned backbone: ``hybridml baseline --finetune``.

Each text backbone gets one "tuned" row: a :class:`~hybridml.ContrastiveFineTuner`
on each text column, then logistic regression (SetFit's recipe). The tuner is a
step of the cross-validated pipeline, so every fold tunes its own copy of the
backbone on its own training rows (no leakage from the held-out fold); the
row's ``fit_s`` column is that cost, tuning included, per fold.
"""

from __future__ import annotations

from typing import Any

from . import features as _features

__all__ = ["TUNED_HEAD", "finetune_candidates"]

TUNED_HEAD = "logreg"


def finetune_candidates(
    specs: list,
    names: list[str],
    modalities: list[str],
    text: list[str],
    tab: list,
    task: str,
    seed: int | None,
    params: dict | None = None,
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
        parts = [
            (
                f"tuned_{col}",
                ContrastiveFineTuner(spec, random_state=seed, **(params or {})),
                col,
            )
            for col in text
        ]
        model = _features.select(
            "features", [*parts, *tab], _features.make_head(TUNED_HEAD, task, seed)
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
    return (
        f"fine-tuning {len(candidates)} backbone(s) inside each fold "
        "(contrastive, SetFit-style): their fit_s includes the tuning"
    )
