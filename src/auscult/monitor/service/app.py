"""The FastAPI application: scoring, history, health, explain images and the dashboard."""

from __future__ import annotations

import hashlib
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
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from ... import __version__
from ...errors import AuscultError, CapabilityError
from ..alerting import track_alerts
from ..store import HistoryStore, ScoreRecord, StoreError, open_store
from .config import MACHINE_ID_RE, ServiceConfig, load_models
from ...fileio import mkdir_private
from .uploads import (ACCEPTED_CONTENT_TYPES, BodySizeLimit, MultipartFileReader, UploadProblem, decode_upload,
                      safe_filename)

__all__ = ["create_app"]

log = logging.getLogger("auscult.service")

_REQUEST_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
_REQUEST_ID_RE = re.compile(_REQUEST_ID_PATTERN)
_STATIC = {"dashboard.js": "application/javascript; charset=utf-8", "dashboard.css": "text/css; charset=utf-8"}


# ----------------------------------------------------------------------------- API models
class ErrorOut(BaseModel):
    """Every error answer (4xx and 5xx) has this shape."""

    detail: str = Field(description="what went wrong and what to do about it")


def _errors(*codes: int, **descriptions: str) -> dict:
    """OpenAPI ``responses`` for error codes, all with the ErrorOut body."""
    text = {401: "missing or wrong token", 404: "unknown machine id or record", 409: "Idempotency-Key conflict",
            413: "upload too large (bytes or decoded duration)", 415: "unsupported Content-Type or not audio",
            422: "invalid request: bad parameter or unusable audio",
            501: "the machine's method does not explain its scores", 503: "the history database does not answer"}
    text.update({int(k[1:]): v for k, v in descriptions.items()})
    return {c: {"model": ErrorOut, "description": text[c]} for c in codes}


def http_error(exc: Exception) -> HTTPException:
    """The one place a refused input becomes an HTTP answer (status + ``{"detail": ...}``).

    Upload problems carry their own status; a typed auscult error from the model (e.g. a clip the
    model cannot score) is 422. A scoring request never gets here with an input fault (silent,
    clipped, too short, ...: :mod:`auscult.data.quality`): it is a 200 answer with
    ``status: "input_fault"``, stored in the history. Asking to *explain* such a clip is a 422."""
    from ...data.quality import InputFaultError

    if isinstance(exc, UploadProblem):
        return HTTPException(exc.status, exc.detail)
    if isinstance(exc, InputFaultError):
        return HTTPException(422, f"not machine sound, nothing to explain: {exc}")
    if isinstance(exc, AuscultError):
        return HTTPException(422, f"cannot score this clip: {exc}")
    raise TypeError(f"not an input problem: {exc!r}")


def _validation_detail(exc: RequestValidationError) -> str:
    """FastAPI's list of validation errors as one sentence (the documented ``detail`` string)."""
    parts = []
    for e in exc.errors()[:5]:
        loc = [str(x) for x in e.get("loc", ()) if x not in ("query", "path", "header", "body")]
        where = e.get("loc", ("?",))[0]
        parts.append(f"bad {where} parameter '{'.'.join(loc) or '?'}': {e.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


class ScoreOut(BaseModel):
    """One scored clip (the answer to a scoring request, and one history row)."""

    id: int = Field(description="history row id")
    machine: str
    time: float = Field(description="when it was scored, Unix seconds UTC")
    time_iso: str = Field(description="the same time, ISO 8601 UTC")
    score: Optional[float] = Field(description="anomaly score; higher is more anomalous (null for an input fault)")
    decision: Optional[bool] = Field(description="true when score > threshold (null for an input fault)")
    threshold: float
    expected_false_alarm_rate: float = Field(description="fraction of normal clips expected above the threshold")
    filename: Optional[str] = Field(None, description="the upload's file name (display only)")
    request_id: Optional[str] = Field(None, description="the client's Idempotency-Key, if sent")
    has_clip: bool = Field(False, description="the audio is kept for the explain view")
    extra: dict = Field(default_factory=dict)
    replayed: bool = Field(False, description="true when this is the stored answer to a repeated Idempotency-Key")
    status: str = Field("scored", description="'scored', or 'input_fault': the clip was not machine sound (silent, "
                                              "clipped, too short, ...): no score, no decision")
    fault: Optional[str] = Field(None, description="the input fault: silent, clipped, dc_offset, too_short or "
                                                   "rate_mismatch (null when scored)")
    reason: Optional[str] = Field(None, description="why the clip is an input fault, with the measured value and "
                                                    "the limit")
    alert: Optional[bool] = Field(None, description="whether the machine's k-of-n alert was on after this clip "
                                                    "(history and alert lists; null in a scoring answer)")


class AlertRule(BaseModel):
    """The k-of-n rule alerts are counted with (the same as ``auscult watch --k/--n``)."""

    k: int = Field(description="an alert is on while at least k ...")
    n: int = Field(description="... of the machine's last n scored clips are anomalous")


class HistoryOut(BaseModel):
    machine: str
    since: Optional[float]
    until: Optional[float]
    count: int
    records: list[ScoreOut]
    alert_rule: AlertRule
    alert_episodes: int = Field(description="alerts (off -> on changes of the k-of-n rule) that began among these "
                                            "records")


class MachineOut(BaseModel):
    id: str
    sample_rate: int
    n_scored: int = Field(description="clips scored (input faults are not)")
    n_anomalous: int = Field(description="scored clips above the threshold")
    n_input_faults: int = Field(description="clips refused as input faults (not machine sound)")
    n_alerts: int = Field(description="alert episodes over the whole history, by the k-of-n rule")
    alert: bool = Field(description="whether the k-of-n alert is on now")
    last_time: Optional[float]
    last_score: Optional[float]
    last_threshold: Optional[float]


class MachinesOut(BaseModel):
    machines: list[MachineOut]
    alert_rule: AlertRule


class HealthOut(BaseModel):
    status: str
    version: str
    machines: int
    store: str


def _out(rec: ScoreRecord, replayed: bool = False, alert: Optional[bool] = None) -> ScoreOut:
    d = rec.to_dict()
    if rec.status == "input_fault":  # not a measurement: no score, no decision (the alert state is unchanged by it)
        d.update(score=None, decision=None, fault=rec.extra.get("fault"), reason=rec.extra.get("reason"))
    return ScoreOut(**d, replayed=replayed, alert=alert)


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
    mkdir_private(config.state_dir)  # the history (scores and audio of the plant) is owner-only
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
    token_header = APIKeyHeader(name="X-Auscult-Token", auto_error=False,
                                description="the service token, for clients that cannot send a Bearer header")

    def require_token(creds: Optional[HTTPAuthorizationCredentials] = Depends(bearer),
                      header_token: Optional[str] = Depends(token_header)) -> None:
        if token is None:
            return
        given = creds.credentials if creds is not None else header_token
        if not given or not hmac.compare_digest(given.encode("utf-8"), token):
            raise HTTPException(401, "missing or wrong token: send 'Authorization: Bearer <token>'",
                                headers={"WWW-Authenticate": "Bearer"})

    def machine_or_404(machine_id: str) -> Any:
        if not MACHINE_ID_RE.match(machine_id) or machine_id not in models:
            shown = machine_id if len(machine_id) <= 64 else machine_id[:64] + "..."
            raise HTTPException(404, f"unknown machine id {shown!r}; GET /v1/machines lists the served machines")
        return models[machine_id]

    auth = [Depends(require_token)]
    rule = AlertRule(k=int(config.alert_k), n=int(config.alert_n))

    def alert_track(machine_id: str) -> tuple[dict[int, bool], set[int], Any]:
        """The k-of-n rule over a machine's whole history: state after each record (by id), the ids
        where an alert began, and the track. One scan of (id, decision) per call."""
        rows = store.decisions(machine_id)
        track = track_alerts([d for _, d in rows], rule.k, rule.n)
        states = {rid: st for (rid, _), st in zip(rows, track.states)}
        began = {rid for i, ((rid, _), st) in enumerate(zip(rows, track.states))
                 if st and not (track.states[i - 1] if i else False)}
        return states, began, track

    # -- health and listing
    @app.get("/health", response_model=HealthOut, tags=["service"],
             responses={503: {"model": HealthOut, "description": "the history database does not answer"}})
    def health() -> Any:
        """Liveness and readiness (no authentication): 200 when the history database answers."""
        ok = store.ping()
        body = HealthOut(status="ok" if ok else "degraded", version=__version__, machines=len(models),
                         store=store.dialect)
        return JSONResponse(body.model_dump(), status_code=200 if ok else 503)

    @app.get("/v1/machines", response_model=MachinesOut, dependencies=auth, tags=["machines"],
             responses=_errors(401, 503))
    def list_machines() -> MachinesOut:
        """The served machines with their history counts and latest score."""
        summary = store.summary()
        out = []
        for mid, b in sorted(models.items()):
            s = summary.get(mid, {})
            track = alert_track(mid)[2] if s else None
            out.append(MachineOut(id=mid, sample_rate=int(b.sample_rate), n_scored=s.get("n_scored", 0),
                                  n_anomalous=s.get("n_anomalous", 0), n_input_faults=s.get("n_input_faults", 0),
                                  n_alerts=track.episodes if track else 0, alert=bool(track and track.state),
                                  last_time=s.get("last_time"), last_score=s.get("last_score"),
                                  last_threshold=s.get("last_threshold")))
        return MachinesOut(machines=out, alert_rule=rule)

    # -- scoring
    binary = {"schema": {"type": "string", "format": "binary"}}
    score_errors = _errors(401, 404, 409, 413, 415, 422, 503,
                           _409="Idempotency-Key already used for another machine or for a different recording",
                           _413=f"body larger than --max-upload-mb, or audio longer than --max-clip-seconds "
                                f"(limits of this server: {config.max_upload_mb:g} MiB, {config.max_clip_s:g} s)",
                           _422="empty, truncated or corrupt audio, NaN/Inf samples, wrong sample rate, a clip the "
                                "model cannot score, two 'file' fields, or a bad Idempotency-Key")

    @app.post("/v1/machines/{machine_id}/score", response_model=ScoreOut, dependencies=auth, tags=["machines"],
              responses=score_errors,
              openapi_extra={
                  "parameters": [
                      {"name": "Idempotency-Key", "in": "header", "required": False,
                       "description": "makes retries safe: a repeated key with the same audio returns the stored "
                                      "answer; with other audio or another machine it is 409",
                       "schema": {"type": "string", "pattern": _REQUEST_ID_PATTERN}},
                      {"name": "X-Filename", "in": "header", "required": False,
                       "description": "file name of a raw-body upload (stored for display only)",
                       "schema": {"type": "string", "maxLength": 1024}}],
                  "requestBody": {"required": True, "content": {
                      "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
                          "file": {"type": "string", "format": "binary",
                                   "description": "one WAV/FLAC/OGG clip (exactly one 'file' field)"}}}},
                      **{t: binary for t in ACCEPTED_CONTENT_TYPES}}}})
    async def score(machine_id: str, request: Request) -> Any:
        """Score one audio clip of a machine and store the result in its history.

        Send the clip as the multipart form field ``file`` (exactly one) or as the raw body with
        one of the Content-Types listed below. Clips longer than the server's
        ``--max-clip-seconds`` are refused (413) from their header, before decoding. An
        ``Idempotency-Key`` header makes retries safe: a repeated key with the same audio
        returns the stored answer (``replayed``) instead of a second history row; the key with
        different audio, or for another machine, is 409.
        """
        bundle = machine_or_404(machine_id)
        request_id = request.headers.get("idempotency-key")
        if request_id is not None and not _REQUEST_ID_RE.match(request_id):
            raise HTTPException(422, "bad Idempotency-Key: use 1-128 characters of A-Z a-z 0-9 . _ : -")
        data, filename = await _read_upload(request)
        digest = hashlib.sha256(data).hexdigest()  # what a retry must repeat, byte for byte
        if request_id is not None:
            prior = await run_in_threadpool(store.get_by_request_id, request_id)
            if prior is not None:
                return _replay(prior, machine_id, digest)
        try:
            rec, created = await run_in_threadpool(_score_and_store, bundle, machine_id, data, filename, request_id,
                                                   digest)
        except StoreError:
            raise  # the database, not the input: 503 from its handler
        except (UploadProblem, AuscultError) as exc:
            raise http_error(exc) from None
        if not created:  # another request stored this key between our look-up and our write
            return _replay(rec, machine_id, digest)
        return _out(rec)

    def _replay(rec: ScoreRecord, machine_id: str, digest: str) -> Any:
        if rec.machine != machine_id:
            raise HTTPException(409, f"Idempotency-Key {rec.request_id!r} was already used for machine "
                                     f"{rec.machine!r}; use a new key per request")
        stored = rec.extra.get("upload_sha256")
        if stored is not None and stored != digest:
            raise HTTPException(409, f"Idempotency-Key {rec.request_id!r} was already used for a different "
                                     f"recording (record {rec.id}, {rec.to_dict()['time_iso']}); a retry must send "
                                     f"the same bytes; use a new key per recording")
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
                raise http_error(p) from None
            return data, safe_filename(name)
        if ctype.split(";", 1)[0].strip() in ACCEPTED_CONTENT_TYPES or ctype == "":
            return await request.body(), safe_filename(request.headers.get("x-filename"))
        raise HTTPException(415, f"unsupported Content-Type {ctype[:80]!r}: send multipart/form-data with a "
                                 f"'file' field, or the raw clip as one of {', '.join(ACCEPTED_CONTENT_TYPES)}")

    def _score_and_store(bundle: Any, machine_id: str, data: bytes, filename: Optional[str],
                         request_id: Optional[str], digest: str) -> tuple[ScoreRecord, bool]:
        from ...data.quality import InputFaultError

        # a multi-channel upload is read as the machine's model reads one (near/far mic, channel, mean)
        channel = bundle.channel(machine_id) if hasattr(bundle, "channel") else "mean"
        up = decode_upload(data, int(bundle.sample_rate), resample=resample, max_seconds=config.max_clip_s,
                           channel=channel)
        try:
            with score_gate:
                result = bundle.score_waveform(up.wave, up.sample_rate, machine=machine_id)
        except InputFaultError as exc:  # not machine sound: kept in the history as a fault, not as a score
            _, mm = bundle.model(machine_id)
            extra = {**exc.fault.to_dict(), "duration_s": round(up.duration_s, 6), "upload_channels": up.channels,
                     "upload_sample_rate": up.sample_rate, "upload_sha256": digest}
            return store.add(machine_id, 0.0, float(mm.threshold_value), False, float(mm.expected_false_alarm_rate),
                             filename=filename, request_id=request_id, extra=extra, clip=up.wave,
                             sample_rate=up.sample_rate)
        extra = dict(getattr(result, "extra", None) or {})
        extra.update(duration_s=round(up.duration_s, 6), upload_channels=up.channels, upload_sha256=digest)
        return store.add(machine_id, float(result.score), float(result.threshold), bool(result.decision),
                         float(result.expected_false_alarm_rate), filename=filename, request_id=request_id,
                         extra=extra, clip=up.wave, sample_rate=up.sample_rate)

    # -- history
    @app.get("/v1/machines/{machine_id}/history", response_model=HistoryOut, dependencies=auth, tags=["machines"],
             responses=_errors(401, 404, 422, 503))
    def history(machine_id: str,
                since: Optional[str] = Query(None, description="Unix seconds or ISO 8601 (inclusive)"),
                until: Optional[str] = Query(None, description="Unix seconds or ISO 8601 (exclusive)"),
                limit: int = Query(1000, ge=1, le=100_000, description="newest N records at most")) -> HistoryOut:
        """Scored clips of a machine, oldest first (the newest ``limit`` when more match), each with
        the k-of-n alert state after it (computed over the whole history, not just this window)."""
        machine_or_404(machine_id)
        t0, t1 = _parse_time(since, "since"), _parse_time(until, "until")
        recs = store.history(machine_id, since=t0, until=t1, limit=limit)
        states, began, _ = alert_track(machine_id) if recs else ({}, set(), None)
        return HistoryOut(machine=machine_id, since=t0, until=t1, count=len(recs), alert_rule=rule,
                          alert_episodes=sum(r.id in began for r in recs),
                          records=[_out(r, alert=states.get(r.id)) for r in recs])

    @app.get("/v1/machines/{machine_id}/alerts", response_model=list[ScoreOut], dependencies=auth,
             tags=["machines"], responses=_errors(401, 404, 422, 503))
    def alerts(machine_id: str, limit: int = Query(10, ge=1, le=1000)) -> list[ScoreOut]:
        """The newest anomalous clips (decision true) of a machine, newest first; ``alert`` says
        whether the k-of-n alert was on after each."""
        machine_or_404(machine_id)
        recs = store.alerts(machine_id, limit=limit)
        states = alert_track(machine_id)[0] if recs else {}
        return [_out(r, alert=states.get(r.id)) for r in recs]

    @app.get("/v1/machines/{machine_id}/worst", response_model=Optional[ScoreOut], dependencies=auth,
             tags=["machines"], responses=_errors(401, 404, 422, 503))
    def worst(machine_id: str, window: int = Query(config.worst_window, ge=1, le=100_000)) -> Optional[ScoreOut]:
        """The highest-scoring of the newest ``window`` clips whose audio is kept (null if none)."""
        machine_or_404(machine_id)
        rec = store.worst_recent(machine_id, window=window)
        return _out(rec) if rec else None

    @app.get("/v1/machines/{machine_id}/explain.png", dependencies=auth, tags=["machines"],
             response_class=Response,
             responses={200: {"content": {"image/png": {}}, "description": "per-frame curve + heat map",
                              "headers": {"X-Auscult-Record": {"description": "the history row id explained",
                                                               "schema": {"type": "integer"}}}},
                        **_errors(401, 404, 422, 501, 503)})
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
                except AuscultError as exc:  # e.g. a stored input fault: nothing to explain
                    raise http_error(exc) from None
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

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_detail(exc)}, status_code=422)

    @app.exception_handler(StoreError)
    async def _store_error(request: Request, exc: StoreError) -> JSONResponse:
        log.error("history store error: %s", exc)
        return JSONResponse({"detail": f"history database error: {exc}"}, status_code=503)

    return app
