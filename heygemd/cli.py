"""The `heygemd` command. Each sub-command lives in its own module, and is registered here by name."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from heygemd import __version__
from heygemd.commands import demo, render, service, start, web, worker
from heygemd.exitcodes import ExitCode

# Each `register(subparsers)` adds one or more sub-commands and sets `func` (taking the parsed args,
# returning an exit code) as their default. The modules import their heavy parts only when run.
REGISTER_COMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    demo.register,
    render.register,
    service.register,
    start.register,
    web.register,
    worker.register,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="heygemd", description="Self-hosted lip-sync video service (Wav2Lip).")
    parser.add_argument("--version", action="version", version=f"heygemd {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in REGISTER_COMMANDS:
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
