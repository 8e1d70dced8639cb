"""Parity with the sentence-transformers reference on the real all-MiniLM-L6-v2.

``tests/data/minilm_golden.npz`` was made once by ``tests/data/make_minilm_golden.py``
with ``SentenceTransformer(...).encode`` (PyTorch, Hugging Face tokenizer) in a
throwaway environment; hybridml never depends on sentence-transformers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hybridml import KerasEmbeddingTransformer

GOLDEN = Path(__file__).parent / "data" / "minilm_golden.npz"


@pytest.fixture(scope="module")
def golden():
    data = np.load(GOLDEN)
    return list(data["sentences"]), data["embeddings"], data["n_tokens"]


@pytest.fixture(scope="module")
def minilm(minilm_dir):
    return KerasEmbeddingTransformer(str(minilm_dir)).fit(None)


def test_golden_set_is_mixed(golden):
    sentences, embeddings, n_tokens = golden
    assert "" in sentences and max(n_tokens) > 256  # empty and truncated
    assert any(not s.isascii() for s in sentences)  # unicode
    assert embeddings.dtype == np.float32 and embeddings.shape == (12, 384)


def test_matches_sentence_transformers_on_every_sentence(minilm, golden):
    sentences, expected, _ = golden
    Z = minilm.transform(sentences)
    cosine = np.sum(Z * expected, axis=1) / (
        np.linalg.norm(Z, axis=1) * np.linalg.norm(expected, axis=1)
    )
    assert cosine.min() >= 0.99999, cosine
    np.testing.assert_allclose(np.linalg.norm(Z, axis=1), 1.0, atol=1e-6)
    assert minilm.pooling_ == "mean" and minilm.normalize_ is True
    assert minilm.sequence_length_ == 256 and minilm.embedding_dim_ == 384


def test_default_backbone_is_the_offline_minilm(minilm, golden):
    sentences = golden[0]
    default = KerasEmbeddingTransformer().fit(None)
    np.testing.assert_allclose(
        default.transform(sentences[:3]), minilm.transform(sentences[:3]), atol=1e-6
    )
    assert default.fingerprint_ == minilm.fingerprint_


def test_batch_composition_does_not_change_vectors(minilm, golden):
    sentences = [s for s in golden[0] if len(s) < 100]
    two = KerasEmbeddingTransformer(minilm.backbone, batch_size=2).fit(None)
    np.testing.assert_allclose(
        two.transform(sentences), minilm.transform(sentences), atol=1e-5
    )


def test_tensorflow_xla_fused_forward_matches_the_plain_graph(minilm, golden):
    import keras

    if keras.backend.backend() != "tensorflow":
        pytest.skip("XLA jit_compile is the TensorFlow forward's lever")
    from hybridml.embed.backbones import get_embedder
    from hybridml.embed.forward import compile_forward

    emb = get_embedder(minilm.backbone)
    inputs = emb.text_batch(emb.tokenize(golden[0][:6], 256))
    plain = compile_forward(emb, "mean", True, jit=False, fuse=False)
    xla = compile_forward(emb, "mean", True, jit=True)  # as shipped
    assert xla.function_spec.jit_compile and not plain.function_spec.jit_compile
    a, b = np.asarray(plain(inputs)), np.asarray(xla(inputs))
    assert np.sum(a * b, axis=1).min() >= 0.99999
    layers = emb.model._flatten_layers()
    rates = [lay._dropout for lay in layers if hasattr(lay, "_dropout")]
    assert rates and max(rates) > 0  # the fused trace restored the model's rates
