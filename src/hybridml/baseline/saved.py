"""Save and load a refitted leaderboard row: :class:`HybridModel`, ``.hml`` files.

Format. A ``.hml`` file is a zip archive of two members:

- ``manifest.json``: everything a person or a loader checks before trusting the
  model (format version, task, columns and roles, classes, the leaderboard row,
  the versions of hybridml / keras / keras-hub / scikit-learn, each backbone's
  parameters and fingerprint, and the sha256 of the other member);
- ``model.skops``: the fitted scikit-learn pipeline (column selection, scalers,
  TF-IDF, head or stack) in skops format.

Why skops rather than pickle: ``pickle.load`` runs whatever code the file
names, so a model file from a colleague is a program. skops stores the object
tree as data and rebuilds only types a trusted list allows; loading here trusts
exactly the types under ``sklearn.``, ``numpy.``, ``scipy.`` and ``xgboost.``
and refuses a file that names anything else. The backbones are not stored:
their weights are large, already on disk as presets, and are named by
parameters plus a fingerprint of the weights, so a different backbone under
the same name is refused instead of silently giving other features. The
sha256 in the manifest catches a file edited or truncated after saving (an
integrity check, not a signature).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
import zipfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._atomic import atomic_write_bytes

FORMAT = "hybridml-model"
FORMAT_VERSION = 1
TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.", "xgboost.")
_PACKAGES = ("hybridml", "keras", "keras-hub", "scikit-learn")


def versions() -> dict[str, str]:
    """The installed versions that a saved model records and checks."""
    out = {}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def block_specs(embedders: list, plan: Any) -> list[dict]:
    """Each backbone of a run as parameters + fingerprint (no weights)."""
    out = []
    for i, (spec, (embedder, modality, _)) in enumerate(
        zip(plan.specs, embedders, strict=True)
    ):
        if not isinstance(spec, (str, os.PathLike)):
            raise TypeError(
                f"backbone: got a {type(spec).__name__} object. Expected a preset "
                "name or preset folder to save a model that names it. Pass the "
                "backbone as a preset name or folder (save_to_preset)."
            )
        text = os.fspath(spec)
        if Path(text).expanduser().exists():
            text = str(Path(text).expanduser().resolve())
        params = embedder.get_params()
        params = {k: v for k, v in params.items() if k not in ("cache", "verbose")}
        params["backbone"] = text
        cols = list(plan.text if modality == "text" else plan.image)
        out.append(
            {
                "key": f"_hml{i}_",
                "modality": modality,
                "columns": cols,
                "params": params,
                "fingerprint": embedder.fingerprint_,
            }
        )
    return out


@dataclass
class HybridModel:
    """A refitted leaderboard row: backbones as parameters + the fitted pipeline.

    Use :func:`hybridml.load_model` to get one from a file; :meth:`predict` and
    :meth:`predict_proba` take a DataFrame with the columns it was trained on.
    """

    pipeline: Any
    task: str
    classes: list
    roles: dict
    blocks: list
    row: dict
    settings: dict = field(default_factory=dict)
    versions: dict = field(default_factory=versions)

    @property
    def columns(self) -> list[str]:
        """The columns :meth:`predict` reads."""
        r = self.roles
        return [*r["text"], *r["image"], *r["numeric"], *r["categorical"]]

    def predict(self, data: Any, *, cache: Any = None) -> np.ndarray:
        """Predicted labels (original class names) or values, one per row."""
        from .predict import design_matrix

        X = design_matrix(self, data, cache)
        pred = self.pipeline.predict(X)
        if self.task == "classification":
            return np.asarray(self.classes, dtype=object)[np.asarray(pred, int)]
        return np.asarray(pred, dtype=np.float64)

    def predict_proba(self, data: Any, *, cache: Any = None) -> pd.DataFrame:
        """Class probabilities, one column per class (classification only)."""
        from .predict import design_matrix

        if self.task != "classification" or not hasattr(self.pipeline, "predict_proba"):
            name = f"{self.row.get('features')} + {self.row.get('head')}"
            raise ValueError(
                f"proba: got a {self.task} model ({name}) without probabilities. "
                "Expected a classifier with predict_proba. Drop --proba, or save "
                "a logreg / rf / knn / stack row."
            )
        X = design_matrix(self, data, cache)
        proba = self.pipeline.predict_proba(X)
        return pd.DataFrame(proba, columns=[f"proba_{c}" for c in self.classes])

    def manifest(self, payload_sha256: str) -> dict:
        """The JSON manifest stored beside the pipeline."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "task": self.task,
            "classes": self.classes,
            "roles": self.roles,
            "backbones": self.blocks,
            "leaderboard_row": self.row,
            "settings": self.settings,
            "versions": self.versions,
            "model_sha256": payload_sha256,
        }


def save_model(model: HybridModel, path: str | os.PathLike) -> Path:
    """Write ``model`` to ``path`` (a ``.hml`` zip), atomically; return the path."""
    import skops.io as sio

    path = Path(path).expanduser()
    if path.suffix != ".hml":
        raise ValueError(
            f"model path: got {str(path)!r}. Expected a file name ending in .hml. "
            "Use e.g. --save-best model.hml."
        )
    if path.is_dir():
        raise ValueError(
            f"model path: got {str(path)!r}, a folder. Expected a file name. "
            "Use e.g. --save-best model.hml."
        )
    payload = sio.dumps(model.pipeline)
    manifest = model.manifest(hashlib.sha256(payload).hexdigest())
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", json.dumps(manifest, indent=1, default=str))
        archive.writestr("model.skops", payload)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def load_model(path: str | os.PathLike) -> HybridModel:
    """Load a model saved by ``hybridml baseline --save-best``.

    Refuses, with one line, a file that is not a hybridml model, was edited
    after saving, comes from a newer format, or names types outside the trusted
    list; warns, with one line, when the recorded versions differ from the
    installed ones. The backbones' fingerprints are checked when they load
    (at the first :meth:`HybridModel.predict`).

    Parameters
    ----------
    path : str or path-like
        A ``.hml`` file.

    Returns
    -------
    HybridModel
        With ``predict(df)`` / ``predict_proba(df)``, ``columns``, ``roles``,
        ``classes`` and the leaderboard ``row`` it came from.

    Examples
    --------
    ``hybridml baseline ... --save-best model.hml`` writes such a file; here a
    hand-made one-column model stands in for it:

    >>> import tempfile, pandas as pd
    >>> from sklearn.compose import ColumnTransformer
    >>> from sklearn.linear_model import LinearRegression
    >>> from sklearn.pipeline import Pipeline
    >>> from hybridml import load_model
    >>> from hybridml.baseline.saved import HybridModel, save_model
    >>> df = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [2.0, 4.0, 6.0]})
    >>> cols = ColumnTransformer([("numeric", "passthrough", ["x"])])
    >>> pipe = Pipeline([("features", cols), ("head", LinearRegression())])
    >>> pipe = pipe.fit(df[["x"]], df["y"])
    >>> roles = dict(target="y", text=[], image=[], numeric=["x"],
    ...              categorical=[], groups=None)
    >>> model = HybridModel(pipe, "regression", [], roles, [], {"head": "ols"})
    >>> path = save_model(model, tempfile.mkdtemp() + "/model.hml")
    >>> load_model(path).predict(pd.DataFrame({"x": [4.0]})).round(6).tolist()
    [8.0]
    """
    import skops.io as sio

    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"model file: got {str(path)!r}, which does not exist. Expected a .hml "
            "file written by hybridml baseline --save-best. Check the path."
        )
    manifest, payload = _read_archive(path)
    if hashlib.sha256(payload).hexdigest() != manifest.get("model_sha256"):
        raise ValueError(
            f"model file {str(path)!r}: got a model whose sha256 does not match its "
            "manifest. Expected an unmodified file. It was edited or damaged after "
            "saving: save it again."
        )
    untrusted = [
        t for t in sio.get_untrusted_types(data=payload)
        if not t.startswith(TRUSTED_PREFIXES)
    ]  # fmt: skip
    if untrusted:
        raise ValueError(
            f"model file {str(path)!r}: got types outside the trusted list: "
            f"{untrusted[:5]}. Expected only {', '.join(TRUSTED_PREFIXES)} types. "
            "Refusing to load; refit and save the model yourself."
        )
    _check_versions(manifest.get("versions", {}), path)
    pipeline = sio.loads(payload, trusted=sio.get_untrusted_types(data=payload))
    return HybridModel(
        pipeline=pipeline,
        task=manifest["task"],
        classes=manifest["classes"],
        roles=manifest["roles"],
        blocks=manifest["backbones"],
        row=manifest["leaderboard_row"],
        settings=manifest.get("settings", {}),
        versions=manifest.get("versions", {}),
    )


def _read_archive(path: Path) -> tuple[dict, bytes]:
    try:
        with zipfile.ZipFile(path) as archive:
            manifest = json.loads(archive.read("manifest.json"))
            payload = archive.read("model.skops")
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise ValueError(
            f"model file {str(path)!r}: got a file that is not a readable hybridml "
            f"model ({type(exc).__name__}). Expected a .hml file written by hybridml "
            "baseline --save-best. Save it again."
        ) from exc
    if manifest.get("format") != FORMAT:
        raise ValueError(
            f"model file {str(path)!r}: got format {manifest.get('format')!r}. "
            f"Expected {FORMAT!r}. Save it again with hybridml baseline --save-best."
        )
    if int(manifest.get("format_version", 0)) > FORMAT_VERSION:
        raise ValueError(
            f"model file {str(path)!r}: got format version "
            f"{manifest.get('format_version')}. Expected {FORMAT_VERSION} or older. "
            "Upgrade hybridml to load it."
        )
    return manifest, payload


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
