"""Run a piece of Python as an unprivileged user: what a service without root (or CAP_LEASE) sees."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
UNPRIVILEGED_USER = "nobody"


def unprivileged_prefix() -> list[str]:
    """The command prefix that drops root; empty when the tests already run unprivileged."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (Debian package util-linux) is needed to drop root for this test")
    user = pwd.getpwnam(UNPRIVILEGED_USER)
    return [setpriv, f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups", "--inh-caps=-all"]


def shared_temp_dir() -> Path:
    """A temporary folder the unprivileged user may use (pytest's tmp_path is private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="heygemd-unpriv-"))
    folder.chmod(0o777)
    return folder


def give_to_unprivileged(path: Path) -> None:
    if os.geteuid() == 0:
        user = pwd.getpwnam(UNPRIVILEGED_USER)
        os.chown(path, user.pw_uid, user.pw_gid)
        for root, folders, files in os.walk(path):
            for name in [root, *(os.path.join(root, item) for item in folders + files)]:
                os.chown(name, user.pw_uid, user.pw_gid)


def run_unprivileged(code: str, *args: str) -> object:
    """Run ``code`` (which prints one JSON value last) as the unprivileged user; returns that value."""
    result = subprocess.run(
        [*unprivileged_prefix(), sys.executable, "-c", code, *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd="/",
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])
