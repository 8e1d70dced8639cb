"""Does the saved winner score on unseen films what the leaderboard promised?

Holds out whole films of the shipped Rotten Tomatoes snippets, runs
``hybridml baseline --save-best`` on the rest (grouped CV by film), then
``hybridml predict`` on the held-out films, and compares the held-out accuracy
with the leaderboard's best row: "within noise" means within two standard
errors (the CV spread of the row combined with the binomial error of the
held-out accuracy).

    python benchmarks/holdout_rotten_tomatoes.py --train 2000 --holdout 800

Both sizes subsample (rows of whole films); the defaults take a few minutes on
a laptop CPU. Prints one summary line and writes it to ``--output`` as JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def split_films(frame: pd.DataFrame, holdout: float, seed: int):
    rng = np.random.RandomState(seed)
    films = np.array(frame["movie"].unique(), dtype=object)
    rng.shuffle(films)
    held = set(films[: round(holdout * len(films))])
    mask = frame["movie"].isin(held)
    return frame[~mask], frame[mask]


def take_films(frame: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """About ``rows`` rows made of whole films (a random order of films)."""
    if rows >= len(frame):
        return frame
    films = frame["movie"].drop_duplicates().sample(frac=1.0, random_state=seed)
    sizes = frame.groupby("movie").size()[films]
    keep = films[np.cumsum(sizes.to_numpy()) <= rows]
    return frame[frame["movie"].isin(set(keep))]


def hybridml(*args: str) -> None:
    cmd = [sys.executable, "-m", "hybridml", *args]
    print("$", " ".join(cmd[2:]), file=sys.stderr)
    subprocess.run(cmd, check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=2000, help="training rows")
    parser.add_argument("--holdout", type=int, default=800, help="held-out rows")
    parser.add_argument("--heads", default="logreg,svc,knn")
    parser.add_argument("--cv", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", help="EmbeddingCache folder to reuse")
    parser.add_argument("--output", default="holdout_rotten_tomatoes.json")
    args = parser.parse_args()

    from hybridml.datasets import load_rotten_tomatoes

    frame = load_rotten_tomatoes()
    train, held = split_films(frame, 0.3, args.seed)
    train = take_films(train, args.train, args.seed)
    held = take_films(held, args.holdout, args.seed)
    assert not set(train["movie"]) & set(held["movie"])
    work = Path(tempfile.mkdtemp(prefix="hml-holdout-"))
    train.to_csv(work / "train.csv", index=False)
    held.drop(columns="label").to_csv(work / "new.csv", index=False)
    cache = ["--cache", args.cache] if args.cache else []
    t0 = time.perf_counter()
    hybridml(
        "baseline", str(work / "train.csv"), "--target", "label", "--text", "text",
        "--tabular", "none", "--groups", "movie", "--heads", args.heads,
        "--cv", str(args.cv), "--seed", str(args.seed), "--output",
        str(work / "report"), "--save-best", str(work / "best.hml"), "-q", *cache,
    )  # fmt: skip
    t1 = time.perf_counter()
    hybridml(
        "predict", str(work / "best.hml"), str(work / "new.csv"), "-o",
        str(work / "pred.csv"), "--keep", "movie", *cache,
    )  # fmt: skip
    t2 = time.perf_counter()
    board = pd.read_csv(work / "report" / "leaderboard.csv")
    best = board.iloc[0]
    pred = pd.read_csv(work / "pred.csv")
    acc = float((pred["predicted_label"].astype(str).to_numpy()
                 == held["label"].astype(str).to_numpy()).mean())  # fmt: skip
    se = math.sqrt(acc * (1 - acc) / len(held) + float(best["std"]) ** 2 / args.cv)
    result = {
        "train_rows": len(train), "train_films": int(train["movie"].nunique()),
        "holdout_rows": len(held), "holdout_films": int(held["movie"].nunique()),
        "best_row": f"{best['features']} + {best['head']}",
        "cv_mean": float(best["mean"]), "cv_std": float(best["std"]),
        "holdout_accuracy": acc, "difference": acc - float(best["mean"]),
        "two_se": 2 * se, "within_noise": abs(acc - float(best["mean"])) <= 2 * se,
        "baseline_s": t1 - t0, "predict_s": t2 - t1, "work": str(work),
    }  # fmt: skip
    Path(args.output).write_text(json.dumps(result, indent=1))
    print(
        f"best row {result['best_row']}: CV {result['cv_mean']:.3f} +/- "
        f"{result['cv_std']:.3f} on {len(train)} rows; held-out films "
        f"{acc:.3f} on {len(held)} rows (difference {result['difference']:+.3f}, "
        f"2 SE {result['two_se']:.3f}, within noise: {result['within_noise']})"
    )
    return 0 if result["within_noise"] else 1


if __name__ == "__main__":
    sys.exit(main())
