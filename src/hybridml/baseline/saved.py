"""Save and load a refitted leaderboard row: :class:`HybridModel`, ``.hml`` files.

A ``.hml`` file (:mod:`hybridml.baseline.archive`) holds a JSON manifest (task,
columns with their roles, types and categories, classes, backbones as
parameters plus a fingerprint of their weights, versions), the fitted
scikit-learn pipeline in skops format, and a digest over both (an HMAC too,
when saved with a key).

Why skops rather than pickle: ``pickle.load`` runs whatever code the file
names. skops stores the object tree as data; :mod:`hybridml.baseline.audit`
allows only the node kinds and exact types hybridml itself writes (a closed
list, never a function but the one HistGradientBoosting stores), checks it
before skops builds anything, then bounds-checks the index arrays of trees.
The manifest is checked field by field (:func:`check_manifest`) before it is
used. Backbones are not stored: a model file names them, and loading them
happens offline only (an offline copy or a local folder) unless the caller
allows a download; their weights' fingerprint is compared before a row is
embedded.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._atomic import atomic_write_bytes, check_output_file
from . import archive
from .archive import FORMAT_VERSION
from .blocks import block_key

__all__ = ["HybridModel", "load_model", "save_model"]

FORMAT = "hybridml-model"
_PACKAGES = ("hybridml", "keras", "keras-hub", "scikit-learn")
TASKS = ("classification", "regression")
ROLE_LISTS = ("text", "image", "numeric", "categorical")
# KerasEmbeddingTransformer parameters a model file may set (never cache,
# verbose or a callable): a closed list, checked in check_manifest
BACKBONE_PARAMS = frozenset(
    {"backbone", "pooling", "normalize", "sequence_length", "image_size",
     "batch_size", "dtype"}
)  # fmt: skip


def versions() -> dict[str, str]:
    """The installed versions that a saved model records and checks."""
    out = {}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


@dataclass
class HybridModel:
    """A refitted leaderboard row: backbones as parameters + the fitted pipeline.

    Use :func:`hybridml.load_model` to get one from a file; :meth:`predict` and
    :meth:`predict_proba` take a DataFrame with the columns it was trained on.
    A prediction reads the model and never changes it: one instance can serve
    many threads.
    """

    pipeline: Any
    task: str
    classes: list
    roles: dict
    blocks: list
    row: dict
    settings: dict = field(default_factory=dict)
    versions: dict = field(default_factory=versions)
    schema: dict = field(default_factory=dict)
    allow_download: bool = False

    @property
    def columns(self) -> list[str]:
        """The columns :meth:`predict` reads."""
        r = self.roles
        return [*r["text"], *r["image"], *r["numeric"], *r["categorical"]]

    def predict(self, data: Any, *, cache: Any = None) -> np.ndarray:
        """Predicted labels (original class names) or values, one per row."""
        from .predict import design_matrix, labels

        X = design_matrix(self, data, cache)
        return labels(self, self.pipeline.predict(X))

    def predict_proba(self, data: Any, *, cache: Any = None) -> pd.DataFrame:
        """Class probabilities, one column per class (classification only)."""
        from .predict import design_matrix

        self.check_proba()
        X = design_matrix(self, data, cache)
        proba = self.pipeline.predict_proba(X)
        return pd.DataFrame(proba, columns=[f"proba_{c}" for c in self.classes])

    def check_proba(self) -> None:
        """Raise the one-line error if this model has no class probabilities."""
        if self.task != "classification" or not hasattr(self.pipeline, "predict_proba"):
            name = f"{self.row.get('features')} + {self.row.get('head')}"
            raise ValueError(
                f"proba: got a {self.task} model ({name}) without probabilities. "
                "Expected a classifier with predict_proba. Drop --proba, or save "
                "a logreg / rf / knn / stack row."
            )

    def manifest(self) -> dict:
        """The JSON manifest stored beside the pipeline."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "task": self.task,
            "classes": self.classes,
            "roles": self.roles,
            "schema": self.schema,
            "backbones": self.blocks,
            "leaderboard_row": self.row,
            "settings": self.settings,
            "versions": self.versions,
        }


def save_model(
    model: HybridModel, path: str | os.PathLike, *, key: str | bytes | None = None
) -> Path:
    """Write ``model`` to a ``.hml`` file, atomically; return its path.

    Parameters
    ----------
    model : HybridModel
        What :func:`hybridml.run_baseline` (``save_best=``) or
        :func:`hybridml.load_model` gives.
    path : str or path-like
        A new file name, or an existing regular file, ending in ``.hml``.
    key : str, bytes or None, default=None
        Sign the file with an HMAC-SHA256 under this secret (16 bytes or
        more). ``None`` reads ``$HYBRIDML_MODEL_KEY``; unset, the file carries
        a digest only (which catches damage, not a deliberate edit).

    Returns
    -------
    pathlib.Path
        The file written.

    Examples
    --------
    A hand-made one-column model (``run_baseline(..., save_best=...)`` saves a
    leaderboard row the same way):

    >>> import tempfile, pandas as pd
    >>> from sklearn.compose import ColumnTransformer
    >>> from sklearn.linear_model import Ridge
    >>> from sklearn.pipeline import Pipeline
    >>> from hybridml import save_model
    >>> from hybridml.baseline.saved import HybridModel
    >>> df = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [2.0, 4.0, 6.0]})
    >>> cols = ColumnTransformer([("numeric", "passthrough", ["x"])])
    >>> pipe = Pipeline([("features", cols), ("head", Ridge())]).fit(df[["x"]], df["y"])
    >>> roles = dict(target="y", text=[], image=[], numeric=["x"],
    ...              categorical=[], groups=None)
    >>> model = HybridModel(pipe, "regression", [], roles, [], {"head": "ridge"},
    ...                     schema={"x": {"role": "numeric", "kind": "number"}})
    >>> save_model(model, tempfile.mkdtemp() + "/m.hml", key="x" * 16).suffix
    '.hml'
    """
    import skops.io as sio

    path = check_model_path(path, "model path")
    secret = archive.resolve_key(key)
    payload = sio.dumps(model.pipeline)
    manifest = json.dumps(model.manifest(), indent=1, default=str).encode()
    check_manifest(manifest, path)  # what save writes, load accepts
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, archive.pack(manifest, payload, secret))
    return path


def check_model_path(path: str | os.PathLike, what: str) -> Path:
    """A ``.hml`` output path, checked before any work (suffix, kind, folder)."""
    path = Path(path).expanduser()
    if path.suffix != ".hml":
        raise ValueError(
            f"{what}: got {str(path)!r}. Expected a file name ending in .hml. "
            f"Use e.g. {path.with_suffix('.hml').name if path.name else 'model.hml'}."
        )
    return check_output_file(path, what)


def load_model(
    path: str | os.PathLike,
    *,
    key: str | bytes | None = None,
    allow_download: bool = False,
) -> HybridModel:
    """Load a model saved by :func:`save_model` / ``hybridml baseline --save-best``.

    Loading runs no code from the file: sizes are bounded before reading, the
    digest over the whole file (and its HMAC, when a key is set) is checked
    before parsing, the manifest is checked field by field, and the pipeline
    may hold only the exact scikit-learn / xgboost types hybridml writes
    (checked before skops builds anything; tree index arrays bounds-checked
    after). Each refusal is one line. A file from other package versions loads
    with a one-line warning.

    Parameters
    ----------
    path : str or path-like
        A ``.hml`` file.
    key : str, bytes or None, default=None
        The secret the file was signed with; ``None`` reads
        ``$HYBRIDML_MODEL_KEY``. With a key, an unsigned file or one whose
        HMAC does not verify is refused.
    allow_download : bool, default=False
        Let the backbones the file names download (keras-hub preset names
        without an offline copy, ``hf://`` / ``kaggle://`` handles). By
        default only offline copies and local folders load.

    Returns
    -------
    HybridModel
        With ``predict(df)`` / ``predict_proba(df)``, ``columns``, ``roles``,
        ``schema``, ``classes`` and the leaderboard ``row`` it came from.

    Examples
    --------
    ``hybridml baseline ... --save-best model.hml`` writes such a file; here a
    hand-made one-column model stands in for it:

    >>> import tempfile, pandas as pd
    >>> from sklearn.compose import ColumnTransformer
    >>> from sklearn.linear_model import Ridge
    >>> from sklearn.pipeline import Pipeline
    >>> from hybridml import load_model, save_model
    >>> from hybridml.baseline.saved import HybridModel
    >>> df = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [2.0, 4.0, 6.0]})
    >>> cols = ColumnTransformer([("numeric", "passthrough", ["x"])])
    >>> pipe = Pipeline([("features", cols), ("head", Ridge(alpha=1e-9))])
    >>> pipe = pipe.fit(df[["x"]], df["y"])
    >>> roles = dict(target="y", text=[], image=[], numeric=["x"],
    ...              categorical=[], groups=None)
    >>> schema = {"x": {"role": "numeric", "kind": "number"}}
    >>> model = HybridModel(pipe, "regression", [], roles, [], {"head": "ridge"},
    ...                     schema=schema)
    >>> path = save_model(model, tempfile.mkdtemp() + "/model.hml")
    >>> load_model(path).predict(pd.DataFrame({"x": [4.0]})).round(6).tolist()
    [8.0]
    """
    import skops.io as sio

    from .audit import audit_schema, check_loaded, read_schema

    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"model file: got {str(path)!r}, which does not exist. Expected a .hml "
            "file written by hybridml baseline --save-best. Check the path."
        )
    raw, payload, _ = archive.unpack(path, archive.resolve_key(key))
    manifest = check_manifest(raw, path)
    types = audit_schema(read_schema(payload))
    _check_versions(manifest["versions"], path)
    try:
        pipeline = sio.loads(payload, trusted=types)
    except Exception as exc:  # skops' own audit or a malformed node
        raise ValueError(
            f"model file {str(path)!r}: got a pipeline skops cannot rebuild "
            f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]}). Expected "
            "a file saved by hybridml. Save it again."
        ) from exc
    check_loaded(pipeline)
    if not (hasattr(pipeline, "predict") and hasattr(pipeline, "get_params")):
        raise ValueError(
            f"model file {str(path)!r}: got a {type(pipeline).__name__} as the "
            "pipeline. Expected a fitted scikit-learn estimator. Save it again."
        )
    return HybridModel(
        pipeline=pipeline,
        task=manifest["task"],
        classes=manifest["classes"],
        roles=manifest["roles"],
        blocks=manifest["backbones"],
        row=manifest["leaderboard_row"],
        settings=manifest["settings"],
        versions=manifest["versions"],
        schema=manifest["schema"],
        allow_download=bool(allow_download),
    )


# -- the manifest, field by field ----------------------------------------------


def _bad(path: Path, what: str) -> ValueError:
    return ValueError(
        f"model file {str(path)!r}: got a manifest with {what}. Expected the "
        "manifest hybridml writes. Save the model again."
    )


def _strings(value: Any, path: Path, what: str, limit: int = 100_000) -> list:
    if not isinstance(value, list) or len(value) > limit:
        raise _bad(path, f"{what} that is not a list")
    if not all(isinstance(v, str) for v in value):
        raise _bad(path, f"{what} that are not all strings")
    return value


def check_manifest(raw: bytes, path: Path) -> dict:
    """Parse and check the manifest; every field is read from the result only."""
    try:
        manifest = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise _bad(path, f"invalid JSON ({type(exc).__name__})") from exc
    if not isinstance(manifest, dict):
        raise _bad(path, f"a JSON {type(manifest).__name__} at the top")
    if manifest.get("format") != FORMAT:
        raise _bad(path, f"format {str(manifest.get('format'))[:40]!r}")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version != FORMAT_VERSION:
        newer = isinstance(version, int) and version > FORMAT_VERSION
        raise ValueError(
            f"model file {str(path)!r}: got format version {str(version)[:20]}. "
            f"Expected {FORMAT_VERSION}. "
            + ("Upgrade hybridml to load it." if newer else "Save it again.")
        )
    if manifest.get("task") not in TASKS:
        raise _bad(path, f"task {str(manifest.get('task'))[:40]!r}")
    _strings(manifest.get("classes"), path, "classes")
    roles = _check_roles(manifest.get("roles"), path)
    manifest["schema"] = _check_schema(manifest.get("schema"), roles, path)
    manifest["backbones"] = _check_blocks(manifest.get("backbones"), roles, path)
    for name in ("leaderboard_row", "settings", "versions"):
        if not isinstance(manifest.get(name), dict):
            raise _bad(path, f"{name} that is not an object")
    row = manifest["leaderboard_row"]
    for name in ("features", "head", "kind", "metric"):
        row[name] = str(row.get(name, ""))[:500]
    for name in ("mean", "std"):
        if not isinstance(row.get(name), (int, float, type(None))):
            raise _bad(path, f"a leaderboard {name} that is not a number")
    manifest["versions"] = {
        str(k)[:40]: str(v)[:40] for k, v in manifest["versions"].items()
    }
    return manifest


def _check_roles(roles: Any, path: Path) -> dict:
    keys = {"target", "groups", *ROLE_LISTS}
    if not isinstance(roles, dict) or set(roles) != keys:
        raise _bad(path, "roles other than target, text, image, numeric, ...")
    if not isinstance(roles["target"], str):
        raise _bad(path, "a target that is not a column name")
    if roles["groups"] is not None and not isinstance(roles["groups"], str):
        raise _bad(path, "groups that is not a column name")
    seen: list[str] = []
    for role in ROLE_LISTS:
        seen += _strings(roles[role], path, f"{role} columns", limit=10_000)
    if len(set(seen)) != len(seen):
        raise _bad(path, "a column in two roles")
    return roles


def _check_schema(schema: Any, roles: dict, path: Path) -> dict:
    if not isinstance(schema, dict):
        raise _bad(path, "a column schema that is not an object")
    for role in ROLE_LISTS:
        for col in roles[role]:
            entry = schema.get(col)
            if not isinstance(entry, dict) or entry.get("role") != role:
                raise _bad(path, f"no schema entry for {role} column {col[:60]!r}")
            kind = entry.get("kind")
            if kind not in ("string", "number", "bool", "mixed", "text", "image"):
                raise _bad(path, f"kind {str(kind)[:20]!r} for column {col[:60]!r}")
            if role == "categorical":
                levels = entry.get("levels")
                if not isinstance(levels, list) or not all(
                    isinstance(v, (str, int, float, bool)) for v in levels
                ):
                    raise _bad(path, f"levels of {col[:60]!r} that are not a list")
            if role == "image" and entry.get("mode") not in ("L", "RGB"):
                raise _bad(path, f"an image mode for {col[:60]!r} other than L, RGB")
    return schema


def _check_blocks(blocks: Any, roles: dict, path: Path) -> list:
    if not isinstance(blocks, list) or len(blocks) > 100:
        raise _bad(path, "backbones that are not a list")
    for i, block in enumerate(blocks):
        if not isinstance(block, dict) or set(block) != {
            "key", "modality", "columns", "params", "fingerprint"
        }:  # fmt: skip
            raise _bad(path, f"backbone {i} with other fields")
        if block["key"] != block_key(i) or block["modality"] not in ("text", "image"):
            raise _bad(path, f"backbone {i} with key or modality out of place")
        cols = _strings(block["columns"], path, f"backbone {i}'s columns")
        if not set(cols) <= set(roles[block["modality"]]):
            raise _bad(path, f"backbone {i} reading columns outside its role")
        fp = block["fingerprint"]
        if not (
            isinstance(fp, str) and len(fp) == 64 and set(fp) <= set("0123456789abcdef")
        ):
            raise _bad(path, f"backbone {i} without a sha256 fingerprint")
        params = block["params"]
        if not isinstance(params, dict) or not set(params) <= BACKBONE_PARAMS:
            raise _bad(path, f"backbone {i} with parameters outside the closed list")
        if not isinstance(params.get("backbone"), str):
            raise _bad(path, f"backbone {i} not named by a preset or folder")
        for name, value in params.items():
            ok = isinstance(value, (str, int, float, bool, type(None))) or (
                isinstance(value, list) and all(isinstance(v, int) for v in value)
            )
            if not ok:
                raise _bad(path, f"backbone {i}'s {name} of an unexpected type")
    return blocks


def _check_versions(saved: dict, path: Path) -> None:
    here = versions()
    diff = [
        f"{name} {saved[name]} (now {here[name]})"
        for name in _PACKAGES
        if name in saved and saved[name] != here[name]
    ]
    if diff:
        warnings.warn(
            f"model file {str(path)!r} was saved with {', '.join(diff)}: "
            "predictions may differ; refit and save again to be sure.",
            UserWarning,
            stacklevel=3,
        )
