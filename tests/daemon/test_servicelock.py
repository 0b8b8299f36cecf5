"""One service per state folder: the flock on <state>/service.lock, and the clean-up it makes safe."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from heygemd.daemon.servicelock import LOCK_FILE, ServiceLock, ServiceLockHeld

REPO = Path(__file__).resolve().parents[2]


def test_the_first_holds_the_second_is_refused_with_the_holders_pid(tmp_path):
    state = tmp_path / "state"
    with ServiceLock.acquire(state) as held:
        assert (state / LOCK_FILE).read_text() == f"{os.getpid()}\n"
        with pytest.raises(ServiceLockHeld) as refused:
            ServiceLock.acquire(state)  # another open file description: flock refuses it even in one process
        assert refused.value.pid == os.getpid() and refused.value.path == state / LOCK_FILE
        assert f"pid {os.getpid()}" in str(refused.value) and str(state / LOCK_FILE) in str(refused.value)
        assert held.fd is not None
    assert (state / LOCK_FILE).read_text() == ""  # a stopped service leaves no pid behind
    ServiceLock.acquire(state).release()


def test_a_holder_that_has_not_written_its_pid_yet_is_named_as_starting(tmp_path):
    import fcntl

    state = tmp_path / "state"
    state.mkdir()
    fd = os.open(state / LOCK_FILE, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(ServiceLockHeld) as refused:
            ServiceLock.acquire(state)
        assert refused.value.pid is None and "just starting" in str(refused.value)
    finally:
        os.close(fd)


def test_a_stale_pid_in_the_file_means_nothing(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    (state / LOCK_FILE).write_text("999999\n")  # a crashed run's pid: the kernel released its lock
    with ServiceLock.acquire(state):
        assert (state / LOCK_FILE).read_text() == f"{os.getpid()}\n"


def test_kill_9_releases_the_lock(tmp_path):
    state = tmp_path / "state"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import sys, time
            from pathlib import Path
            from heygemd.daemon.servicelock import ServiceLock
            lock = ServiceLock.acquire(Path({str(state)!r}))
            print("held", flush=True)
            time.sleep(600)
        """),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(ServiceLockHeld) as refused:
            ServiceLock.acquire(state)
        assert refused.value.pid == holder.pid
    finally:
        holder.kill()
        holder.wait(timeout=30)
    with ServiceLock.acquire(state):  # at once: no stale lock to wait out
        pass


def test_the_lock_is_not_inherited_by_a_child_program(tmp_path):
    state = tmp_path / "state"
    lock = ServiceLock.acquire(state)
    child = subprocess.Popen(["sleep", "60"], close_fds=False)  # like an ffmpeg left running
    try:
        lock.release()
        ServiceLock.acquire(state).release()
    finally:
        child.kill()
        child.wait(timeout=30)
