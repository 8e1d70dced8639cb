"""Serve a saved model over HTTP: ``hybridml serve model.hml``.

The model is loaded once through :func:`hybridml.load_model` (the same trust
rules as ``hybridml predict``), warmed with a dummy batch, then served by
uvicorn. Rows of concurrent requests are batched into one model call
(:mod:`.batching`); each request is checked on its own first (:mod:`.predictor`),
and the endpoints live in :mod:`.app`. Needs ``pip install "hybridml[serve]"``.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
from typing import Any

__all__ = ["create_app", "run"]

_EXTRA = 'pip install "hybridml[serve]"'


def run(
    model: str | os.PathLike,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    max_batch: int = 64,
    max_wait_ms: float = 5.0,
    workers: int = 1,
    max_rows: int = 1000,
    max_body_bytes: int = 1 << 20,
    timeout_s: float = 30.0,
    key: str | None = None,
    log_level: str = "info",
) -> None:
    """Serve ``model`` until SIGTERM / Ctrl-C, then answer in-flight requests.

    Parameters
    ----------
    model : str or path-like
        A ``.hml`` file written by ``hybridml baseline --save-best``.
    host, port : str, int
        Where to listen; 127.0.0.1 (this machine only) unless told otherwise.
    max_batch : int, default=64
        The most rows one model call gathers from concurrent requests (1: off).
    max_wait_ms : float, default=5.0
        How long the oldest waiting request waits for others.
    workers : int, default=1
        Server processes, each with its own copy of the model.
    max_rows, max_body_bytes, timeout_s
        Per-request limits (413, 413, 504).
    key : str or None
        Passed to :func:`hybridml.load_model` where it accepts a key.
    log_level : str, default="info"
        uvicorn's log level.
    """
    from .._validation import check_int

    for name, value in (("max_batch", max_batch), ("workers", workers),
                        ("max_rows", max_rows), ("max_body_bytes", max_body_bytes),
                        ("port", port)):  # fmt: skip
        check_int(value, name, minimum=0 if name == "port" else 1)
    for name, value in (("max_wait_ms", max_wait_ms), ("timeout_s", timeout_s)):
        if not isinstance(value, (int, float)) or not value >= 0:
            raise ValueError(
                f"{name}: got {value!r}. Expected a number >= 0. Pass e.g. "
                f"--{name.replace('_', '-')} 5."
            )
    uvicorn = _require()
    from .app import ENV_CONFIG, Limits, create_app
    from .predictor import Predictor

    loaded = _load(model, key)  # refusals are one line, before any port is taken
    predictor = Predictor(loaded, max_rows=max_rows)
    options = dict(
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=max(1, int(timeout_s) + 1),
    )
    if workers == 1:
        app = create_app(
            predictor,
            max_batch=max_batch,
            max_wait_ms=max_wait_ms,
            limits=Limits(max_body_bytes, timeout_s),
        )
        uvicorn.run(app, **options)
        return
    os.environ[ENV_CONFIG] = json.dumps(
        dict(model=os.fspath(model), key=key, max_batch=max_batch,
             max_wait_ms=max_wait_ms, max_rows=max_rows,
             max_body_bytes=max_body_bytes, timeout_s=timeout_s)
    )  # fmt: skip
    uvicorn.run(
        "hybridml.serve.app:app_from_env", factory=True, workers=workers, **options
    )


def create_app(model: Any, **options: Any) -> Any:
    """The FastAPI app for a loaded model (see :func:`.app.create_app`)."""
    _require()
    from .app import Limits
    from .app import create_app as build
    from .predictor import Predictor

    predictor = Predictor(model, max_rows=options.pop("max_rows", 1000))
    limits = Limits(
        options.pop("max_body_bytes", Limits.max_body_bytes),
        options.pop("timeout_s", Limits.timeout_s),
    )
    return build(predictor, limits=limits, **options)


def _require() -> Any:
    """uvicorn, after checking that the ``serve`` extra is installed."""
    missing = [
        name
        for name in ("fastapi", "uvicorn")
        if importlib.util.find_spec(name) is None
    ]
    if missing:
        raise ImportError(
            f"serve: got no {' or '.join(missing)} installed. Expected the serve "
            f"extra. Install it: {_EXTRA}"
        )
    import uvicorn

    return uvicorn


def _load(path: str | os.PathLike, key: str | None) -> Any:
    """:func:`load_model`, passing ``key`` only where the loader takes one."""
    from ..baseline.saved import load_model

    if key is None:
        return load_model(path)
    if "key" not in inspect.signature(load_model).parameters:
        raise ValueError(
            "--key: got a key, but this hybridml's load_model checks no "
            "signature. Expected a loader that takes key=. Upgrade hybridml, or "
            "drop --key."
        )
    return load_model(path, key=key)
