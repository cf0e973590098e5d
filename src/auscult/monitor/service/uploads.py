"""Upload handling: a body-size limit enforced while the body streams in, and in-memory decoding.

Nothing here writes an upload to disk or uses a client-supplied name as a path: the bytes are
decoded from memory with libsndfile, and a client file name is only echoed back (sanitised).
"""

from __future__ import annotations

import io
import re
import struct
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

__all__ = ["UploadProblem", "BodySizeLimit", "DecodedUpload", "decode_upload", "safe_filename",
           "MultipartFileReader", "ACCEPTED_CONTENT_TYPES", "MAX_SAMPLE_RATE"]

#: Content-Types a raw (non-multipart) upload may carry; anything else is 415. libsndfile reads the
#: bytes, whatever the type says: the type only has to admit that the body is an audio file.
ACCEPTED_CONTENT_TYPES = ("audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave", "audio/flac", "audio/x-flac",
                          "audio/ogg", "application/ogg", "application/octet-stream")
#: Highest sample rate decoded at all (a 5-minute clip at this rate is 230 MB of float32 before resampling).
MAX_SAMPLE_RATE = 192_000
_BLOCK_SAMPLES = 1 << 22  # frames x channels decoded per read: 16 MB of float32 at most at a time


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


class MultipartFileReader:
    """Pull one file field out of a ``multipart/form-data`` body, in memory, as it streams in.

    Feed chunks with :meth:`write`, then :meth:`finish` returns ``(bytes, filename)``. Other
    text fields are ignored (at most ``max_parts`` parts). Unlike a generic form parser nothing
    is spooled to a temporary file: the body is already capped by :class:`BodySizeLimit`.
    Raises :class:`UploadProblem` (422) for a malformed body or a missing field.
    """

    def __init__(self, content_type: str, field: str = "file", max_parts: int = 8):
        from python_multipart.multipart import MultipartParser, parse_options_header

        _, params = parse_options_header(content_type)
        boundary = params.get(b"boundary")
        if not boundary:
            raise UploadProblem(422, "multipart body without a boundary in its Content-Type; let your HTTP "
                                     "client build the form (curl -F file=@clip.wav ...)")
        self.field = field.encode()
        self.max_parts = max_parts
        self._parse_header = parse_options_header
        self._parts = 0
        self._hname = b""
        self._hvalue = b""
        self._disposition: Optional[bytes] = None
        self._current: Optional[list] = None
        self._found: Optional[tuple[bytes, Optional[str]]] = None
        self._ended = False
        cb = {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda d, a, b: setattr(self, "_hname", self._hname + d[a:b]),
            "on_header_value": lambda d, a, b: setattr(self, "_hvalue", self._hvalue + d[a:b]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": lambda: setattr(self, "_ended", True),
        }
        self._parser = MultipartParser(boundary, cb)

    def _part_begin(self) -> None:
        self._parts += 1
        if self._parts > self.max_parts:
            raise UploadProblem(422, f"too many form fields (more than {self.max_parts}); send just 'file'")
        self._disposition, self._current = None, None

    def _header_end(self) -> None:
        if self._hname.strip().lower() == b"content-disposition":
            self._disposition = self._hvalue
        self._hname, self._hvalue = b"", b""

    def _headers_finished(self) -> None:
        if self._disposition is None:
            return
        _, params = self._parse_header(self._disposition)
        if params.get(b"name") == self.field:
            if self._found is not None or self._current is not None:  # which one did the client mean?
                raise UploadProblem(422, f"two '{self.field.decode()}' fields in one request: send one clip per "
                                         f"request, as exactly one '{self.field.decode()}' field")
            fname = params.get(b"filename")
            self._current = [fname.decode("utf-8", "replace") if fname is not None else None]

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._current is not None:
            self._current.append(bytes(data[start:end]))

    def _part_end(self) -> None:
        if self._current is not None:
            self._found = (b"".join(self._current[1:]), self._current[0])
            self._current = None

    def write(self, chunk: bytes) -> None:
        try:
            self._parser.write(chunk)
        except UploadProblem:
            raise
        except Exception as exc:
            raise UploadProblem(422, f"malformed multipart body ({str(exc)[:200]}); send the clip as the form "
                                     f"field 'file'") from None

    def finish(self) -> tuple[bytes, Optional[str]]:
        try:
            self._parser.finalize()
        except Exception as exc:
            raise UploadProblem(422, f"malformed multipart body ({str(exc)[:200]})") from None
        if self._found is None:
            if not self._ended:
                raise UploadProblem(422, "malformed or incomplete multipart body (no closing boundary); "
                                         "send the clip as the form field 'file'")
            raise UploadProblem(422, "no file in the form: send the clip as the multipart field 'file' "
                                     "(curl -F file=@clip.wav ...)")
        if not self._ended:
            raise UploadProblem(422, "incomplete multipart body (no closing boundary); re-send the whole request")
        return self._found


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


def decode_upload(data: bytes, expected_rate: int, resample: bool = False,
                  max_seconds: Optional[float] = None, channel: Any = "mean") -> DecodedUpload:
    """Decode an uploaded audio file held in memory.

    Raises :class:`UploadProblem` with 415 when libsndfile does not recognise the bytes as audio,
    413 when the clip is longer than ``max_seconds`` (decided from the header before anything is
    decoded, and enforced while decoding, so a header that understates the length cannot make the
    service decode more than ``max_seconds`` + one frame), and 422 when the content is unusable:
    empty, truncated (a WAV shorter than its header says; a FLAC stream that breaks off), corrupt,
    NaN/Inf, zero samples, a sample rate above ``MAX_SAMPLE_RATE``, or one above
    ``expected_rate`` while ``resample`` is False (also decided from the header). A rate below
    ``expected_rate`` is returned as it is: the band the model listens to is missing, which the
    scorer reports as the input fault ``rate_mismatch`` (:mod:`auscult.data.quality`).
    Multichannel audio is read with ``channel`` (the machine's policy,
    :meth:`auscult.monitor.bundle.Bundle.channel`), block by block: ``"mean"`` averages the
    channels, ``"near"`` / ``"far"`` take channel 0 / 1 of a two-channel (near mic, far mic)
    recording (422 for another channel count), an integer takes that channel (422 when the upload
    lacks it). A mono upload is taken as it is under every policy.
    """
    import soundfile as sf

    if not data:
        raise UploadProblem(422, "empty upload: send a WAV/FLAC/OGG audio file as the 'file' form field "
                                 "or as the raw request body")
    problem = _wav_truncation(data)
    if problem:
        raise UploadProblem(422, f"truncated audio: {problem}; re-send the complete file")
    try:
        f = sf.SoundFile(io.BytesIO(data))
    except Exception as exc:
        reason = str(exc).split(": ", 1)[-1][:200]
        raise UploadProblem(415, f"not a readable audio file ({reason}); send WAV, FLAC or OGG audio") from None
    with f:
        sr, n_ch, fmt, declared = int(f.samplerate), int(f.channels), str(f.format), int(f.frames)
        if not 0 < sr <= MAX_SAMPLE_RATE:
            raise UploadProblem(422, f"sample rate {sr} Hz is outside what this service decodes (up to "
                                     f"{MAX_SAMPLE_RATE} Hz); record or convert at {expected_rate} Hz")
        if sr > int(expected_rate) and not resample:  # a lower rate is the scorer's input fault (rate_mismatch)
            raise UploadProblem(422, f"sample rate {sr} Hz, but this machine's model expects {expected_rate} Hz; "
                                     f"record or convert at {expected_rate} Hz (or start the service with "
                                     f"--resample)")
        pick = None  # the channel kept, None = the mean
        if n_ch > 1 and channel != "mean":
            if channel in ("near", "far"):
                if n_ch != 2:
                    raise UploadProblem(422, f"the upload has {n_ch} channels, but this machine's model reads the "
                                             f"{channel} mic of a two-channel (near, far) recording; send that "
                                             f"recording or the one microphone's mono signal")
                pick = 0 if channel == "near" else 1
            else:
                pick = int(channel)
                if pick >= n_ch:
                    raise UploadProblem(422, f"the upload has {n_ch} channel(s), but this machine's model reads "
                                             f"channel {pick}; send a recording with it, or its mono signal")
        limit = None if max_seconds is None else int(float(max_seconds) * sr)
        if limit is not None and 0 < declared < (1 << 62) and declared > limit:  # from the header: nothing decoded
            raise UploadProblem(413, _too_long(f"the audio is {declared / sr:g} s long", max_seconds))
        blocks: list = []
        got = 0
        step = max(1, _BLOCK_SAMPLES // max(1, n_ch))
        try:  # the header was understood: a failure from here on is a damaged file, not a wrong type
            while True:
                want = step if limit is None else min(step, limit + 1 - got)
                if want <= 0:
                    break
                part = f.read(want, dtype="float32", always_2d=True)
                if not part.shape[0]:
                    break
                got += part.shape[0]
                blocks.append(part[:, 0].copy() if n_ch == 1 else part[:, pick].copy() if pick is not None
                              else part.mean(axis=1, dtype=np.float64).astype(np.float32))
        except Exception as exc:
            reason = str(exc).split(": ", 1)[-1].strip()[:200]
            raise UploadProblem(422, f"truncated or corrupt {fmt} audio ({reason}); re-send the complete "
                                     f"file") from None
    if limit is not None and got > limit:  # the header understated the length
        raise UploadProblem(413, _too_long("the audio runs past the limit (its header understates its length)",
                                           max_seconds))
    if got == 0:
        raise UploadProblem(422, "the audio file holds zero samples; send a recording")
    x = np.concatenate(blocks) if len(blocks) > 1 else blocks[0]
    if not np.isfinite(x).all():
        raise UploadProblem(422, "the audio holds NaN/Inf samples; the file is corrupt, re-export it")
    if sr > int(expected_rate):  # down to the model's rate; a lower rate is kept for the input-quality check
        from ...audio import resample as _resample

        x = _resample(x, sr, int(expected_rate))
        sr = int(expected_rate)
    return DecodedUpload(np.ascontiguousarray(x, dtype=np.float32), sr, n_ch, fmt)


def _too_long(what: str, max_seconds: float) -> str:
    return (f"clip too long: {what}; this service accepts at most {max_seconds:g} s per request "
            f"(--max-clip-seconds); send shorter clips")
