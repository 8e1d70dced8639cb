"""A leaderboard in Python: which pretrained features + head fit my labels best?
=============================================================================

``run_baseline`` is what ``hybridml baseline`` runs: each backbone embeds each
review once, then every head is cross-validated on the embeddings, beside a
TF-IDF + logistic regression baseline, a stack of the best three and the chance
floor. Reviews of one film stay in one fold (``groups="movie"``). The result is
a DataFrame (best first); ``write_report`` saves it as CSV, JSON and a PNG plot.

Data: the shipped Rotten Tomatoes snippets (fresh vs rotten), 1,000 of them.
``HYBRIDML_FAST=1`` runs on 200 with two heads and 3 folds (a smoke run).

    python recipes/text_baseline.py
"""

from __future__ import annotations

import os

import hybridml

hybridml.quiet()

from hybridml import run_baseline  # noqa: E402
from hybridml.baseline import format_leaderboard, write_report  # noqa: E402
from hybridml.datasets import load_rotten_tomatoes  # noqa: E402


def main():
    fast = os.environ.get("HYBRIDML_FAST") == "1"
    board = run_baseline(
        load_rotten_tomatoes(),
        target="label",
        text="text",
        tabular=None,  # the film title is the grouping, not a feature
        groups="movie",
        backbones=["all_minilm_l6_v2_en"],
        heads="logreg,svc" if fast else "logreg,svc,rf,knn",
        cv=3 if fast else 5,
        limit=200 if fast else 1000,
        random_state=0,
    )
    print(format_leaderboard(board))
    folder = write_report(board, "text-baseline-report")
    best = board.iloc[0]
    print(f"\nbest: {best['features']} + {best['head']} "
          f"({best['mean']:.3f} {best['metric']}); report in {folder}/")  # fmt: skip
    return board


if __name__ == "__main__":
    main()
