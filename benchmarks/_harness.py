"""Shared measuring harness for the benchmarks: fair, and loud when it cannot be.

Standard library only (the children may run in a throwaway venv that has no
hybridml). What it gives every benchmark:

- :func:`thread_env` / :func:`pin_threads`: one explicit thread count for every
  engine (OpenMP, MKL, Eigen/XLA, TensorFlow intra/inter-op, torch, Rayon),
  set before the engine is imported and reported back by the child;
- :func:`run_child`: each engine in its own fresh process, one at a time, with
  the machine's load average before and after, and the CPU time every *other*
  process on the machine used meanwhile (``/proc/stat`` minus the child);
- :func:`rotated`: rounds in rotated order (A B C, B C A, C A B, ...);
- :func:`cpu_seconds`: process CPU-seconds of all threads (``getrusage``);
- :func:`busy_reason`: why a ratio must not be printed (load average above the
  core count at the start, or other processes using the CPUs during a run);
- :func:`report`: medians, spread, cosine to the reference, first call, ratios;
- :func:`write_results`: one table as JSON in ``docs/benchmarks/`` with its date,
  CPU, load and command, which the site's benchmarks page renders.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

CORES = os.cpu_count() or 1
RESULTS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks"


def cpu_seconds() -> float:
    """User + system CPU-seconds of this process, all threads."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def thread_env(threads: int) -> dict[str, str]:
    """Environment variables fixing every thread pool to ``threads``."""
    t = str(threads)
    return {
        "OMP_NUM_THREADS": t,
        "MKL_NUM_THREADS": t,
        "OPENBLAS_NUM_THREADS": t,
        "RAYON_NUM_THREADS": t,
        "TF_NUM_INTRAOP_THREADS": t,
        "TF_NUM_INTEROP_THREADS": "1",
        "XLA_FLAGS": (
            f"--xla_cpu_multi_thread_eigen={'true' if threads > 1 else 'false'} "
            f"intra_op_parallelism_threads={t}"
        ),
        "TOKENIZERS_PARALLELISM": "true" if threads > 1 else "false",
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }


def pin_threads(threads: int, engine: str) -> dict[str, object]:
    """Inside a child, before the first op: set the engine's own pools; report them."""
    settings: dict[str, object] = {
        k: os.environ.get(k)
        for k in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "XLA_FLAGS")
    }
    if engine in ("torch", "sentence-transformers", "timm"):
        import torch

        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # already set by an earlier parallel op
            pass
        settings["torch"] = (torch.get_num_threads(), torch.get_num_interop_threads())
    if engine == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        settings["tf"] = (
            tf.config.threading.get_intra_op_parallelism_threads(),
            tf.config.threading.get_inter_op_parallelism_threads(),
        )
    return settings


def busy_jiffies() -> int:
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields[:8]) - idle


def run_child(
    cmd: Sequence[str], env: dict[str, str], timeout: float = 3600
) -> dict[str, object]:
    """Run one measuring child; return its last JSON line plus the load around it."""
    hz = os.sysconf("SC_CLK_TCK")
    started = time.time()
    load_before = os.getloadavg()[0]
    busy0, child0 = busy_jiffies(), resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(
        list(cmd),
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=timeout,
        check=False,
    )
    wall = time.perf_counter() - t0
    busy1, child1 = busy_jiffies(), resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    child_cpu = child1.ru_utime - child0.ru_utime
    child_cpu += child1.ru_stime - child0.ru_stime
    others = max(0.0, (busy1 - busy0) / hz - child_cpu)
    result["started"] = started
    result["load_before"] = load_before
    result["load_after"] = os.getloadavg()[0]
    result["others_cores"] = others / wall  # mean cores used by other processes
    return result


def rotated(items: Sequence[str], rounds: int) -> list[list[str]]:
    """Round r runs ``items`` rotated by r: each engine goes first equally often."""
    k = len(items)
    return [list(items[r % k :]) + list(items[: r % k]) for r in range(rounds)]


def spread(values: Sequence[float]) -> str:
    """'median [min-max]' of the rounds."""
    med = statistics.median(values)
    return f"{med:7.1f} [{min(values):.1f}-{max(values):.1f}]"


def busy_reason(
    runs: Sequence[dict], max_load: float = CORES, max_others: float = 0.15
) -> str | None:
    """Why the ratios of these runs cannot be trusted, or None when they can.

    Busy means: the 1-minute load average above ``max_load`` before the first
    run (work already on the machine), or other processes using more than
    ``max_others`` of the cores while any run measured (``/proc/stat`` minus
    the child: the direct measure of interference). The load average before
    later runs and after each one is printed but not judged: it lags by a
    minute and counts the benchmark's own children (2 threads on 2 cores keep
    it near 2.0).
    """
    start = min(runs, key=lambda r: r.get("started", 0.0))["load_before"]
    if start > max_load:
        return f"load average {start:.2f} > {max_load:g} at the start (cores {CORES})"
    others = max(r["others_cores"] for r in runs)
    if others > max_others * CORES:
        return (
            f"other processes used {others:.2f} of {CORES} cores during a run "
            f"(limit {max_others * CORES:.2f})"
        )
    return None


def cpu_model() -> str:
    """The processor's model name and its vector units, from /proc/cpuinfo."""
    name, flags = "unknown", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and name == "unknown":
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    # matrix units (AMX) and vector units (AVX-512 BF16 / VNNI): what decides
    # whether bfloat16 or int8 can pay on this chip
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16")
    units = [u for u in wanted if u in flags]
    amx = [u for u in ("amx_bf16", "amx_int8", "amx_tile") if u in flags]
    units += amx or ["no amx"]
    return f"{name} ({', '.join(units)})"


def run_rounds(
    engines: Sequence[str], rounds: int, command, tmp, unit: str
) -> dict[str, list[dict]]:
    """Run every engine once per round, rounds rotated; print each run.

    ``command(engine, out)`` returns the child's (argv, extra environment); the
    child saves its vectors to ``out``. Returns engine -> results, each with
    ``Z``, the path of its vectors.
    """
    runs: dict[str, list[dict]] = {e: [] for e in engines}
    for r, order in enumerate(rotated(engines, rounds)):
        for engine in order:
            out = str(tmp / f"{len(runs[engine])}_{engine.replace('/', '_')}.npy")
            res = run_child(*command(engine, out))
            res["Z"] = out
            runs[engine].append(res)
            print(
                f"  round {r + 1} {engine:24s} {res['n'] / res['cpu']:7.1f} "
                f"{unit}/CPU-s {res['n'] / res['wall']:7.1f} {unit}/s  load "
                f"{res['load_before']:.2f}->{res['load_after']:.2f}  others "
                f"{res['others_cores']:.2f} cores",
                flush=True,
            )
    return runs


def measure(
    engines: Sequence[str],
    rounds: int,
    command,
    tmp,
    unit: str,
    ref: str | None,
    max_load: float,
    results: dict | None = None,
) -> dict[str, list[dict]]:
    """The whole measurement: CPU model, load around the runs, rounds, report.

    ``results``: ``{"name": ..., "title": ..., "notes": ...}`` also writes the
    table to ``docs/benchmarks/<name>.json`` (:func:`write_results`). Returns
    engine -> the children's results (as :func:`run_rounds`).
    """
    print("cpu:", cpu_model())
    before = uptime()
    print("before:", before)
    runs = run_rounds(engines, rounds, command, tmp, unit)
    after = uptime()
    print("after:", after)
    report(runs, ref, unit, max_load=max_load)
    if results:
        all_runs = [r for rs in runs.values() for r in rs]
        why = busy_reason(all_runs, max_load=max_load)
        others = max(r["others_cores"] for r in all_runs)
        load = (
            f"before: {before}; after: {after}; other processes at most "
            f"{others:.2f} cores during any run"
            + (f"; busy ({why}): no ratios" if why else "")
        )
        columns, rows = summary_table(runs, ref, unit, ratios=why is None)
        path = write_results(
            results["name"],
            title=results["title"],
            columns=columns,
            rows=rows,
            load=load,
            notes=results.get("notes", "") + f" Median [min-max] of {rounds} rounds.",
        )
        print(f"results: {path}")
    return runs


def summary_table(
    runs: dict[str, list[dict]], ref: str | None, unit: str, ratios: bool = True
) -> tuple[list[str], list[list[str]]]:
    """The rounds as one table: throughput, the ratio to ``ref``, the first call."""
    base = ref if ref in runs else next(iter(runs))

    def med(rs, key):
        return statistics.median(r["n"] / r[key] for r in rs)

    columns = [
        "engine",
        f"timed call: {unit} per CPU-second",
        "per wall-second",
        f"vs {base} (CPU / wall)",
        "first call: CPU-s",
        "wall-s",
    ]
    rows = []
    for engine, rs in runs.items():
        ratio = ""
        if ratios:
            c = med(rs, "cpu") / med(runs[base], "cpu")
            w = med(rs, "wall") / med(runs[base], "wall")
            ratio = f"{c:.2f} / {w:.2f}"
        rows.append(
            [
                engine,
                spread([r["n"] / r["cpu"] for r in rs]).strip(),
                spread([r["n"] / r["wall"] for r in rs]).strip(),
                ratio,
                f"{statistics.median(r['first_cpu'] for r in rs):.1f}",
                f"{statistics.median(r['first_wall'] for r in rs):.1f}",
            ]
        )
    return columns, rows


def write_results(
    name: str,
    *,
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[object]],
    load: str,
    notes: str = "",
    plot: dict | None = None,
    folder: Path = RESULTS,
) -> Path:
    """Write one table to ``folder/<name>.json``, the schema the site renders.

    The provenance is recorded here, not typed: today's date (UTC), the CPU
    model with its vector units (:func:`cpu_model`) and core count, ``load``
    (what the caller saw around the runs) and the command line that ran. The
    plot shows the first numeric column against the first one unless ``plot``
    says otherwise. A file of the same name is replaced; its place in the page
    (``order``) is kept.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    order = 100
    if path.exists():
        order = json.loads(path.read_text()).get("order", order)
    date = time.strftime("%Y-%m-%d", time.gmtime())
    cpu = f"{CORES} cores of {cpu_model()}"
    rows = [[str(v) for v in row] for row in rows]
    if any(len(row) != len(columns) for row in rows):
        raise ValueError(f"every row needs {len(columns)} cells: {rows!r}")
    result = {
        "schema": 1,
        "name": name,
        "order": order,
        "title": title,
        "date": date,
        "cpu": cpu,
        "load": load,
        "command": " ".join(["python", *sys.argv]),
        "source": f"written by make bench, measured {date} on {cpu}",
        "notes": notes.strip(),
        "columns": list(columns),
        "rows": rows,
        "plot": plot
        or {
            "labels": [0],
            "series": [{"column": 1, "name": columns[1]}],
            "xlabel": columns[1],
        },
    }
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return path


def child_env(engine: str, threads: int, src: str) -> tuple[str, dict[str, str]]:
    """An engine's name and its child's environment: threads pinned, extras set.

    ``name:KEY=VALUE`` adds that variable; ``name:PYTHONPATH=/other/src`` puts
    another checkout before ``src`` (A/B of two versions in one run).
    """
    name, _, extra = engine.partition(":")
    env = thread_env(threads)
    if extra:
        key, _, value = extra.partition("=")
        env[key] = value
    env["PYTHONPATH"] = os.pathsep.join(
        [env.get("PYTHONPATH", ""), src, os.environ.get("PYTHONPATH", "")]
    ).strip(os.pathsep)
    return name, env


def report(
    runs: dict[str, list[dict]], ref: str | None, unit: str, max_load: float
) -> None:
    """Medians, spread, cosine to ``ref``'s vectors, first call, and the ratios.

    ``runs``: engine -> the children's results (``n``, ``cpu``, ``wall``,
    ``first_cpu``, ``first_wall``, ``Z`` the saved vectors). No ratio is
    printed when :func:`busy_reason` finds the machine busy.
    """
    import numpy as np

    first = next(iter(runs.values()))[0]
    print(f"threads: {json.dumps(first['settings'])}")
    ref = ref if ref in runs else None
    Zref = np.load(runs[ref][-1]["Z"]) if ref else None
    print(f"{'engine':24s} {unit + '/CPU-s':>22s} {unit + '/wall-s':>22s}  cosine")
    for engine, rs in runs.items():
        cos = ""
        if Zref is not None and engine != ref:
            Z = np.load(rs[-1]["Z"])
            c = np.sum(Z * Zref, 1) / np.linalg.norm(Z, axis=1)
            c /= np.linalg.norm(Zref, axis=1)
            cos = f"min {c.min():.7f} vs {ref}"
        cpu = [r["n"] / r["cpu"] for r in rs]
        wall = [r["n"] / r["wall"] for r in rs]
        print(f"{engine:24s} {spread(cpu):>22s} {spread(wall):>22s}  {cos}")
    print("first call (load the model, embed the warm-up set: a one-shot user's cost):")
    for engine, rs in runs.items():
        cpu = [r["first_cpu"] for r in rs]
        wall = [r["first_wall"] for r in rs]
        print(f"{engine:24s} {spread(cpu):>22s} CPU-s {spread(wall):>22s} wall-s")
    why = busy_reason([r for rs in runs.values() for r in rs], max_load=max_load)
    if why:
        print(f"no ratios: the machine was busy ({why}); rerun on a quiet machine.")
        return
    base = ref or next(iter(runs))
    med = {
        e: (
            statistics.median(r["n"] / r["cpu"] for r in rs),
            statistics.median(r["n"] / r["wall"] for r in rs),
        )
        for e, rs in runs.items()
    }
    for engine in runs:
        if engine != base:
            c, w = med[engine][0] / med[base][0], med[engine][1] / med[base][1]
            print(f"ratio {engine} / {base}: {c:.2f} per CPU-s, {w:.2f} per wall-s")


def uptime() -> str:
    """The ``uptime`` line (load averages) right now."""
    try:
        return subprocess.run(
            ["uptime"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())
