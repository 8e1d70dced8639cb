"""The CLI's error policy (hybridml.cli): output paths are checked before any
model work; files, caches and images the user can fix give ``error: ...``
(exit 1, one line); anything else is a bug and keeps its traceback (issue 14).
"""

from __future__ import annotations

import errno
import os
import sqlite3

import numpy as np
import pytest
from _cli_helpers import cli_error, no_model_work, write_blocker, write_text_csv
from PIL import Image

from hybridml._paths import cache_dir
from hybridml.cli import main


@pytest.fixture
def text_csv(tmp_path):
    return write_text_csv(tmp_path)


@pytest.fixture
def blocker(tmp_path):
    return write_blocker(tmp_path)


# -- outputs checked before any model work --------------------------------------


def test_baseline_output_checked_before_the_run(text_csv, blocker, monkeypatch, capsys):
    no_model_work(monkeypatch)
    base = ["baseline", str(text_csv), "--target", "label", "--text", "review"]
    err = cli_error([*base, "--output", str(blocker)], capsys)
    assert "--output: got" in err and "which is a file. Expected a folder" in err
    err = cli_error([*base, "--output", str(blocker / "report")], capsys)
    assert f"but {str(blocker)!r} is a file, not a folder" in err
    assert blocker.read_text() == "a user's file\n"


def test_embed_output_checked_before_the_run(
    text_csv, blocker, tmp_path, monkeypatch, capsys
):
    no_model_work(monkeypatch)
    base = ["embed", str(text_csv), "--text", "review", "-o"]
    err = cli_error([*base, str(blocker / "x.parquet")], capsys)
    assert "is a file, not a folder" in err
    (tmp_path / "d.parquet").mkdir()
    err = cli_error([*base, str(tmp_path / "d.parquet")], capsys)
    assert "which is a folder. Expected a new file name" in err


def test_unwritable_output_folder_named_before_the_run(
    text_csv, tmp_path, monkeypatch, capsys
):
    no_model_work(monkeypatch)

    def denied(*args, dir=None, **kwargs):  # what mkstemp does in a 0555 folder
        raise PermissionError(errno.EACCES, "Permission denied", dir)

    monkeypatch.setattr("hybridml._atomic.tempfile.mkstemp", denied)
    err = cli_error(["embed", str(text_csv), "--text", "review", "-o",
                  str(tmp_path / "x.parquet")], capsys)  # fmt: skip
    assert "cannot be written (Permission denied" in err
    err = cli_error(["baseline", str(text_csv), "--target", "label", "--output",
                  str(tmp_path / "r")], capsys)  # fmt: skip
    assert "cannot be written (Permission denied" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_read_only_folder_is_refused(text_csv, tmp_path, monkeypatch, capsys):
    no_model_work(monkeypatch)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    err = cli_error(["embed", str(text_csv), "--text", "review", "-o",
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
    err = cli_error(_baseline_argv(text_csv, tmp_path), capsys)
    assert err == (
        "error: file '/srv/x': Permission denied. Choose a path you can write to, "
        "or fix its permissions.\n"
    )


def test_sqlite_error_is_one_line(text_csv, tmp_path, monkeypatch, capsys):
    _raising(sqlite3.OperationalError("database is locked"), monkeypatch)
    err = cli_error(_baseline_argv(text_csv, tmp_path), capsys)
    assert err.startswith("error: cache database: database is locked. Expected")


def test_cache_path_under_a_file_is_one_line(text_csv, blocker, tmp_path, capsys):
    cli_error(["embed", str(text_csv), "--text", "review", "-o",
            str(tmp_path / "x.parquet"), "--cache", str(blocker / "c.sqlite")],
           capsys)  # fmt: skip
    assert blocker.read_text() == "a user's file\n"


def test_pil_error_is_one_line(text_csv, tmp_path, monkeypatch, capsys):
    bomb = Image.DecompressionBombError("Image size (999999999 pixels) exceeds limit")
    _raising(bomb, monkeypatch)
    err = cli_error(_baseline_argv(text_csv, tmp_path), capsys)
    assert err.startswith("error: image: Image size (999999999 pixels)")


def test_key_error_is_a_bug_not_a_usercli_error(text_csv, tmp_path, monkeypatch):
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
    err = cli_error(
        ["datasets", "fashion_mnist", "-o", str(tmp_path / "f.csv")], capsys
    )
    assert "HYBRIDML_CACHE_DIR" in err and blocker.read_text() == "a user's file\n"


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
    err = cli_error(_baseline_argv(text_csv, tmp_path), capsys)
    assert err == "error: head: got 'svm'. Expected one of logreg, svc.\n"
