"""Embedding a table's columns: loading the backbones and :func:`embed_frame`.

The leaderboard embeds every row of each text / image column once, up front,
with each backbone (:func:`embed_blocks`); ``hybridml embed`` writes such
embeddings to a file (:func:`embed_frame`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._defaults import DEFAULT_IMAGE_BACKBONE, DEFAULT_TEXT_BACKBONE
from . import features, table
from .blocks import block_key

__all__ = ["embed_frame"]


def embed_frame(
    data: pd.DataFrame | str | os.PathLike,
    *,
    text: str | Sequence[str] = (),
    image: str | Sequence[str] = (),
    backbone: Any = None,
    keep: str | Sequence[str] | None = "all",
    cache: Any = None,
    batch_size: int | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Embed text or image columns of a table, for saving and later use.

    Parameters
    ----------
    data : pandas.DataFrame, str or path-like
        The table, or a CSV / Parquet file.
    text : str or sequence of str, default=()
        Text columns to embed.
    image : str or sequence of str, default=()
        Image-path columns to embed.
    backbone : object, default=None
        Backbone for ``KerasEmbeddingTransformer``. ``None``: the default of the
        modality (``"all_minilm_l6_v2_en"`` or ``"efficientnet_lite0"``).
    keep : "all", sequence of str or None, default="all"
        Columns copied unchanged into the output: ``"all"`` keeps every column
        that is not embedded, ``None`` none.
    cache : EmbeddingCache, str, path-like or None, default=None
        Cache of finished batches: an interrupted run resumes from it.
    batch_size : int or None, default=None
        Rows per forward pass (``None``: the transformer's default).
    progress : bool, default=False
        Show a progress bar.

    Returns
    -------
    pandas.DataFrame
        The kept columns, then float32 columns ``<column>_emb<j>``.

    Examples
    --------
    A tiny Keras model stands in for a pretrained image backbone here
    (``hybridml embed`` calls this with a preset name or folder):

    >>> import keras, numpy as np, pandas as pd
    >>> from hybridml.baseline import embed_frame
    >>> inputs = keras.Input((8, 8, 3))
    >>> model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs))
    >>> frame = pd.DataFrame({"img": [np.zeros((8, 8, 3), "uint8")] * 2,
    ...                       "label": ["a", "b"]})
    >>> embed_frame(frame, image="img", backbone=model).columns.tolist()
    ['label', 'img_emb0', 'img_emb1', 'img_emb2']
    """
    frame, base = table.read_data(data)
    text = table.check_columns(frame, text, "text")
    image = table.check_columns(frame, image, "image")
    table.check_roles(None, text, image)
    if bool(text) == bool(image):
        raise ValueError(
            f"columns to embed: got text={text!r} and image={image!r}. Expected "
            "text columns or image columns (one backbone embeds one modality). "
            "Embed them in two calls."
        )
    if keep == "all":
        kept = [c for c in frame.columns if c not in {*text, *image}]
    else:
        kept = table.check_columns(frame, keep or (), "keep")
    for col in text:
        table.check_text(frame[col], col)
    images = {col: table.image_items(frame[col], col, base) for col in image}
    default = DEFAULT_TEXT_BACKBONE if text else DEFAULT_IMAGE_BACKBONE
    spec = default if backbone is None else backbone
    transformer, modality, _ = _load(
        spec, cache, progress, table.make_printer(0), batch_size=batch_size
    )
    _columns_for(modality, display_name(spec, []), text, image)
    out = [frame[kept].reset_index(drop=True)]
    for col in text or image:
        vectors = transformer.fit_transform(frame[col] if text else images[col])
        names = [f"{col}_emb{j}" for j in range(vectors.shape[1])]
        out.append(pd.DataFrame(vectors.astype(np.float32), columns=names))
    return pd.concat(out, axis=1)


def embed_file(
    data: Any,
    output: str | os.PathLike,
    *,
    cache: Any = None,
    say: Callable[[str], None] = lambda line: None,
    **options: Any,
) -> pd.DataFrame:
    """:func:`embed_frame`, written to ``output`` (CSV / Parquet), resumable.

    Finished batches go to a cache, so an interrupted run resumes. Without
    ``cache`` it is a file beside the output (``<output>.cache.sqlite``),
    removed once the output is written; ``say`` hears that a run resumes.
    """
    from ..cache.sqlite import remove_database
    from ..cache.store import EmbeddingCache
    from .table import write_table

    store = EmbeddingCache.coerce(cache)
    if store is not None:
        len(store)  # opens the database now: a bad path fails before any model
    else:
        path = Path(output).with_name(Path(output).name + ".cache.sqlite")
        found = path.exists()
        store = EmbeddingCache(path)
        if found:
            say(f"resuming from {path} ({len(store)} rows already embedded)")
    frame = embed_frame(data, cache=store, **options)
    write_table(frame, output)  # never a half-written file under the name
    if cache is None:
        store.close()
        remove_database(store.path)
    return frame


def backbone_specs(backbones: Any, text: list, image: list) -> list:
    """The backbones of a run: the default per modality, or the ones given."""
    if backbones is None:
        return ([DEFAULT_TEXT_BACKBONE] if text else []) + (
            [DEFAULT_IMAGE_BACKBONE] if image else []
        )
    if isinstance(backbones, (str, os.PathLike)) or not isinstance(backbones, Sequence):
        backbones = [backbones]
    backbones = list(backbones)
    if backbones and not (text or image):
        raise ValueError(
            f"backbones: got {len(backbones)} but no text or image column. "
            "Expected text=... or image=... columns for the backbones to embed. "
            "Name them, or pass backbones=() for tabular baselines only."
        )
    return backbones


def display_name(spec: Any, others: list) -> str:
    """A backbone's short name on the board (its folder's name, unless two clash)."""
    if isinstance(spec, (str, os.PathLike)):
        text = str(spec).rstrip("/\\")
        name = Path(text).name if os.sep in text or "/" in text else text
        if os.fspath(spec).startswith(("hf://", "kaggle://")):
            name = text
        clash = any(
            isinstance(o, (str, os.PathLike)) and Path(str(o)).name == name
            for o in others
        )
        return text if clash else name
    return getattr(spec, "name", None) or type(spec).__name__


def _load(spec: Any, cache: Any, progress: bool, say: Callable, **params: Any):
    """Load a backbone (once per process) and return its transformer and modality."""
    from ..cache.store import EmbeddingCache
    from ..embed.backbones import get_embedder
    from ..embed.transformer import KerasEmbeddingTransformer

    store = EmbeddingCache.coerce(cache)
    params = {k: v for k, v in params.items() if v is not None}
    transformer = KerasEmbeddingTransformer(
        spec, cache=store, verbose=int(bool(progress)), **params
    )
    t0 = time.perf_counter()
    modality = get_embedder(spec).modality  # the transformer's fit reuses it
    seconds = time.perf_counter() - t0
    say(f"loaded {display_name(spec, [])} ({modality}) in {seconds:.1f} s")
    return transformer, modality, seconds


def _columns_for(modality: str, name: str, text: list, image: list) -> list:
    if modality not in ("text", "image"):
        raise ValueError(
            f"backbone {name!r}: got a backbone that embeds {modality} arrays. "
            "Expected a text or image backbone (a preset name or folder). Use "
            "KerasEmbeddingTransformer directly for numeric input."
        )
    cols = text if modality == "text" else image
    if not cols:
        raise ValueError(
            f"backbone {name!r}: got a backbone for {modality}s but no "
            f"{modality} column. Expected {modality}=... columns for it to embed. "
            "Name them, or drop this backbone."
        )
    return cols


def load_backbones(specs: list, cache: Any, progress: bool, say: Callable) -> list:
    """Load every backbone (cheap checks first); return (transformer, modality, s)."""
    return [_load(spec, cache, progress, say) for spec in specs]


def embed_blocks(
    plan: Any, transformers: list, say: Callable
) -> tuple[dict, list, dict]:
    """Embed each backbone's columns once; add the classical image features.

    Returns the feature blocks by key, the leaderboard rows to build
    (kind, features, head, block key, seconds) and each backbone's load time.
    """
    specs, frame = plan.specs, plan.frame
    blocks, rows, load_s = {}, [], {}
    names = [display_name(s, [o for o in specs if o is not s]) for s in specs]
    for name, (_, modality, seconds) in zip(names, transformers, strict=True):
        load_s[name] = seconds
        _columns_for(modality, name, plan.text, plan.image)  # check all first
    for i, (name, (transformer, modality, _)) in enumerate(
        zip(names, transformers, strict=True)
    ):
        cols = _columns_for(modality, name, plan.text, plan.image)
        t0 = time.perf_counter()
        parts = [
            transformer.fit_transform(
                frame[col] if modality == "text" else plan.images[col]
            )
            for col in cols
        ]
        block = np.hstack(parts).astype(np.float32)
        blocks[block_key(i)] = block
        seconds = time.perf_counter() - t0
        say(
            f"embedded {len(frame)} rows x {len(cols)} column(s) with {name}: "
            f"{block.shape[1]} dims in {seconds:.1f} s"
        )
        for head in plan.heads:
            rows.append(("deep", name, head, block_key(i), seconds))
    if plan.image:
        t0 = time.perf_counter()
        feats = [features.image_features(plan.images[c], c) for c in plan.image]
        seconds = (time.perf_counter() - t0) / 2  # both sets computed together
        for kind in ("pixels", "hog"):
            blocks[block_key(kind)] = np.hstack([f[kind] for f in feats])
            rows.append(("classical", kind, "logreg", block_key(kind), seconds))
    return blocks, rows, load_s
