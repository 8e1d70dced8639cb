"""The HTTP front: a FastAPI app over one :class:`Predictor` and one :class:`Batcher`.

Imported only once the ``serve`` extra is known to be there (``serve._require``).

Every ``POST /predict`` is read (bounded), parsed and its shape, cells and
columns checked on its own; the column checks of ``hybridml predict`` run on
the batch, and a request they refuse is answered 422 alone, never failing the
requests batched with it (:class:`Batcher`'s ``check``). Status codes: 400
malformed JSON, 413 body or row limit, 422 rows the model cannot read (the same one-line
messages as ``hybridml predict``), 500 a failed batch (its id is in the log),
503 not ready, 504 no result within the timeout.
"""

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse

from .batching import Batcher, BatchError
from .metrics import Metrics
from .predictor import Predictor, TooManyRows


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


class Service:
    """What the routes share: the predictor, the batcher, the counters, readiness.

    The lifespan starts the batcher's worker thread and runs a dummy batch
    through it (the backbone included) before the server accepts connections;
    on shutdown, every queued request is answered before the thread ends.
    """

    def __init__(
        self,
        predictor: Predictor,
        *,
        max_batch: int,
        max_wait_ms: float,
        limits: Limits,
    ) -> None:
        self.predictor = predictor
        self.limits = limits
        self.metrics = Metrics()
        self.batcher = Batcher(
            predictor.predict,
            max_batch=max_batch,
            max_wait_ms=max_wait_ms,
            check=predictor.check,
        )
        self.ready = False

    @asynccontextmanager
    async def lifespan(self, app: Any) -> AsyncIterator[None]:
        self.batcher.start()
        warm = self.predictor.rows(self.predictor.example_rows())
        proba = self.predictor.has_proba
        await asyncio.wrap_future(self.batcher.submit(warm, proba=proba))
        self.batcher.on_batch = self.metrics.batch  # counted after the warm-up
        self.ready = True
        try:
            yield
        finally:
            self.ready = False
            await asyncio.to_thread(self.batcher.stop, self.limits.timeout_s)

    async def predict(self, request: Request) -> JSONResponse:
        start, rows, status = time.perf_counter(), 0, 500
        try:
            proba = _flag(request.query_params.get("proba", "false"))
            if not self.ready:
                raise HTTPError(503, _NOT_READY)
            body = _parse(await _read(request, self.limits.max_body_bytes))
            try:
                items = self.predictor.rows(body, proba=proba)
            except TooManyRows as exc:
                raise HTTPError(413, str(exc)) from None
            except (ValueError, TypeError) as exc:
                raise HTTPError(422, str(exc)) from None
            result = await _result(self.batcher, items, proba, self.limits.timeout_s)
            rows, status = len(items), 200
            return JSONResponse(self.predictor.answer(result, proba))
        except HTTPError as exc:
            status = exc.status
            return JSONResponse({"detail": exc.message}, status_code=exc.status)
        finally:
            self.metrics.request(status, time.perf_counter() - start, rows)

    async def schema(self) -> dict:
        return self.predictor.schema()

    async def health(self) -> dict:
        return {"status": "ok"}

    async def readiness(self) -> JSONResponse:
        if not self.ready:
            return JSONResponse({"detail": _NOT_READY}, status_code=503)
        return JSONResponse({"status": "ready"})

    async def prometheus(self) -> PlainTextResponse:
        text = self.metrics.render()
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")

    async def page(self) -> HTMLResponse:
        return HTMLResponse(
            resources.files(__package__).joinpath("page.html").read_text()
        )


def create_app(
    predictor: Predictor,
    *,
    max_batch: int = 64,
    max_wait_ms: float = 5.0,
    limits: Limits = Limits(),
) -> FastAPI:
    """The FastAPI app serving ``predictor``; ``app.state.service`` holds its state."""
    service = Service(
        predictor, max_batch=max_batch, max_wait_ms=max_wait_ms, limits=limits
    )
    app = FastAPI(
        title=f"hybridml: predict {predictor.model.roles['target']!r}",
        description="A model saved by `hybridml baseline --save-best`, served by "
        "`hybridml serve`. No authentication and no TLS: keep it on 127.0.0.1 "
        "or behind a reverse proxy that adds them.",
        lifespan=service.lifespan,
    )
    app.state.service = service
    openapi = _predict_openapi(predictor)
    app.add_api_route(
        "/predict", service.predict, methods=["POST"], openapi_extra=openapi
    )
    app.add_api_route("/schema", service.schema, methods=["GET"])
    app.add_api_route("/health", service.health, methods=["GET"])
    app.add_api_route("/ready", service.readiness, methods=["GET"])
    app.add_api_route("/metrics", service.prometheus, methods=["GET"],
                      response_class=PlainTextResponse)  # fmt: skip
    app.add_api_route("/", service.page, methods=["GET"], include_in_schema=False,
                      response_class=HTMLResponse)  # fmt: skip
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


async def _result(batcher: Batcher, items: list, proba: bool, timeout: float) -> Any:
    try:
        future = batcher.submit(items, proba=proba)
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
