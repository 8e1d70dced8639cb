"""GPU throughput: hybridml (Keras on JAX and torch) vs sentence-transformers / timm.

For a machine with only torch and JAX (CUDA) installed: no TensorFlow, no
package registry. Everything else is carried (see ``benchmarks/gpu/README.md``):
the text side tokenises with the ``tokenizers`` package from the MiniLM
folder's ``tokenizer.json`` (hybridml does so whenever a folder has one), so
keras-hub's TensorFlow-based tokenizers are never imported.

Same method as ``benchmarks/bench_embedding.py``: each engine in its own fresh
process, rounds in rotated order, warm-up on text set A and the timed call on
set B (same length distribution), per wall-second and per process CPU-second,
median [min-max], the load average around each run. Engines:

- ``jax``, ``torch``: ``KerasEmbeddingTransformer(<MiniLM folder>)`` on that
  Keras backend, ``dtype`` float32 and, with ``--dtypes``, bfloat16 / float16;
- ``st``: sentence-transformers ``encode`` on CUDA (when importable), float32
  and, with the same ``--dtypes``, the model cast to that dtype;
- ``img-jax``, ``img-torch``, ``img-timm``: EfficientNet-Lite0 on in-memory
  224x224 uint8 images (hybridml's offline copy, and timm's
  ``efficientnet_lite0`` on the same weights when timm is importable).

    python benchmarks/gpu/bench_gpu.py                       # on the GPU machine
    python benchmarks/gpu/bench_gpu.py --smoke --engines jax torch   # CPU check
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parents[1] / "src")]

import _harness as H  # noqa: E402
from bench_embedding import make_texts  # noqa: E402

TEXT_ENGINES = ("st", "jax", "torch")
IMAGE_ENGINES = ("img-timm", "img-jax", "img-torch")


def child(engine: str, dtype: str, job: dict) -> dict:
    import numpy as np

    if engine.startswith("img-"):
        rng = np.random.default_rng(0)
        shape = (job["n"], 224, 224, 3)
        A = rng.integers(0, 256, shape, dtype=np.uint8)
        B = rng.integers(0, 256, shape, dtype=np.uint8)
    else:
        A, B = job["A"], job["B"]
    call = _engine_call(engine, dtype, job)
    call(A)  # warm-up: load, compile every shape
    w0, c0 = H.time.perf_counter(), H.cpu_seconds()
    Z = np.asarray(call(B), dtype=np.float32)
    wall, cpu = H.time.perf_counter() - w0, H.cpu_seconds() - c0
    return {
        "n": len(B),
        "wall": wall,
        "cpu": cpu,
        "device": _device(engine),
        "norm": float(np.linalg.norm(Z, axis=1).mean()),
    }


def _engine_call(engine: str, dtype: str, job: dict):
    batch = job["batch"]
    if engine == "st":
        import torch
        from sentence_transformers import SentenceTransformer

        dev = "cuda" if torch.cuda.is_available() else "cpu"
        model = SentenceTransformer(job["folder"], device=dev)
        if dtype != "float32":
            model = model.to(getattr(torch, dtype))
        return lambda texts: model.encode(texts, batch_size=batch)
    if engine == "img-timm":
        import timm
        import torch

        from hybridml.embed import efficientnet as eff  # the same weights

        dev = "cuda" if torch.cuda.is_available() else "cpu"
        net = timm.create_model("efficientnet_lite0", num_classes=0)
        state = eff.rename_to_timm(eff.read_legacy_state_dict(eff.source_file()))
        state = {k: torch.from_numpy(v) for k, v in state.items()}
        net.load_state_dict(state, strict=False)
        net = net.eval().to(dev, getattr(torch, dtype))
        mean = torch.tensor(eff.MEAN, device=dev).view(1, 3, 1, 1)
        std = torch.tensor(eff.STD, device=dev).view(1, 3, 1, 1)

        def run(x):
            out = []
            with torch.inference_mode():
                for i in range(0, len(x), batch):
                    t = torch.from_numpy(x[i : i + batch]).to(dev)
                    t = (t.permute(0, 3, 1, 2).float() / 255 - mean) / std
                    out.append(net(t.to(getattr(torch, dtype))).float().cpu())
            return torch.cat(out).numpy()

        return run
    import hybridml

    hybridml.quiet()
    from hybridml import KerasEmbeddingTransformer

    spec = "efficientnet_lite0" if engine.startswith("img-") else job["folder"]
    kw = {} if dtype == "float32" else {"dtype": dtype}
    emb = KerasEmbeddingTransformer(spec, batch_size=batch, **kw).fit(None)
    return emb.transform


def _device(engine: str) -> str:
    if engine in ("jax", "img-jax"):
        import jax

        return str(jax.devices()[0])
    import torch

    return (
        f"cuda:{torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "cpu"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", nargs="+", default=[*TEXT_ENGINES, *IMAGE_ENGINES])
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--texts", type=int, default=20000)
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=H.CORES)
    parser.add_argument("--model-dir", help="MiniLM folder (default: the package's)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, 1 round")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--dtype", help=argparse.SUPPRESS)
    parser.add_argument("--job", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        job = json.loads(Path(args.job).read_text(encoding="utf-8"))
        print(json.dumps(child(args.child, args.dtype, job)))
        return
    if args.smoke:
        args.texts, args.images, args.rounds, args.batch = 64, 16, 1, 16
    folder = args.model_dir
    if folder is None:
        from hybridml.embed.offline import minilm_dir

        folder = str(minilm_dir())
    A, B = make_texts(args.texts)
    tmp = Path(tempfile.mkdtemp(prefix="bench_gpu_"))
    job_file = tmp / "job.json"
    job = {"A": A, "B": B, "folder": folder, "n": args.images, "batch": args.batch}
    job_file.write_text(json.dumps(job))
    runs = [(e, d) for e in args.engines for d in args.dtypes]
    print(f"before: {H.uptime()}")
    results: dict[tuple, list[dict]] = {r: [] for r in runs}
    for order in H.rotated([f"{e}|{d}" for e, d in runs], args.rounds):
        for item in order:
            engine, dtype = item.split("|")
            env = H.thread_env(args.threads)
            if engine in ("jax", "torch", "img-jax", "img-torch"):
                env["KERAS_BACKEND"] = engine.removeprefix("img-")
            cmd = [
                sys.executable,
                __file__,
                "--child",
                engine,
                "--dtype",
                dtype,
                "--job",
                str(job_file),
            ]
            try:
                res = H.run_child(cmd, env)
            except RuntimeError as exc:
                print(f"  {item}: failed ({str(exc).splitlines()[-1][:160]})")
                continue
            results[engine, dtype].append(res)
            print(
                f"  {item:18s} {res['n'] / res['wall']:9.1f}/s wall "
                f"{res['n'] / res['cpu']:9.1f}/CPU-s  {res['device']}  load "
                f"{res['load_before']:.2f}->{res['load_after']:.2f}",
                flush=True,
            )
    print(f"after: {H.uptime()}")
    unit = {"img": "images"}
    for (engine, dtype), rs in results.items():
        if rs:
            what = unit.get(engine[:3], "sentences")
            wall = [r["n"] / r["wall"] for r in rs]
            cpu = [r["n"] / r["cpu"] for r in rs]
            print(
                f"{engine:10s} {dtype:9s} {what}/s {H.spread(wall)}  "
                f"per CPU-s {H.spread(cpu)}"
            )


if __name__ == "__main__":
    main()
