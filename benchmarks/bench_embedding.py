"""Embedding throughput: hybridml vs sentence-transformers vs a naive keras-hub loop.

One run, one machine, one set of threads:

1. ``KerasEmbeddingTransformer("all_minilm_l6_v2_en")`` on 2,000 sentences of
   5 to 60 words (real review text from the shipped Rotten Tomatoes data), cold
   (first call: tokenise, trace/compile, embed) and warm (best of the next
   ``--repeats`` calls; sentence-transformers gets the same best-of).
2. ``sentence_transformers.SentenceTransformer(<same folder>).encode`` on the
   same sentences and weights. sentence-transformers is never a hybridml
   dependency: set ``HYBRIDML_BENCH_ST_PYTHON`` to a Python that has it (a
   throwaway venv) and it runs there, in a subprocess on the same machine; or
   it is used in-process if importable; otherwise the script says it is absent.
3. The naive keras-hub loop: ``TextEmbedder`` preprocessing at its fixed
   sequence length 256, ``model.predict`` (on the first ``--naive`` sentences,
   500 by default: it is slow; rates are per sentence).
4. Images/s on a CNN preset (the offline image default when installed, else
   ``resnet_18_imagenet`` if it can be loaded, else a random ResNet-18-sized
   network), from in-memory uint8 arrays.

Prints sentences/s, the ratios, the peak RSS and the backend. Run with
``HYBRIDML_FAST=1`` for a quick smoke run (fewer sentences).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

import hybridml

hybridml.quiet()

from hybridml import KerasEmbeddingTransformer  # noqa: E402
from hybridml._imports import quiet_import  # noqa: E402
from hybridml.datasets import load_rotten_tomatoes  # noqa: E402
from hybridml.embed.offline import minilm_dir, offline_preset  # noqa: E402

ST_SNIPPET = r"""
import json, sys, time
import torch
from sentence_transformers import SentenceTransformer
folder, path, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
sentences = json.load(open(path))
model = SentenceTransformer(folder, device="cpu")
model.encode(sentences[:batch], batch_size=batch)  # warm-up
times = []
for _ in range(int(sys.argv[4])):
    t = time.perf_counter()
    emb = model.encode(sentences, batch_size=batch, convert_to_numpy=True)
    times.append(time.perf_counter() - t)
seconds = min(times)
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")]
print(json.dumps({"seconds": seconds, "threads": torch.get_num_threads(),
                  "rss_mb": int(hwm[0].split()[1]) / 1024 if hwm else float("nan"),
                  "embeddings": emb.tolist()}))
"""


def make_sentences(n: int, seed: int = 0) -> list[str]:
    """Sentences of 5..60 words cut from the shipped Rotten Tomatoes reviews."""
    words = " ".join(load_rotten_tomatoes()["text"]).split()
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        k = int(rng.integers(5, 61))
        start = int(rng.integers(0, len(words) - k))
        out.append(" ".join(words[start : start + k]))
    return out


def peak_rss_mb() -> float:
    """Peak resident memory of this process (VmHWM; ru_maxrss elsewhere)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_hybridml(sentences: list[str], batch_size: int, repeats: int) -> dict:
    embed = KerasEmbeddingTransformer(batch_size=batch_size)
    t = time.perf_counter()
    embed.fit(None)
    load = time.perf_counter() - t
    t = time.perf_counter()
    Z = embed.transform(sentences)
    cold = time.perf_counter() - t
    warm = []
    for _ in range(repeats):
        t = time.perf_counter()
        embed.transform(sentences)
        warm.append(time.perf_counter() - t)
    return {"load_s": load, "cold_s": cold, "warm_s": min(warm), "Z": Z}


def bench_sentence_transformers(
    sentences: list[str], batch_size: int, repeats: int
) -> dict | None:
    folder = str(minilm_dir())
    python = os.environ.get("HYBRIDML_BENCH_ST_PYTHON")
    if python is None:
        try:
            import sentence_transformers  # noqa: F401
        except ImportError:
            return None
        python = sys.executable
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(sentences, f)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    try:
        proc = subprocess.run(
            [python, "-c", ST_SNIPPET, folder, f.name, str(batch_size), str(repeats)],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
    finally:
        os.unlink(f.name)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["Z"] = np.asarray(result.pop("embeddings"), dtype=np.float32)
    return result


def bench_naive(sentences: list[str], batch_size: int) -> dict:
    keras_hub = quiet_import("keras_hub")
    model = keras_hub.models.TextEmbedder.from_preset(str(minilm_dir()))
    assert model.preprocessor.sequence_length == 256
    model.predict(sentences[:batch_size], batch_size=batch_size, verbose=0)  # warm
    t = time.perf_counter()
    Z = model.predict(sentences, batch_size=batch_size, verbose=0)
    return {"seconds": time.perf_counter() - t, "Z": np.asarray(Z)}


def bench_images(n: int, batch_size: int) -> dict:
    keras = quiet_import("keras")
    keras_hub = quiet_import("keras_hub")
    for name in ("efficientnet_lite0", "resnet_18_imagenet"):
        if name == "efficientnet_lite0" and offline_preset(name) is None:
            continue
        try:
            embed = KerasEmbeddingTransformer(name, batch_size=batch_size).fit(None)
            break
        except Exception as exc:  # no network for keras-hub's own preset
            print(f"  ({name} unavailable: {type(exc).__name__})")
    else:
        name = "random ResNet-18 (224x224)"
        keras.utils.set_random_seed(0)
        backbone = keras_hub.models.ResNetBackbone(
            input_conv_filters=[64],
            input_conv_kernel_sizes=[7],
            stackwise_num_filters=[64, 128, 256, 512],
            stackwise_num_blocks=[2, 2, 2, 2],
            stackwise_num_strides=[1, 2, 2, 2],
            block_type="basic_block",
            image_shape=(None, None, 3),
        )
        converter = keras_hub.layers.ResNetImageConverter(
            image_size=(224, 224), scale=1 / 255
        )
        task = keras_hub.models.ResNetImageClassifier(
            backbone=backbone,
            num_classes=2,
            preprocessor=keras_hub.models.ResNetImageClassifierPreprocessor(converter),
        )
        embed = KerasEmbeddingTransformer(task, batch_size=batch_size).fit(None)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 256, 256, 3), dtype=np.uint8)
    embed.transform(images[:batch_size])  # warm
    t = time.perf_counter()
    embed.transform(images)
    seconds = time.perf_counter() - t
    return {"name": name, "images_per_s": n / seconds, "dim": embed.embedding_dim_}


def main() -> None:
    fast = os.environ.get("HYBRIDML_FAST") == "1"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200 if fast else 2000)
    parser.add_argument("--naive", type=int, default=64 if fast else 500)
    parser.add_argument("--images", type=int, default=32 if fast else 128)
    parser.add_argument("--repeats", type=int, default=1 if fast else 2)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    keras = quiet_import("keras")
    backend = keras.backend.backend()
    sentences = make_sentences(args.n)
    lengths = [len(s.split()) for s in sentences]
    print(
        f"backend={backend}  cpus={os.cpu_count()}  sentences={len(sentences)} "
        f"(words {min(lengths)}-{max(lengths)}, mean {np.mean(lengths):.1f})  "
        f"batch_size={args.batch_size}"
    )

    ours = bench_hybridml(sentences, args.batch_size, args.repeats)
    n = len(sentences)
    cold, warm = n / ours["cold_s"], n / ours["warm_s"]
    print(
        f"hybridml       load {ours['load_s']:.1f}s  cold {cold:7.1f} sent/s  "
        f"warm {warm:7.1f} sent/s  peak RSS {peak_rss_mb():.0f} MB"
    )

    st = bench_sentence_transformers(sentences, args.batch_size, args.repeats)
    if st is None:
        print(
            "sentence-transformers: not installed (set HYBRIDML_BENCH_ST_PYTHON "
            "to a Python that has it); ratio not measured"
        )
    else:
        rate = n / st["seconds"]
        cos = float(np.min(np.sum(st["Z"] * ours["Z"], axis=1)))
        print(
            f"sentence-transf. {rate:7.1f} sent/s  ({st['threads']} torch "
            f"threads, peak RSS {st['rss_mb']:.0f} MB)  min cosine vs "
            f"hybridml {cos:.7f}"
        )
        print(
            f"  ratio hybridml/sentence-transformers: cold {cold / rate:.2f}x  "
            f"warm {warm / rate:.2f}x  (target >= 1.0x)"
        )

    naive = bench_naive(sentences[: args.naive], args.batch_size)
    rate = args.naive / naive["seconds"]
    print(
        f"naive keras-hub  {rate:7.1f} sent/s  (fixed length 256, predict, "
        f"{args.naive} sentences)  peak RSS {peak_rss_mb():.0f} MB"
    )
    print(
        f"  ratio hybridml/naive: cold {cold / rate:.2f}x  warm {warm / rate:.2f}x"
        "  (target >= 1.5x)"
    )

    img = bench_images(args.images, args.batch_size)
    print(
        f"images           {img['images_per_s']:7.1f} images/s  ({img['name']}, "
        f"dim {img['dim']}, 256x256 uint8 in memory)  peak RSS "
        f"{peak_rss_mb():.0f} MB"
    )


if __name__ == "__main__":
    main()
