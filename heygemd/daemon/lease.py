"""Leases on claimed jobs, so that several services (one per GPU, or per machine) share one work area.

A job folder ``work/<job-id>/`` is held by whoever its one lease file names::

    lease-<owner>.json        held while the job is planned and rendered
    publishing-<owner>.json   held while the results move to the outbox (taken by the commit)

Ownership changes only by renaming that file. Taking over renames ``lease-A`` to ``lease-B``;
committing to publish renames ``lease-A`` to ``publishing-A``. Both renames consume the same
source name, so exactly one of them can succeed: no locks (flock turns into a mandatory lock on
CIFS), no clock comparisons between machines.

The holder rewrites the file's content (a beat counter) every ``lease_seconds / 6`` from a small
thread (heartbeat.py), in place and never creating it: a lease renamed away does not come back.
Others judge a lease by watching that content on their own monotonic clock (opening the file
revalidates NFS's attribute cache): unchanged for ``lease_seconds`` means its holder is gone.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from heygemd.daemon.reports import host_name, utc_now
from heygemd.daemon.status import process_alive

KERNEL_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
PID_NAMESPACE = Path("/proc/self/ns/pid")


class LeaseLost(Exception):
    """This process no longer holds the job: another service took it over while this one stalled."""


class LeaseKind(StrEnum):
    HELD = "lease"
    PUBLISHING = "publishing"


@dataclass(frozen=True)
class Owner:
    """One running service process. ``id`` names its leases and results folders."""

    host: str
    pid: int
    start_id: str  # random, drawn at process start: pids are reused (after a reboot, in containers), this is not
    state: str  # the state folder, resolved: the previous run of the same service has the same one
    kernel_boot_id: str = ""  # same value and same pid namespace: the pid can be checked with kill(pid, 0)
    pid_namespace: str = ""

    @property
    def id(self) -> str:
        host = re.sub(r"[^A-Za-z0-9.]+", "_", self.host)[:40] or "host"
        return f"{host}-{self.pid}-{self.start_id}"

    @classmethod
    def current(cls, state_dir: Path) -> Owner:
        return cls(
            host=host_name(),
            pid=os.getpid(),
            start_id=secrets.token_hex(4),
            state=str(state_dir.resolve()),
            kernel_boot_id=_read_text(KERNEL_BOOT_ID),
            pid_namespace=_read_link(PID_NAMESPACE),
        )

    def describe(self) -> dict[str, Any]:
        return {
            "owner": self.id,
            "host": self.host,
            "pid": self.pid,
            "start_id": self.start_id,
            "state": self.state,
            "kernel_boot_id": self.kernel_boot_id,
            "pid_namespace": self.pid_namespace,
        }


@dataclass(frozen=True)
class Lease:
    """A job's lease file as read at one moment."""

    path: Path
    kind: LeaseKind
    owner_id: str
    content: bytes
    info: dict[str, Any] = field(default_factory=dict)  # the parsed content; {} while it is being rewritten

    @property
    def job_dir(self) -> Path:
        return self.path.parent


class Verdict(StrEnum):
    MINE = "mine"  # held by this process: never taken over
    LIVE = "live"  # renewed within lease_seconds, or not watched that long yet
    EXPIRED = "expired"  # unchanged for lease_seconds, or its process is certainly gone


def lease_name(kind: LeaseKind, owner_id: str) -> str:
    return f"{kind.value}-{owner_id}.json"


def find_lease(job_dir: Path) -> Lease | None:
    """The job's lease, or None if it has none (a claim that died before writing it, or an old layout)."""
    for _ in range(3):  # a lease renamed between the listing and the read is looked for again
        try:
            names = sorted(os.listdir(job_dir))
        except (FileNotFoundError, NotADirectoryError):
            return None
        found = next(((name, kind) for name in names for kind in LeaseKind if _is_lease_name(name, kind)), None)
        if found is None:
            return None
        name, kind = found
        try:
            content = (job_dir / name).read_bytes()
        except FileNotFoundError:
            continue
        return Lease(job_dir / name, kind, name[len(kind.value) + 1 : -len(".json")], content, _parse(content))
    return None


def _is_lease_name(name: str, kind: LeaseKind) -> bool:
    return name.startswith(f"{kind.value}-") and name.endswith(".json")


def create(job_dir: Path, owner: Owner, job: str) -> Path:
    """A new lease in a job folder that has none. FileExistsError if someone else made one first."""
    path = job_dir / lease_name(LeaseKind.HELD, owner.id)
    others = find_lease(job_dir)
    if others is not None and others.owner_id != owner.id:
        raise FileExistsError(f"{job_dir} is held by {others.owner_id}")
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o664)
    try:
        os.write(descriptor, _content(owner, job, beat=0))
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    return path


def renew(job_dir: Path, owner: Owner, job: str, beat: int, taken_from: str | None = None) -> LeaseKind | None:
    """Rewrite this owner's lease in place. The kind held, or None if it holds none here any more."""
    for kind in (LeaseKind.HELD, LeaseKind.PUBLISHING):  # the order of the transition: a commit in between is seen
        try:
            descriptor = os.open(job_dir / lease_name(kind, owner.id), os.O_WRONLY)  # never O_CREAT
        except FileNotFoundError:
            continue
        try:
            data = _content(owner, job, beat, taken_from)
            os.write(descriptor, data)
            os.ftruncate(descriptor, len(data))
        finally:
            os.close(descriptor)
        return kind
    return None


def held_kind(job_dir: Path, owner: Owner) -> LeaseKind | None:
    for kind in (LeaseKind.HELD, LeaseKind.PUBLISHING):
        if (job_dir / lease_name(kind, owner.id)).exists():
            return kind
    return None


def take(lease: Lease, owner: Owner, job: str) -> bool:
    """Take a lease over by renaming it to this owner's name (same kind). True if this rename won."""
    target = lease.job_dir / lease_name(lease.kind, owner.id)
    try:
        os.rename(lease.path, target)
    except FileNotFoundError:
        # Someone else renamed it first, or (NFS) our own rename was retransmitted after it succeeded.
        if not target.exists():
            return False
    renew(lease.job_dir, owner, job, beat=0, taken_from=lease.owner_id)
    return True


def commit(job_dir: Path, owner: Owner) -> bool:
    """lease-<me> → publishing-<me>: from here on only this owner's results folder can be published.

    False if this owner no longer holds the job (it was taken over while this process stalled).
    """
    held = job_dir / lease_name(LeaseKind.HELD, owner.id)
    publishing = job_dir / lease_name(LeaseKind.PUBLISHING, owner.id)
    if publishing.exists():
        return True
    try:
        os.rename(held, publishing)
    except FileNotFoundError:
        return publishing.exists()
    return True


def certainly_dead(info: dict[str, Any], me: Owner) -> bool:
    """The holder ran under this very kernel and pid namespace, and its process is gone (or its pid is now ours).

    Only then does kill(pid, 0) mean something; another machine, a reboot or a container is judged by its lease.
    """
    if not me.kernel_boot_id or not me.pid_namespace:
        return False
    if info.get("kernel_boot_id") != me.kernel_boot_id or info.get("pid_namespace") != me.pid_namespace:
        return False
    pid = info.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    return pid == me.pid or not process_alive(pid)


def previous_run_of(info: dict[str, Any], me: Owner) -> bool:
    """The holder was an earlier run of this same service: same host and state folder, which cannot run twice."""
    return bool(info) and info.get("host") == me.host and info.get("state") == me.state and info.get("owner") != me.id


class LeaseObserver:
    """Judges other holders' leases by watching their content change on this process's own clock."""

    def __init__(self, lease_seconds: float) -> None:
        self.lease_seconds = lease_seconds
        self._seen: dict[Path, tuple[bytes, float]] = {}

    def judge(self, lease: Lease, me: Owner, now: float) -> Verdict:
        if lease.owner_id == me.id:
            return Verdict.MINE
        seen = self._seen.get(lease.path)
        if seen is None or seen[0] != lease.content:
            self._seen[lease.path] = (lease.content, now)
            seen = self._seen[lease.path]
        if certainly_dead(lease.info, me) or now - seen[1] >= self.lease_seconds:
            return Verdict.EXPIRED
        return Verdict.LIVE

    def keep_only(self, paths: set[Path]) -> None:
        """Forget leases that are gone (taken over, or their jobs finished)."""
        for path in [path for path in self._seen if path not in paths]:
            del self._seen[path]

    @property
    def watching(self) -> int:
        return len(self._seen)


def _content(owner: Owner, job: str, beat: int, taken_from: str | None = None) -> bytes:
    data: dict[str, Any] = {**owner.describe(), "job": job, "beat": beat, "renewed_at": utc_now().isoformat()}
    if taken_from:
        data["taken_from"] = taken_from
    return (json.dumps(data, ensure_ascii=False) + "\n").encode("utf-8")


def _parse(content: bytes) -> dict[str, Any]:
    try:
        data = json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return {}  # caught in the middle of a rewrite: judged by its change, not its content
    return data if isinstance(data, dict) else {}


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii").strip()
    except OSError:
        return ""


def _read_link(path: Path) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""
