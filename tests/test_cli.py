"""The ``hybridml`` command end to end: tables printed, files written, errors.

Most tests call ``main(argv)`` in-process (fast); one runs the installed console
script in a subprocess. Backbones are the tiny presets of ``conftest.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _baseline_data import image_frame, text_frame

import hybridml
from hybridml import EmbeddingCache
from hybridml.cli import main


@pytest.fixture
def text_csv(tmp_path) -> Path:
    path = tmp_path / "reviews.csv"
    text_frame().to_csv(path, index=False)
    return path


def _table_rows(out: str) -> list[list[str]]:
    """The leaderboard lines (those starting with a rank) of the printed output."""
    return [line.split() for line in out.splitlines() if line[:4].strip().isdigit()]


def test_baseline_prints_the_leaderboard_and_writes_the_report(
    text_csv, text_preset, tmp_path, capsys
):
    report = tmp_path / "report"
    argv = ["baseline", str(text_csv), "--target", "label", "--text", "review",
            "--backbone", str(text_preset), "--heads", "logreg,knn", "--cv", "3",
            "--tabular", "none", "--stack", "2", "--output", str(report)]  # fmt: skip
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "[hybridml] embedded 24 rows" in captured.err  # progress lines on stderr
    rows = _table_rows(captured.out)
    assert [r[0] for r in rows] == ["1", "2", "3", "4", "5"]
    models = {(r[1], r[2]) for r in rows if r[1] not in ("stack", "chance")}
    assert models == {(text_preset.name, "logreg"), (text_preset.name, "knn"),
                      ("tfidf", "logreg")}  # fmt: skip
    assert "3-fold stratified CV" in captured.out
    csv = pd.read_csv(report / "leaderboard.csv")
    assert len(csv) == 5 and csv["kind"].tolist().count("stack") == 1
    chance = csv[csv["kind"] == "chance"]
    assert chance["mean"].item() == 0.5  # 12 rows of each class
    best = csv.iloc[0]
    assert f"{best['mean']:.3f} +/- {best['std']:.3f}" in captured.out
    settings = json.loads((report / "leaderboard.json").read_text())["settings"]
    assert settings["text"] == ["review"] and settings["cv"] == 3
    assert (report / "scores.png").stat().st_size > 5000
    assert f"report: {report}" in captured.out


def test_baseline_on_image_paths_with_a_cnn_preset(tmp_path, cnn_preset, capsys):
    image_frame(tmp_path).to_csv(tmp_path / "images.csv", index=False)
    argv = ["baseline", str(tmp_path / "images.csv"), "--target", "label",
            "--image", "path", "--backbone", str(cnn_preset), "--heads", "logreg",
            "--cv", "2", "--stack", "0", "--output", str(tmp_path / "r"),
            "--quiet"]  # fmt: skip
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert captured.err == ""  # --quiet: no progress, no step lines
    features = sorted(r[1] for r in _table_rows(captured.out))
    assert features == sorted([cnn_preset.name, "hog", "pixels", "chance"])


def test_demo_runs_on_the_shipped_reviews(text_preset, tmp_path, capsys):
    argv = ["demo", "--limit", "40", "--backbone", str(text_preset), "--heads",
            "logreg", "--cv", "2", "--output", str(tmp_path / "d"), "-q"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "classification of 'label': 40 rows, 2-fold stratified CV" in out
    assert {r[1] for r in _table_rows(out)} == {
        text_preset.name,
        "tfidf",
        "stack",
        "chance",
    }
    assert (tmp_path / "d" / "leaderboard.json").is_file()


def test_embed_writes_parquet_and_removes_its_cache(text_csv, text_preset, tmp_path):
    out = tmp_path / "emb.parquet"
    argv = ["embed", str(text_csv), "--text", "review", "--backbone",
            str(text_preset), "-o", str(out), "-q"]  # fmt: skip
    assert main(argv) == 0
    frame = pd.read_parquet(out)
    assert list(frame.columns[:3]) == ["label", "stars", "genre"]
    assert [c for c in frame.columns if c.startswith("review_")] == [
        f"review_emb{j}" for j in range(8)
    ]
    assert len(frame) == 24
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emb.parquet", "reviews.csv"]
    # row by row, the transformer's own vectors of the column, in the file's order
    source = pd.read_csv(text_csv)
    expected = hybridml.KerasEmbeddingTransformer(str(text_preset)).fit_transform(
        source["review"]
    )
    vectors = frame[[f"review_emb{j}" for j in range(8)]].to_numpy()
    np.testing.assert_allclose(vectors, expected, atol=1e-5)
    pd.testing.assert_frame_equal(
        frame[["label", "stars", "genre"]], source[["label", "stars", "genre"]]
    )


def test_embed_resumes_after_an_interruption(
    text_csv, text_preset, tmp_path, monkeypatch, capsys
):

    out = tmp_path / "emb.parquet"
    argv = ["embed", str(text_csv), "--text", "review", "--backbone",
            str(text_preset), "-o", str(out), "--batch-size", "4", "-q"]  # fmt: skip
    put_many = EmbeddingCache.put_many
    calls = []

    def interrupted(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # Ctrl-C while the third batch is being saved
            raise KeyboardInterrupt
        return put_many(self, *args, **kwargs)

    monkeypatch.setattr(EmbeddingCache, "put_many", interrupted)
    assert main(argv) == 130
    assert "interrupted" in capsys.readouterr().err
    assert not out.exists()
    kept = tmp_path / "emb.parquet.cache.sqlite"
    assert len(EmbeddingCache(kept)) == 8  # two finished batches of 4

    monkeypatch.setattr(EmbeddingCache, "put_many", put_many)
    start = hybridml.forward_rows()
    assert main(argv) == 0
    assert "(8 rows already embedded)" in capsys.readouterr().err
    distinct = text_frame()["review"].nunique()
    assert (hybridml.forward_rows() - start) == distinct - 8  # only what was missing
    assert len(pd.read_parquet(out)) == 24 and not kept.exists()


def test_embed_keeps_a_given_cache(text_csv, text_preset, tmp_path):
    cache = tmp_path / "cache" / "emb.sqlite"
    argv = ["embed", str(text_csv), "--text", "review", "--backbone",
            str(text_preset), "-o", str(tmp_path / "e.csv"), "--keep", "none",
            "--cache", str(cache), "-q"]  # fmt: skip
    assert main(argv) == 0
    assert cache.is_file()
    assert pd.read_csv(tmp_path / "e.csv").shape == (24, 8)


def test_datasets_lists_and_exports(tmp_path, capsys):
    assert main(["datasets"]) == 0
    listing = capsys.readouterr().out
    assert "rotten_tomatoes" in listing and "wine" in listing
    assert main(["datasets", "wine", "-o", str(tmp_path / "w.csv")]) == 0
    assert pd.read_csv(tmp_path / "w.csv").shape == (178, 14)


# -- errors: "error: ..." on stderr, exit status 1, no traceback ----------------


def _error(argv, capsys) -> str:
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ")
    assert "Traceback" not in captured.err
    return captured.err


def test_error_missing_file(tmp_path, capsys):
    err = _error(["baseline", str(tmp_path / "nope.csv"), "--target", "y"], capsys)
    assert "data file: got" in err and "nope.csv' (no such file)" in err


def test_error_unknown_column_lists_and_suggests(text_csv, capsys):
    err = _error(["baseline", str(text_csv), "--target", "label", "--text",
                  "reviews"], capsys)  # fmt: skip
    assert "text column: got 'reviews'" in err
    assert "'review', 'label', 'stars', 'genre'" in err
    assert "Did you mean 'review'?" in err


def test_error_one_class(tmp_path, capsys):
    df = text_frame()
    df[df["label"] == "pos"].to_csv(tmp_path / "one.csv", index=False)
    err = _error(["baseline", str(tmp_path / "one.csv"), "--target", "label",
                  "--text", "review"], capsys)  # fmt: skip
    assert "single class 'pos' (12 rows)" in err


def test_error_too_few_rows_per_class(text_csv, capsys):
    err = _error(["baseline", str(text_csv), "--target", "label", "--text",
                  "review", "--cv", "13"], capsys)  # fmt: skip
    assert "Expected at least 13 rows in every class" in err
    assert "Lower cv to 12" in err


def test_error_missing_image_paths(tmp_path, capsys):
    df = image_frame(tmp_path)
    df.loc[:3, "path"] = [f"lost/{i}.png" for i in range(4)]
    df.to_csv(tmp_path / "images.csv", index=False)
    err = _error(["baseline", str(tmp_path / "images.csv"), "--target", "label",
                  "--image", "path"], capsys)  # fmt: skip
    assert "got 4 of 16 paths that do not exist (row 0: 'lost/0.png'" in err


def test_error_unknown_backbone(text_csv, capsys):
    err = _error(["baseline", str(text_csv), "--target", "label", "--text",
                  "review", "--backbone", "all_minilm_l6_v2_eng"], capsys)  # fmt: skip
    assert "all_minilm_l6_v2_eng" in err and "all_minilm_l6_v2_en" in err


def test_error_bad_heads_metric_and_output(text_csv, tmp_path, capsys):
    base = ["baseline", str(text_csv), "--target", "label", "--text", "review"]
    assert "Did you mean 'svc'" in _error([*base, "--heads", "svm"], capsys)
    assert "metric: got 'acc'" in _error([*base, "--metric", "acc"], capsys)
    err = _error(["embed", str(text_csv), "--text", "review", "-o",
                  str(tmp_path / "x.txt")], capsys)  # fmt: skip
    assert "Expected a .parquet or .csv file" in err
    assert "Did you mean 'wine'" in _error(["datasets", "wines"], capsys)


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["baseline", "data.csv"])  # --target missing
    assert exc.value.code == 2
    assert "--target" in capsys.readouterr().err
    assert main([]) == 2


def test_console_script_and_python_m(tmp_path):
    script = shutil.which("hybridml", path=os.path.dirname(sys.executable))
    assert script, "the hybridml console script is not installed in this env"
    run = subprocess.run(
        [script, "baseline", str(tmp_path / "missing.csv"), "--target", "y"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 1
    assert run.stderr.startswith("error: data file: got") and run.stdout == ""
    run = subprocess.run(
        [sys.executable, "-m", "hybridml", "--help"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0 and "baseline" in run.stdout and "embed" in run.stdout


@pytest.mark.slow
def test_demo_with_the_real_minilm(minilm_dir, tmp_path, capsys):
    argv = ["demo", "--limit", "200", "--heads", "logreg", "--cv", "3",
            "--output", str(tmp_path), "-q"]  # fmt: skip
    assert main(argv) == 0
    board = pd.read_csv(tmp_path / "leaderboard.csv")
    minilm = board[board["features"] == "all_minilm_l6_v2_en"]
    assert minilm["dims"].item() == 384
    assert minilm["mean"].item() > 0.65  # real sentence embeddings beat chance


def test_embed_image_paths(tmp_path, cnn_preset):
    image_frame(tmp_path).to_csv(tmp_path / "images.csv", index=False)
    out = tmp_path / "img.parquet"
    argv = ["embed", str(tmp_path / "images.csv"), "--image", "path", "--backbone",
            str(cnn_preset), "-o", str(out), "--keep", "label", "-q"]  # fmt: skip
    assert main(argv) == 0
    frame = pd.read_parquet(out)
    assert frame.shape == (16, 1 + 32) and frame.columns[1] == "path_emb0"
