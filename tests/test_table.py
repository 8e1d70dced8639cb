"""Reading tables and their images (hybridml.baseline.table): CSV problems and
undecodable images are named, with the file and the fix, before any model work.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from _baseline_data import image_frame, text_frame
from _cli_helpers import cli_error
from PIL import Image

from hybridml.baseline import table as _table

# -- reading the CSV --------------------------------------------------------------


def test_header_only_csv(tmp_path, capsys):
    (tmp_path / "h.csv").write_text("review,label\n")
    err = cli_error(["baseline", str(tmp_path / "h.csv"), "--target", "label",
                  "--text", "review"], capsys)  # fmt: skip
    assert "h.csv': got 0 rows (columns: 'review', 'label')" in err


def test_empty_and_malformed_csv_name_the_file(tmp_path):
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(ValueError, match=r"e.csv': got an empty file"):
        _table.read_data(tmp_path / "e.csv")
    (tmp_path / "m.csv").write_text('a,b\n1,2\n"3,4\n5,6,7,8\n')
    with pytest.raises(ValueError, match=r"m.csv': cannot be read as CSV \("):
        _table.read_data(tmp_path / "m.csv")
    (tmp_path / "p.parquet").write_text("not parquet")
    with pytest.raises(ValueError, match=r"p.parquet': cannot be read as Parquet"):
        _table.read_data(tmp_path / "p.parquet")


@pytest.mark.parametrize(("sep", "word"), [(";", "semicolon"), ("|", "pipe"),
                                           ("\t", "tab")])  # fmt: skip
def test_other_delimiter_is_suggested(tmp_path, sep, word):
    text_frame().to_csv(tmp_path / "s.csv", sep=sep, index=False)
    with pytest.raises(ValueError, match=rf"s.csv': got one column .* {word}-sep"):
        _table.read_data(tmp_path / "s.csv")


def test_windows_1252_csv_is_read_with_a_warning(tmp_path):
    (tmp_path / "w.csv").write_bytes("review,label\ncafé crème,1\n".encode("cp1252"))
    with pytest.warns(UserWarning, match=r"w.csv' is not UTF-8 .* Windows-1252"):
        frame, _ = _table.read_data(tmp_path / "w.csv")
    assert frame["review"].tolist() == ["café crème"]


def test_undecodable_csv_names_file_and_fix(tmp_path):
    (tmp_path / "b.csv").write_bytes(b"review,label\n\x81\x8d\x90,1\n")
    with pytest.raises(ValueError, match=r"b.csv': got bytes that are neither"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            _table.read_data(tmp_path / "b.csv")


# -- images decoded during validation -------------------------------------------


def _bad_image_table(tmp_path):
    frame = image_frame(tmp_path)
    rgb = (np.random.RandomState(0).rand(32, 32, 3) * 255).astype("uint8")
    Image.fromarray(rgb).save(tmp_path / "whole.jpg", quality=90)
    data = (tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with Image.open(tmp_path / "cut.jpg") as img:
        img.verify()  # the truncated file passes verify()
    frame.loc[3, "path"] = "cut.jpg"
    frame.to_csv(tmp_path / "images.csv", index=False)
    return tmp_path / "images.csv"


def test_truncated_jpeg_named_before_embedding(tmp_path, monkeypatch, capsys):
    table = _bad_image_table(tmp_path)

    def no_load(*args, **kwargs):
        raise AssertionError("a backbone loaded before the images were checked")

    monkeypatch.setattr("hybridml.baseline.embed_table._load", no_load)
    err = cli_error(["embed", str(table), "--image", "path", "-o",
                  str(tmp_path / "o.parquet")], capsys)  # fmt: skip
    assert "got 1 of 16 files that cannot be decoded (row 3: " in err
    assert "cut.jpg' (OSError: image file is truncated" in err
    err = cli_error(["baseline", str(table), "--target", "label", "--image", "path",
                  "--output", str(tmp_path / "r")], capsys)  # fmt: skip
    assert "cut.jpg' (OSError: image file is truncated" in err


def test_decompression_bomb_named_before_embedding(tmp_path, monkeypatch):
    frame = image_frame(tmp_path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 24 x 24 > 2 x 100
    with pytest.raises(ValueError, match=r"16 of 16 .*\(DecompressionBombError"):
        _table.image_items(frame["path"], "path", tmp_path)
