"""Serve a saved model over HTTP: ``hybridml serve model.hml``.

The model is loaded once through :func:`hybridml.load_model` (the same trust
rules as ``hybridml predict``), warmed with a dummy batch, then served by
uvicorn. Rows of concurrent requests are batched into one model call
(:mod:`.batching`); each request is checked on its own first (:mod:`.predictor`),
and the endpoints live in :mod:`.app`. Needs ``pip install "hybridml[serve]"``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import warnings
from typing import Any

from .._validation import check_int

__all__ = ["create_app", "run"]

_EXTRA = 'pip install "hybridml[serve]"'
_ENV_CONFIG = "HYBRIDML_SERVE_CONFIG"  # run() to its --workers processes
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


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
    allow_download: bool = False,
    log_level: str = "info",
) -> None:
    """Serve ``model`` until SIGTERM / Ctrl-C, then answer in-flight requests.

    Parameters
    ----------
    model : str or path-like
        A ``.hml`` file written by ``hybridml baseline --save-best``.
    host : str, default="127.0.0.1"
        Where to listen: this machine only unless told otherwise.
    port : int, default=8000
        The TCP port.
    max_batch : int, default=64
        The most rows one model call gathers from concurrent requests (1: off).
    max_wait_ms : float, default=5.0
        How long the oldest waiting request waits for others; none while
        requests come one at a time (``hybridml.serve.batching.Batcher``).
    workers : int, default=1
        Server processes, each with its own copy of the model.
    max_rows : int, default=1000
        The most rows one request may send (413 beyond).
    max_body_bytes : int, default=1048576
        The largest request body (413 beyond).
    timeout_s : float, default=30.0
        Seconds a request waits for its prediction (504 beyond); also how long
        shutdown waits for requests in flight.
    key : str or None, default=None
        The secret the model was signed with (``None`` reads
        ``$HYBRIDML_MODEL_KEY``): :func:`hybridml.load_model` refuses an
        unsigned file or one whose HMAC does not verify.
    allow_download : bool, default=False
        Let the backbones the model names download (as ``hybridml predict
        --allow-download``); by default only offline copies and local folders.
    log_level : str, default="info"
        uvicorn's log level.
    """
    check_int(workers, "workers")
    check_int(port, "port", minimum=0)
    settings = _settings(max_batch, max_wait_ms, max_rows, max_body_bytes, timeout_s)
    uvicorn = _require()
    from .predictor import load

    if host not in _LOOPBACK:
        warnings.warn(
            f"serve: got --host {host!r}, reachable from other machines, with no "
            "authentication and no TLS. Put it behind a reverse proxy that adds "
            "them (README), or keep --host 127.0.0.1.",
            UserWarning,
            stacklevel=2,
        )

    loaded = load(
        model, key, allow_download
    )  # refusals are one line, before any port is taken
    options = dict(
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=max(1, int(timeout_s) + 1),
    )
    if workers == 1:
        uvicorn.run(create_app(loaded, **settings), **options)
        return
    config = {
        "model": os.fspath(model),
        "key": key,
        "allow_download": allow_download,
        **settings,
    }
    os.environ[_ENV_CONFIG] = json.dumps(config)
    uvicorn.run(
        "hybridml.serve:_app_from_env", factory=True, workers=workers, **options
    )


def create_app(
    model: Any,
    *,
    max_batch: int = 64,
    max_wait_ms: float = 5.0,
    max_rows: int = 1000,
    max_body_bytes: int = 1 << 20,
    timeout_s: float = 30.0,
) -> Any:
    """The FastAPI app serving a loaded model (what :func:`run` serves).

    Parameters
    ----------
    model : HybridModel
        As returned by :func:`hybridml.load_model`.
    max_batch, max_wait_ms, max_rows, max_body_bytes, timeout_s
        As in :func:`run`.

    Returns
    -------
    fastapi.FastAPI
        Warmed by its lifespan (uvicorn, or ``with TestClient(app)``).
    """
    settings = _settings(max_batch, max_wait_ms, max_rows, max_body_bytes, timeout_s)
    _require()
    from .app import Limits
    from .app import create_app as build
    from .predictor import Predictor

    return build(
        Predictor(model, max_rows=settings["max_rows"]),
        max_batch=settings["max_batch"],
        max_wait_ms=settings["max_wait_ms"],
        limits=Limits(settings["max_body_bytes"], settings["timeout_s"]),
    )


def _settings(max_batch, max_wait_ms, max_rows, max_body_bytes, timeout_s) -> dict:
    """The checked per-server settings, as keyword arguments of create_app."""
    for name, value in (("max_batch", max_batch), ("max_rows", max_rows),
                        ("max_body_bytes", max_body_bytes)):  # fmt: skip
        check_int(value, name)
    for name, value in (("max_wait_ms", max_wait_ms), ("timeout_s", timeout_s)):
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not (value >= 0)
        ):
            raise ValueError(
                f"{name}: got {value!r}. Expected a number >= 0. Pass e.g. "
                f"--{name.replace('_', '-')} 5."
            )
    return dict(max_batch=max_batch, max_wait_ms=max_wait_ms, max_rows=max_rows,
                max_body_bytes=max_body_bytes, timeout_s=timeout_s)  # fmt: skip


def _app_from_env() -> Any:
    """Each ``--workers`` process: load the model, build the app (uvicorn factory)."""
    from .predictor import load

    config = json.loads(os.environ[_ENV_CONFIG])
    model = load(config.pop("model"), config.pop("key"), config.pop("allow_download"))
    return create_app(model, **config)


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
