"""The `heygemd` command. Each sub-command lives in its own module and registers itself here."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from heygemd import __version__
from heygemd.exitcodes import ExitCode

# Each entry: module path of a function `register(subparsers)` that adds one or more sub-commands
# and sets `func` (taking the parsed args, returning an exit code) as their default.
COMMAND_MODULES: tuple[str, ...] = (
    "heygemd.commands.demo",
    "heygemd.commands.render",
    "heygemd.commands.service",
    "heygemd.commands.start",
    "heygemd.commands.web",
    "heygemd.commands.worker",
)


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(prog="heygemd", description="Self-hosted lip-sync video service (Wav2Lip).")
    parser.add_argument("--version", action="version", version=f"heygemd {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMAND_MODULES:
        register: Callable[[argparse._SubParsersAction], None] = importlib.import_module(module_name).register
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; a reader that stops reading (`heygemd status | head -1`) ends it quietly.

    Output to a pipe is buffered, so a closed pipe mostly shows at the flush here, with the command's code known;
    cut short in the middle, the command ends with 0: its reader, not the command, stopped it."""
    code: int = ExitCode.OK
    try:
        try:
            args = build_parser().parse_args(argv)
            code = int(args.func(args))
        finally:
            sys.stdout.flush()
    except BrokenPipeError:
        _discard_stdout()
    return code


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's own flush at exit does not fail again on the closed pipe."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
