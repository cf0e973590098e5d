"""The auscult HTTP service: score uploads against model bundles, keep a history, show a dashboard.

Start it with ``auscult serve`` (see ``docs/monitoring.md``) or build the app yourself::

    from auscult.monitor.service import ServiceConfig, create_app
    app = create_app(ServiceConfig(models=["pump.auscult"], token="...long secret...",
                                   state_dir="/var/lib/auscult"))
    # uvicorn.run(app, host="127.0.0.1", port=8000)

Endpoints: ``POST /v1/machines/{id}/score``, ``GET /v1/machines``,
``GET /v1/machines/{id}/history?since=…``, ``/alerts``, ``/worst``, ``/explain.png``,
``GET /health``, ``GET /openapi.json``, ``GET /dashboard``.
Needs the ``serve`` extra (``pip install 'auscult[serve]'``).
"""

from __future__ import annotations

from .config import ServiceConfig, load_models, read_token_file

__all__ = ["ServiceConfig", "create_app", "load_models", "read_token_file"]


def create_app(config: ServiceConfig, store=None):
    """Build the FastAPI app (see :func:`auscult.monitor.service.app.create_app`)."""
    from .app import create_app as _create

    return _create(config, store=store)
