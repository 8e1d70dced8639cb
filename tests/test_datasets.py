"""The shipped datasets: shapes, labels, files on disk, licences, installed layout."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from hybridml import datasets

ROOT = Path(__file__).resolve().parents[1]


def test_rotten_tomatoes_is_balanced_text_with_movies():
    df = datasets.load_rotten_tomatoes()
    assert list(df.columns) == ["text", "label", "movie"]
    assert df.shape == (4000, 3)
    assert df["label"].value_counts().to_dict() == {"fresh": 2000, "rotten": 2000}
    assert df.notna().all().all()
    assert df["text"].map(type).eq(str).all()
    assert not df["text"].duplicated().any()
    assert df["text"].str.len().min() > 0
    assert df["movie"].nunique() > 100


def test_rotten_tomatoes_return_X_y_matches_the_frame():
    df = datasets.load_rotten_tomatoes()
    X, y = datasets.load_rotten_tomatoes(return_X_y=True)
    assert X.shape == y.shape == (4000,)
    assert X.dtype == object and y.dtype == object
    assert X.tolist() == df["text"].tolist()
    assert y.tolist() == df["label"].tolist()


def test_wine_is_numeric_with_three_named_classes():
    df = datasets.load_wine()
    assert df.shape == (178, 14)
    assert df.columns[-1] == "label"
    assert all(np.issubdtype(t, np.floating) for t in df.drop(columns="label").dtypes)
    assert df["label"].value_counts().sort_index().tolist() == [59, 71, 48]
    X, y = datasets.load_wine(return_X_y=True)
    assert X.shape == (178, 13) and X.dtype == np.float64
    np.testing.assert_array_equal(y, df["label"].to_numpy())


def test_digits_arrays_are_uint8_scaled_from_sklearn():
    from sklearn.datasets import load_digits

    images, labels = datasets.load_digits(return_X_y=True)
    assert images.shape == (1797, 8, 8) and images.dtype == np.uint8
    assert images.min() == 0 and images.max() == 255
    np.testing.assert_array_equal(labels, load_digits().target)
    np.testing.assert_allclose(images / 255.0 * 16.0, load_digits().images, atol=0.04)


def test_fashion_mnist_has_200_images_per_class():
    images, labels = datasets.load_fashion_mnist(return_X_y=True)
    assert images.shape == (2000, 28, 28) and images.dtype == np.uint8
    names, counts = np.unique(labels, return_counts=True)
    assert sorted(names) == sorted(datasets.FASHION_MNIST_CLASSES)
    assert counts.tolist() == [200] * 10
    # real images, not blanks: mean intensity of Fashion-MNIST is about 73
    assert 50 < images.mean() < 100
    assert len({img.tobytes() for img in images}) == 2000


@pytest.mark.parametrize("loader", [datasets.load_fashion_mnist, datasets.load_digits])
def test_image_frame_points_at_png_files_equal_to_the_arrays(loader, tmp_path):
    df = loader(image_dir=tmp_path / "imgs")
    images, labels = loader(return_X_y=True)
    assert list(df.columns) == ["path", "label"]
    assert len(df) == len(images)
    np.testing.assert_array_equal(df["label"].to_numpy(), labels)
    for i in (0, len(df) // 2, len(df) - 1):
        path = Path(df["path"].iloc[i])
        assert path.parent == tmp_path / "imgs" and path.suffix == ".png"
        with Image.open(path) as img:
            assert img.mode == "L"
            np.testing.assert_array_equal(np.asarray(img), images[i])


def test_image_files_are_written_once_and_reused(tmp_path):
    first = datasets.load_digits(image_dir=tmp_path)
    stamp = os.stat(first["path"].iloc[0]).st_mtime_ns
    second = datasets.load_digits(image_dir=tmp_path)
    assert second["path"].tolist() == first["path"].tolist()
    assert os.stat(second["path"].iloc[0]).st_mtime_ns == stamp


def test_image_files_default_to_the_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("HYBRIDML_CACHE_DIR", str(tmp_path / "cache"))
    df = datasets.load_digits()
    folder = Path(df["path"].iloc[0]).parent
    assert folder.parent == tmp_path / "cache" / "datasets"
    assert folder.name.startswith("digits-")
    assert all(Path(p).is_file() for p in df["path"])


def test_image_files_fill_an_existing_folder_and_repair_a_stale_one(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    (tmp_path / ".hybridml-complete").write_text("stale digest")
    df = datasets.load_digits(image_dir=tmp_path)
    assert (tmp_path / "mine.txt").read_text() == "keep me"
    assert all(Path(p).is_file() for p in df["path"])
    assert (tmp_path / ".hybridml-complete").read_text() != "stale digest"
    # no temporary folders are left behind
    assert [p.name for p in tmp_path.iterdir() if p.is_dir()] == []


def test_concurrent_first_loads_agree(tmp_path):
    target = tmp_path / "shared"
    with ThreadPoolExecutor(max_workers=3) as pool:
        frames = list(
            pool.map(lambda _: datasets.load_digits(image_dir=target), range(3))
        )
    assert all(f["path"].tolist() == frames[0]["path"].tolist() for f in frames)
    assert len(list(target.glob("*.png"))) == 1797
    assert [p.name for p in tmp_path.iterdir()] == ["shared"]


def test_sample_photos_are_real_colour_images_with_attribution():
    photos = datasets.load_sample_photos()
    assert photos["name"].tolist() == [
        "china",
        "flower",
        "chelsea",
        "coffee",
        "rocket",
        "astronaut",
    ]
    for row in photos.itertuples():
        with Image.open(row.path) as img:
            assert img.mode == "RGB"
            assert min(img.size) >= 300
        assert row.licence in {"CC BY 2.0", "CC0", "public domain"}
        assert row.attribution
        assert all(isinstance(i, int) and 0 <= i < 1000 for i in row.imagenet_ids)
    with_classes = photos[photos["imagenet_ids"].map(len) > 0]
    assert with_classes["name"].tolist() == ["china", "chelsea", "coffee", "rocket"]


def test_every_data_file_is_documented_in_the_data_readme():
    data = datasets.data_dir()
    readme = (data / "README.md").read_text()
    documented = set(re.findall(r"^\| `([^`]+)` \|", readme, re.M))
    shipped = {p.relative_to(data).as_posix() for p in data.rglob("*") if p.is_file()}
    assert shipped == documented
    assert "MIT" in (data / "fashion_mnist" / "LICENSE").read_text()


def test_data_folder_is_packaged_into_the_wheel():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^"data" = "hybridml/data"$', pyproject, re.M)


def _installed_copy(site: Path, *, with_data: bool) -> None:
    """Lay hybridml out as a wheel installs it: package with data/ inside."""
    shutil.copytree(
        ROOT / "src" / "hybridml",
        site / "hybridml",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    if with_data:
        shutil.copytree(datasets.data_dir(), site / "hybridml" / "data")


def _run_in(site: Path, code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_loaders_work_from_an_installed_layout(tmp_path):
    _installed_copy(tmp_path, with_data=True)
    code = (
        "import hybridml, hybridml.datasets as d\n"
        "print(hybridml.__file__)\n"
        "print(d.data_dir())\n"
        "print(d.load_rotten_tomatoes().shape)\n"
        "print(d.load_fashion_mnist(return_X_y=True)[0].shape)\n"
        "print(d.load_sample_photos()['path'][0])\n"
    )
    result = _run_in(tmp_path, code)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == str(tmp_path / "hybridml" / "__init__.py")
    assert lines[1] == str(tmp_path / "hybridml" / "data")
    assert lines[2:4] == ["(4000, 3)", "(2000, 28, 28)"]
    assert lines[4].startswith(str(tmp_path / "hybridml" / "data" / "photos"))


def test_missing_data_folder_is_reported_with_a_fix(tmp_path):
    _installed_copy(tmp_path, with_data=False)
    result = _run_in(
        tmp_path, "import hybridml.datasets as d\nd.load_rotten_tomatoes()\n"
    )
    assert result.returncode != 0
    assert re.search(
        r"FileNotFoundError: hybridml's data folder: got none at .*"
        r"Expected the shipped data files\. Reinstall hybridml",
        result.stderr,
    )


def test_datasets_import_no_heavy_modules():
    code = (
        "import sys, hybridml.datasets as d\n"
        "d.load_rotten_tomatoes(); d.load_fashion_mnist(return_X_y=True)\n"
        "print(sorted(m for m in ('keras', 'keras_hub', 'tensorflow', 'torch')"
        " if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert result.stdout.strip() == "[]"


def test_frames_are_plain_pandas():
    for frame in (datasets.load_rotten_tomatoes(), datasets.load_wine()):
        assert type(frame) is pd.DataFrame
        assert frame.index.equals(pd.RangeIndex(len(frame)))
