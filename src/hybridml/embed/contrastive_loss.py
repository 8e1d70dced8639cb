"""Contrastive objectives over all pairs of a batch (imports keras: load lazily).

``y_true`` is a (batch, n_columns) label indicator matrix; the target
similarity of rows i and j is the cosine of their indicator rows (1 for the
same class or label set, 0 for disjoint ones, in between for overlapping label
sets). ``y_pred`` is the (batch, dim) embedding.
"""

from __future__ import annotations

import keras
from keras import ops

__all__ = ["BatchCosineLoss", "SupervisedContrastiveLoss", "make_loss"]


def _unit(x):
    return x / ops.sqrt(ops.maximum(ops.sum(x * x, axis=-1, keepdims=True), 1e-12))


def _similarities(y_true, y_pred):
    emb = _unit(ops.cast(y_pred, "float32"))
    lab = _unit(ops.cast(y_true, "float32"))
    n = ops.shape(emb)[0]
    off = 1.0 - ops.eye(n, dtype="float32")
    return ops.matmul(emb, ops.transpose(emb)), ops.matmul(lab, ops.transpose(lab)), off


class BatchCosineLoss(keras.losses.Loss):
    """SetFit's objective on every pair of the batch: (cos(e_i, e_j) - t_ij)^2.

    Returns one value per row: the mean squared error over its partners.
    """

    def call(self, y_true, y_pred):
        sim, target, off = _similarities(y_true, y_pred)
        err = ops.square(sim - target) * off
        return ops.sum(err, axis=1) / ops.maximum(ops.sum(off, axis=1), 1.0)


class SupervisedContrastiveLoss(keras.losses.Loss):
    """Supervised contrastive loss (Khosla et al. 2020), in-batch negatives.

    Each row's partners are weighted by their target similarity; rows with no
    positive partner in the batch contribute zero.
    """

    def __init__(self, temperature: float = 0.07, **kwargs):
        super().__init__(**kwargs)
        self.temperature = temperature

    def call(self, y_true, y_pred):
        sim, target, off = _similarities(y_true, y_pred)
        logits = sim / self.temperature - (1.0 - off) * 1e9
        log_prob = logits - ops.logsumexp(logits, axis=1, keepdims=True)
        pos = target * off
        count = ops.sum(pos, axis=1)
        per_row = -ops.sum(pos * log_prob, axis=1) / ops.maximum(count, 1e-9)
        return ops.where(count > 0, per_row, 0.0)


def make_loss(name: str, temperature: float) -> keras.losses.Loss:
    if name == "supcon":
        return SupervisedContrastiveLoss(temperature)
    return BatchCosineLoss()
