"""The `heygemd` command. Each sub-command lives in its own module, and is registered here by name."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from heygemd import __version__
from heygemd.commands import render, service, web, worker

# Each `register(subparsers)` adds one or more sub-commands and sets `func` (taking the parsed args,
# returning an exit code) as their default. The modules import their heavy parts only when run.
REGISTER_COMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    render.register,
    service.register,
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
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
