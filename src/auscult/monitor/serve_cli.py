"""``auscult serve``: run the HTTP scoring service with its history store and dashboard."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .alerting import DEFAULT_K, DEFAULT_N

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def register(app: typer.Typer) -> None:
    """Add ``serve`` to the root CLI."""

    @app.command("serve")
    def serve(
        more_models: Optional[List[Path]] = typer.Argument(
            None, help="More bundle files or folders (so '--models a.auscult b.auscult' works)."),
        models: Optional[List[Path]] = typer.Option(
            None, "--models", "-m", help="A .auscult bundle file or a folder of them (repeatable)."),
        db: Optional[str] = typer.Option(
            None, "--db", help="History database URL: sqlite:////abs/path.sqlite (default: "
                               "<state-dir>/history.sqlite) or postgresql://user:pass@host/db (needs psycopg)."),
        token_file: Optional[Path] = typer.Option(
            None, "--token-file", help="File holding the API secret (clients send 'Authorization: Bearer <it>')."),
        no_auth: bool = typer.Option(False, "--no-auth", help="Serve without a token (loopback hosts only)."),
        host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
        port: int = typer.Option(8000, "--port", help="TCP port."),
        max_upload_mb: float = typer.Option(20.0, "--max-upload-mb", help="Largest accepted upload (413 above)."),
        max_clip_seconds: float = typer.Option(
            300.0, "--max-clip-seconds", help="Longest accepted clip in seconds of audio (413 above; read from the "
                                              "audio header before decoding)."),
        alert_k: int = typer.Option(DEFAULT_K, "--alert-k", help="Alert when at least k ..."),
        alert_n: int = typer.Option(DEFAULT_N, "--alert-n", help="... of a machine's last n clips are anomalous "
                                                                 "(the rule of 'auscult watch --k/--n')."),
        state_dir: Path = typer.Option(Path("auscult-service"), "--state-dir",
                                       help="The service's own folder (default database lives here)."),
        resample: bool = typer.Option(
            False, "--resample/--reject-other-rates",
            help="Resample clips at another sample rate to the model's (default: reject them with 422)."),
        keep_clips: int = typer.Option(100, "--keep-clips", help="Clips (audio) kept per machine for explain views."),
        torch_threads: int = typer.Option(
            1, "--torch-threads", help="Intra-op threads per scoring call (requests already run in parallel)."),
        log_level: str = typer.Option("info", "--log-level", help="uvicorn log level."),
    ) -> None:
        """Serve the models over HTTP: scoring, history, health, OpenAPI (/openapi.json) and a dashboard (/dashboard)."""
        from ..errors import ConfigError
        from .service import ServiceConfig, create_app, read_token_file

        paths = list(models or []) + list(more_models or [])
        if token_file is not None and no_auth:
            raise ConfigError("--token-file and --no-auth contradict each other; pick one")
        if no_auth and host not in _LOOPBACK:
            raise ConfigError(f"--no-auth on --host {host} would let anyone on the network use the service; "
                              f"use --token-file, or --host 127.0.0.1")
        token = read_token_file(token_file) if token_file is not None else None
        cfg = ServiceConfig(models=paths, state_dir=state_dir, db_url=db, token=token, allow_no_auth=no_auth,
                            max_upload_mb=max_upload_mb, max_clip_s=max_clip_seconds, alert_k=alert_k,
                            alert_n=alert_n, sample_rate_policy="resample" if resample else "reject",
                            keep_clips=keep_clips, torch_threads=torch_threads)
        app_ = create_app(cfg)
        import uvicorn

        shown = f"[{host}]" if ":" in host else host
        typer.echo(f"serving {len(app_.state.models)} machine(s): {', '.join(sorted(app_.state.models))}")
        typer.echo(f"history: {app_.state.store.dialect} ({'--db' if db else cfg.resolved_db_url})")
        typer.echo(f"dashboard: http://{shown}:{port}/dashboard#token=<your token>   OpenAPI schema: "
                   f"http://{shown}:{port}/openapi.json")
        uvicorn.run(app_, host=host, port=port, log_level=log_level)
