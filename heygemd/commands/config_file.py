"""Loading the configuration file for a command: the one wording of a configuration error, and its exit code."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from heygemd.daemon.config import CONFIG_ENV_VAR, DEFAULT_SEARCH_PATHS, ConfigError, LoadedConfig, load_config
from heygemd.exitcodes import ExitCode


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    """``--config``, as every command that reads the configuration takes it."""
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help=f"configuration file (default: ${CONFIG_ENV_VAR}, else the first of "
        f"{', '.join(str(path) for path in DEFAULT_SEARCH_PATHS)} that exists)",
    )


def load_or_report(path: Path | None) -> LoadedConfig | ExitCode:
    """The loaded configuration, or ``ExitCode.CONFIG`` after saying on stderr what is wrong with it."""
    try:
        return load_config(path)
    except ConfigError as err:
        print(f"heygemd: configuration error: {err}", file=sys.stderr)
        return ExitCode.CONFIG
