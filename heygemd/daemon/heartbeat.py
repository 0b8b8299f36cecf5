"""The heartbeat: a small thread that renews every lease this process holds, and notes the ones taken away.

A thread rather than the main loop's tick, so that a long step without progress callbacks (a model
reload, decoding a long audio) does not let the lease expire while the process is alive; a process
that hangs is systemd's watchdog's business, and its death ends the heartbeat.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from heygemd.daemon.lease import Owner, renew

RENEWALS_PER_LEASE = 6  # a holder renews six times per lease_seconds: a few late beats never expire it


@dataclass
class _Held:
    job: str
    beat: int = 0
    lost: bool = False


class LeaseKeeper:
    def __init__(self, owner: Owner, lease_seconds: float) -> None:
        self.owner = owner
        self.lease_seconds = lease_seconds
        self._held: dict[Path, _Held] = {}
        self._lock = threading.Lock()
        # Held while one lease is rewritten: once release() returns, the file is not open here any more
        # (on NFS an open file that is deleted is renamed .nfsXXXX and keeps its folder from being removed).
        self._renewing = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def interval(self) -> float:
        return max(0.1, self.lease_seconds / RENEWALS_PER_LEASE)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="heygemd-heartbeat", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def hold(self, job_dir: Path, job: str) -> None:
        with self._lock:
            self._held[job_dir] = _Held(job)

    def release(self, job_dir: Path) -> None:
        with self._renewing, self._lock:
            self._held.pop(job_dir, None)

    def holds(self, job_dir: Path) -> bool:
        with self._lock:
            return job_dir in self._held

    def lost(self, job_dir: Path) -> bool:
        """True once a renewal found that another service took this job (or finished it) meanwhile."""
        with self._lock:
            held = self._held.get(job_dir)
            return held is not None and held.lost

    def renew_all(self) -> None:
        with self._lock:
            held = list(self._held)
        for job_dir in held:
            with self._renewing:
                self._renew(job_dir)

    def _renew(self, job_dir: Path) -> None:
        with self._lock:
            entry = self._held.get(job_dir)
        if entry is None or entry.lost:
            return  # released meanwhile, or already known to be lost
        entry.beat += 1
        try:
            kind = renew(job_dir, self.owner, entry.job, entry.beat)
        except OSError:
            return  # the share is unreachable: nothing can be concluded, try again at the next beat
        # No lease of ours where the work folder is visible: taken over (or finished) by another service.
        if kind is None and job_dir.parent.is_dir():
            with self._lock:
                entry.lost = True

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.renew_all()
