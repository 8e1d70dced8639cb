"""``dtype="auto"`` on this machine: float32 or bfloat16, decided by measurement.

The one home of the rule. bfloat16 can pay on a CPU only where the chip has
bfloat16 units: AMX tiles (``amx_bf16`` in /proc/cpuinfo) or AVX-512 BF16
dot products (``avx512_bf16``). Measured on all-MiniLM-L6-v2 (CPU-seconds,
bfloat16 against float32): a Xeon with AMX ran TensorFlow 1.54x, torch 1.92x,
JAX 0.84x; on a 2-core AMD EPYC with AVX-512 BF16 and no AMX, one batch at a
time on a quiet machine gave TensorFlow 0.84-0.87x and JAX 0.78-0.86x, while
whole transforms on the same busy machine gave TensorFlow 1.47x, torch 1.26x,
JAX 0.89x (2026-12-07, rough). Because
the answer depends on the chip, the backend and the model, it is measured:

- a CPU with neither unit gets float32 at zero cost (nothing is timed), and
  so does a CUDA GPU below compute capability 8.0 (no bfloat16 units);
- JAX on CPU gets float32: XLA's CPU compiler (jaxlib 0.10.2) converts
  bfloat16 matmul operands to float32 and back, so bfloat16 only adds work
  (slower on both chips above);
- a model under :data:`MIN_PARAMS` weights gets float32 (a measurement would
  cost more than bfloat16 could ever save on it);
- otherwise (or on any machine when ``HYBRIDML_CALIBRATE=1`` forces it) both
  dtypes embed a small calibration batch, and bfloat16 is chosen only if it
  took at most :data:`SPEEDUP_MARGIN` of float32's CPU time **and** its
  vectors' mean cosine to float32 is at least :data:`MIN_MEAN_COSINE`.

A measured decision is kept as a small JSON file in hybridml's cache folder,
keyed by CPU model, backend, thread count and the backbone's weight digest,
so the measurement runs once per machine and backbone. The file is read as
hostile input: anything malformed, or a dtype its own numbers do not justify,
is ignored and measured again. ``HYBRIDML_CALIBRATE=0`` turns it all off:
float32 everywhere, nothing timed (the test suite runs so, for the same
vectors on every machine).

The fine-tuner uses the same rule and files with ``purpose="train"``: its
``run`` times training steps instead of forward passes (``training.py``),
and its decisions are keyed apart from the forward ones.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "MIN_MEAN_COSINE",
    "MIN_PARAMS",
    "SPEEDUP_MARGIN",
    "CpuFacts",
    "Decision",
    "calibration_texts",
    "cpu_facts",
    "decide",
    "time_dtypes",
]

MIN_MEAN_COSINE = 0.9999  # bfloat16 vectors vs float32, mean over the batch
SPEEDUP_MARGIN = 0.9  # bfloat16 must take <= 0.9x float32's CPU time
MIN_PARAMS = 1_000_000  # smaller models are not measured (float32)
REPEATS = 3  # timed runs per dtype (the fastest counts)
_VERSION = 3  # bump when the rule, the forward path or the file's layout changes
_MAX_FILE_BYTES = 4096
_UNITS = ("amx_bf16", "amx_int8", "amx_tile", "avx512_bf16", "avx512_vnni", "avx_vnni")
_ENV_FORCE = "HYBRIDML_CALIBRATE"
_PATH_SWITCHES = ("HYBRIDML_TF_XLA", "HYBRIDML_SHAPE_PLAN", "TF_ENABLE_ONEDNN_OPTS")

_timer: Callable[[], float] = time.process_time  # CPU-seconds, all threads
_wall: Callable[[], float] = time.perf_counter  # wall-seconds
_MEMO: dict[str, Decision] = {}  # key -> decision, this process


@dataclass(frozen=True)
class CpuFacts:
    """The CPU's model name and which matrix / vector units it has."""

    model: str
    units: frozenset[str] = field(default_factory=frozenset)

    @property
    def amx(self) -> bool:
        """Whether the chip has bfloat16 matrix units (Intel AMX)."""
        return "amx_bf16" in self.units

    @property
    def bf16(self) -> bool:
        """Whether the chip has bfloat16 units (AMX tiles or AVX-512 BF16)."""
        return bool({"amx_bf16", "avx512_bf16"} & self.units)

    def describe(self) -> str:
        """``"<model> (amx_bf16, avx512_bf16, ...)"``, or ``"(none of ...)"``."""
        present = [u for u in _UNITS if u in self.units]
        return f"{self.model} ({', '.join(present) or 'no AMX, BF16 or VNNI units'})"


@functools.lru_cache(maxsize=1)
def cpu_facts() -> CpuFacts:
    """The CPU of this machine, read once from /proc/cpuinfo (empty units elsewhere)."""
    model, flags = "", set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and not model:
                    model = value.strip()
                elif key == "flags" and not flags:
                    flags = set(value.split())
                if model and flags:
                    break
    except OSError:
        pass
    if not model:
        import platform

        model = platform.processor() or platform.machine() or "unknown CPU"
    return CpuFacts(model, frozenset(flags & set(_UNITS)))


@dataclass(frozen=True)
class Decision:
    """What ``dtype="auto"`` resolved to, why, and what was measured (if anything)."""

    dtype: str
    reason: str
    measured: dict[str, float] | None = None
    key: str | None = None


def decide(
    *,
    backend: str,
    digest: Callable[[], str],
    run: Callable[[str], np.ndarray] | None,
    capability: tuple[int, int] | None = None,
    threads: int | None = None,
    size: Callable[[], int] | None = None,
    purpose: str = "forward",
) -> Decision:
    """Resolve ``dtype="auto"`` for one backbone on this machine.

    Parameters
    ----------
    backend : str
        The Keras backend (part of the key; JAX on CPU is not measured unless
        forced).
    digest : callable
        Returns the backbone's weight digest (part of the key); called only
        when a measurement is possible.
    run : callable or None
        ``run(dtype)`` embeds the calibration batch in ``dtype`` and returns its
        vectors; called only when a measurement is needed. None: the backbone
        cannot be loaded in another dtype (a model instance): float32.
    capability : (int, int) or None
        CUDA compute capability of the backend's GPU; None on CPU. From 8.0,
        bfloat16 is measured like on an AMX CPU; below it, float32.
    threads : int, default=None
        Threads the backend computes with (part of the key); None reads it.
    size : callable, default=None
        Returns the model's number of weights; under :data:`MIN_PARAMS`,
        float32 without measuring. None: unknown (measured).
    purpose : {"forward", "train", "finetune"}, default="forward"
        What ``run`` times: a forward pass, a training step of the contrastive
        tuner ("train") or of a fine-tuning task ("finetune"). Part of the
        key, so the decisions are stored apart.
    """
    forced = os.environ.get(_ENV_FORCE, "").strip() == "1"
    cpu = cpu_facts()
    early = _without_measuring(run, backend, capability, size, cpu, forced)
    if early is not None:
        return early
    where = "CPU" if capability is None else f"CUDA GPU {capability[0]}.{capability[1]}"
    threads = _threads(backend) if threads is None else int(threads)
    key = _key(cpu, capability, backend, threads, digest(), purpose)
    path = _decision_path(key)
    known = _MEMO.get(key) or _read(path, key)
    if known is not None:
        _MEMO[key] = known
        return known
    try:
        measured = time_dtypes(run)
    except Exception as exc:  # e.g. a model that cannot load in bfloat16
        # float32 works wherever the user's call would have: never fail a fit
        # over an optimisation. Not stored: a fixed setup measures again.
        _MEMO[key] = Decision(
            "float32",
            f"float32: measuring bfloat16 failed ({type(exc).__name__}: "
            f"{str(exc)[:200]})",
        )
        return _MEMO[key]
    decision = _rule(measured, key, note=f"{where}, measured now, kept in {path}")
    _write(path, decision)
    _MEMO[key] = decision
    return decision


def _without_measuring(
    run: Any, backend: str, capability: Any, size: Any, cpu: CpuFacts, forced: bool
) -> Decision | None:
    """float32 with nothing timed, and why; None when a measurement is due."""
    if run is None:
        return Decision(
            "float32",
            "float32: a model instance or callable computes in the dtype it was "
            "built with (pass a preset name or folder to allow bfloat16)",
        )
    if os.environ.get(_ENV_FORCE, "").strip() == "0":
        return Decision("float32", "float32: HYBRIDML_CALIBRATE=0 (never measure)")
    if forced:
        return None
    if capability is not None:
        if tuple(capability) < (8, 0):
            return Decision(
                "float32",
                f"float32: CUDA GPU {capability[0]}.{capability[1]} has no "
                "bfloat16 units (from compute capability 8.0)",
            )
    elif not cpu.bf16:
        return Decision(
            "float32",
            f"float32: this CPU ({cpu.describe()}) has no bfloat16 units (AMX or "
            "AVX-512 BF16), so bfloat16 cannot be faster (set "
            "HYBRIDML_CALIBRATE=1 to measure)",
        )
    elif backend == "jax":
        return Decision(
            "float32",
            "float32: on JAX bfloat16 was measured slower than float32 on CPUs "
            "with and without AMX (0.84x, 0.78-0.86x; set HYBRIDML_CALIBRATE=1 "
            "to measure)",
        )
    n_weights = None if size is None else int(size())
    if n_weights is not None and n_weights < MIN_PARAMS:
        return Decision(
            "float32",
            f"float32: {n_weights} weights (< {MIN_PARAMS}) are too few for bfloat16 "
            "to repay its measurement (set HYBRIDML_CALIBRATE=1 to measure)",
        )
    return None


def time_dtypes(
    run: Callable[[str], np.ndarray], repeats: int = REPEATS
) -> dict[str, float]:
    """Time ``run`` in float32 and bfloat16; compare their vectors.

    Each dtype runs once untimed (loading, tracing, compiling), then
    ``repeats`` timed runs alternate between the two dtypes (drift hits both);
    the fastest run of each counts. Returns ``float32_s``, ``bfloat16_s`` (CPU
    seconds), ``float32_wall_s``, ``bfloat16_wall_s`` (wall seconds) and
    ``mean_cos`` (bfloat16 vs float32).
    """
    ref, low = run("float32"), run("bfloat16")
    best = {"float32": math.inf, "bfloat16": math.inf}
    wall = dict(best)
    for _ in range(repeats):
        for dtype in best:
            t0, w0 = _timer(), _wall()
            run(dtype)
            best[dtype] = min(best[dtype], _timer() - t0)
            wall[dtype] = min(wall[dtype], _wall() - w0)
    a = np.asarray(ref, dtype=np.float64)
    b = np.asarray(low, dtype=np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    cos = np.sum(a * b, axis=1) / np.where(norms > 0, norms, 1.0)
    mean_cos = float(np.mean(cos)) if len(cos) else -1.0
    if not math.isfinite(mean_cos):  # NaN or inf in bfloat16: never choose it
        mean_cos = -1.0
    return {
        "float32_s": float(best["float32"]),
        "bfloat16_s": float(best["bfloat16"]),
        "float32_wall_s": float(wall["float32"]),
        "bfloat16_wall_s": float(wall["bfloat16"]),
        "mean_cos": mean_cos,
    }


def calibration_texts(n: int = 32) -> list[str]:
    """``n`` distinct English texts (fixed, no randomness).

    Most are sentences of 6-40 words; one in eight is a paragraph of 120-160
    words, as in real mixes (attention's share of the cost grows with length).
    """
    words = (
        "the quick brown fox jumps over a lazy dog while this film tells a story "
        "about love and loss in a small town where nothing is what it seems and "
        "every actor plays the part with great care so the plot never feels slow"
    ).split()
    texts = []
    for i in range(n):
        start = (3 * i) % 17
        length = 120 + 10 * (i % 5) if i % 8 == 7 else 6 + (i * 7) % 35
        cycle = words * (1 + (start + length) // len(words))
        texts.append(" ".join(cycle[start : start + length]) + f" ({i})")
    return texts


# ------------------------------------------------------------------ helpers
def _rule(measured: dict[str, float], key: str, note: str) -> Decision:
    """The decision the numbers justify, with its reason."""
    f32, bf16, cos = measured["float32_s"], measured["bfloat16_s"], measured["mean_cos"]
    f32_w, bf16_w = measured["float32_wall_s"], measured["bfloat16_wall_s"]
    speed = (
        f"bfloat16 took {bf16:.3g} CPU-s vs float32 {f32:.3g} ({f32 / bf16:.2f}x), "
        f"{bf16_w:.3g} wall-s vs {f32_w:.3g} ({f32_w / bf16_w:.2f}x)"
    )
    if cos < MIN_MEAN_COSINE:
        dtype = "float32"
        why = f"bfloat16's mean cosine to float32 {cos:.6f} < {MIN_MEAN_COSINE}"
    elif bf16 > SPEEDUP_MARGIN * f32 or bf16_w > SPEEDUP_MARGIN * f32_w:
        dtype = "float32"
        why = f"bfloat16 not faster by the {1 / SPEEDUP_MARGIN:.2f}x needed"
    else:
        dtype = "bfloat16"
        why = f"mean cosine {cos:.6f} >= {MIN_MEAN_COSINE}"
    return Decision(dtype, f"{dtype}: {speed}; {why} ({note})", dict(measured), key)


def _threads(backend: str) -> int:
    """Threads the backend computes with: its own setting, else OpenMP's."""
    try:
        if backend == "torch":
            import torch

            return int(torch.get_num_threads())
        if backend == "tensorflow":
            import tensorflow as tf

            n = tf.config.threading.get_intra_op_parallelism_threads()
            if n > 0:  # 0: TensorFlow's default, every CPU
                return int(n)
    except Exception:  # pragma: no cover - a backend without its library
        pass
    omp = os.environ.get("OMP_NUM_THREADS", "")
    if omp.isdigit() and int(omp) > 0:
        return int(omp)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _key(
    cpu: CpuFacts,
    capability: tuple[int, int] | None,
    backend: str,
    threads: int,
    digest: str,
    purpose: str = "forward",
) -> str:
    from .._imports import quiet_import

    keras = quiet_import("keras")

    payload = {
        "version": _VERSION,
        "cpu": cpu.model,
        "gpu": list(capability) if capability is not None else None,
        "units": sorted(cpu.units),
        "backend": backend,
        "keras": keras.__version__,
        "threads": threads,
        "model": digest,
        # switches that change the forward path (XLA, shape plan)
        "env": {k: os.environ.get(k) for k in _PATH_SWITCHES},
    }
    if purpose != "forward":  # forward keys stay as they were (files still read)
        payload["purpose"] = purpose
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _decision_path(key: str) -> Path:
    from .._paths import cache_dir

    return cache_dir() / "precision" / f"{key[:32]}.json"


def _read(path: Path, key: str) -> Decision | None:
    """The stored decision for ``key``, or None when absent or not trustworthy.

    Only the numbers are taken from the file: the dtype must be the one the
    rule gives on them, and the reason is rebuilt, never echoed.
    """
    try:
        with open(path, "rb") as f:
            raw = f.read(_MAX_FILE_BYTES + 1)
        if len(raw) > _MAX_FILE_BYTES:
            return None
        data = json.loads(raw.decode("utf-8"))
    except (OSError, ValueError):  # missing, unreadable, not UTF-8, not JSON
        return None
    if not isinstance(data, dict) or data.get("version") != _VERSION:
        return None
    if data.get("key") != key or data.get("dtype") not in ("float32", "bfloat16"):
        return None
    measured = data.get("measured")
    names = ("float32_s", "bfloat16_s", "float32_wall_s", "bfloat16_wall_s", "mean_cos")
    if not isinstance(measured, dict) or set(measured) != set(names):
        return None
    values = [measured[n] for n in names]
    if not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        for v in values
    ):
        return None
    numbers = {n: float(v) for n, v in zip(names, values, strict=True)}
    cos = numbers.pop("mean_cos")
    if min(numbers.values()) <= 0 or not -1.0 <= cos <= 1.0 + 1e-6:
        return None
    decision = _rule(
        {**numbers, "mean_cos": cos},
        key,
        note=f"measured earlier on this machine, read from {path}",
    )
    return decision if decision.dtype == data["dtype"] else None


def _write(path: Path, decision: Decision) -> None:
    """Store ``decision`` atomically; a read-only cache folder only costs a rerun."""
    from .._atomic import atomic_write_text

    record = {
        "version": _VERSION,
        "key": decision.key,
        "dtype": decision.dtype,
        "measured": decision.measured,
        "reason": decision.reason,
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(record, indent=1, sort_keys=True))
    except (OSError, ValueError):
        pass


def _forget() -> None:
    """Clear this process's memo (tests)."""
    _MEMO.clear()
