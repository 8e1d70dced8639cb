"""The CLI never leaves a damaged file and fails early with one clear line.

Issue 14: outputs are written beside their target and moved into place; output
paths are checked before any model work; files, caches and images the user can
fix give ``error: ...`` (exit 1); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import warnings

import numpy as np
import pandas as pd
import pytest
from _baseline_data import image_frame, text_frame
from PIL import Image

import hybridml.baseline
from hybridml._atomic import atomic_path
from hybridml._paths import cache_dir
from hybridml.baseline import table as _table
from hybridml.baseline import write_report
from hybridml.cli import main


@pytest.fixture
def text_csv(tmp_path):
    path = tmp_path / "reviews.csv"
    text_frame().to_csv(path, index=False)
    return path


@pytest.fixture
def blocker(tmp_path):
    """A plain file that output paths try to use as a folder."""
    path = tmp_path / "blocker"
    path.write_text("a user's file\n")
    return path


def _error(argv, capsys) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert err.count("\n") == 1, err  # one line
    return err


def _no_model_work(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("model work started before the output was checked")

    monkeypatch.setattr(hybridml.baseline, "run_baseline", fail)
    monkeypatch.setattr(hybridml.baseline, "embed_frame", fail)


def _full_disk(method: str, monkeypatch):
    """Make DataFrame.<method> write half a file, then fail as a full disk does."""

    def half_then_full(self, path, *args, **kwargs):
        with open(path, "wb") as handle:
            handle.write(b"PAR1 half a file")
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(pd.DataFrame, method, half_then_full)


# -- atomic outputs -------------------------------------------------------------


def test_embed_output_is_never_left_half_written(
    text_csv, text_preset, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "emb.parquet"
    out.write_bytes(b"the previous run's file")
    _full_disk("to_parquet", monkeypatch)
    err = _error(["embed", str(text_csv), "--text", "review", "--backbone",
                  str(text_preset), "-o", str(out), "-q"], capsys)  # fmt: skip
    assert "No space left on device. The disk is full." in err
    assert out.read_bytes() == b"the previous run's file"  # untouched
    assert not list(tmp_path.glob(".emb.parquet.*"))  # no temporary file left


def test_datasets_output_is_never_left_half_written(tmp_path, monkeypatch, capsys):
    out = tmp_path / "wine.csv"
    _full_disk("to_csv", monkeypatch)
    err = _error(["datasets", "wine", "-o", str(out)], capsys)
    assert f"error: file '{tmp_path}" in err and "disk is full" in err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_report_files_are_replaced_whole(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    board = pd.DataFrame({"rank": [1], "features": ["tfidf"], "head": ["logreg"],
        "kind": ["classical"], "metric": ["accuracy"], "mean": [0.81],
        "std": [0.01], "embed_s": [0.0], "fit_s": [0.2], "dims": [900],
        "scores": [[0.8, 0.82]]})  # fmt: skip
    write_report(board, tmp_path)
    before = (tmp_path / "scores.png").read_bytes()

    def half_png(self, path, **kwargs):
        with open(path, "wb") as handle:
            handle.write(b"\x89PNG half")
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(Figure, "savefig", half_png)
    with pytest.raises(OSError, match="No space left"):
        write_report(board, tmp_path)
    assert (tmp_path / "scores.png").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "leaderboard.csv", "leaderboard.json", "scores.png"]  # fmt: skip


def test_atomic_path_gives_the_usual_file_mode(tmp_path):
    with atomic_path(tmp_path / "a.csv") as tmp:
        tmp.write_text("x\n")
        assert tmp.suffix == ".csv"  # writers that go by the extension still work
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "a.csv").stat().st_mode & 0o777 == 0o666 & ~umask


# -- outputs checked before any model work --------------------------------------


def test_baseline_output_checked_before_the_run(text_csv, blocker, monkeypatch, capsys):
    _no_model_work(monkeypatch)
    base = ["baseline", str(text_csv), "--target", "label", "--text", "review"]
    err = _error([*base, "--output", str(blocker)], capsys)
    assert "--output: got" in err and "which is a file. Expected a folder" in err
    err = _error([*base, "--output", str(blocker / "report")], capsys)
    assert f"but {str(blocker)!r} is a file, not a folder" in err
    assert blocker.read_text() == "a user's file\n"


def test_embed_output_checked_before_the_run(
    text_csv, blocker, tmp_path, monkeypatch, capsys
):
    _no_model_work(monkeypatch)
    base = ["embed", str(text_csv), "--text", "review", "-o"]
    err = _error([*base, str(blocker / "x.parquet")], capsys)
    assert "is a file, not a folder" in err
    (tmp_path / "d.parquet").mkdir()
    err = _error([*base, str(tmp_path / "d.parquet")], capsys)
    assert "which is a folder. Expected a new file name" in err


def test_unwritable_output_folder_named_before_the_run(
    text_csv, tmp_path, monkeypatch, capsys
):
    _no_model_work(monkeypatch)

    def denied(*args, dir=None, **kwargs):  # what mkstemp does in a 0555 folder
        raise PermissionError(errno.EACCES, "Permission denied", dir)

    monkeypatch.setattr("hybridml._atomic.tempfile.mkstemp", denied)
    err = _error(["embed", str(text_csv), "--text", "review", "-o",
                  str(tmp_path / "x.parquet")], capsys)  # fmt: skip
    assert "cannot be written (Permission denied" in err
    err = _error(["baseline", str(text_csv), "--target", "label", "--output",
                  str(tmp_path / "r")], capsys)  # fmt: skip
    assert "cannot be written (Permission denied" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_read_only_folder_is_refused(text_csv, tmp_path, monkeypatch, capsys):
    _no_model_work(monkeypatch)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    err = _error(["embed", str(text_csv), "--text", "review", "-o",
                  str(locked / "x.parquet")], capsys)  # fmt: skip
    assert "Permission denied" in err


# -- user errors, one line; bugs keep their traceback ---------------------------


def _raising(exc, monkeypatch):
    def run(*args, **kwargs):
        raise exc

    import hybridml.baseline.run as run_module

    monkeypatch.setattr(run_module, "run_steps", run)  # what the CLI calls


def _baseline_argv(text_csv, tmp_path):
    return ["baseline", str(text_csv), "--target", "label", "--output",
            str(tmp_path / "r")]  # fmt: skip


def test_os_error_is_one_line_with_file_and_fix(
    text_csv, tmp_path, monkeypatch, capsys
):
    _raising(PermissionError(errno.EACCES, "Permission denied", "/srv/x"), monkeypatch)
    err = _error(_baseline_argv(text_csv, tmp_path), capsys)
    assert err == (
        "error: file '/srv/x': Permission denied. Choose a path you can write to, "
        "or fix its permissions.\n"
    )


def test_sqlite_error_is_one_line(text_csv, tmp_path, monkeypatch, capsys):
    _raising(sqlite3.OperationalError("database is locked"), monkeypatch)
    err = _error(_baseline_argv(text_csv, tmp_path), capsys)
    assert err.startswith("error: cache database: database is locked. Expected")


def test_cache_path_under_a_file_is_one_line(text_csv, blocker, tmp_path, capsys):
    _error(["embed", str(text_csv), "--text", "review", "-o",
            str(tmp_path / "x.parquet"), "--cache", str(blocker / "c.sqlite")],
           capsys)  # fmt: skip
    assert blocker.read_text() == "a user's file\n"


def test_pil_error_is_one_line(text_csv, tmp_path, monkeypatch, capsys):
    bomb = Image.DecompressionBombError("Image size (999999999 pixels) exceeds limit")
    _raising(bomb, monkeypatch)
    err = _error(_baseline_argv(text_csv, tmp_path), capsys)
    assert err.startswith("error: image: Image size (999999999 pixels)")


def test_key_error_is_a_bug_not_a_user_error(text_csv, tmp_path, monkeypatch):
    _raising(KeyError("architectures"), monkeypatch)  # was "error: architectures"
    with pytest.raises(KeyError, match="architectures"):
        main(_baseline_argv(text_csv, tmp_path))


def test_a_library_value_error_keeps_its_traceback(text_csv, tmp_path, monkeypatch):
    def run(*args, **kwargs):
        np.reshape(np.arange(3), (2, 2))  # a bug: numpy's ValueError

    import hybridml.baseline.run as run_module

    monkeypatch.setattr(run_module, "run_steps", run)  # what the CLI calls
    with pytest.raises(ValueError, match="cannot reshape"):
        main(_baseline_argv(text_csv, tmp_path))


def test_cache_dir_that_is_a_file(blocker, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HYBRIDML_CACHE_DIR", str(blocker))
    with pytest.raises(ValueError, match=r"is a file\. Expected a folder"):
        cache_dir()
    err = _error(["datasets", "fashion_mnist", "-o", str(tmp_path / "f.csv")], capsys)
    assert "HYBRIDML_CACHE_DIR" in err and blocker.read_text() == "a user's file\n"


# -- reading the CSV --------------------------------------------------------------


def test_header_only_csv(tmp_path, capsys):
    (tmp_path / "h.csv").write_text("review,label\n")
    err = _error(["baseline", str(tmp_path / "h.csv"), "--target", "label",
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
    err = _error(["embed", str(table), "--image", "path", "-o",
                  str(tmp_path / "o.parquet")], capsys)  # fmt: skip
    assert "got 1 of 16 files that cannot be decoded (row 3: " in err
    assert "cut.jpg' (OSError: image file is truncated" in err
    err = _error(["baseline", str(table), "--target", "label", "--image", "path",
                  "--output", str(tmp_path / "r")], capsys)  # fmt: skip
    assert "cut.jpg' (OSError: image file is truncated" in err


def test_decompression_bomb_named_before_embedding(tmp_path, monkeypatch):
    frame = image_frame(tmp_path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 24 x 24 > 2 x 100
    with pytest.raises(ValueError, match=r"16 of 16 .*\(DecompressionBombError"):
        _table.image_items(frame["path"], "path", tmp_path)


def test_our_error_from_a_worker_is_still_one_line(
    text_csv, tmp_path, monkeypatch, capsys
):
    def run(*args, **kwargs):  # joblib re-raises a worker's error in its own frame
        from joblib import Parallel, delayed

        def worker():
            raise ValueError("head: got 'svm'. Expected one of logreg, svc.")

        Parallel(n_jobs=2, backend="threading")(delayed(worker)() for _ in "ab")

    import hybridml.baseline.run as run_module

    monkeypatch.setattr(run_module, "run_steps", run)  # what the CLI calls
    err = _error(_baseline_argv(text_csv, tmp_path), capsys)
    assert err == "error: head: got 'svm'. Expected one of logreg, svc.\n"
