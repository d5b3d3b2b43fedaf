"""The ``mmprep`` command. Subcommands live in modules named for them and register on ``app``.

Importing this package is cheap: ``app`` (typer, which imports pydantic: ~0.1 s) is built on first
use, so a command with a fast entry (see ``FAST``) runs without the CLI framework at all.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from mmprep.errors import ConfigError

if TYPE_CHECKING:
    import logging

    import typer

HELP = "Turn raw multimodal corpora into WebDataset shards, and stream them into training."


def fail_config(exc: ConfigError) -> None:
    """One line naming the key, exit code 2: the contract for every configuration error."""
    import typer

    typer.echo(f"mmprep: config error: {exc}", err=True)
    raise typer.Exit(2)


NOISY = ("distributed", "jieba", "numba", "fsspec")
"""Libraries whose INFO lines (a Dask cluster's start and stop: ~30 of them) are left out of the log."""


def setup_logging(quiet: bool = False) -> None:
    import logging

    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # distributed sets its loggers back to INFO when it is imported (its logging config), after this
    # ran: a filter on the handlers keeps them out whatever their level
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, _Quiet) for f in handler.filters):
            handler.addFilter(_Quiet())


class _Quiet:
    """Lets a record of a ``NOISY`` library (or its child loggers) through only from WARNING up."""

    def filter(self, record: logging.LogRecord) -> bool:
        name = record.name
        return record.levelno >= 30 or not (name in NOISY or name.startswith(tuple(f"{n}." for n in NOISY)))


# command -> the module that defines it, so one invocation imports only what it runs (a test keeps
# this in step with the modules; a command missing here still works, after importing them all)
COMMANDS = {
    "build": "build", "validate": "pipeline", "stages": "pipeline", "schema": "pipeline",
    "align": "align", "avsync": "align", "report": "align", "audio-features": "audio", "probe": "media",
    "embed": "embed", "vocab": "text", "train": "train", "show": "show",
}

# commands run once per file in shell loops, with an entry that parses its own arguments without
# typer: ``module:function``, called with the arguments after the command name; it returns the exit
# code, or None for anything it does not handle (``--help``, a bad value, a missing file), and then
# the typer command runs and gives the usual help or error
FAST = {"align": "mmprep.align.command:fast_main"}


def _make_app() -> typer.Typer:
    import typer

    cli = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, help=HELP)

    @cli.callback()
    def _group() -> None:
        """Turn raw multimodal corpora into WebDataset shards, and stream them into training."""

    return cli


def _app() -> typer.Typer:
    if "app" not in globals():
        globals()["app"] = _make_app()
    return globals()["app"]


def __getattr__(name: str) -> typer.Typer:
    if name == "app":  # built on the first ``from mmprep.cli import app``
        return _app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_commands(command: str | None = None) -> typer.Typer:
    """Import the module defining ``command``, or every module of this package when None or unknown."""
    import importlib
    import pkgutil

    if command in COMMANDS:
        importlib.import_module(f"{__name__}.{COMMANDS[command]}")
        return _app()
    for info in pkgutil.iter_modules(__path__, prefix=f"{__name__}."):
        importlib.import_module(info.name)
    return _app()


def main() -> None:
    command = next((arg for arg in sys.argv[1:] if not arg.startswith("-")), None)
    if command in FAST and sys.argv[1:2] == [command]:
        import importlib

        module, func = FAST[command].split(":")
        code = getattr(importlib.import_module(module), func)(sys.argv[2:])
        if code is not None:
            sys.stdout.flush()
            raise SystemExit(code)
    _run(load_commands(command), command)


def _run(app: typer.Typer, command: str | None) -> None:
    """Run the command. A bad option or argument is one line on stderr and exit code 2, like a bad
    pipeline, with where to find the help (click would draw a box of usage and error)."""
    try:
        code = app(standalone_mode=False)
    except Exception as exc:  # click's exceptions, by duck type: typer vendors its own click
        show, status = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if type(exc).__name__ == "Abort":  # Ctrl-C at a prompt
            print("Aborted!", file=sys.stderr)
            raise SystemExit(1) from None
        if show is None or not isinstance(status, int):
            raise
        if status == 2 and hasattr(exc, "format_message") and type(exc).__name__ != "NoArgsIsHelpError":
            where = f"mmprep {command} --help" if command in COMMANDS else "mmprep --help"
            print(f"mmprep: usage error: {exc.format_message()} (see {where})", file=sys.stderr)
        else:
            show()
        raise SystemExit(status) from None
    raise SystemExit(code if isinstance(code, int) else 0)
