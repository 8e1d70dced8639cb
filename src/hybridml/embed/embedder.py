"""The :class:`Embedder`: a loaded network with its preprocessing and forward passes.

Made by :func:`hybridml.embed.backbones.get_embedder`, which resolves and loads
the backbone; this module only runs it (tokenise, pad, forward, pool).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from .._imports import quiet_import
from .forward import compile_forward, pad_rows, pow2_rows, uses_xla
from .shapes import CALL_TOKENS, COMPILE_TOKENS, Batch, plan_batches

__all__ = ["Embedder"]


class Embedder:
    """A loaded network with its preprocessing, pooling recipe and forward passes.

    Shared between every transformer that names the same backbone and dtype;
    holds no per-transformer state except compiled forward functions, keyed by
    the output recipe.
    """

    def __init__(
        self,
        model: Any,
        modality: str,
        *,
        source: str,
        tokenizer: Any = None,
        sequence_length: int | None = None,
        converter: Any = None,
        recipe: tuple[str, bool] | None = None,
    ) -> None:
        self.model = model
        self.modality = modality
        self.source = source
        self.tokenizer = tokenizer
        self.converter = converter
        self.max_sequence_length = getattr(model, "max_sequence_length", None)
        # False when neither the preprocessing nor the model names a length:
        # the transformer then warns that it uses 512.
        self.sequence_length_known = bool(sequence_length or self.max_sequence_length)
        if sequence_length is None:
            sequence_length = self.max_sequence_length or 512
        if self.max_sequence_length:
            sequence_length = min(sequence_length, self.max_sequence_length)
        self.sequence_length = sequence_length
        self.input_names = (
            sorted(model.input) if isinstance(model.input, dict) else None
        )
        out = model.output
        if isinstance(out, dict):
            self.output_key = "sequence_output" if "sequence_output" in out else None
            if self.output_key is None:
                raise ValueError(
                    f"backbone: {type(model).__name__} returns outputs "
                    f"{sorted(out)}. Expected a single tensor or a "
                    "'sequence_output'."
                )
            out = out[self.output_key]
        else:
            self.output_key = None
        self.output_rank = len(out.shape)
        self.dim = int(out.shape[-1])
        self.default_pooling, self.default_normalize = self._default_recipe(recipe)
        self._forwards: dict[tuple, Callable] = {}
        self._compiled: dict[tuple, set[tuple[int, int]]] = {}
        self._converters: dict[Any, Any] = {}
        self._digest: str | None = None
        # A user's model instance may be trained further: hash its weights at
        # each fingerprint. A preset's weights are ours alone: hash them once.
        self.mutable = False
        self.spec: Any = None
        self._lock = threading.Lock()

    def _default_recipe(self, recipe: tuple[str, bool] | None) -> tuple[str, bool]:
        if recipe is not None:
            return recipe[0], bool(recipe[1])
        if self.output_rank == 4:
            return "gap", False
        if self.output_rank == 3:
            return ("mean" if self.modality == "text" else "cls"), False
        return "none", False

    # ---------------------------------------------------------------- recipe
    def resolve_pooling(self, pooling: str) -> str:
        """Return the pooling used for ``pooling`` ("auto" -> the model's own)."""
        if pooling == "auto":
            return self.default_pooling
        allowed = {
            2: (),
            3: ("mean", "cls", "max", "last")
            if self.modality == "text"
            else ("mean", "cls", "max"),
            4: ("mean", "gap", "max"),
        }[self.output_rank]
        if pooling not in allowed:
            raise ValueError(
                f"pooling: got {pooling!r} for {self.source}, whose output has "
                f"rank {self.output_rank}. Expected 'auto'"
                + (f" or one of {list(allowed)}" if allowed else "")
                + ". Use pooling='auto' for the model's own recipe."
            )
        return "gap" if pooling == "mean" and self.output_rank == 4 else pooling

    # ---------------------------------------------------------------- fingerprint
    def digest(self) -> str:
        """sha256 over the architecture, the weights and the preprocessing."""
        with self._lock:
            if self._digest is None or self.mutable:
                keras = quiet_import("keras")
                h = hashlib.sha256(f"{type(self.model).__name__}\0".encode())
                for w in self.model.weights:
                    arr = np.ascontiguousarray(keras.ops.convert_to_numpy(w))
                    h.update(f"{arr.dtype.str}{arr.shape}".encode())
                    h.update(arr.tobytes())
                if self.tokenizer is not None:
                    h.update(self.tokenizer.digest.encode())
                if self.converter is not None:
                    cfg = self.converter.get_config()
                    cfg.pop("name", None)
                    h.update(json.dumps(cfg, sort_keys=True, default=str).encode())
                self._digest = h.hexdigest()
            return self._digest

    # ---------------------------------------------------------------- text
    def tokenize(self, texts: list[str], sequence_length: int) -> list[np.ndarray]:
        """Token ids per text, special tokens added, truncated to the length."""
        return self.tokenizer(texts, sequence_length)

    def padded_length(self, token_rows: list[np.ndarray]) -> int:
        """The longest row, rounded up to 8 where shapes compile; capped.

        Compiled forwards (:func:`.forward.uses_xla`: JAX, TensorFlow text)
        compile once per shape, so lengths round up to a multiple of 8 (a
        handful of shapes). An eager forward (torch) pays per token, so it pads
        to the longest row only, as does a batch the shape plan sends to
        TensorFlow's graph: on ``bench_embedding.py``'s timed texts, 67,380
        tokens instead of 72,992 (8% fewer).
        """
        longest = max(len(r) for r in token_rows)
        if not uses_xla(self):
            return longest
        length = -(-longest // 8) * 8
        if self.max_sequence_length:
            length = max(longest, min(length, self.max_sequence_length))
        return length

    def text_batch(
        self, token_rows: list[np.ndarray], length: int | None = None
    ) -> dict[str, np.ndarray]:
        """Pad rows to ``length`` (default :meth:`padded_length` of the rows).

        Where shapes compile, rounding to 8 keeps the embedding loop to a
        handful of shapes; training passes one ``length`` for the whole fit, so
        it compiles one step.
        """
        if length is None:
            length = self.padded_length(token_rows)
        ids = np.full((len(token_rows), length), self.tokenizer.pad_id, np.int32)
        mask = np.zeros((len(token_rows), length), np.int32)
        for i, row in enumerate(token_rows):
            ids[i, : len(row)] = row
            mask[i, : len(row)] = 1
        batch = {"token_ids": ids, "padding_mask": mask}
        if "segment_ids" in self.input_names:
            batch["segment_ids"] = np.zeros_like(ids)
        return batch

    # ---------------------------------------------------------------- images
    def image_batch(self, images: list[np.ndarray], image_size: Any) -> Any:
        """Resize and scale a list of (H, W, 3) arrays with the converter."""
        keras = quiet_import("keras")
        converter = self._converter(image_size)
        same = all(im.shape == images[0].shape for im in images)
        if converter is None:
            if not same:
                raise ValueError(
                    f"images: got images of different sizes for {self.source}, "
                    "which has no image converter. Expected equal sizes, or pass "
                    "image_size=(height, width) to resize them."
                )
            return np.stack(images).astype(np.float32)
        if same:
            return converter(np.stack(images))
        return keras.ops.stack([converter(im[None])[0] for im in images])

    def _converter(self, image_size: Any):
        if image_size is None:
            return self.converter
        size = (
            (image_size, image_size)
            if isinstance(image_size, int)
            else tuple(image_size)
        )
        with self._lock:
            conv = self._converters.get(size)
            if conv is None:
                if self.converter is not None:
                    cfg = {**self.converter.get_config(), "image_size": size}
                    cfg.pop("name", None)
                    conv = type(self.converter).from_config(cfg)
                else:
                    keras_hub = quiet_import("keras_hub")
                    conv = keras_hub.layers.ImageConverter(image_size=size)
                self._converters[size] = conv
        return conv

    def image_size(self, image_size: Any) -> tuple[int, int] | None:
        """Return the (height, width) images are resized to, if any."""
        conv = self._converter(image_size)
        return None if conv is None else conv.image_size

    # ---------------------------------------------------------------- forward
    def plan(
        self, lengths: list[int], batch_size: int, pooling: str, normalize: bool
    ) -> list[Batch]:
        """Batches and shapes for text rows of ``lengths`` (sorted longest first).

        On TensorFlow with XLA (:func:`.forward.uses_xla`),
        :func:`.shapes.plan_batches` pads rare batches to a compiled shape or
        runs them un-compiled; elsewhere (JAX measured slower with it), or with
        the environment variable ``HYBRIDML_SHAPE_PLAN`` set to "0", each batch
        keeps its natural shape. A forward that is not compiled per shape
        (TensorFlow's graph, torch) cuts the rows where that saves padding
        (:func:`.shapes.split_sorted`): a server's batch of mixed lengths.
        """
        backend = quiet_import("keras").backend.backend()
        if (
            backend != "tensorflow"
            or not uses_xla(self)
            or os.environ.get("HYBRIDML_SHAPE_PLAN") == "0"
        ):
            # natural shapes. JAX: measured slower with the plan (no graph to
            # fall back on, so it pads): 34.4 vs 41.2 texts per CPU-s.
            plan = plan_batches(
                lengths,
                batch_size,
                self._pad,
                set(),
                compile_tokens=0,
                graph=False,
                call_tokens=0 if uses_xla(self) else CALL_TOKENS,
            )
            if backend == "jax":  # a partial batch: rows to a power of two
                plan = [b._replace(rows=pow2_rows(b.rows)) for b in plan]
            return plan
        with self._lock:
            known = self._compiled.setdefault((pooling, normalize), set())
            return plan_batches(
                lengths,
                batch_size,
                self._pad,
                known,
                compile_tokens=COMPILE_TOKENS,
                graph=True,
            )

    def _pad(self, longest: int) -> int:
        return self.padded_length([range(longest)])

    def forward(
        self,
        inputs: Any,
        pooling: str,
        normalize: bool,
        *,
        rows: int | None = None,
        compiled: bool = True,
    ) -> np.ndarray:
        """Run one batch; return float32 (batch, dim) pooled vectors.

        ``rows``: run the batch padded to this many rows (row 0 repeated), the
        shape a :meth:`plan` chose. ``compiled=False``: TensorFlow's plain
        graph instead of its XLA compile.
        """
        keras = quiet_import("keras")
        fn = self._forward_fn(pooling, normalize, compiled)
        n = len(inputs["token_ids"]) if isinstance(inputs, dict) else len(inputs)
        if rows is None and keras.backend.backend() == "jax":
            # jax.jit compiles once per shape: round the batch up to a power of
            # two (repeating row 0) so a partial batch adds few new shapes.
            rows = pow2_rows(n)
        if rows is not None:
            inputs = pad_rows(keras, inputs, n, rows)
        out = keras.ops.convert_to_numpy(fn(inputs))[:n]
        return np.asarray(out, dtype=np.float32)

    def _forward_fn(self, pooling: str, normalize: bool, compiled: bool) -> Callable:
        backend = quiet_import("keras").backend.backend()
        compiled = compiled or backend != "tensorflow"
        key = (pooling, normalize, compiled)
        fn = self._forwards.get(key)
        if fn is None:
            jit = None if compiled else False
            fn = compile_forward(self, pooling, normalize, jit=jit)
            self._forwards[key] = fn
        return fn
