"""A small real filesystem for full-disk tests: a tmpfs mounted for the test, unmounted after it.

Mounting needs root (or CAP_SYS_ADMIN). Without it the test is skipped with the reason; under
CI (``CI=true``) the machine is root, so a failure to mount fails the test instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

PAGE = 4096  # tmpfs allocates whole pages: sizes below are rounded to them


def _cannot(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI runs as root: this must work there)")
    pytest.skip(reason)


@contextmanager
def mounted_tmpfs(folder: Path, size_bytes: int) -> Iterator[Path]:
    """Mount a tmpfs of ``size_bytes`` on ``folder`` (created if missing) for the block."""
    if shutil.which("mount") is None:
        _cannot("the mount command is missing (Debian package util-linux)")
    if os.geteuid() != 0:
        _cannot("mounting a tmpfs for a full-disk test needs root (mount from the Debian package util-linux)")
    folder.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_bytes},mode=0755", "tmpfs", str(folder)], capture_output=True, text=True
    )
    if result.returncode != 0:
        _cannot(f"mount -t tmpfs is not permitted here: {result.stderr.strip()}")
    try:
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)  # busy: detach it now, freed when idle


def free_bytes(folder: Path) -> int:
    stats = os.statvfs(folder)
    return stats.f_bavail * stats.f_frsize


def fill(folder: Path, leave_free: int, name: str = "filler") -> Path:
    """Write a file in ``folder`` that leaves about ``leave_free`` bytes (rounded down to a page) free."""
    filler = folder / name
    size = max(0, free_bytes(folder) - leave_free)
    with open(filler, "wb") as handle:
        handle.write(b"\0" * (size // PAGE * PAGE))
    return filler
