"""The ``auscult`` command.

The root app is defined here; every command group lives next to the code it drives, in a
module that exposes ``register(app)``. Those modules keep heavy imports (torch, scipy,
sklearn) inside the command functions, so ``auscult --help`` stays fast.
To add a command: write ``register(app)`` in your module and add the module to
``COMMAND_MODULES``.
"""

from __future__ import annotations

import importlib
from typing import Optional

import typer

from . import __version__

COMMAND_MODULES: list[str] = [
    "auscult.data.cli",
    "auscult.monitor.serve_cli",
    "auscult.data.synth.cli",
    "auscult.pipeline.cli",
    "auscult.monitor.cli",
    "auscult.methods.clsia.cli",
]

app = typer.Typer(
    name="auscult",
    help="auscult listens to machines: unsupervised anomalous sound detection.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"auscult {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Optional[bool] = typer.Option(
        None, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """auscult listens to machines: unsupervised anomalous sound detection."""


def _register_all() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(app)


_register_all()


def main() -> None:
    """Entry point: turn auscult's typed errors into a one-line message and exit code 2."""
    from .errors import AuscultError

    try:
        app()
    except AuscultError as exc:  # a user-actionable error: no traceback
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        raise SystemExit(2) from None


if __name__ == "__main__":  # pragma: no cover
    main()
