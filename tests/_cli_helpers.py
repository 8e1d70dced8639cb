"""What the CLI tests share: one-line errors, a full disk, no model work."""

from __future__ import annotations

import errno

import pandas as pd
from _baseline_data import text_frame

import hybridml.baseline
from hybridml.cli import main


def write_text_csv(tmp_path):
    path = tmp_path / "reviews.csv"
    text_frame().to_csv(path, index=False)
    return path


def write_blocker(tmp_path):
    """A plain file that output paths try to use as a folder."""
    path = tmp_path / "blocker"
    path.write_text("a user's file\n")
    return path


def cli_error(argv, capsys) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert err.count("\n") == 1, err  # one line
    return err


def no_model_work(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("model work started before the output was checked")

    monkeypatch.setattr(hybridml.baseline, "run_baseline", fail)
    monkeypatch.setattr(hybridml.baseline, "embed_frame", fail)


def full_disk(method: str, monkeypatch):
    """Make DataFrame.<method> write half a file, then fail as a full disk does."""

    def half_then_full(self, path, *args, **kwargs):
        with open(path, "wb") as handle:
            handle.write(b"PAR1 half a file")
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(pd.DataFrame, method, half_then_full)
