"""The HTTP API of the receiver (FastAPI): ``create_app(service)``.

Endpoints (the OpenAPI page at ``/docs`` documents each, with its models):

* ``POST /v1/receive`` -- one transmission's received symbols (:mod:`ragsc.serve.frame`, body of type
  ``application/vnd.ragsc.frame``) -> the outputs, the retrieved context with provenance, timings;
* ``POST /v1/run`` -- items -> outputs in one call, the server playing transmitter and channel too;
* ``GET /v1/spec`` -- the served pipeline's spec (what a transmitter must match);
* ``GET /v1/kb``, ``GET /v1/kb/{name}/search``, ``GET /v1/kb/{name}/stats``, ``POST /v1/kb/{name}/ingest``,
  ``DELETE /v1/kb/{name}/items`` -- the receiver's knowledge bases, by name only;
* ``GET /healthz`` (the process answers), ``GET /readyz`` (models loaded), ``GET /metrics`` (Prometheus);
* ``GET /`` -- the web page (:mod:`ragsc.serve.page`).

Every error is JSON ``{"error": <kind>, "detail": <what was wrong>}``: 400 bad input, 401 no or wrong
token, 403 writes off, 404 unknown KB, 413 body too large, 415 not a frame, 422 a body that does not fit the
schema, 429 queue full (with ``Retry-After``), 503 a KB the server cannot read, 504 deadline passed, 500
anything unforeseen (no internals in it; the log has them). Nothing is changed by a refused request. A client
that disconnects gets nothing (499 in the log).
"""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from ragsc.errors import ConfigError, InputError, KBError, RagscError
from ragsc.serve import frame
from ragsc.serve.batching import DeadlineExceeded, QueueFull
from ragsc.serve.metrics import Metrics
from ragsc.serve.outputs import hit_json, image_from_base64, output_json
from ragsc.serve.security import BodyLimit, Guard, is_loopback
from ragsc.serve.service import ReceiveRequest, ReceiverService, RunRequest, UnknownKB


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PhotoItem(_Body):
    """A photo (base64: PNG, JPEG, WebP, HEIF, ...) and the questions to answer about it."""

    image: str = Field(description="base64 of the image file (a data: URL works too)")
    questions: list[str] = Field(default_factory=list)


class RunBody(_Body):
    """``POST /v1/run``: items (a sentence, or a photo item), the channel, the SNR, RAG on or off."""

    items: list[str | PhotoItem] = Field(min_length=1)
    snr_db: float | None = Field(None, description="default: the spec's")
    channel: Literal["awgn", "rayleigh", "rician"] | None = None
    rag: bool | None = Field(None, description="default: the spec's decoder.rag")
    seed: int | None = Field(None, ge=0, le=2**63 - 1, description="the channel's seed (default: the spec's)")
    baseline: bool = Field(False, description="also send each item over the digital baseline (separate "
                           "coding + 5G LDPC + QAM, best MCS) at the channel uses it cost; at most 4 items")
    deadline_s: float | None = Field(None, gt=0, le=3600)


class IngestItem(_Body):
    """A sentence, or a photo with its caption."""

    text: str | None = None
    image: str | None = None
    caption: str | None = None


class IngestBody(_Body):
    items: list[IngestItem] = Field(min_length=1)


def create_app(service: ReceiverService) -> FastAPI:
    """The FastAPI app around ``service`` (started and stopped with the app's lifespan)."""
    cfg = service.config
    guard = Guard(cfg.token_file, cfg.protect_reads)
    metrics = Metrics(service)
    service.batcher.on_batch = metrics.on_batch

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await service.start()
        yield
        await service.stop()

    app = FastAPI(title="ragsc receiver", version="1", lifespan=lifespan,
                  description=f"The receiver of pipeline {service.pipe.spec.name!r} as a service.")
    app.add_middleware(BodyLimit, max_bytes=cfg.max_body_bytes)
    if cfg.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(cfg.cors_origins), allow_methods=["*"],
                           allow_headers=["*"])
    read, write = Depends(guard.read), Depends(guard.write)

    # plain ASGI, not @app.middleware: Starlette's BaseHTTPMiddleware hides a client's disconnect from the
    # handlers, and a request whose client left must stop costing decoding time
    app.add_middleware(Counted, metrics=metrics)
    if is_loopback(cfg.host):  # a page elsewhere cannot reach a loopback server through DNS rebinding
        from starlette.middleware.trustedhost import TrustedHostMiddleware

        app.add_middleware(TrustedHostMiddleware, allowed_hosts=["127.0.0.1", "localhost", "::1", "[::1]"])

    for exc_type, status in ((InputError, 400), (ConfigError, 400), (UnknownKB, 404), (KBError, 503),
                             (QueueFull, 429), (DeadlineExceeded, 504), (RagscError, 500)):
        app.add_exception_handler(exc_type, _handler(status))
    app.add_exception_handler(Exception, _internal)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)

    # ------------------------------------------------------------------ health
    @app.get("/healthz", tags=["health"])
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz():
        return JSONResponse({"ready": service.ready}, status_code=200 if service.ready else 503)

    @app.get("/metrics", tags=["health"], response_class=PlainTextResponse, dependencies=[read])
    async def prometheus():
        return Response(metrics.render(), media_type=metrics.content_type)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        from ragsc.serve.page import html

        return HTMLResponse(html(service))

    # ------------------------------------------------------------------ transmissions
    @app.get("/v1/spec", tags=["pipeline"], dependencies=[read])
    async def spec():
        """The served pipeline's spec: a transmitter builds its half from it (``ragsc.client``)."""
        p = service.pipe
        spec = p.spec.model_dump(mode="json")
        spec["knowledge_bases"] = []  # the receiver's business: named by /v1/kb, never located
        return {"spec": spec, "encoder": p.encoder.spec,
                "fingerprint": p.encoder.fingerprint, "frame_version": frame.VERSION}

    @app.post("/v1/run", tags=["pipeline"], dependencies=[read])
    async def run(body: RunBody, request: Request):
        """Items -> outputs: the server encodes, sends through the simulated channel and decodes."""
        if len(body.items) > cfg.max_items:
            raise InputError(f"{len(body.items)} items in one request; this server takes at most "
                             f"{cfg.max_items}")
        # a string is a sentence, never a path: no request names a file on the server
        items = [{"text": it} if isinstance(it, str) else
                 {"image": _photo(it.image, i, cfg), "questions": it.questions}
                 for i, it in enumerate(body.items)]
        big = [i for i, it in enumerate(items)
               if "image" in it and it["image"].width * it["image"].height > cfg.baseline_pixels]
        if body.baseline and big:  # the coded baseline is simulated bit by bit, in the one worker
            raise InputError(f"baseline: true takes photos of at most {cfg.baseline_pixels:,} pixels; item "
                             f"{big[0]} is larger")
        if body.baseline and len(items) > 4:
            raise InputError(f"baseline: true takes at most 4 items (the coded baseline is simulated "
                             f"bit by bit); got {len(items)}")
        req = RunRequest(items, body.snr_db, body.channel, body.seed, body.baseline)
        return await _answer(service, request, req, body.rag, len(items), body.deadline_s)

    @app.post("/v1/receive", tags=["pipeline"], dependencies=[read],
              openapi_extra={"requestBody": {"required": True, "content": {frame.MEDIA_TYPE: {
                  "schema": {"type": "string", "format": "binary"}}}}})
    async def receive(request: Request, rag: bool | None = None,
                      deadline_s: Annotated[float | None, Query(gt=0, le=3600)] = None):
        """One transmission's received symbols (a frame, :mod:`ragsc.serve.frame`) -> outputs."""
        kind = request.headers.get("content-type", "").split(";")[0].strip()
        if kind != frame.MEDIA_TYPE:  # also keeps a cross-site form post from starting a decode
            return JSONResponse({"error": "UnsupportedMediaType", "detail": f"a frame is {frame.MEDIA_TYPE}, "
                                 f"got {kind or 'no Content-Type'}"}, status_code=415)
        body = await request.body()
        header, em = frame.decode(body)
        if len(em) > cfg.max_items:
            raise InputError(f"{len(em)} items in one frame; this server takes at most {cfg.max_items}")
        from ragsc.serve.receiving import check

        check(service.pipe, header, em, cfg.max_pixels)
        return await _answer(service, request, ReceiveRequest(em), rag, len(em), deadline_s)

    # ------------------------------------------------------------------ knowledge bases
    @app.get("/v1/kb", tags=["kb"], dependencies=[read])
    async def kb_list():
        """The served KBs: name, scope, items."""
        return [{"name": name, "scope": kb.scope, "items": len(kb)} for name, kb in service.kbs().items()]

    @app.get("/v1/kb/{name}/stats", tags=["kb"], dependencies=[read])
    async def kb_stats(name: str):
        stats = await service.call(lambda: service.kb(name).stats())
        stats.pop("path", None)  # the server's folders are not the client's business
        return stats

    @app.get("/v1/kb/{name}/search", tags=["kb"], dependencies=[read])
    async def kb_search(name: str, q: Annotated[str, Query(min_length=1, max_length=2000)],
                        k: Annotated[int, Query(ge=1, le=100)] = 5,
                        modality: Literal["text", "image"] | None = None):
        """The KB's items nearest a text query (embedded by the served encoder)."""
        hits = await service.call(service.kb_search, name, q, k, modality)
        return {"hits": [hit_json(h) for h in hits]}

    @app.post("/v1/kb/{name}/ingest", tags=["kb"], dependencies=[write])
    async def kb_ingest(name: str, body: IngestBody):
        """Add sentences and captioned photos in one commit (a crash leaves the KB at its last commit)."""
        service.kb(name)
        limit = service.pipe.spec.limits.batch_items
        if len(body.items) > limit:
            raise InputError(f"{len(body.items)} items in one ingestion; at most {limit} "
                             "(limits.batch_items)")
        items = []
        for i, it in enumerate(body.items):
            if (it.text is None) == (it.image is None):
                raise InputError(f"item {i}: give either text or image (with an optional caption)")
            items.append({"text": it.text} if it.text is not None else
                         {"image": _photo(it.image, i, cfg), "caption": it.caption})
        from ragsc._assets import home_dir

        photo_dir = home_dir() / "photos" / "api"  # the server's data folder, never a path a client names
        return await service.call(service.kb_ingest, name, items, photo_dir)

    @app.delete("/v1/kb/{name}/items", tags=["kb"], dependencies=[write])
    async def kb_delete(name: str, ids: Annotated[list[int], Query(min_length=1, max_length=10_000)]):
        """Delete items by id in one commit."""
        return await service.call(service.kb_delete, name, ids)

    return app


# ---------------------------------------------------------------------- helpers
def _photo(data: str, index: int, cfg):
    """A request's photo: decoded header, pixel count within the server's limit (checked before any pixel is
    decoded)."""
    im = image_from_base64(data, index, cfg.max_body_bytes)
    if im.width * im.height > cfg.max_pixels:
        raise InputError(f"item {index}: a {im.width} x {im.height} photo, more than this server's "
                         f"{cfg.max_pixels:,} pixels")
    try:
        im.load()  # decode now: a truncated file is this request's 400, not its batch's failure
    except Exception:
        raise InputError(f"item {index}: the image file is damaged or truncated") from None
    from PIL import ImageOps

    return ImageOps.exif_transpose(im)  # as a photo read from a file: upright, as its camera meant it


async def _answer(service: ReceiverService, request: Request, req, rag, size: int, deadline_s):
    """Queue ``req``, wait for its batch while watching the client and the deadline, answer JSON."""
    job, fut = await service.submit(req, rag=rag, size=size, deadline_s=deadline_s)
    while True:
        done, _ = await asyncio.wait({fut}, timeout=0.1)
        if done:
            break
        if await request.is_disconnected():
            service.batcher.cancel(job)  # out of the queue; a started batch finishes, its result discarded
            return Response(status_code=499)
        if job.started is None and time.monotonic() > job.deadline and not fut.done():
            fut.set_exception(DeadlineExceeded(f"the request waited {time.monotonic() - job.enqueued:.1f} s "
                                               "in the queue, past its deadline"))
    result = fut.result()
    answer = {"outputs": [output_json(o) for o in result.outputs], "channel_uses": result.channel_uses,
              "timings": {**result.timings, "queue": (job.started or job.enqueued) - job.enqueued,
                          "batch_items": job.batch_items}}
    if result.baseline is not None:
        answer["baseline"] = result.baseline
    return answer


def _handler(status: int):
    async def handle(request: Request, exc: Exception):
        headers = {}
        if isinstance(exc, QueueFull):
            headers["Retry-After"] = str(exc.retry_after_s)
        return JSONResponse({"error": type(exc).__name__, "detail": str(exc)}, status_code=status,
                            headers=headers)

    return handle


async def _internal(request: Request, exc: Exception):
    """Anything unforeseen: a JSON 500 that says nothing of the server's internals (the log has them)."""
    import logging

    logging.getLogger("ragsc.serve").exception("unexpected error on %s", request.url.path)
    return JSONResponse({"error": "InternalError", "detail": "the receiver failed on this request; its log "
                         "says why"}, status_code=500)


class Counted:
    """ASGI middleware: each response's status and latency into the metrics."""

    def __init__(self, app, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0, status = time.perf_counter(), {"code": 500}

        async def sending(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self.metrics.request(scope.get("path", ""), scope.get("method", ""), status["code"],
                                 time.perf_counter() - t0)


_KINDS = {401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed"}


async def _http(request: Request, exc: StarletteHTTPException):
    return JSONResponse({"error": _KINDS.get(exc.status_code, "HTTPError"), "detail": exc.detail},
                        status_code=exc.status_code, headers=getattr(exc, "headers", None))


async def _validation(request: Request, exc: RequestValidationError):
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    where = ".".join(str(x) for x in first.get("loc", ()))
    return JSONResponse({"error": "ValidationError", "detail": f"{where}: {first.get('msg')}",
                         "problems": len(errors)}, status_code=422)
