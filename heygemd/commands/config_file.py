"""Loading the configuration file for a command: the one wording of a configuration error, and its exit code."""

from __future__ import annotations

import sys
from pathlib import Path

from heygemd.daemon.config import ConfigError, LoadedConfig, load_config
from heygemd.exitcodes import ExitCode


def load_or_report(path: Path | None) -> LoadedConfig | ExitCode:
    """The loaded configuration, or ``ExitCode.CONFIG`` after saying on stderr what is wrong with it."""
    try:
        return load_config(path)
    except ConfigError as err:
        print(f"heygemd: configuration error: {err}", file=sys.stderr)
        return ExitCode.CONFIG
