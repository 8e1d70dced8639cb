"""hybridml.baseline.predict and the save workflow: predictions depend on the row only.

Each test here reproduces a finding of the model-files issue: it fails on the
code before the fix and passes after.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import pandas as pd
import pytest
from _baseline_data import image_frame, stripes, text_frame
from PIL import Image

from hybridml import load_model, run_baseline
from hybridml.baseline.finalize import finalize, strip_searches
from hybridml.baseline.run import run_steps
from hybridml.cli import main

SETTINGS = dict(text=(), image=(), groups=None, metric=None, task="auto", limit=None,
                random_state=0, n_jobs=None)  # fmt: skip


def _error(argv, capsys) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


@pytest.fixture(scope="module")
def gray_images(tmp_path_factory):
    """A pixels model trained on gray PNGs (relative paths), saved, with its CSV."""
    folder = tmp_path_factory.mktemp("gray")
    frame = image_frame(folder, n_per_class=8)
    for name in frame["path"]:
        Image.open(folder / name).convert("L").save(folder / name)
    frame.to_csv(folder / "train.csv", index=False)
    session = run_steps(
        folder / "train.csv", target="label", tabular=None,
        backbones=(), heads="logreg", cv=2, stack=0, **{**SETTINGS, "image": "path"},
    )  # fmt: skip
    board = session.board
    rank = int(board.loc[board["features"] == "pixels", "rank"].iloc[0])
    model = finalize(session, rank)
    path = folder / "pixels.hml"
    from hybridml import save_model

    save_model(model, path)
    return folder, frame, path


def test_one_rgb_image_never_changes_the_other_rows(gray_images, tmp_path):
    folder, frame, path = gray_images
    model = load_model(path)
    assert model.schema["path"]["mode"] == "L"
    rows = frame.head(5).copy()
    rows["path"] = [str(folder / p) for p in rows["path"]]
    before = model.pipeline.predict_proba(_matrix(model, rows))
    rgb = tmp_path / "rgb.png"
    Image.fromarray(stripes("vertical", np.random.RandomState(9))).save(rgb)
    mixed = pd.concat([rows, pd.DataFrame({"path": [str(rgb)], "label": ["x"]})])
    after = model.pipeline.predict_proba(_matrix(model, mixed))[:5]
    np.testing.assert_array_equal(after, before)


def _matrix(model, rows):
    from hybridml.baseline.predict import design_matrix

    return design_matrix(model, rows.reset_index(drop=True))


def test_relative_image_paths_resolve_against_the_input_file(
    gray_images, tmp_path, monkeypatch, capsys
):
    folder, frame, path = gray_images
    # a decoy with the same relative name in the working directory
    decoy = tmp_path / "img"
    decoy.mkdir()
    for name in frame["path"]:
        Image.fromarray(np.zeros((24, 24), np.uint8)).save(tmp_path / name)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "pred.csv"
    assert main(["predict", str(path), str(folder / "train.csv"), "-o", str(out)]) == 0
    from_file = pd.read_csv(out)["predicted_label"]
    direct = load_model(path).predict(
        frame.assign(path=[str(folder / p) for p in frame["path"]])
    )
    np.testing.assert_array_equal(from_file.to_numpy(), direct)


def test_palette_images_are_keyed_by_their_colours():
    from hybridml.embed.inputs import dedupe_keys, row_keys

    indices = np.arange(16, dtype=np.uint8).reshape(4, 4)
    a, b = Image.fromarray(indices, "P"), Image.fromarray(indices, "P")
    a.putpalette([i % 256 for i in range(768)])
    b.putpalette([255 - i % 256 for i in range(768)])
    assert row_keys([a], "image") != row_keys([b], "image")
    assert dedupe_keys([a, b], "image")[0] != dedupe_keys([a, b], "image")[1]
    same = Image.fromarray(np.asarray(a.convert("RGB")))
    assert row_keys([a], "image") == row_keys([same], "image")  # what the model sees


@pytest.fixture(scope="module")
def genre_model(tmp_path_factory):
    frame = text_frame(12)
    session = run_steps(
        frame, target="label", text="review", tabular=["genre", "stars"],
        backbones=(), heads="logreg", cv=2, stack=0,
        **{k: v for k, v in SETTINGS.items() if k != "text"},
    )  # fmt: skip
    board = session.board
    rank = int(board.loc[board["head"] == "hgb", "rank"].iloc[0])
    return finalize(session, rank), frame


def test_categorical_type_and_levels_are_checked_before_model_work(genre_model):
    model, frame = genre_model
    assert model.schema["genre"] == {
        "role": "categorical", "kind": "string", "levels": ["comedy", "drama"],
    }  # fmt: skip
    with pytest.raises(ValueError, match="categorical column 'genre': got number"):
        model.predict(frame.assign(genre=np.arange(len(frame))))
    with pytest.warns(UserWarning, match=r"never seen in training \('horror'\)"):
        model.predict(frame.head(3).assign(genre="horror"))


def test_saved_hgb_rows_load_back(genre_model, tmp_path):
    """HistGradientBoosting stores partial(check_array): the one allowed callable."""
    from hybridml import save_model

    model, frame = genre_model
    save_model(model, tmp_path / "hgb.hml")
    loaded = load_model(tmp_path / "hgb.hml")
    np.testing.assert_array_equal(loaded.predict(frame), model.predict(frame))


@pytest.mark.slow
@pytest.mark.parametrize("task", ["classification", "regression"])
def test_every_row_the_leaderboard_makes_saves_and_loads(text_preset, tmp_path, task):
    from sklearn.base import clone

    from hybridml.baseline.workflow import save_best

    frame = text_frame(12)
    target = "label"
    if task == "regression":
        frame = frame.drop(columns="label").assign(y=np.linspace(0, 1, len(frame)))
        target = "y"
    session = run_steps(
        frame, target=target, text="review", tabular="auto",
        backbones=[str(text_preset)], heads="logreg,svc,rf,xgb,knn", cv=3, stack=3,
        **{k: v for k, v in SETTINGS.items() if k != "text"},
    )  # fmt: skip
    kinds = set()
    for rank in session.board["rank"]:
        row = session.board.iloc[rank - 1]
        if row["kind"] == "chance":
            continue
        model, path = save_best(session, tmp_path / f"m{rank}.hml", rank=int(rank))
        loaded = load_model(path)
        np.testing.assert_array_equal(loaded.predict(frame), model.predict(frame))
        # the file holds the tuned head itself: the same predictions as the search
        result = session.result_for(row)
        searched = clone(result["_model"]).fit(session.X, session.plan.y)
        expected = searched.predict(session.X)
        plain = strip_searches(searched)
        assert "GridSearchCV" not in repr(plain)
        np.testing.assert_array_equal(plain.predict(session.X), expected)
        kinds.add((row["kind"], row["head"]))
    assert {("deep", h) for h in ("logreg", "svc", "rf", "xgb", "knn")} <= kinds
    assert ("stack", "logreg" if task == "classification" else "ridge") in kinds
    assert ("classical", "hgb") in kinds


def test_outputs_never_replace_an_input_or_a_special_file(
    gray_images, tmp_path, capsys
):
    folder, _, model = gray_images
    data = folder / "train.csv"
    before = data.read_bytes()
    err = _error(["predict", str(model), str(data), "-o", str(data)], capsys)
    assert "also an input of this command" in err and data.read_bytes() == before
    err = _error(["embed", str(data), "--image", "path", "-o", str(data)], capsys)
    assert "also an input" in err
    link = tmp_path / "link.csv"
    link.symlink_to(tmp_path / "target.csv")
    assert "a symbolic link" in _error(
        ["predict", str(model), str(data), "-o", str(link)], capsys
    )
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    assert "a named pipe (FIFO)" in _error(
        ["predict", str(model), str(data), "-o", str(fifo)], capsys
    )
    from hybridml._atomic import check_output_file

    with pytest.raises(ValueError, match="a character device"):
        check_output_file("/dev/null", "--output")


def test_predict_to_stdout(gray_images, capsys):
    folder, frame, model = gray_images
    assert main(["predict", str(model), str(folder / "train.csv"), "-o", "-"]) == 0
    out = capsys.readouterr()
    assert out.out.splitlines()[0] == "predicted_label"
    assert len(out.out.splitlines()) == len(frame) + 1
    assert "standard output" in out.err


def test_save_best_without_suffix_fails_before_the_run(tmp_path, capsys, monkeypatch):
    import hybridml.baseline.run as run

    monkeypatch.setattr(run, "run_steps", lambda *a, **k: pytest.fail("ran"))
    text_frame().to_csv(tmp_path / "d.csv", index=False)
    start = time.perf_counter()
    err = _error(["baseline", str(tmp_path / "d.csv"), "--target", "label",
                  "--text", "review", "--save-best", str(tmp_path / "model")],
                 capsys)  # fmt: skip
    assert "Expected a file name ending in .hml. Use e.g. model.hml" in err
    assert time.perf_counter() - start < 2
    with pytest.raises(ValueError, match=r"ending in \.hml"):
        run_baseline(text_frame(), target="label", text="review",
                     save_best=tmp_path / "model")  # fmt: skip


def test_run_baseline_saves_the_best_from_python(tmp_path):
    from hybridml.datasets import load_wine

    wine = load_wine()
    board = run_baseline(wine, target="label", heads="logreg", cv=3, stack=0,
                         save_best=tmp_path / "wine.hml")  # fmt: skip
    model = load_model(tmp_path / "wine.hml")
    assert model.row["features"] == board["features"].iloc[0]
    assert (model.predict(wine) == wine["label"].astype(str)).mean() > 0.9


def test_an_unused_text_column_is_named_on_the_terminal(tmp_path, capsys):
    frame = text_frame()
    frame.to_csv(tmp_path / "d.csv", index=False)
    argv = ["baseline", str(tmp_path / "d.csv"), "--target", "label",
            "--backbone", "none", "--heads", "logreg", "--cv", "2", "--stack", "0",
            "--output", str(tmp_path / "r"), "-q"]  # fmt: skip
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "warning: column 'review' looks like free text and is not used: add " \
        "--text review" in err  # fmt: skip


def test_the_key_never_reaches_the_report(tmp_path, capsys):
    from hybridml.datasets import load_wine

    load_wine().to_csv(tmp_path / "w.csv", index=False)
    secret = "s3cret-" + "x" * 20
    argv = ["baseline", str(tmp_path / "w.csv"), "--target", "label", "--heads",
            "logreg", "--cv", "2", "--stack", "0", "--output", str(tmp_path / "r"),
            "--save-best", str(tmp_path / "w.hml"), "--key", secret, "-q"]  # fmt: skip
    assert main(argv) == 0
    assert "(signed)" in capsys.readouterr().out
    assert secret not in (tmp_path / "r" / "report.html").read_text()
    assert load_model(tmp_path / "w.hml", key=secret).roles["target"] == "label"


@pytest.mark.parametrize(
    "name", ["hf://someone/model", "kaggle://a/b/c", "bert_base_en", "/no/such/dir"]
)
def test_backbones_a_file_names_load_offline_only(name):
    from hybridml.baseline.predict import check_backbone_source

    with pytest.raises(ValueError, match="allow_download=True"):
        check_backbone_source(name, allow_download=False)
    check_backbone_source(name, allow_download=True)  # the user's explicit choice


def test_a_model_file_backbone_is_checked_before_loading(monkeypatch):
    import hybridml.embed.transformer as transformer
    from hybridml.baseline import predict

    model = type("M", (), {"allow_download": False})()
    spec = {"params": {"backbone": "hf://evil/model"}, "fingerprint": "0" * 64,
            "modality": "text", "columns": []}  # fmt: skip
    monkeypatch.setattr(transformer.KerasEmbeddingTransformer, "fit",
                        lambda self, *a: pytest.fail("loaded"))  # fmt: skip
    with pytest.raises(ValueError, match="needs a download"):
        predict._embed(spec, pd.DataFrame(), {}, None, model)


def test_cache_dir_gives_one_file_name_for_cli_and_python(tmp_path):
    from hybridml import EmbeddingCache
    from hybridml.cache.store import database_path

    assert EmbeddingCache.coerce(tmp_path / "runs").path == tmp_path / "runs" / (
        "hybridml-cache.sqlite"
    )
    legacy = tmp_path / "old"
    legacy.mkdir()
    (legacy / "embeddings.sqlite").write_bytes(b"")
    assert database_path(legacy).name == "embeddings.sqlite"  # paid-for work kept
    assert sys.platform  # (the CLI passes --cache to the same coerce)
