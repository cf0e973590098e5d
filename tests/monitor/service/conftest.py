"""Fixtures for the service tests; the helpers themselves live in service_testlib.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from service_testlib import TOKEN, FakeBundle  # noqa: E402


@pytest.fixture
def make_app(tmp_path):
    """Build a service app (fake bundles for pump-1 and fan-2 unless given) in tmp_path/state."""
    from auscult.monitor.service import ServiceConfig, create_app

    def make(bundles=None, **kw):
        kw.setdefault("token", TOKEN)
        kw.setdefault("state_dir", tmp_path / "state")
        cfg = ServiceConfig(bundles=bundles or [FakeBundle(["pump-1", "fan-2"])], **kw)
        return create_app(cfg)

    return make


@pytest.fixture
def client(make_app):
    """TestClient with the token set, on an app with a 1 MiB upload limit."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    app = make_app(max_upload_mb=1.0)
    with TestClient(app) as c:
        c.headers["Authorization"] = f"Bearer {TOKEN}"
        yield c


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """create_app sets torch's thread count (ServiceConfig.torch_threads): give other tests theirs back."""
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    yield
    torch = sys.modules.get("torch")
    if torch is not None and before is not None and torch.get_num_threads() != before:
        torch.set_num_threads(before)
