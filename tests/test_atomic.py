"""Atomic outputs (hybridml._atomic): a file is replaced whole or not at all.

Issue 14: outputs are written beside their target and moved into place.
"""

from __future__ import annotations

import errno
import os

import pandas as pd
import pytest
from _cli_helpers import cli_error, full_disk, write_text_csv

from hybridml._atomic import atomic_path
from hybridml.baseline import write_report


@pytest.fixture
def text_csv(tmp_path):
    return write_text_csv(tmp_path)


def test_embed_output_is_never_left_half_written(
    text_csv, text_preset, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "emb.parquet"
    out.write_bytes(b"the previous run's file")
    full_disk("to_parquet", monkeypatch)
    err = cli_error(["embed", str(text_csv), "--text", "review", "--backbone",
                  str(text_preset), "-o", str(out), "-q"], capsys)  # fmt: skip
    assert "No space left on device. The disk is full." in err
    assert out.read_bytes() == b"the previous run's file"  # untouched
    assert not list(tmp_path.glob(".emb.parquet.*"))  # no temporary file left


def test_datasets_output_is_never_left_half_written(tmp_path, monkeypatch, capsys):
    out = tmp_path / "wine.csv"
    full_disk("to_csv", monkeypatch)
    err = cli_error(["datasets", "wine", "-o", str(out)], capsys)
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
