"""hybridml.baseline.archive and the manifest checks: digest, key, bounds, shapes."""

from __future__ import annotations

import json
import zipfile

import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline

from hybridml import load_model, save_model
from hybridml.baseline import archive
from hybridml.baseline.saved import HybridModel

KEY = "k" * 32


@pytest.fixture
def model():
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [2.0, 4.0, 6.0]})
    cols = ColumnTransformer([("numeric", "passthrough", ["x"])])
    pipe = Pipeline([("features", cols), ("head", Ridge(alpha=1e-9))])
    pipe.fit(df[["x"]], df["y"])
    roles = dict(target="y", text=[], image=[], numeric=["x"], categorical=[],
                 groups=None)  # fmt: skip
    return HybridModel(pipe, "regression", [], roles, [],
                       {"features": "tabular", "head": "ols", "mean": 1.0},
                       schema={"x": {"role": "numeric", "kind": "number"}})  # fmt: skip


def _members(path):
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist()}


def _write(path, members):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def test_signed_file_loads_with_its_key_and_only_with_it(model, tmp_path, monkeypatch):
    path = save_model(model, tmp_path / "m.hml", key=KEY)
    assert "hmac_sha256" in json.loads(_members(path)["integrity.json"])
    loaded = load_model(path, key=KEY)
    assert loaded.predict(pd.DataFrame({"x": [4.0]}))[0] == pytest.approx(8.0)
    with pytest.raises(ValueError, match="signature that does not verify"):
        load_model(path, key="z" * 32)
    monkeypatch.setenv("HYBRIDML_MODEL_KEY", "z" * 32)  # the variable is read too
    with pytest.raises(ValueError, match="signature that does not verify"):
        load_model(path)


def test_a_resigned_digest_does_not_fool_the_key(model, tmp_path):
    """An attacker edits the manifest and recomputes the digest: the HMAC fails."""
    path = save_model(model, tmp_path / "m.hml", key=KEY)
    members = _members(path)
    manifest = json.loads(members["manifest.json"])
    manifest["roles"]["numeric"] = ["x"]
    manifest["leaderboard_row"]["head"] = "evil"
    raw = json.dumps(manifest).encode()
    forged = archive.pack(raw, members["model.skops"], b"attacker-key-123456")
    (tmp_path / "f.hml").write_bytes(forged)
    with pytest.raises(ValueError, match="does not verify"):
        load_model(tmp_path / "f.hml", key=KEY)
    unsigned = archive.pack(raw, members["model.skops"], None)
    (tmp_path / "u.hml").write_bytes(unsigned)
    with pytest.raises(ValueError, match="unsigned file while a key is set"):
        load_model(tmp_path / "u.hml", key=KEY)
    assert load_model(tmp_path / "u.hml").row["head"] == "evil"  # a digest is no proof


def test_short_keys_are_refused(model, tmp_path):
    with pytest.raises(ValueError, match="at least 16 bytes"):
        save_model(model, tmp_path / "m.hml", key="short")


def test_a_manifest_bomb_is_refused_before_reading(model, tmp_path):
    path = save_model(model, tmp_path / "m.hml")
    members = _members(path)
    members["manifest.json"] = b" " * (300 * 2**20)  # 300 MB of spaces: a tiny zip
    bomb = _write(tmp_path / "bomb.hml", members)
    assert bomb.stat().st_size < 2 * 2**20
    import tracemalloc

    tracemalloc.start()
    with pytest.raises(ValueError, match=r"manifest.json of 314572800 bytes"):
        load_model(bomb)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 50 * 2**20  # never expanded


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        (b"[1, 2]", "a JSON list at the top"),
        (b"[" * 200_000 + b"]" * 200_000, "invalid JSON"),
        (b'{"format": "hybridml-model", "format_version": 2, "task": "x"}', "task 'x'"),
    ],
)
def test_malformed_manifests_fail_in_one_line(model, tmp_path, manifest, message):
    path = save_model(model, tmp_path / "m.hml")
    payload = _members(path)["model.skops"]
    (tmp_path / "bad.hml").write_bytes(archive.pack(manifest, payload, None))
    with pytest.raises(ValueError, match=message) as info:
        load_model(tmp_path / "bad.hml")
    assert "\n" not in str(info.value)


def test_manifest_fields_are_checked(model, tmp_path):
    path = save_model(model, tmp_path / "m.hml")
    members = _members(path)
    good = json.loads(members["manifest.json"])

    def load_with(**changes):
        raw = json.dumps({**good, **changes}).encode()
        (tmp_path / "e.hml").write_bytes(
            archive.pack(raw, members["model.skops"], None)
        )
        return load_model(tmp_path / "e.hml")

    with pytest.raises(ValueError, match="classes that are not all strings"):
        load_with(classes=[1, 2])
    block = {"key": "_hml0_", "modality": "text", "columns": [],
             "fingerprint": "0" * 64,
             "params": {"backbone": "x", "cache": "/tmp/evil"}}  # fmt: skip
    with pytest.raises(ValueError, match="parameters outside the closed list"):
        load_with(backbones=[block])
    with pytest.raises(ValueError, match="no schema entry for numeric column 'x'"):
        load_with(schema={})


def test_extra_members_and_old_format_are_refused(model, tmp_path):
    path = save_model(model, tmp_path / "m.hml")
    members = _members(path)
    _write(tmp_path / "x.hml", {**members, "evil.py": b"print(1)"})
    with pytest.raises(ValueError, match="got members"):
        load_model(tmp_path / "x.hml")
    old = {k: v for k, v in members.items() if k != "integrity.json"}
    _write(tmp_path / "v1.hml", old)
    with pytest.raises(ValueError, match="format version 1"):
        load_model(tmp_path / "v1.hml")
