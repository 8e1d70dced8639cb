"""Tokenizers for text backbones: texts -> token-id arrays, specials added, truncated.

Two implementations behind one call: Hugging Face ``tokenizers`` when the model
folder has a ``tokenizer.json`` (what sentence-transformers itself uses; needs no
TensorFlow), else the keras-hub preprocessor of the preset.
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any

import numpy as np

from .._imports import quiet_import


class HFTokenizer:
    def __init__(self, tok: Any, raw: bytes) -> None:
        self._tok = tok
        self._lock = threading.Lock()
        self.digest = hashlib.sha256(raw).hexdigest()
        self.pad_id = 0

    def __call__(self, texts: list[str], sequence_length: int) -> list[np.ndarray]:
        with self._lock:
            self._tok.no_padding()
            self._tok.enable_truncation(max_length=sequence_length)
            encodings = self._tok.encode_batch(texts)
        return [np.asarray(e.ids, dtype=np.int32) for e in encodings]


class KerasHubTokenizer:
    def __init__(self, preprocessor: Any) -> None:
        self._pre = preprocessor
        self._lock = threading.Lock()
        tokenizer = preprocessor.tokenizer
        self.pad_id = int(getattr(tokenizer, "pad_token_id", 0) or 0)
        h = hashlib.sha256(
            json.dumps(tokenizer.get_config(), sort_keys=True, default=str).encode()
        )
        h.update("\n".join(tokenizer.get_vocabulary()).encode("utf-8"))
        self.digest = h.hexdigest()

    def __call__(self, texts: list[str], sequence_length: int) -> list[np.ndarray]:
        keras = quiet_import("keras")
        out: list[np.ndarray] = []
        with self._lock:
            # The preprocessor may be the user's (a Task passed as backbone):
            # set the length for this call only and put theirs back.
            original = self._pre.sequence_length
            self._pre.sequence_length = sequence_length
            try:
                for start in range(0, len(texts), 1024):
                    feats = self._pre(texts[start : start + 1024])
                    ids = keras.ops.convert_to_numpy(feats["token_ids"])
                    ids = ids.astype(np.int32)
                    lengths = keras.ops.convert_to_numpy(feats["padding_mask"]).sum(1)
                    out.extend(row[:n] for row, n in zip(ids, lengths, strict=True))
            finally:
                self._pre.sequence_length = original
        return out
