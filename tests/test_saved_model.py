"""Saving a refitted leaderboard row and loading it back: round trip and refusals."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pandas as pd
import pytest
from _baseline_data import text_frame

import hybridml
from hybridml.baseline.finalize import finalize
from hybridml.baseline.run import run_steps
from hybridml.baseline.saved import load_model, save_model
from hybridml.datasets import load_wine

SETTINGS = dict(
    image=(), tabular=None, groups=None, metric=None, task="auto", limit=None,
    random_state=0, n_jobs=None,
)  # fmt: skip


@pytest.fixture(scope="module")
def text_session(text_preset):
    return run_steps(
        text_frame(12), target="label", text="review", backbones=[str(text_preset)],
        heads="logreg", cv=3, stack=0, **SETTINGS,
    )  # fmt: skip


@pytest.fixture(scope="module")
def saved(text_session, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "best.hml"
    board = text_session.board
    deep = int(board.loc[board["kind"] == "deep", "rank"].iloc[0])
    model = finalize(text_session, deep)  # the row that needs the backbone
    save_model(model, path)
    return model, path


def _rewrite(path, out, *, manifest=None, payload=None, digest=True):
    """Edit a saved file; ``digest=True`` recomputes the digest as an attacker would."""
    from hybridml.baseline import archive as hml

    with zipfile.ZipFile(path) as archive:
        old_manifest = json.loads(archive.read("manifest.json"))
        old_payload = archive.read("model.skops")
        integrity = archive.read("integrity.json")
    raw = json.dumps(manifest or old_manifest).encode()
    payload = old_payload if payload is None else payload
    if digest:
        out.write_bytes(hml.pack(raw, payload, None))
        return old_manifest, old_payload
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("manifest.json", raw)
        archive.writestr("model.skops", payload)
        archive.writestr("integrity.json", integrity)
    return old_manifest, old_payload


def test_round_trip_gives_the_same_predictions(text_session, saved):
    model, path = saved
    loaded = hybridml.load_model(path)
    # the training rows, embedded again from the file: the refit's own predictions
    codes = model.pipeline.predict(text_session.X)
    expected = np.asarray(loaded.classes, dtype=object)[codes]
    np.testing.assert_array_equal(loaded.predict(text_frame(12)), expected)
    frame = text_frame(5, seed=3)
    np.testing.assert_array_equal(loaded.predict(frame), model.predict(frame))
    assert set(loaded.predict(frame)) <= {"pos", "neg"}
    np.testing.assert_allclose(
        loaded.predict_proba(frame).to_numpy(), model.predict_proba(frame).to_numpy()
    )
    assert loaded.classes == ["neg", "pos"]
    assert loaded.roles["text"] == ["review"]
    assert loaded.row["kind"] == "deep"
    assert loaded.blocks[0]["fingerprint"] == model.blocks[0]["fingerprint"]


def test_refit_uses_all_rows_and_the_row_of_the_rank(text_session):
    board = text_session.board
    for rank in board.loc[board["kind"] != "chance", "rank"]:
        model = finalize(text_session, int(rank))
        assert model.row["features"] == board["features"].iloc[rank - 1]
        # refitted on every row of the leaderboard, not on one fold
        assert (
            model.pipeline.named_steps["features"].n_features_in_
            == (text_session.X.shape[1])
        )
        assert model.pipeline.named_steps["head"].n_features_in_ > 0


def test_manifest_records_versions_columns_and_row(saved):
    _, path = saved
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    names = {"hybridml", "keras", "keras-hub", "scikit-learn"}
    assert set(manifest["versions"]) == names
    assert manifest["roles"]["target"] == "label"
    assert len(manifest["backbones"][0]["fingerprint"]) == 64
    assert manifest["leaderboard_row"]["metric"] == "accuracy"
    # the dtype the run resolved, never "auto" (which could resolve otherwise
    # on the machine that predicts, and the fingerprint carries the dtype)
    assert manifest["backbones"][0]["params"]["dtype"] == "float32"


def test_tampered_model_is_refused(saved, tmp_path):
    _, path = saved
    out = tmp_path / "tampered.hml"
    with zipfile.ZipFile(path) as archive:
        payload = bytearray(archive.read("model.skops"))
    payload[len(payload) // 2] ^= 0xFF
    _rewrite(path, out, payload=bytes(payload), digest=False)
    with pytest.raises(ValueError, match="sha256 does not match"):
        load_model(out)


def test_an_edited_manifest_is_refused(saved, tmp_path):
    """The digest covers the manifest: reordered classes would swap labels."""
    _, path = saved
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    manifest["classes"] = manifest["classes"][::-1]
    _rewrite(path, tmp_path / "swapped.hml", manifest=manifest, digest=False)
    with pytest.raises(ValueError, match="sha256 does not match"):
        load_model(tmp_path / "swapped.hml")


def test_not_a_model_file_is_refused(tmp_path):
    bad = tmp_path / "x.hml"
    bad.write_text("hello")
    with pytest.raises(ValueError, match="not a zip archive"):
        load_model(bad)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model(tmp_path / "missing.hml")


def test_other_format_and_newer_version_are_refused(saved, tmp_path):
    _, path = saved
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    _rewrite(path, tmp_path / "a.hml", manifest={**manifest, "format": "other"})
    with pytest.raises(ValueError, match="manifest with format 'other'"):
        load_model(tmp_path / "a.hml")
    _rewrite(path, tmp_path / "b.hml", manifest={**manifest, "format_version": 99})
    with pytest.raises(ValueError, match="Upgrade hybridml"):
        load_model(tmp_path / "b.hml")


def test_untrusted_types_are_refused(saved, tmp_path):
    import os

    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    _, path = saved
    payload = sio.dumps(FunctionTransformer(func=os.getcwd))
    _rewrite(path, tmp_path / "evil.hml", payload=payload)
    with pytest.raises(ValueError, match=r"'posix\.getcwd' in a TypeNode"):
        load_model(tmp_path / "evil.hml")


def test_different_versions_warn_in_one_line(saved, tmp_path):
    _, path = saved
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    manifest["versions"]["scikit-learn"] = "0.0.1"
    _rewrite(path, tmp_path / "old.hml", manifest=manifest)
    with pytest.warns(UserWarning, match=r"saved with scikit-learn 0\.0\.1 \(now"):
        load_model(tmp_path / "old.hml")


def test_a_different_backbone_fingerprint_is_refused(saved, tmp_path):
    _, path = saved
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    manifest["backbones"][0]["fingerprint"] = "0" * 64
    _rewrite(path, tmp_path / "other.hml", manifest=manifest)
    model = load_model(tmp_path / "other.hml")
    with pytest.raises(ValueError, match="Expected 000000000000, the backbone"):
        model.predict(text_frame(2))


def test_missing_and_mistyped_columns_fail_before_model_work(saved, monkeypatch):
    model, _ = saved
    import hybridml.baseline.predict as predict

    def boom(*args, **kwargs):
        raise AssertionError("embedded before checking the columns")

    monkeypatch.setattr(predict, "_embed", boom)
    with pytest.raises(ValueError, match=r"without \['review'\]"):
        model.predict(pd.DataFrame({"text": ["good"]}))
    with pytest.raises(ValueError, match="text column 'review'"):
        model.predict(pd.DataFrame({"review": ["good", None]}))


def test_bad_save_arguments(text_session, saved, tmp_path):
    model, _ = saved
    with pytest.raises(ValueError, match=r"ending in \.hml"):
        save_model(model, tmp_path / "model.pkl")
    board = text_session.board
    last = len(board)
    chance = int(board.loc[board["kind"] == "chance", "rank"].item())
    with pytest.raises(ValueError, match="the chance row"):
        finalize(text_session, chance)
    with pytest.raises(ValueError, match=f"between 1 and {last}"):
        finalize(text_session, last + 1)


def test_regression_on_wine_end_to_end(tmp_path):
    wine = load_wine().drop(columns="label")
    session = run_steps(
        wine, target="alcohol", text=(), backbones=(), heads="logreg", cv=3,
        stack=0, **{**SETTINGS, "tabular": "auto"},
    )  # fmt: skip
    assert session.board.attrs["task"] == "regression"
    model = finalize(session, 1)
    save_model(model, tmp_path / "wine.hml")
    loaded = load_model(tmp_path / "wine.hml")
    pred = loaded.predict(wine)
    np.testing.assert_allclose(pred, model.predict(wine))
    assert pred.dtype == np.float64
    assert np.corrcoef(pred, wine["alcohol"])[0, 1] > 0.8
    bad = wine.assign(hue=["x"] * len(wine))
    with pytest.raises(ValueError, match="numeric column 'hue'"):
        loaded.predict(bad)
    with pytest.raises(ValueError, match="without probabilities"):
        loaded.predict_proba(wine)
