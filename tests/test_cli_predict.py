"""``hybridml baseline --save-best``, then ``hybridml predict``: options, errors."""

from __future__ import annotations

import pandas as pd
import pytest
from _baseline_data import text_frame

from hybridml.cli import main
from hybridml.datasets import load_wine


@pytest.fixture(scope="module")
def saved_text(text_preset, tmp_path_factory):
    work = tmp_path_factory.mktemp("cli_predict")
    frame = text_frame(12)
    frame.insert(0, "id", [f"r{i}" for i in range(len(frame))])
    frame.to_csv(work / "train.csv", index=False)
    argv = [
        "baseline", str(work / "train.csv"), "--target", "label", "--text",
        "review", "--tabular", "none", "--backbone", str(text_preset), "--heads",
        "logreg", "--cv", "3", "--stack", "0", "--output", str(work / "report"),
        "--save-best", str(work / "best.hml"), "-q",
    ]  # fmt: skip
    assert main(argv) == 0
    return work, frame


def test_predict_writes_labels_probabilities_and_kept_ids(saved_text, capsys):
    work, frame = saved_text
    new = frame.drop(columns="label")
    new.to_csv(work / "new.csv", index=False)
    out = work / "pred.csv"
    argv = ["predict", str(work / "best.hml"), str(work / "new.csv"), "-o", str(out),
            "--proba", "--keep", "id"]  # fmt: skip
    assert main(argv) == 0
    pred = pd.read_csv(out)
    assert list(pred.columns) == ["id", "predicted_label", "proba_neg", "proba_pos"]
    assert pred["id"].tolist() == new["id"].tolist()
    assert set(pred["predicted_label"]) <= {"neg", "pos"}
    total = pred["proba_neg"] + pred["proba_pos"]
    assert total.round(6).eq(1.0).all()
    top = pred[["proba_neg", "proba_pos"]].idxmax(axis=1).str[len("proba_") :]
    assert (top == pred["predicted_label"]).all()
    assert "predictions of 'label'" in capsys.readouterr().out


def test_saving_prints_the_row_and_rank(saved_text):
    work, _ = saved_text
    assert (work / "best.hml").is_file()
    assert (work / "report" / "report.html").is_file()


def test_predict_errors_are_one_line(saved_text, tmp_path, capsys):
    work, frame = saved_text
    frame[["id"]].to_csv(tmp_path / "no_text.csv", index=False)
    model = str(work / "best.hml")
    argv = [
        "predict",
        model,
        str(tmp_path / "no_text.csv"),
        "-o",
        str(tmp_path / "p.csv"),
    ]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "error: columns: got a table without ['review']" in err
    assert not (tmp_path / "p.csv").exists()
    argv = ["predict", model, str(work / "train.csv"), "-o", str(tmp_path / "p.txt")]
    assert main(argv) == 1
    assert "Expected a .csv or .parquet file" in capsys.readouterr().err
    argv = ["predict", model, str(work / "train.csv"), "-o", str(tmp_path / "p.csv"),
            "--keep", "nope"]  # fmt: skip
    assert main(argv) == 1
    assert "nope" in capsys.readouterr().err


def test_save_rank_needs_save_best(tmp_path, capsys):
    load_wine().to_csv(tmp_path / "wine.csv", index=False)
    argv = ["baseline", str(tmp_path / "wine.csv"), "--target", "label", "--heads",
            "logreg", "--cv", "3", "--stack", "0", "--no-tune", "--save", "2",
            "--output", str(tmp_path / "r"), "-q"]  # fmt: skip
    assert main(argv) == 1
    assert "--save: got 2 without --save-best PATH" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()  # refused before the run wrote a report


def test_save_best_and_predict_outputs_are_checked_before_model_work(tmp_path, capsys):
    load_wine().to_csv(tmp_path / "wine.csv", index=False)
    (tmp_path / "afile").write_text("x")
    argv = ["baseline", str(tmp_path / "wine.csv"), "--target", "label", "--heads",
            "logreg", "--cv", "3", "--stack", "0", "--no-tune", "--save-best",
            str(tmp_path / "afile" / "m.hml"), "--output", str(tmp_path / "r"),
            "-q"]  # fmt: skip
    assert main(argv) == 1
    assert "--save-best" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
    argv = ["predict", str(tmp_path / "no-model.hml"), str(tmp_path / "wine.csv"),
            "-o", str(tmp_path / "afile" / "p.csv")]  # fmt: skip
    assert main(argv) == 1
    assert "--output" in capsys.readouterr().err  # not the missing model file


def test_regression_end_to_end_and_proba_refused(tmp_path, capsys):
    wine = load_wine().drop(columns="label")
    wine.to_csv(tmp_path / "wine.csv", index=False)
    argv = ["baseline", str(tmp_path / "wine.csv"), "--target", "alcohol",
            "--heads", "logreg", "--cv", "3", "--stack", "0", "--output",
            str(tmp_path / "r"), "--save-best", str(tmp_path / "w.hml"),
            "-q"]  # fmt: skip
    assert main(argv) == 0
    assert "heads tuned: logreg: alpha in" in capsys.readouterr().out
    out = tmp_path / "pred.csv"
    argv = [
        "predict",
        str(tmp_path / "w.hml"),
        str(tmp_path / "wine.csv"),
        "-o",
        str(out),
    ]
    assert main(argv) == 0
    pred = pd.read_csv(out)["predicted_alcohol"]
    assert ((pred - wine["alcohol"]) ** 2).mean() < wine["alcohol"].var() / 2
    argv += ["--proba"]
    assert main(argv) == 1
    assert "--proba: got a regression model" in capsys.readouterr().err


def test_three_classes_round_trip_with_probabilities(tmp_path):
    load_wine().to_csv(tmp_path / "wine.csv", index=False)
    argv = ["baseline", str(tmp_path / "wine.csv"), "--target", "label", "--heads",
            "logreg", "--cv", "3", "--stack", "0", "--output", str(tmp_path / "r"),
            "--save-best", str(tmp_path / "w.hml"), "-q"]  # fmt: skip
    assert main(argv) == 0
    out = tmp_path / "pred.csv"
    argv = ["predict", str(tmp_path / "w.hml"), str(tmp_path / "wine.csv"), "-o",
            str(out), "--proba", "--keep", "label"]  # fmt: skip
    assert main(argv) == 0
    pred = pd.read_csv(out)
    assert [c for c in pred.columns if c.startswith("proba_")] == [
        "proba_class_0", "proba_class_1", "proba_class_2",
    ]  # fmt: skip
    assert (pred["predicted_label"] == pred["label"]).mean() > 0.9  # refit rows
