"""The FastAPI application: scoring, history, health, explain images and the dashboard."""

from __future__ import annotations

import hmac
import logging
import math
import re
import sys
import threading
from collections import OrderedDict
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from importlib import resources
from typing import Any, Optional

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from ... import __version__
from ...errors import AuscultError, CapabilityError
from ..store import HistoryStore, ScoreRecord, StoreError, open_store
from .config import MACHINE_ID_RE, ServiceConfig, load_models
from .uploads import BodySizeLimit, MultipartFileReader, UploadProblem, decode_upload, safe_filename

__all__ = ["create_app"]

log = logging.getLogger("auscult.service")

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_STATIC = {"dashboard.js": "application/javascript; charset=utf-8", "dashboard.css": "text/css; charset=utf-8"}
_AUDIO_TYPES = ("audio/", "application/octet-stream")


# ----------------------------------------------------------------------------- API models
class ScoreOut(BaseModel):
    """One scored clip (the answer to a scoring request, and one history row)."""

    id: int = Field(description="history row id")
    machine: str
    time: float = Field(description="when it was scored, Unix seconds UTC")
    time_iso: str = Field(description="the same time, ISO 8601 UTC")
    score: float = Field(description="anomaly score; higher is more anomalous")
    decision: bool = Field(description="true when score > threshold (an alert)")
    threshold: float
    expected_false_alarm_rate: float = Field(description="fraction of normal clips expected above the threshold")
    filename: Optional[str] = Field(None, description="the upload's file name (display only)")
    request_id: Optional[str] = Field(None, description="the client's Idempotency-Key, if sent")
    has_clip: bool = Field(False, description="the audio is kept for the explain view")
    extra: dict = Field(default_factory=dict)
    replayed: bool = Field(False, description="true when this is the stored answer to a repeated Idempotency-Key")


class HistoryOut(BaseModel):
    machine: str
    since: Optional[float]
    until: Optional[float]
    count: int
    records: list[ScoreOut]


class MachineOut(BaseModel):
    id: str
    sample_rate: int
    n_scored: int
    n_alerts: int
    last_time: Optional[float]
    last_score: Optional[float]
    last_threshold: Optional[float]


class MachinesOut(BaseModel):
    machines: list[MachineOut]


class HealthOut(BaseModel):
    status: str
    version: str
    machines: int
    store: str


def _out(rec: ScoreRecord, replayed: bool = False) -> ScoreOut:
    return ScoreOut(**rec.to_dict(), replayed=replayed)


def _parse_time(value: Optional[str], name: str) -> Optional[float]:
    """Unix seconds or ISO 8601 (``2026-05-01T12:00:00Z``; no zone = UTC) -> Unix seconds."""
    if value is None or value == "":
        return None
    try:
        t = float(value)
        if math.isfinite(t):
            return t
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise HTTPException(422, f"bad '{name}': {value[:64]!r}; give Unix seconds or ISO 8601 "
                                 f"like 2026-05-01T12:00:00Z") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


class _LRU:
    def __init__(self, size: int = 32):
        self.size = size
        self._d: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            if key in self._d:
                self._d.move_to_end(key)
                return self._d[key]
        return None

    def put(self, key, value) -> None:
        with self._lock:
            self._d[key] = value
            self._d.move_to_end(key)
            while len(self._d) > self.size:
                self._d.popitem(last=False)


# ----------------------------------------------------------------------------- factory
def create_app(config: ServiceConfig, store: Optional[HistoryStore] = None) -> FastAPI:
    """Build the service for ``config``: load its bundles and open its history store.

    ``store`` (optional) is an already open store to use instead of ``config.db_url``.
    The app closes the store it opened on shutdown. Raises ConfigError / CheckpointError /
    StoreError for a bad configuration, before serving anything.
    """
    models = load_models(config)
    if config.torch_threads is not None and "torch" in sys.modules:  # never import torch just for this
        sys.modules["torch"].set_num_threads(int(config.torch_threads))
    config.state_dir.mkdir(parents=True, exist_ok=True)
    own_store = store is None
    store = store or open_store(config.resolved_db_url, keep_clips=config.keep_clips)
    token = config.token.encode("utf-8") if config.token is not None else None
    resample = config.sample_rate_policy == "resample"
    score_gate = threading.BoundedSemaphore(int(config.max_concurrent_scoring))
    png_cache = _LRU(32)
    assets = {name: resources.files(__package__).joinpath("static", name).read_bytes()
              for name in (*_STATIC, "dashboard.html")}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        if own_store:
            store.close()

    app = FastAPI(
        title="auscult monitoring service",
        version=__version__,
        description="Score machine sound clips against fitted auscult model bundles, keep their history, "
                    "and show it on a dashboard. Authenticate with `Authorization: Bearer <token>`.",
        lifespan=lifespan,
        # FastAPI's /docs and /redoc pages load their JavaScript from a CDN: off, so the service never
        # makes a browser fetch third-party code; the schema itself is served at /openapi.json
        docs_url=None,
        redoc_url=None,
    )
    app.state.config = config
    app.state.store = store
    app.state.models = models
    app.add_middleware(BodySizeLimit, max_bytes=config.max_upload_bytes)

    bearer = HTTPBearer(auto_error=False, description="the service token (--token-file)")

    def require_token(request: Request,
                      creds: Optional[HTTPAuthorizationCredentials] = Depends(bearer)) -> None:
        if token is None:
            return
        given = creds.credentials if creds is not None else request.headers.get("x-auscult-token")
        if not given or not hmac.compare_digest(given.encode("utf-8"), token):
            raise HTTPException(401, "missing or wrong token: send 'Authorization: Bearer <token>'",
                                headers={"WWW-Authenticate": "Bearer"})

    def machine_or_404(machine_id: str) -> Any:
        if not MACHINE_ID_RE.match(machine_id) or machine_id not in models:
            shown = machine_id if len(machine_id) <= 64 else machine_id[:64] + "..."
            raise HTTPException(404, f"unknown machine id {shown!r}; GET /v1/machines lists the served machines")
        return models[machine_id]

    auth = [Depends(require_token)]

    # -- health and listing
    @app.get("/health", response_model=HealthOut, tags=["service"])
    def health() -> Any:
        """Liveness and readiness (no authentication): 200 when the history database answers."""
        ok = store.ping()
        body = HealthOut(status="ok" if ok else "degraded", version=__version__, machines=len(models),
                         store=store.dialect)
        return JSONResponse(body.model_dump(), status_code=200 if ok else 503)

    @app.get("/v1/machines", response_model=MachinesOut, dependencies=auth, tags=["machines"])
    def list_machines() -> MachinesOut:
        """The served machines with their history counts and latest score."""
        summary = store.summary()
        out = []
        for mid, b in sorted(models.items()):
            s = summary.get(mid, {})
            out.append(MachineOut(id=mid, sample_rate=int(b.sample_rate), n_scored=s.get("n_scored", 0),
                                  n_alerts=s.get("n_alerts", 0), last_time=s.get("last_time"),
                                  last_score=s.get("last_score"), last_threshold=s.get("last_threshold")))
        return MachinesOut(machines=out)

    # -- scoring
    @app.post("/v1/machines/{machine_id}/score", response_model=ScoreOut, dependencies=auth, tags=["machines"],
              responses={401: {"description": "missing or wrong token"},
                         404: {"description": "unknown machine id"},
                         409: {"description": "Idempotency-Key already used for another machine"},
                         413: {"description": "upload larger than --max-upload-mb"},
                         415: {"description": "not an audio file / unsupported content type"},
                         422: {"description": "empty, truncated or corrupt audio, wrong sample rate"}},
              openapi_extra={"requestBody": {"required": True, "content": {
                  "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
                      "file": {"type": "string", "format": "binary", "description": "WAV/FLAC/OGG clip"}}}},
                  "audio/wav": {"schema": {"type": "string", "format": "binary"}},
                  "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}})
    async def score(machine_id: str, request: Request) -> Any:
        """Score one audio clip of a machine and store the result in its history.

        Send the clip as the multipart form field ``file`` or as the raw body (``Content-Type:
        audio/wav``, ``audio/flac`` or ``application/octet-stream``). An ``Idempotency-Key``
        header makes retries safe: a repeated key returns the stored answer (``replayed``)
        instead of a second history row.
        """
        bundle = machine_or_404(machine_id)
        request_id = request.headers.get("idempotency-key")
        if request_id is not None and not _REQUEST_ID_RE.match(request_id):
            raise HTTPException(422, "bad Idempotency-Key: use 1-128 characters of A-Z a-z 0-9 . _ : -")
        if request_id is not None:
            prior = await run_in_threadpool(store.get_by_request_id, request_id)
            if prior is not None:
                return _replay(prior, machine_id)
        data, filename = await _read_upload(request)
        try:
            rec, created = await run_in_threadpool(_score_and_store, bundle, machine_id, data, filename, request_id)
        except UploadProblem as p:
            raise HTTPException(p.status, p.detail) from None
        if not created:
            return _replay(rec, machine_id)
        return _out(rec)

    def _replay(rec: ScoreRecord, machine_id: str) -> Any:
        if rec.machine != machine_id:
            raise HTTPException(409, f"Idempotency-Key {rec.request_id!r} was already used for machine "
                                     f"{rec.machine!r}; use a new key per request")
        return _out(rec, replayed=True)

    async def _read_upload(request: Request) -> tuple[bytes, Optional[str]]:
        ctype = (request.headers.get("content-type") or "").lower()
        if ctype.startswith("multipart/form-data"):
            try:
                reader = MultipartFileReader(request.headers["content-type"])
                async for chunk in request.stream():
                    reader.write(chunk)
                data, name = reader.finish()
            except UploadProblem as p:
                raise HTTPException(p.status, p.detail) from None
            return data, safe_filename(name)
        if ctype.startswith(_AUDIO_TYPES) or ctype == "":
            return await request.body(), safe_filename(request.headers.get("x-filename"))
        raise HTTPException(415, f"unsupported Content-Type {ctype[:80]!r}: send multipart/form-data with a "
                                 f"'file' field, or the raw clip as audio/wav, audio/flac or application/octet-stream")

    def _score_and_store(bundle: Any, machine_id: str, data: bytes, filename: Optional[str],
                         request_id: Optional[str]) -> tuple[ScoreRecord, bool]:
        up = decode_upload(data, int(bundle.sample_rate), resample=resample)
        with score_gate:
            try:
                result = bundle.score_waveform(up.wave, up.sample_rate, machine=machine_id)
            except AuscultError as exc:
                raise UploadProblem(422, f"cannot score this clip: {exc}") from None
        extra = dict(getattr(result, "extra", None) or {})
        extra.update(duration_s=round(up.duration_s, 6), upload_channels=up.channels)
        return store.add(machine_id, float(result.score), float(result.threshold), bool(result.decision),
                         float(result.expected_false_alarm_rate), filename=filename, request_id=request_id,
                         extra=extra, clip=up.wave, sample_rate=up.sample_rate)

    # -- history
    @app.get("/v1/machines/{machine_id}/history", response_model=HistoryOut, dependencies=auth, tags=["machines"])
    def history(machine_id: str,
                since: Optional[str] = Query(None, description="Unix seconds or ISO 8601 (inclusive)"),
                until: Optional[str] = Query(None, description="Unix seconds or ISO 8601 (exclusive)"),
                limit: int = Query(1000, ge=1, le=100_000, description="newest N records at most")) -> HistoryOut:
        """Scored clips of a machine, oldest first (the newest ``limit`` when more match)."""
        machine_or_404(machine_id)
        t0, t1 = _parse_time(since, "since"), _parse_time(until, "until")
        recs = store.history(machine_id, since=t0, until=t1, limit=limit)
        return HistoryOut(machine=machine_id, since=t0, until=t1, count=len(recs), records=[_out(r) for r in recs])

    @app.get("/v1/machines/{machine_id}/alerts", response_model=list[ScoreOut], dependencies=auth,
             tags=["machines"])
    def alerts(machine_id: str, limit: int = Query(10, ge=1, le=1000)) -> list[ScoreOut]:
        """The newest alerts (decision true) of a machine, newest first."""
        machine_or_404(machine_id)
        return [_out(r) for r in store.alerts(machine_id, limit=limit)]

    @app.get("/v1/machines/{machine_id}/worst", response_model=Optional[ScoreOut], dependencies=auth,
             tags=["machines"])
    def worst(machine_id: str, window: int = Query(config.worst_window, ge=1, le=100_000)) -> Optional[ScoreOut]:
        """The highest-scoring of the newest ``window`` clips whose audio is kept (null if none)."""
        machine_or_404(machine_id)
        rec = store.worst_recent(machine_id, window=window)
        return _out(rec) if rec else None

    @app.get("/v1/machines/{machine_id}/explain.png", dependencies=auth, tags=["machines"],
             response_class=Response,
             responses={200: {"content": {"image/png": {}}, "description": "per-frame curve + heat map"},
                        501: {"description": "the machine's method does not explain its scores"}})
    def explain_png(machine_id: str, record: Optional[int] = Query(None, ge=1, description="history row id; "
                    "default: the worst recent clip")) -> Response:
        """Where in time and frequency a stored clip is anomalous (PNG, rendered by the server)."""
        bundle = machine_or_404(machine_id)
        rec = store.get(record) if record is not None else store.worst_recent(machine_id, config.worst_window)
        if rec is None or rec.machine != machine_id:
            raise HTTPException(404, f"no such scored clip for machine {machine_id!r}" if record is not None
                                else f"machine {machine_id!r} has no stored clip to explain yet")
        png = png_cache.get(rec.id)
        if png is None:
            clip = store.clip(rec.id)
            if clip is None:
                raise HTTPException(404, f"the audio of record {rec.id} is no longer kept (only the newest "
                                         f"{config.keep_clips} clips per machine are)")
            wave, sr = clip
            from .render import explanation_png

            with score_gate:
                try:
                    expl = bundle.explain_waveform(wave, sr, machine=machine_id)
                except CapabilityError as exc:  # the machine's method does not explain its scores
                    raise HTTPException(501, str(exc)) from None
            png = explanation_png(expl, title=f"{machine_id} · record {rec.id} · score {rec.score:.3g} "
                                              f"(threshold {rec.threshold:.3g})")
            png_cache.put(rec.id, png)
        return Response(png, media_type="image/png",
                        headers={"X-Auscult-Record": str(rec.id), "Cache-Control": "no-store"})

    # -- dashboard (the page is a static shell; its data calls carry the token)
    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/dashboard")

    @app.get("/dashboard", include_in_schema=False)
    def dashboard() -> HTMLResponse:
        return HTMLResponse(assets["dashboard.html"].decode("utf-8"), headers={
            "Cache-Control": "no-store",
            # everything is served locally: no CDN, no inline script, images only from here or blobs
            "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; "
                                       "base-uri 'none'; frame-ancestors 'none'",
            "X-Content-Type-Options": "nosniff"})

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        if name not in _STATIC:  # a fixed set of in-memory assets: no request path reaches the disk
            raise HTTPException(404, "not found")
        return Response(assets[name], media_type=_STATIC[name])

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error while handling this request; the service log has the "
                                       "traceback"}, status_code=500)

    @app.exception_handler(StoreError)
    async def _store_error(request: Request, exc: StoreError) -> JSONResponse:
        log.error("history store error: %s", exc)
        return JSONResponse({"detail": f"history database error: {exc}"}, status_code=503)

    return app
