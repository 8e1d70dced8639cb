"""Tiny labelled tables for the leaderboard and CLI tests (text, images, tabular)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

# Words the tiny BERT preset knows (tests/presets.py), so its tokenizer sees
# real tokens rather than [UNK].
POSITIVE = ["good", "great", "fun", "love", "very good", "so fun", "great story"]
NEGATIVE = ["bad", "terrible", "boring", "hate", "very bad", "so boring", "bad plot"]


def text_frame(n_per_class: int = 12, seed: int = 0) -> pd.DataFrame:
    """Short reviews labelled by their sentiment words, plus two tabular columns."""
    rng = np.random.RandomState(seed)
    rows = []
    for label, words in (("pos", POSITIVE), ("neg", NEGATIVE)):
        for _ in range(n_per_class):
            noun = rng.choice(["movie", "film", "plot", "story"])
            rows.append(
                {
                    "review": f"the {noun} was {rng.choice(words)} .",
                    "label": label,
                    "stars": float(rng.normal(4 if label == "pos" else 2, 1)),
                    "genre": rng.choice(["drama", "comedy"]),
                }
            )
    return pd.DataFrame(rows).sample(frac=1.0, random_state=seed, ignore_index=True)


def stripes(kind: str, rng: np.random.RandomState, size: int = 24) -> np.ndarray:
    """An RGB image of vertical or horizontal stripes with noise, uint8."""
    period = rng.randint(3, 6)
    wave = (np.arange(size) // period) % 2
    grid = (
        np.tile(wave, (size, 1)) if kind == "vertical" else np.tile(wave, (size, 1)).T
    )
    image = grid[..., None] * 200 + rng.randint(0, 40, size=(size, size, 3))
    return image.astype(np.uint8)


def image_frame(folder: Path, n_per_class: int = 8, seed: int = 0) -> pd.DataFrame:
    """PNG files of striped images in ``folder``; relative paths in ``path``."""
    from PIL import Image

    rng = np.random.RandomState(seed)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "img").mkdir(exist_ok=True)
    rows = []
    for kind in ("vertical", "horizontal"):
        for i in range(n_per_class):
            name = f"img/{kind}_{i}.png"
            Image.fromarray(stripes(kind, rng)).save(folder / name)
            rows.append({"path": name, "label": kind})
    return pd.DataFrame(rows).sample(frac=1.0, random_state=seed, ignore_index=True)
