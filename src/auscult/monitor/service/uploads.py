"""Upload handling: a body-size limit enforced while the body streams in, and in-memory decoding.

Nothing here writes an upload to disk or uses a client-supplied name as a path: the bytes are
decoded from memory with libsndfile, and a client file name is only echoed back (sanitised).
"""

from __future__ import annotations

import io
import re
import struct
from dataclasses import dataclass
from typing import Optional

import numpy as np

__all__ = ["UploadProblem", "BodySizeLimit", "DecodedUpload", "decode_upload", "safe_filename"]


class UploadProblem(Exception):
    """An upload the service refuses: ``status`` is the HTTP code, ``detail`` says what to fix."""

    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status = status
        self.detail = detail


class BodySizeLimit:
    """ASGI middleware: refuse request bodies over ``max_bytes`` with 413.

    A declared ``Content-Length`` over the limit is answered before a single body byte is read.
    A body without one (chunked) is counted as it streams; once it passes the limit the app's
    reading stops and the response is replaced by 413, whatever the app had started to do.
    """

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = int(max_bytes)

    def _message(self) -> bytes:
        mb = self.max_bytes / 2 ** 20
        return (b'{"detail":"upload too large: the limit is %s MiB (--max-upload-mb); send a shorter clip"}'
                % f"{mb:g}".encode())

    async def _reject(self, send) -> None:
        body = self._message()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0:
                    body = b'{"detail":"bad Content-Length header"}'
                    await send({"type": "http.response.start", "status": 400,
                                "headers": [(b"content-type", b"application/json"),
                                            (b"content-length", str(len(body)).encode())]})
                    await send({"type": "http.response.body", "body": body})
                    return
                if declared > self.max_bytes:
                    return await self._reject(send)
        state = {"seen": 0, "over": False, "started": False}

        async def limited_receive():
            if state["over"]:
                return {"type": "http.disconnect"}
            msg = await receive()
            if msg["type"] == "http.request":
                state["seen"] += len(msg.get("body", b""))
                if state["seen"] > self.max_bytes:
                    state["over"] = True
                    return {"type": "http.disconnect"}
            return msg

        async def guarded_send(msg):
            if state["over"]:
                if msg["type"] == "http.response.start" and not state["started"]:
                    state["started"] = True
                    await self._reject(send)
                return  # drop the app's own answer to the cut-off body
            if msg["type"] == "http.response.start":
                state["started"] = True
            await send(msg)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if state["over"]:
                if not state["started"]:
                    await self._reject(send)
                return
            raise
        if state["over"] and not state["started"]:
            await self._reject(send)


_NAME_OK = re.compile(r"[^A-Za-z0-9._ -]+")


def safe_filename(name: Optional[str]) -> Optional[str]:
    """A client's file name reduced to a display string: last path component, plain characters,
    at most 128 characters. It is stored and echoed, never opened."""
    if not name:
        return None
    base = re.split(r"[\\/]", str(name))[-1]
    base = _NAME_OK.sub("_", base).strip(" .")[:128]
    return base or None


@dataclass(frozen=True)
class DecodedUpload:
    """An upload decoded to mono float32: ``wave``, its ``sample_rate``, original channel count."""

    wave: np.ndarray
    sample_rate: int
    channels: int
    format: str

    @property
    def duration_s(self) -> float:
        return len(self.wave) / self.sample_rate


def _wav_truncation(data: bytes) -> Optional[str]:
    """A message when a RIFF/WAVE body's data chunk is shorter than its header says, else None."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    pos = 12
    while pos + 8 <= len(data):
        cid, clen = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        if cid == b"data":
            if clen in (0, 0xFFFFFFFF):
                return None
            have = len(data) - (pos + 8)
            if have < clen:
                return f"the WAV header promises {clen} bytes of audio but the upload holds {have}"
            return None
        pos += 8 + clen + (clen & 1)
    if pos > len(data) or data.find(b"data", 12) < 0:
        return "the WAV file ends before its data chunk"
    return None


def decode_upload(data: bytes, expected_rate: int, resample: bool = False) -> DecodedUpload:
    """Decode an uploaded audio file held in memory.

    Raises :class:`UploadProblem` with 422 (empty, truncated, NaN/Inf, wrong sample rate when
    ``resample`` is False, zero samples) or 415 (not an audio file libsndfile can read).
    Multichannel audio is averaged to mono.
    """
    import soundfile as sf

    if not data:
        raise UploadProblem(422, "empty upload: send a WAV/FLAC/OGG audio file as the 'file' form field "
                                 "or as the raw request body")
    problem = _wav_truncation(data)
    if problem:
        raise UploadProblem(422, f"truncated audio: {problem}; re-send the complete file")
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            sr, n_ch, fmt = int(f.samplerate), int(f.channels), str(f.format)
            frames = f.read(dtype="float32", always_2d=True)
    except Exception as exc:
        reason = str(exc).split(": ", 1)[-1][:200]
        raise UploadProblem(415, f"not a readable audio file ({reason}); send WAV, FLAC or OGG audio") from None
    if frames.shape[0] == 0:
        raise UploadProblem(422, "the audio file holds zero samples; send a recording")
    x = frames[:, 0] if n_ch == 1 else frames.mean(axis=1, dtype=np.float64).astype(np.float32)
    if not np.isfinite(x).all():
        raise UploadProblem(422, "the audio holds NaN/Inf samples; the file is corrupt, re-export it")
    if sr != int(expected_rate):
        if not resample:
            raise UploadProblem(422, f"sample rate {sr} Hz, but this machine's model expects {expected_rate} Hz; "
                                     f"record or convert at {expected_rate} Hz (or start the service with "
                                     f"--resample)")
        from ...audio import resample as _resample

        x = _resample(x, sr, int(expected_rate))
        sr = int(expected_rate)
    return DecodedUpload(np.ascontiguousarray(x, dtype=np.float32), sr, n_ch, fmt)
