"""Fixtures for the service tests: a small fake bundle, WAV bytes, an app and a real uvicorn server."""

from __future__ import annotations

import io
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from service_fakes import FakeBundle, tone  # noqa: E402

TOKEN = "test-token-0123456789abcdef"


def wav_bytes(x: np.ndarray, sr: int, fmt: str = "WAV", subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, sr, format=fmt, subtype=subtype)
    return buf.getvalue()


@pytest.fixture
def fake_bundle() -> FakeBundle:
    return FakeBundle(["pump-1", "fan-2"], sample_rate=16000, threshold=0.2)


@pytest.fixture
def make_app(tmp_path):
    from auscult.monitor.service import ServiceConfig, create_app

    def make(bundles=None, **kw):
        kw.setdefault("token", TOKEN)
        kw.setdefault("state_dir", tmp_path / "state")
        cfg = ServiceConfig(bundles=bundles or [FakeBundle(["pump-1", "fan-2"])], **kw)
        return create_app(cfg)

    return make


@pytest.fixture
def client(make_app):
    from fastapi.testclient import TestClient

    app = make_app(max_upload_mb=1.0)
    with TestClient(app) as c:
        c.headers["Authorization"] = f"Bearer {TOKEN}"
        yield c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ThreadServer:
    """uvicorn serving an app on 127.0.0.1 from a background thread."""

    app: object
    port: int = field(default_factory=free_port)

    def __post_init__(self):
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "ThreadServer":
        self.thread.start()
        t0 = time.monotonic()
        while not self.server.started:
            if time.monotonic() - t0 > 20 or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


__all__ = ["FakeBundle", "tone", "wav_bytes", "TOKEN", "ThreadServer", "free_port"]
