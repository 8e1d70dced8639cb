"""A/B of the forward-pass levers, by process CPU-seconds, interleaved in one process.

For one Keras backend (``KERAS_BACKEND``): the MiniLM backbone, real batches of
32 (texts from :func:`bench_embedding.make_texts`, tokenised, sorted by length,
``--batches`` of them spread over the length range). Every variant is first
warmed up on every batch (traces, XLA compiles); then ``--reps`` repetitions,
each running every variant once over all the batches, in rotated order, timed
by ``getrusage`` CPU-seconds of this process. Prints, per variant, CPU-seconds
per repetition and the ratio base / variant (> 1: the variant costs less CPU)
as median [min-max] over the repetitions, the minimum cosine of its vectors to
the base's, and the load average. Variants:

- ``base``: the forward with every lever off (TF: plain ``tf.function``;
  attention with its dropout rate set, so Keras computes attention with
  einsums). On TensorFlow hybridml ships ``xla+sdpa``;
- ``xla`` (TF): ``tf.function(jit_compile=True)``;
- ``sdpa``: attention dropout rate set to 0, so Keras calls the backend's fused
  ``ops.dot_product_attention``;
- ``xla+sdpa`` (TF): both.

    KERAS_BACKEND=tensorflow python benchmarks/bench_levers.py --reps 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

import _harness as H

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def batches(embedder, n_batches: int) -> list[dict]:
    from bench_embedding import make_texts

    texts, _ = make_texts(3400)
    tokens = sorted(embedder.tokenize(texts, 256), key=len, reverse=True)
    chunks = [tokens[i : i + 32] for i in range(0, len(tokens) - 31, 32)]
    step = max(1, len(chunks) // n_batches)
    return [embedder.text_batch(c) for c in chunks[::step][:n_batches]]


def profile(emb, forward) -> None:
    """CPU-seconds of each stage of a transform over the 1,700 timed texts."""
    import numpy as np
    from bench_embedding import make_texts

    _, texts = make_texts(3400)
    c0 = H.cpu_seconds()
    tokens = emb.tokenize(texts, 256)
    c1 = H.cpu_seconds()
    tokens.sort(key=len, reverse=True)
    inputs = [emb.text_batch(tokens[i : i + 32]) for i in range(0, len(tokens), 32)]
    c2 = H.cpu_seconds()
    outs = [forward(b) for b in inputs]
    c3 = H.cpu_seconds()
    [np.asarray(o) for o in outs]
    c4 = H.cpu_seconds()
    total = c4 - c0
    print(
        f"profile ({len(texts)} texts, {total:.2f} CPU-s): tokenise "
        f"{(c1 - c0) / total:.1%}, sort+pad {(c2 - c1) / total:.1%}, forward "
        f"{(c3 - c2) / total:.1%}, copy-out {(c4 - c3) / total:.1%}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--threads", type=int, default=H.CORES)
    args = parser.parse_args()
    for k, v in H.thread_env(args.threads).items():
        os.environ.setdefault(k, v)
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    settings = H.pin_threads(args.threads, backend)
    import numpy as np

    import hybridml

    hybridml.quiet()
    from hybridml.embed.backbones import get_embedder
    from hybridml.embed.forward import compile_forward

    emb = get_embedder("all_minilm_l6_v2_en")
    layers = [
        lay
        for lay in emb.model._flatten_layers(include_self=False, recursive=True)
        if hasattr(lay, "_dropout") and hasattr(lay, "_compute_attention")
    ]
    rate = max(lay._dropout for lay in layers)
    data = batches(emb, args.batches)

    def variant(jit: bool, sdpa: bool):
        def setup():
            for lay in layers:
                lay._dropout = 0.0 if sdpa else rate

        setup()
        kw = {"jit": jit, "fuse": sdpa} if backend == "tensorflow" else {}
        return setup, compile_forward(emb, "mean", True, **kw)

    variants = {"base": variant(False, False), "sdpa": variant(False, True)}
    if backend == "tensorflow":
        variants["xla"] = variant(True, False)
        variants["xla+sdpa"] = variant(True, True)
    outs = {}
    for name, (setup, fn) in variants.items():  # warm-up: every shape
        setup()
        outs[name] = np.concatenate([np.asarray(fn(b)) for b in data])
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    print(f"before: {H.uptime()}")
    for order in H.rotated(list(variants), args.reps):
        for name in order:
            setup, fn = variants[name]
            setup()
            c0 = H.cpu_seconds()
            for b in data:
                np.asarray(fn(b))
            cpu[name].append(H.cpu_seconds() - c0)
    profile(emb, variants["base"][1])
    print(f"after: {H.uptime()}")
    shapes = sorted({b["token_ids"].shape[1] for b in data})
    print(
        f"backend={backend} threads={json.dumps(settings)} batches of 32, "
        f"lengths {shapes}, reps {args.reps}"
    )
    for name in variants:
        ratios = [a / b for a, b in zip(cpu["base"], cpu[name], strict=True)]
        Z, Zb = outs[name], outs["base"]
        cos = np.sum(Z * Zb, 1) / np.linalg.norm(Z, axis=1) / np.linalg.norm(Zb, axis=1)
        print(
            f"{name:9s} CPU-s/rep {H.spread(cpu[name])}  base/variant "
            f"{statistics.median(ratios):.3f} [{min(ratios):.3f}-{max(ratios):.3f}]"
            f"  min cosine to base {cos.min():.7f}"
        )


if __name__ == "__main__":
    main()
