"""The serving app: one loaded run, an extraction pool behind a bounded queue, a static page.

- ``POST /api/predict``: multipart upload of one or more clips (form field ``file``, repeated),
  an optional ``transcript`` per clip (repeated, in the same order; empty to recognise speech).
  Returns every clip as a result or as its own error (``predictions`` / ``failures``, by index):
  one bad clip never fails the request. ``?timeline=true`` adds each clip's timeline,
  ``?progress=true`` streams the stages as JSON lines, the last one ``{"result": ...}`` (or
  ``{"error": {"code", "message"}}``).
- ``GET /api/model``: the model in plain words, its modalities, quality, extractor and limits
  (no server path).
- A refused request (400/401/413/415/503) is ``{"detail": one line, "code": snake_case}``.
- ``GET /api/health``; ``GET /openapi.json`` and ``/docs``; ``GET /`` the page.

Safe by default: binds 127.0.0.1 (any other address needs a token); every /api/ route but
health asks for the bearer token when one is set; uploads are limited in size (413), their
content sniffed (415 for what is not audio or video), written under server-chosen names in a
private temporary directory that is deleted after the request; no path from a client is opened.
Extraction runs in ``workers`` processes behind a queue of ``queue`` clips (503 with
Retry-After when full); a client that disconnects cancels its queued clips (a clip already in a
worker finishes there and its result is dropped).
"""

# No `from __future__ import annotations`: FastAPI reads the route functions' annotations, which
# name classes imported inside create_app (FastAPI loads only when an app is made).

import asyncio
import hmac
import ipaddress
import json
import logging
import math
import os
import re
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from msakit.errors import ConfigError
from msakit.extract.workers import exit_reasons

log = logging.getLogger("msakit.serve")
STATIC = Path(__file__).with_name("static")
_CHUNK = 1 << 20


@dataclass
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None
    max_mb: float = 50.0  # per request
    workers: int = 1  # extraction processes
    queue: int = 8  # clips waiting for a worker, beyond those running
    max_clips: int = 16  # per request
    device: str = "cpu"
    kind: str | None = None
    temp_dir: str | None = None  # where the private per-request folders go (default: the system's)

    def validate(self) -> "ServeOptions":
        if self.token is not None and not self.token.strip():
            raise ConfigError("--token: empty; give a secret string, or no --token on 127.0.0.1")
        if self.token is not None and (self.token != self.token.strip() or not self.token.isascii() or not self.token.isprintable()):
            raise ConfigError("--token: use printable ASCII without spaces at either end (an HTTP header carries no other "
                              "token exactly, so a client could never send it)")
        if not _is_loopback(self.host) and not self.token:
            raise ConfigError(f"--host {self.host}: serving beyond this machine needs --token (a bearer token the page and API ask for)")
        for name, value, low in (("--workers", self.workers, 1), ("--queue", self.queue, 0), ("--max-clips", self.max_clips, 1)):
            if not isinstance(value, int) or value < low:
                raise ConfigError(f"{name} {value}: must be an integer >= {low}")
        if not (isinstance(self.max_mb, (int, float)) and math.isfinite(self.max_mb) and self.max_mb > 0):
            raise ConfigError(f"--max-mb {self.max_mb}: must be a positive number of megabytes")
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ConfigError(f"--port {self.port}: must be in 0..65535")
        return self


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ApiError(Exception):
    """A refused request: ``status``, a stable ``code`` and a one-line ``detail``."""

    def __init__(self, status: int, code: str, detail: str, headers: dict | None = None):
        super().__init__(detail)
        self.status, self.code, self.detail, self.headers = status, code, detail, headers


_STATUS_CODES = {400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed", 413: "too_large",
                 415: "unsupported_media", 422: "bad_request", 499: "client_disconnected", 503: "busy"}


# ---- what a client sends ------------------------------------------------------------------------

def sniff_media(head: bytes) -> str | None:
    """The container an upload's first bytes show (as a file suffix), or None when they are
    not a known audio or video format. The client's file name and type are not trusted."""
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return ".mp4"  # MP4, MOV, M4A, 3GP
    if len(head) >= 8 and head[4:8] in (b"moov", b"mdat", b"wide", b"free", b"skip"):
        return ".mov"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return ".mkv"  # Matroska, WebM (the browser's recordings)
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return ".avi"
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return ".wav"
    if head[:4] in (b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3"):
        return ".mpg"
    if len(head) > 188 and head[0] == 0x47 and head[188] == 0x47:
        return ".ts"
    if head.startswith(b"fLaC"):
        return ".flac"
    if head.startswith(b"OggS"):
        return ".ogg"
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return ".mp3"  # also ADTS AAC
    return None


def display_name(filename: str | None, index: int) -> str:
    """What the client called the clip, for display only: its last path part, printable, short."""
    name = re.split(r"[\\/]", filename or "")[-1]
    name = "".join(c for c in name if c.isprintable()).strip().lstrip(".")
    return name[:120] or f"clip{index + 1}"


class _BodyLimit:
    """ASGI middleware: 413 for a request body over ``limit`` bytes, by its Content-Length and,
    for a body without one, by counting as it arrives."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        too_large = {"detail": f"upload over the limit of {self.limit / 1e6:g} MB (--max-mb)", "code": "too_large"}
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await _send_json(send, 413, too_large, close=True)
        seen = 0

        async def counting():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise ApiError(413, "too_large", too_large["detail"])  # answered by the app's exception handler
            return message

        await self.app(scope, counting, send)


def printable(text: str) -> str:
    """``text`` with every control or non-printable character escaped (``\\n``, ``\\x1b``): what a
    client sends can neither forge log lines nor drive the terminal."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in str(text))


class EscapeControl(logging.Filter):
    """A log handler's filter: the formatted message of every record with control characters
    escaped (tracebacks, formatted apart, keep their lines)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        escaped = printable(message)
        if escaped != message:
            record.msg, record.args = escaped, None
        return True


class _AccessLog:
    """ASGI middleware: one log line per request (client, method, path, status, time, clips)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), [500]
        state = scope.setdefault("state", {})

        async def tracking(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        finally:
            client = (scope.get("client") or ("-",))[0]
            clips = state.get("clips")
            log.info("%s %s %s %d %.0f ms%s", printable(client), printable(scope["method"]), printable(scope["path"]), status[0],
                     1000 * (time.perf_counter() - start), f" clips={clips}" if clips else "")


async def _send_json(send, status: int, payload: dict, close: bool = False) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# ---- the extraction pool -----------------------------------------------------------------------

def _warm() -> bool:
    """Worker start: load the extraction libraries once, before the first clip."""
    import warnings

    os.environ.setdefault("GLOG_minloglevel", "2")
    warnings.filterwarnings("ignore")
    import av  # noqa: F401
    import mediapipe  # noqa: F401

    import msakit.extract.pipeline  # noqa: F401
    from msakit.extract.asr import load_model

    load_model()  # the recogniser, once per worker process (every clip this worker extracts reuses it)
    return True


def _start_worker() -> None:
    """Each worker process's initializer: native libraries' own output silenced (it would reach
    the server's terminal), then ``_warm``; a failure here is left to the first clip (and to
    ``ExtractionPool.warm``), which report it, rather than breaking the pool."""
    from msakit.workflows.predict_video import silence_native_output

    silence_native_output()
    try:
        _warm()
    except Exception:  # noqa: BLE001
        pass


class ExtractionPool:
    """``workers`` processes; at most ``workers + queue`` clips admitted at once (the rest get
    503); admitted clips wait here, not in the executor, so a cancelled one never starts."""

    def __init__(self, workers: int, queue: int):
        self.workers, self.capacity = workers, workers + queue
        self.admitted = 0
        self.running = 0
        self._executor = None
        self._lock = threading.Lock()
        self._slots: asyncio.Semaphore | None = None
        self.clip_seconds: list[float] = []  # recent extraction times, for Retry-After

    def executor(self):
        with self._lock:
            if self._executor is None:
                import multiprocessing
                from concurrent.futures import ProcessPoolExecutor

                # Every worker process loads the libraries and the recogniser as it starts (also one
                # that replaces a worker that died), and keeps them for every clip it extracts.
                self._executor = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker)
            return self._executor

    def warm(self) -> None:
        futures = [self.executor().submit(_warm) for _ in range(self.workers)]
        for future in futures:
            future.result()

    def admit(self, n: int) -> bool:
        with self._lock:
            if self.admitted + n > self.capacity:
                return False
            self.admitted += n
            return True

    def release(self, n: int) -> None:
        with self._lock:
            self.admitted -= n

    def retry_after(self) -> int:
        recent = self.clip_seconds[-20:]
        per_clip = sum(recent) / len(recent) if recent else 2.0
        return max(1, math.ceil(per_clip * self.admitted / self.workers))

    def _fresh_executor(self):
        """The executor, replaced first when it is broken: a worker that died while idle (killed,
        out of memory) must not be blamed on the next clip."""
        with self._lock:
            executor = self._executor
            if executor is not None and getattr(executor, "_broken", False):
                log.warning("an idle extraction worker had stopped (%s); starting a fresh one", exit_reasons(executor, wait_s=0))
                self._executor = None
                executor.shutdown(wait=False, cancel_futures=True)
        return self.executor()

    async def run(self, fn, *args, on_start=None):
        """``fn(*args)`` in a worker once one is free; cancelling while it waits means it never runs
        (a clip already in a worker finishes there, and its slot frees when the worker does).
        A worker that dies during the clip takes every clip then in the pool with it: each is
        tried once more alone, in a process of its own (an innocent clip is extracted then); a clip whose worker
        dies again gets an error naming how it ended."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.workers)
        slots, loop = self._slots, asyncio.get_running_loop()
        from concurrent.futures.process import BrokenProcessPool

        reasons = ""
        for attempt in (1, 2):
            await slots.acquire()
            if on_start is not None and attempt == 1:
                on_start()
            start = time.perf_counter()
            try:
                if attempt == 1:
                    executor = self._fresh_executor()
                    try:
                        future = executor.submit(fn, *args)
                    except BrokenProcessPool:  # it broke just now, before this clip started: a fresh pool takes it
                        self._discard(executor)
                        executor = self.executor()
                        future = executor.submit(fn, *args)
                else:  # the retry runs alone, so that another clip's crash cannot take it down a second time
                    import multiprocessing
                    from concurrent.futures import ProcessPoolExecutor

                    executor = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker)
                    future = executor.submit(fn, *args)
            except BaseException:
                slots.release()
                raise

            def finished(_, start=start):
                self.clip_seconds.append(time.perf_counter() - start)
                del self.clip_seconds[:-50]
                loop.call_soon_threadsafe(slots.release)  # the slot frees when the worker does

            future.add_done_callback(finished)
            try:
                return await asyncio.wrap_future(future)
            except BrokenProcessPool:  # a worker died while this clip was in the pool (or, retried alone, in its own)
                reasons = await asyncio.to_thread(exit_reasons, executor)
                self._discard(executor)
                log.warning("an extraction worker stopped (%s) while a clip was in the pool (attempt %d); starting a fresh one",
                            reasons, attempt)
            finally:
                if attempt == 2:
                    executor.shutdown(wait=False)
        return {"error": {"code": "worker_stopped",
                          "message": f"the extraction process stopped twice while extracting this clip ({reasons}); "
                                     "send it again, or a shorter or smaller one"}}

    def _discard(self, executor) -> None:
        with self._lock:
            if self._executor is executor:
                self._executor = None
        executor.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


# ---- the app -----------------------------------------------------------------------------------

@dataclass
class _State:
    scorer: Any
    options: ServeOptions
    pool: ExtractionPool
    model_info: dict = field(default_factory=dict)
    predict_lock: threading.Lock = field(default_factory=threading.Lock)


def _model_info(scorer, options: ServeOptions) -> dict:
    """``GET /api/model``: the run in plain words and numbers, without any server path."""
    from msakit.outputs import read_json
    from msakit.workflows.predict_video import NAMES

    metrics = None
    results = scorer.seed_dir / "results.json"
    if results.is_file():
        recorded = read_json(results, "results file").get("metrics")
        if isinstance(recorded, dict):
            metrics = {k: v for k, v in recorded.items() if isinstance(v, (int, float)) and math.isfinite(v)}
    extractor = {"settings": scorer.settings_dict()}
    if scorer.extractor is not None and not scorer.text_only:
        extractor.update(extractor_version=scorer.extractor.get("extractor_version"), features={
            k: {"dim": v.get("dim"), "rate_hz": v.get("rate_hz")} for k, v in scorer.extractor.get("features", {}).items()})
    else:
        extractor["features"] = {"text": "speech recognition (or the given transcript)"}
    return {"model": scorer.model_name, "model_title": scorer.title, "description": scorer.description(), "kind": scorer.kind,
            "scale": list(scorer.scale), "modalities": scorer.modalities, "modalities_used": [NAMES[m] for m in scorer.modalities],
            "absent_ok": [NAMES[m] for m in scorer.absent_ok], "quality": scorer.quality(), "metrics": metrics,
            "context": {"k": scorer.context.k, "side": scorer.context.side, "modalities": list(scorer.context.modalities)},
            "extractor": extractor, "speech_recognition": scorer.recogniser, "note": scorer.note,
            "limits": {"max_mb": options.max_mb, "max_clips": options.max_clips, "workers": options.workers, "queue": options.queue},
            "token_required": bool(options.token)}


def create_app(run, options: ServeOptions | None = None, **settings):
    """The ASGI app serving ``run`` (a run directory, or a loaded ``VideoScorer``). ``settings``
    are ``ServeOptions`` fields. The model is loaded here, once."""
    options = (options or ServeOptions(**settings)).validate()
    _require_serve_extra()
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
    from fastapi.staticfiles import StaticFiles
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from msakit.workflows.serve import schemas

    from msakit.workflows.predict_video import VideoScorer, extract_one
    from msakit.workflows.serve.api_docs import mount_api_docs

    scorer = run if isinstance(run, VideoScorer) else VideoScorer(run, kind=options.kind, device=options.device)
    state = _State(scorer, options, ExtractionPool(options.workers, options.queue))
    state.model_info = _model_info(scorer, options)

    @asynccontextmanager
    async def lifespan(app):
        await asyncio.to_thread(state.pool.warm)  # the workers load their libraries before the first clip
        try:
            yield
        finally:
            state.pool.close()

    app = FastAPI(title="msakit serve", version=_version(), lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Sentiment scores of audio/video clips from one trained msakit run.")
    mount_api_docs(app)  # /docs and /redoc from local files (FastAPI's own load a CDN's)
    app.state.msakit = state

    def refused(status: int, code: str, detail: str, headers: dict | None = None) -> JSONResponse:
        return JSONResponse({"detail": printable(detail), "code": code}, status_code=status, headers=headers)

    @app.exception_handler(ApiError)
    async def api_error(request, error: ApiError):
        return refused(error.status, error.code, error.detail, error.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, error):
        detail = error.detail if isinstance(error.detail, str) else json.dumps(error.detail)
        return refused(error.status_code, _STATUS_CODES.get(error.status_code, "error"), detail, getattr(error, "headers", None))

    @app.exception_handler(Exception)
    async def internal(request, error):  # a bug: JSON like every other refusal (the traceback goes to the log)
        log.error("internal error on %s: %s: %s", request.url.path, type(error).__name__, error)
        return refused(500, "internal", f"internal error (a bug in msakit, please report it): {type(error).__name__}: {error}")

    @app.exception_handler(RequestValidationError)
    async def invalid(request, error):
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in error.errors()[:3])
        return refused(400, "bad_request", f"invalid request ({problems})")

    def authorise(request: Request) -> None:
        if not options.token:
            return
        given = request.headers.get("authorization", "")
        scheme, _, credential = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(credential.strip().encode(), options.token.encode()):
            raise ApiError(401, "unauthorized", "missing or wrong token: send the header 'Authorization: Bearer <token>'",
                           headers={"WWW-Authenticate": "Bearer"})

    @app.get("/api/health", response_model=schemas.Health, summary="Liveness and queue occupancy (no token needed)")
    def health() -> dict:
        return {"status": "ok", "workers": state.pool.workers, "admitted": state.pool.admitted, "capacity": state.pool.capacity}

    @app.get("/api/model", response_model=schemas.ModelInfo, responses=schemas.error_responses(401),
             summary="The model in plain words: what it reads, its scale, its recorded quality, the limits")
    def model(request: Request):
        authorise(request)
        return JSONResponse(state.model_info)

    upload_schema = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["file"], "properties": {
            "file": {"type": "array", "items": {"type": "string", "format": "binary"}, "description": "one or more audio/video clips"},
            "video_id": {"type": "array", "items": {"type": "string"},
                         "description": "optional, one per clip in order: the video it was cut from (a run trained with context reads "
                                        "the clips of one video, in order, as each other's neighbours)"},
            "transcript": {"type": "array", "items": {"type": "string"},
                           "description": "optional, one per clip in order ('' to recognise speech)"}}}}}}}

    @app.post("/api/predict", openapi_extra=upload_schema, response_model=schemas.PredictResponse,
              responses=schemas.error_responses(400, 401, 413, 415, 499, 500, 503),
              summary="Score clips: every clip a result or its own error (timeline=true adds timelines; progress=true streams stages "
                      "as JSON lines, the last {\"result\": ...})")
    async def predict(request: Request, timeline: bool = False, progress: bool = False):
        authorise(request)
        workdir = Path(tempfile.mkdtemp(prefix="msakit-serve-", dir=options.temp_dir))  # mode 0700
        admitted = 0
        try:
            clips = await _receive_clips(request, workdir, options)
            if not state.pool.admit(len(clips)):
                raise ApiError(503, "busy", "busy: the extraction queue is full; retry later",
                               headers={"Retry-After": str(state.pool.retry_after())})
            admitted = len(clips)
            request.state.clips = len(clips)
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise

        def cleanup() -> None:
            state.pool.release(admitted)
            shutil.rmtree(workdir, ignore_errors=True)

        async def work(stage) -> dict:
            settings = scorer.settings_dict()
            tasks = [asyncio.ensure_future(state.pool.run(extract_one, str(c.path), c.transcript, settings, timeline, scorer.absent_ok,
                                                          on_start=lambda i=i: stage({"stage": "extracting", "clip": i})))
                     for i, c in enumerate(clips)]
            try:
                extracted = []
                for i, task in enumerate(tasks):
                    extracted.append(await task)
                    stage({"stage": "extracted", "clip": i})
            finally:
                for task in tasks:
                    task.cancel()
            stage({"stage": "predicting"})

            def score() -> dict:
                with state.predict_lock:
                    return scorer.score(clips, extracted, workdir)

            return await asyncio.to_thread(score)

        if progress:
            async def lines():
                queue: asyncio.Queue = asyncio.Queue()
                try:
                    yield json.dumps({"stage": "queued", "clips": len(clips)}) + "\n"
                    job = asyncio.ensure_future(work(queue.put_nowait))
                    try:
                        while not job.done() or not queue.empty():
                            getter = asyncio.ensure_future(queue.get())
                            await asyncio.wait({getter, job}, return_when=asyncio.FIRST_COMPLETED)
                            if getter.done():
                                yield json.dumps(getter.result()) + "\n"
                            else:
                                getter.cancel()
                        yield json.dumps({"result": job.result()}) + "\n"
                    except Exception as error:  # noqa: BLE001 - reported to the client in its stream
                        log.exception("predict failed")
                        yield json.dumps({"error": {"code": "internal", "message": printable(
                            f"internal error (a bug in msakit, please report it): {type(error).__name__}: {error}")}}) + "\n"
                    finally:
                        job.cancel()
                finally:
                    cleanup()

            return StreamingResponse(lines(), media_type="application/x-ndjson")

        watcher = asyncio.ensure_future(_disconnected(request))
        job = asyncio.ensure_future(work(lambda _: None))
        try:
            await asyncio.wait({job, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if not job.done():  # the client went away: its clips are dropped
                job.cancel()
                log.info("client disconnected: %d clip(s) cancelled", len(clips))
                return refused(499, "client_disconnected", "client disconnected")
            return JSONResponse(job.result())
        finally:
            watcher.cancel()
            job.cancel()
            cleanup()

    if options.token:  # the docs' "Authorize" button: the schema names the bearer token the /api/ routes ask for
        from fastapi.openapi.utils import get_openapi

        def openapi() -> dict:
            if app.openapi_schema is None:
                schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
                schema.setdefault("components", {})["securitySchemes"] = {
                    "bearer": {"type": "http", "scheme": "bearer", "description": "the server's --token"}}
                for path, operations in schema.get("paths", {}).items():
                    if path.startswith("/api/") and path != "/api/health":
                        for operation in operations.values():
                            operation["security"] = [{"bearer": []}]
                app.openapi_schema = schema
            return app.openapi_schema

        app.openapi = openapi

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    limited = _AccessLog(_BodyLimit(app, int(options.max_mb * 1e6)))
    limited.state = app.state  # tests reach the app's state through the wrapper
    limited.fastapi = app
    return limited


async def _disconnected(request) -> None:
    """Returns when the client disconnects (the body has been read by then)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def _receive_clips(request, workdir: Path, options: ServeOptions) -> list:
    """The request's clips, each copied under a server-chosen name into ``workdir`` after its
    first bytes show audio or video; refused as a whole (400/413/415, ``ApiError``) when the
    request itself is unusable (not multipart, too many clips, an empty or non-media file)."""
    from starlette.datastructures import UploadFile
    from starlette.exceptions import HTTPException

    from msakit.workflows.predict_video import ClipInput

    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise ApiError(400, "bad_request", "send the clips as multipart/form-data in the form field 'file' (e.g. curl -F file=@clip.mp4)")
    # The parser's own limits sit far above ours, so that ours (with their own messages) decide.
    try:
        form = await request.form(max_files=options.max_clips + 1000, max_fields=options.max_clips + 1000)
    except HTTPException as error:  # starlette's multipart errors, in our words
        reason = str(error.detail)
        if "Maximum number of files" in reason or "Too many files" in reason:
            raise ApiError(413, "too_many_clips", f"more than {options.max_clips} clips in one request; send at most "
                                                  f"{options.max_clips} (--max-clips) per request") from None
        if "Too many fields" in reason:
            raise ApiError(400, "bad_multipart", "too many form fields; send the clips in 'file' and at most one 'transcript' and "
                                                 "'video_id' per clip") from None
        causes, cause = [], error
        while cause is not None and len(causes) < 8:  # what the multipart parser itself said
            causes.append(str(cause))
            cause = cause.__cause__ or cause.__context__
        if any("header size" in c.lower() for c in causes):
            raise ApiError(400, "bad_multipart", "a part header of the upload is over the multipart parser's 4 KB limit: most likely a "
                                                 "file name of thousands of characters; rename the file and send it again") from None
        raise ApiError(400, "bad_multipart", "the upload could not be read as multipart/form-data "
                                             f"({printable(reason).rstrip('.')}: {printable(causes[-1])[:120]}); the body is damaged "
                                             "or cut short: send it again (e.g. curl -F file=@clip.mp4)") from None
    try:
        files = form.getlist("file")
        transcripts = [t if isinstance(t, str) else None for t in form.getlist("transcript")]
        video_ids = [v if isinstance(v, str) else None for v in form.getlist("video_id")]
        if not files:
            raise ApiError(400, "no_clip", "no clip: send one or more files in the form field 'file'")
        if len(files) > options.max_clips:
            raise ApiError(413, "too_many_clips", f"{len(files)} clips in one request; send at most {options.max_clips} (--max-clips) per request")
        if any(not isinstance(f, UploadFile) for f in files):
            raise ApiError(400, "bad_request", "the form field 'file' must hold files, not text")
        if None in transcripts or (transcripts and len(transcripts) != len(files)):
            raise ApiError(400, "bad_request", f"give one 'transcript' field per clip ({len(files)}), in order, or none ('' to recognise speech)")
        if None in video_ids or (video_ids and len(video_ids) != len(files)):
            raise ApiError(400, "bad_request", f"give one 'video_id' field per clip ({len(files)}), in order, or none ('' for a clip of no named video)")
        from msakit.errors import ConfigError
        from msakit.workflows.predict_video import check_video_id

        try:
            video_ids = [check_video_id(v, "video_id") for v in video_ids] or [None] * len(files)
        except ConfigError as error:
            raise ApiError(400, "bad_request", str(error)) from None
        clips = []
        for i, upload in enumerate(files):
            name = display_name(upload.filename, i)
            head = await upload.read(512)
            if not head:
                raise ApiError(400, "empty_file", f"{name}: empty file (0 bytes)")
            suffix = sniff_media(head)
            if suffix is None:
                raise ApiError(415, "unsupported_media", f"{name}: not an audio or video file (its content is no known container); "
                                                         "send e.g. mp4, webm, mkv, mov, avi, mpg, wav, flac, mp3, ogg")
            path = workdir / f"clip{i}{suffix}"
            with open(path, "xb") as out:
                out.write(head)
                while chunk := await upload.read(_CHUNK):
                    out.write(chunk)
            text = (transcripts[i] or "").strip() if transcripts else ""
            clips.append(ClipInput(path, name, text or None, video_ids[i]))
        return clips
    finally:
        await form.close()


def _version() -> str:
    from msakit._version import __version__

    return __version__


def _require_serve_extra() -> None:
    from importlib.util import find_spec

    missing = [name for name in ("fastapi", "uvicorn", "multipart") if find_spec(name) is None]
    if missing:
        raise ConfigError(f"msakit serve needs the optional extra: pip install 'msakit[serve]' (missing: {', '.join(missing)})")


def bind(host: str, port: int):
    """A listening socket on ``host:port``, made before the model loads, so that a busy port or
    an address this machine does not have is one line (``ConfigError``, exit 2) at once."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise ConfigError(f"--host {host}: not an address or host name this machine can bind ({error.strerror}); "
                          "use e.g. 127.0.0.1 (this machine only) or 0.0.0.0 (every interface, with --token)") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: a restart right after a stop still binds
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
        sock.listen(128)
    except OSError as error:
        sock.close()
        import errno

        if error.errno == errno.EADDRINUSE:
            raise ConfigError(f"--port {port}: {host}:{port} is already in use (another msakit serve, or mkdocs serve?); "
                              "choose another port with --port, or --port 0 for a free one") from None
        if error.errno == errno.EACCES:
            raise ConfigError(f"--port {port}: not allowed to bind {host}:{port} (ports below 1024 need privileges); "
                              "choose a port above 1024, or --port 0 for a free one") from None
        raise ConfigError(f"--host {host}: cannot bind {host}:{port} ({error.strerror}); give an address of this machine, "
                          "e.g. 127.0.0.1") from None
    sock.set_inheritable(True)
    return sock


def serve(run_dir, *, host: str = "127.0.0.1", port: int = 8000, token: str | None = None, max_mb: float = 50.0,
          workers: int = 1, queue: int = 8, max_clips: int = 16, device: str = "cpu", kind: str | None = None,
          ready=None) -> None:
    """Serve ``run_dir`` until interrupted: the page at ``http://host:port/``, the API under
    ``/api/``. ``ready(url)``, if given, is called in a thread once the workers are warm and the
    port is bound (``--port 0`` picks a free one); the server stops when it returns True.

    The port is bound first: a busy port or a bad address ends at once in one line, before the
    model and the extraction workers load. Every log line has its control characters escaped."""
    import sys

    options = ServeOptions(host=host, port=port, token=token, max_mb=max_mb, workers=workers, queue=queue, max_clips=max_clips,
                           device=device, kind=kind).validate()
    _require_serve_extra()
    import uvicorn

    from msakit.extract.pipeline import require_video_extra

    require_video_extra()
    sock = bind(host, port)
    try:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
        for handler in logging.getLogger().handlers:
            handler.addFilter(EscapeControl())
        print(f"msakit serve: loading {run_dir} and starting {workers} extraction worker(s)...", file=sys.stderr, flush=True)
        app = create_app(run_dir, options)
        if app.state.msakit.scorer.note:
            print(f"note: {app.state.msakit.scorer.note}", file=sys.stderr)
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="on")
        server = uvicorn.Server(config)
        for name in ("uvicorn", "uvicorn.error"):
            for handler in logging.getLogger(name).handlers:
                handler.addFilter(EscapeControl())

        async def main() -> None:
            task = asyncio.ensure_future(server.serve(sockets=[sock]))
            while not server.started and not task.done():
                await asyncio.sleep(0.05)
            if server.started:
                bound = sock.getsockname()[1]
                url = f"http://{host if ':' not in host else f'[{host}]'}:{bound}/"
                print(f"msakit serve: {app.state.msakit.scorer.seed_dir} at {url}" + (" (token required)" if token else ""),
                      file=sys.stderr, flush=True)
                if ready is not None and await asyncio.to_thread(ready, url):
                    server.should_exit = True
            await task

        asyncio.run(main())
    finally:
        sock.close()
