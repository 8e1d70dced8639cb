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
  core count, or other processes using the CPUs during a run).
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import time
from collections.abc import Sequence

CORES = os.cpu_count() or 1


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


def _busy_jiffies() -> int:
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields[:8]) - idle


def run_child(
    cmd: Sequence[str], env: dict[str, str], timeout: float = 3600
) -> dict[str, object]:
    """Run one measuring child; return its last JSON line plus the load around it."""
    hz = os.sysconf("SC_CLK_TCK")
    load_before = os.getloadavg()[0]
    busy0, child0 = _busy_jiffies(), resource.getrusage(resource.RUSAGE_CHILDREN)
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
    busy1, child1 = _busy_jiffies(), resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    child_cpu = child1.ru_utime - child0.ru_utime
    child_cpu += child1.ru_stime - child0.ru_stime
    others = max(0.0, (busy1 - busy0) / hz - child_cpu)
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
    """Why the ratios of these runs cannot be trusted, or None when they can."""
    worst = max(max(r["load_before"], r["load_after"]) for r in runs)
    if worst > max_load:
        return f"load average reached {worst:.2f} > {max_load:g} (cores {CORES})"
    others = max(r["others_cores"] for r in runs)
    if others > max_others * CORES:
        return (
            f"other processes used {others:.2f} of {CORES} cores during a run "
            f"(limit {max_others * CORES:.2f})"
        )
    return None


def uptime() -> str:
    """The ``uptime`` line (load averages) right now."""
    try:
        return subprocess.run(
            ["uptime"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())
