"""The `heygemd` command. Each sub-command lives in its own module and registers itself here."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from heygemd import __version__

# Each entry: module path of a function `register(subparsers)` that adds one or more sub-commands
# and sets `func` (taking the parsed args, returning an exit code) as their default.
COMMAND_MODULES: tuple[str, ...] = (
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
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
