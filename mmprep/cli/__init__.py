"""The ``mmprep`` command. Subcommands live in modules named for them and register on ``app``."""

from __future__ import annotations

import logging
import sys

import typer

from mmprep.errors import ConfigError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Turn raw multimodal corpora into WebDataset shards, and stream them into training.")


def fail_config(exc: ConfigError) -> None:
    """One line naming the key, exit code 2: the contract for every configuration error."""
    typer.echo(f"mmprep: config error: {exc}", err=True)
    raise typer.Exit(2)


def setup_logging(quiet: bool = False) -> None:
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    for noisy in ("distributed", "jieba", "numba", "fsspec"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


# command -> the module that defines it, so one invocation imports only what it runs (a test keeps
# this in step with the modules; a command missing here still works, after importing them all)
COMMANDS = {
    "build": "build", "validate": "pipeline", "stages": "pipeline", "schema": "pipeline",
    "align": "align", "avsync": "align", "report": "align", "audio-features": "audio", "probe": "media",
    "embed": "embed", "vocab": "text", "train": "train",
}


@app.callback()
def _group() -> None:
    """Turn raw multimodal corpora into WebDataset shards, and stream them into training."""


def load_commands(command: str | None = None) -> typer.Typer:
    """Import the module defining ``command``, or every module of this package when None or unknown."""
    import importlib
    import pkgutil

    if command in COMMANDS:
        importlib.import_module(f"{__name__}.{COMMANDS[command]}")
        return app
    for info in pkgutil.iter_modules(__path__, prefix=f"{__name__}."):
        importlib.import_module(info.name)
    return app


def main() -> None:
    command = next((arg for arg in sys.argv[1:] if not arg.startswith("-")), None)
    load_commands(command)()
