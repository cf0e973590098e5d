"""``auscult data ...`` commands (placeholder until the data layer lands)."""

from __future__ import annotations

import typer

data_app = typer.Typer(help="Inspect datasets.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
