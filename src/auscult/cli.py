"""The ``auscult`` command.

The root app is defined here; every command group lives next to the code it drives, in a
module that exposes ``register(app)``. Those modules keep heavy imports (torch, scipy,
sklearn) inside the command functions, so ``auscult --help`` stays fast.
To add a command: write ``register(app)`` in your module and add the module to
``COMMAND_MODULES``.
"""

from __future__ import annotations

import importlib
import logging
import sys
import warnings
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


class _ConsoleMessages(logging.Handler):
    """auscult's log warnings (WARNING and up) and notices (records logged with
    ``extra={"notice": True}``, e.g. "resumed from epoch 2 of 3") as one line each on stderr.
    Other INFO records stay in the run's log file."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.addFilter(lambda r: r.levelno >= logging.WARNING or bool(getattr(r, "notice", False)))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = " ".join(record.getMessage().split())
            prefix = "error: " if record.levelno >= logging.ERROR else "warning: " if record.levelno >= logging.WARNING else ""
            sys.stderr.write(prefix + text + "\n")  # the stream of the moment (test runners swap it)
            sys.stderr.flush()
        except Exception:  # pragma: no cover - never let a message break the command
            self.handleError(record)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Python warnings as ``warning: <message>``: one line, no source file, line number or code."""
    try:
        (file or sys.stderr).write(f"warning: {' '.join(str(message).split())}\n")
    except (OSError, ValueError):  # pragma: no cover - stderr closed
        pass


def _install_console_messages() -> None:
    """Route warnings and notices to the console as single readable lines (idempotent)."""
    warnings.showwarning = _show_warning
    lg = logging.getLogger("auscult")
    if not any(isinstance(h, _ConsoleMessages) for h in lg.handlers):
        lg.addHandler(_ConsoleMessages())
    if lg.level == logging.NOTSET or lg.level > logging.INFO:
        lg.setLevel(logging.INFO)  # notices are INFO records; the handler above filters the rest


@app.callback()
def _root(
    version: Optional[bool] = typer.Option(
        None, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """auscult listens to machines: unsupervised anomalous sound detection."""
    _install_console_messages()


def _register_all() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(app)


_register_all()


def main() -> None:
    """Entry point: turn auscult's typed errors into a one-line message and exit code 2."""
    from .errors import AuscultError

    _install_console_messages()  # also for warnings raised before a command's callback runs
    try:
        app()
    except AuscultError as exc:  # a user-actionable error: no traceback
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        raise SystemExit(2) from None


if __name__ == "__main__":  # pragma: no cover
    main()
