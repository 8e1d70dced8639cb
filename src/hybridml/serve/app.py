"""The HTTP front: a FastAPI app over one :class:`Predictor` and one :class:`Batcher`.

Every ``POST /predict`` is read (bounded), parsed and checked on its own; only
checked rows reach the batcher, so a bad request is answered 422 alone and
never fails the requests batched with it. Status codes: 400 malformed JSON,
413 body or row limit, 422 rows the model cannot read (the same one-line
messages as ``hybridml predict``), 500 a failed batch (its id is in the log),
503 not ready, 504 no result within the timeout.
"""

import asyncio
import json
import os
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Any

from .batching import Batcher, BatchError
from .metrics import Metrics
from .predictor import Predictor, TooManyRows

ENV_CONFIG = "HYBRIDML_SERVE_CONFIG"


@dataclass(frozen=True)
class Limits:
    """The per-request bounds of one server."""

    max_body_bytes: int = 1 << 20
    timeout_s: float = 30.0


class HTTPError(Exception):
    """An answer other than 200: a status code and a one-line message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = " ".join(message.split())


def create_app(
    predictor: Predictor,
    *,
    max_batch: int = 64,
    max_wait_ms: float = 5.0,
    limits: Limits = Limits(),
) -> Any:
    """The FastAPI app serving ``predictor``; warm before it accepts a request.

    The lifespan starts the batcher's worker thread and runs a dummy batch
    through it (the backbone included) before the server accepts connections;
    on shutdown, every queued request is answered before the thread ends.
    """
    from fastapi import FastAPI, Request
    from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse

    metrics = Metrics()
    batcher = Batcher(predictor.predict, max_batch=max_batch, max_wait_ms=max_wait_ms)
    state = {"ready": False}

    @asynccontextmanager
    async def lifespan(app):
        batcher.start()
        warm = predictor.frame(predictor.example_rows())
        await asyncio.wrap_future(batcher.submit(warm, proba=predictor.has_proba))
        batcher.on_batch = metrics.batch  # counts batches after the warm-up
        state["ready"] = True
        try:
            yield
        finally:
            state["ready"] = False
            await asyncio.to_thread(batcher.stop, limits.timeout_s)

    target = predictor.model.roles["target"]
    app = FastAPI(
        title=f"hybridml: predict {target!r}",
        description="A model saved by `hybridml baseline --save-best`, served by "
        "`hybridml serve`. No authentication and no TLS: keep it on 127.0.0.1 "
        "or behind a reverse proxy that adds them.",
        lifespan=lifespan,
    )
    app.state.batcher, app.state.metrics, app.state.predictor = (
        batcher,
        metrics,
        predictor,
    )

    @app.post("/predict", openapi_extra=_predict_openapi(predictor))
    async def predict(request: Request) -> Any:
        start, rows, status = time.perf_counter(), 0, 500
        try:
            proba = _flag(request.query_params.get("proba", "false"))
            if not state["ready"]:
                raise HTTPError(503, _NOT_READY)
            body = _parse(await _read(request, limits.max_body_bytes))
            try:
                frame = predictor.frame(body, proba=proba)
            except TooManyRows as exc:
                raise HTTPError(413, str(exc)) from None
            except (ValueError, TypeError) as exc:
                raise HTTPError(422, str(exc)) from None
            result = await _result(batcher, frame, proba, limits.timeout_s)
            rows, status = len(frame), 200
            return JSONResponse(predictor.answer(result, proba))
        except HTTPError as exc:
            status = exc.status
            return JSONResponse({"detail": exc.message}, status_code=exc.status)
        finally:
            metrics.request(status, time.perf_counter() - start, rows)

    @app.get("/schema")
    async def schema() -> Any:
        return predictor.schema()

    @app.get("/health")
    async def health() -> Any:
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> Any:
        if not state["ready"]:
            return JSONResponse({"detail": _NOT_READY}, status_code=503)
        return {"status": "ready"}

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics_page() -> Any:
        return PlainTextResponse(
            metrics.render(), media_type="text/plain; version=0.0.4"
        )

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> Any:
        return HTMLResponse(
            resources.files(__package__).joinpath("page.html").read_text()
        )

    return app


_NOT_READY = (
    "server: got a request while not ready (warming up or shutting down). "
    "Expected a running server. Retry in a moment."
)


async def _read(request: Any, limit: int) -> bytes:
    """The body, refused with 413 as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    too_big = HTTPError(
        413,
        f"body: got more than {limit} bytes. Expected at most {limit} "
        "(--max-body-bytes). Send fewer rows per request.",
    )
    if declared.isdigit() and int(declared) > limit:
        raise too_big
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise HTTPError(
            400,
            f"body: got malformed JSON ({exc}). Expected a JSON object or list "
            "of rows. Check the quoting and brackets.",
        ) from None
    except RecursionError:
        raise HTTPError(
            400,
            "body: got JSON nested too deeply to read. Expected a JSON object or "
            "a list of rows, one value per cell. Send flat rows.",
        ) from None


def _flag(value: str) -> bool:
    low = value.strip().lower()
    if low in ("true", "1", "yes"):
        return True
    if low in ("false", "0", "no", ""):
        return False
    raise HTTPError(
        422, f"proba: got {value!r}. Expected true or false. Use ?proba=true."
    )


async def _result(batcher: Batcher, frame: Any, proba: bool, timeout: float) -> Any:
    try:
        future = batcher.submit(frame, proba=proba)
    except RuntimeError:  # stopping
        raise HTTPError(503, _NOT_READY) from None
    try:
        return await asyncio.wait_for(asyncio.wrap_future(future), timeout)
    except asyncio.TimeoutError:
        raise HTTPError(
            504,
            f"predict: got no result within {timeout:g} s. Expected one within "
            "--timeout-s. Send fewer rows, or raise --timeout-s.",
        ) from None
    except BatchError as exc:
        raise HTTPError(500, str(exc)) from None
    except ValueError as exc:
        raise HTTPError(422, str(exc)) from None


def _predict_openapi(predictor: Predictor) -> dict:
    example = predictor.example_rows()[:1]
    return {
        "parameters": [
            {
                "name": "proba",
                "in": "query",
                "required": False,
                "schema": {"type": "boolean", "default": False},
                "description": "add class probabilities (classifiers)",
            }
        ],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            {"type": "object"},
                            {"type": "array", "items": {"type": "object"}},
                            {"type": "array", "items": {"type": "array"}},
                        ]
                    },
                    "example": example,
                }
            },
        },
    }


def app_from_env() -> Any:
    """Build the app from ``$HYBRIDML_SERVE_CONFIG`` (each ``--workers`` process)."""
    from . import _load

    config = json.loads(os.environ[ENV_CONFIG])
    predictor = Predictor(_load(config["model"], config.get("key")),
                          max_rows=config["max_rows"])  # fmt: skip
    return create_app(
        predictor,
        max_batch=config["max_batch"],
        max_wait_ms=config["max_wait_ms"],
        limits=Limits(config["max_body_bytes"], config["timeout_s"]),
    )
