"""One service per state folder: `heygemd run` holds an exclusive lock on ``<state>/service.lock``.

Two services on one state folder would overwrite each other's status and journal. The lock is an
``flock`` on an open file, held for the life of the process: the kernel releases it when the process
ends in any way (``kill -9`` and crashes included), so a stale lock never blocks a restart, and a
pid left in the file by a dead process means nothing. The file itself is never removed (removing it
would let a second process lock a new file while the first still holds the old one).

flock, not lockf: a POSIX record lock is dropped as soon as the process closes *any* descriptor of
the file. The descriptor is close-on-exec, so an ffmpeg child left running never keeps the lock
after its parent died.

Once the lock is held, temporary files that a crashed run left in the state folder can be removed
(leftovers.py): no live service of this state folder writes there any more.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

LOCK_FILE = "service.lock"


class ServiceLockHeld(Exception):
    """Another live process holds the state folder. ``pid`` is None if it had not written it yet."""

    def __init__(self, path: Path, pid: int | None) -> None:
        self.path = path
        self.pid = pid
        holder = f"pid {pid}" if pid is not None else "a process that is just starting"
        super().__init__(f"another heygemd ({holder}) is already running with this state folder ({path})")


@dataclass
class ServiceLock:
    """The held lock. Keep the object for the life of the process; ``release`` is only for tests and tools."""

    path: Path
    fd: int | None

    @classmethod
    def acquire(cls, state_dir: Path) -> ServiceLock:
        """Take the state folder's lock, creating the folder if needed. Raises ServiceLockHeld or OSError."""
        state_dir.mkdir(parents=True, exist_ok=True)
        path = state_dir / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise ServiceLockHeld(path, pid) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(path, fd)

    def release(self) -> None:
        if self.fd is None:
            return
        os.ftruncate(self.fd, 0)  # the pid of a stopped service is no longer a holder
        os.close(self.fd)  # closing drops the flock
        self.fd = None

    def __enter__(self) -> ServiceLock:
        return self

    def __exit__(self, *_: object) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode("ascii").strip())
    except (OSError, ValueError, UnicodeDecodeError):
        return None  # the holder took the lock and has not written its pid yet
