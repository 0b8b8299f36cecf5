"""Exit codes of the heygemd commands (sysexits.h numbers where one fits), documented in docs/cli.md."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILURE = 1  # an unexpected error, or `doctor` found a problem
    USAGE = 2  # wrong command line (argparse's own code)
    NOT_RUNNING = 3  # `status`: no daemon is running on this state directory
    # EX_UNAVAILABLE: the engine cannot start: `render`, `worker`: a checkpoint missing or unusable, or no
    # ffmpeg/ffprobe; `run`: no ffmpeg/ffprobe (it waits for missing weights); `fetch-models` could not get a checkpoint
    MISSING_WEIGHTS = 69
    RENDER_HUNG = 70  # EX_SOFTWARE: a render stopped making progress and could not be cancelled; systemd restarts
    CANT_CREATE = 73  # EX_CANTCREAT: a working folder cannot be created or written
    # EX_TEMPFAIL: `run`: another heygemd holds this state folder (<state>/service.lock). Starting again
    # later works once that one stopped; systemd must not restart on it (RestartPreventExitStatus).
    ALREADY_RUNNING = 75
    CONFIG = 78  # EX_CONFIG: the configuration file or an HEYGEMD_* variable is wrong
