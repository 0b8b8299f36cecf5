"""Is a file still open for writing by some process? Asked on the machine that holds the files.

A quiet file is not a finished file: an upload may pause for minutes with its handle open,
and Windows clients set the full size before they write. The kernel knows who has a file
open; this module asks it, in two ways:

- a read lease (``fcntl(F_SETLEASE, F_RDLCK)`` on a read-only descriptor) is refused with
  EAGAIN while any process (smbd, nfsd, rsync, a local copy) has the file open for writing.
  It needs the file's owner or CAP_LEASE, and a local filesystem. The lease is released at
  once; while held, a writer's open waits and the holder is signalled, so the signal is
  redirected to one whose default action is to be ignored.
- else ``/proc/<pid>/fdinfo``: descriptors opened for writing on the same device and inode.
  It sees only the processes this one may inspect, so "closed" is said only when all of
  them could be read.

On a network mount neither works (other clients' handles are invisible there): the answer is
``unknown`` and the settle window is only a first filter.
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from heygemd.daemon.fsutil import filesystem_type, is_network_filesystem

# A lease break is signalled to the holder; SIGIO (the default) ends a process that does not
# handle it. SIGURG's default action is to be ignored and nothing in heygemd uses it.
LEASE_BREAK_SIGNAL = signal.SIGURG
PROC = Path("/proc")
_WRITE_MODES = frozenset({os.O_WRONLY, os.O_RDWR})
_NO_LEASE_RIGHTS = frozenset({errno.EACCES, errno.EPERM})


class OpenState(StrEnum):
    OPEN = "open"  # some process has the file open for writing
    CLOSED = "closed"  # no process has it open for writing
    UNKNOWN = "unknown"  # this machine cannot tell


class ProbeMethod(StrEnum):
    LEASE = "lease"
    PROC = "proc"
    NONE = "none"


@dataclass(frozen=True)
class OpenProbe:
    state: OpenState
    method: ProbeMethod
    detail: str = ""

    @property
    def open(self) -> bool:
        return self.state is OpenState.OPEN

    @property
    def closed(self) -> bool:
        return self.state is OpenState.CLOSED


# ---------------------------------------------------------------------------- the lease


class _NoLease(Exception):
    """A lease cannot be taken on this file (no right to, or the filesystem has none)."""


def open_for_lease(path: Path) -> int:
    """A read-only descriptor; O_NONBLOCK makes a conflicting lease of another process an EAGAIN, not a wait."""
    return os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_NOCTTY | os.O_CLOEXEC)


def take_read_lease(descriptor: int) -> bool:
    """True if taken; False if some process has the file open for writing. Raises _NoLease."""
    fcntl.fcntl(descriptor, fcntl.F_SETSIG, LEASE_BREAK_SIGNAL)
    try:
        fcntl.fcntl(descriptor, fcntl.F_SETLEASE, fcntl.F_RDLCK)
    except OSError as err:
        if err.errno in (errno.EAGAIN, errno.EBUSY):
            return False
        raise _NoLease(err.errno) from None  # EACCES/EPERM: not ours; EINVAL: no leases here
    return True


def _lease_probe(path: Path) -> OpenState:
    """OPEN or CLOSED by taking and dropping a read lease at once. Raises _NoLease, or OSError from open()."""
    try:
        descriptor = open_for_lease(path)
    except OSError as err:
        if err.errno == errno.EWOULDBLOCK:  # another process holds a write lease: it has the file open
            return OpenState.OPEN
        raise
    try:
        if not take_read_lease(descriptor):
            return OpenState.OPEN
        fcntl.fcntl(descriptor, fcntl.F_SETLEASE, fcntl.F_UNLCK)
        return OpenState.CLOSED
    finally:
        os.close(descriptor)  # closing also drops a lease, should F_UNLCK have failed


# ---------------------------------------------------------------------------- /proc


@dataclass
class ProcWriters:
    """Every (device, inode) some visible process has open for writing, read once from /proc."""

    files: set[tuple[int, int]] = field(default_factory=set)
    complete: bool = True  # False when some process's descriptors could not be read
    readable: bool = True  # False when /proc cannot be listed at all

    def state_of(self, identity: tuple[int, int]) -> OpenState:
        if identity in self.files:
            return OpenState.OPEN
        return OpenState.CLOSED if self.complete and self.readable else OpenState.UNKNOWN


def read_proc_writers(proc: Path = PROC) -> ProcWriters:
    writers = ProcWriters()
    try:
        pids = [name for name in os.listdir(proc) if name.isdigit()]
    except OSError:
        return ProcWriters(complete=False, readable=False)
    if _processes_hidden(proc):
        writers.complete = False
    for pid in pids:
        try:
            descriptors = os.listdir(proc / pid / "fdinfo")
        except FileNotFoundError:
            continue  # ended meanwhile
        except OSError:
            writers.complete = False
            continue
        for descriptor in descriptors:
            identity = _written_file(proc / pid, descriptor)
            if identity is not None:
                writers.files.add(identity)
    return writers


def _written_file(process: Path, descriptor: str) -> tuple[int, int] | None:
    try:
        info = (process / "fdinfo" / descriptor).read_text()
    except OSError:
        return None
    flags = next((line.split()[1] for line in info.splitlines() if line.startswith("flags:")), None)
    if flags is None or int(flags, 8) & os.O_ACCMODE not in _WRITE_MODES:
        return None
    try:
        target = os.stat(process / "fd" / descriptor)
    except OSError:
        return None
    return (target.st_dev, target.st_ino)


def _processes_hidden(proc: Path) -> bool:
    """/proc mounted with hidepid (systemd's ProtectProc=): other users' processes are not even listed."""
    if os.geteuid() == 0:
        return False
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return True
    for line in lines:
        before, _, after = line.partition(" - ")
        fields = before.split()
        if len(fields) > 4 and fields[4] == str(proc) and after.startswith("proc "):
            options = after.split()[-1].split(",")
            return any(option.startswith("hidepid=") and option not in ("hidepid=0", "hidepid=off") for option in options)
    return False


# ---------------------------------------------------------------------------- the probe


class OpenFileProbe:
    """Asks, file by file, whether some process still writes it. One per inbox; ``new_round()`` once per scan.

    The lease is tried first; a file it has no right to (or a filesystem without leases) is
    looked up in /proc, read at most once per round.
    """

    def __init__(self, *, network: bool, proc: Path = PROC) -> None:
        self.network = network
        self.proc = proc
        self._writers: ProcWriters | None = None

    @classmethod
    def for_folder(cls, folder: Path) -> OpenFileProbe:
        fs_type = filesystem_type(folder if folder.exists() else folder.parent)
        return cls(network=is_network_filesystem(fs_type))

    def new_round(self) -> None:
        self._writers = None

    def probe(self, path: Path) -> OpenProbe:
        if self.network:
            return OpenProbe(OpenState.UNKNOWN, ProbeMethod.NONE, "network filesystem: other clients' handles are invisible")
        try:
            return OpenProbe(_lease_probe(path), ProbeMethod.LEASE)
        except _NoLease as why:
            lease_problem = os.strerror(why.args[0])
        except OSError as err:
            if err.errno == errno.ENOENT:
                return OpenProbe(OpenState.CLOSED, ProbeMethod.LEASE, "gone")
            lease_problem = err.strerror or str(err)
        try:
            identity = os.stat(path, follow_symlinks=False)
        except OSError as err:
            return OpenProbe(OpenState.UNKNOWN, ProbeMethod.NONE, f"lease: {lease_problem}; stat: {err.strerror}")
        if self._writers is None:
            self._writers = read_proc_writers(self.proc)
        state = self._writers.state_of((identity.st_dev, identity.st_ino))
        method = ProbeMethod.PROC if self._writers.readable else ProbeMethod.NONE
        detail = f"lease: {lease_problem}" + ("" if self._writers.complete else "; some processes cannot be inspected")
        return OpenProbe(state, method, detail)


# ---------------------------------------------------------------------------- what works here


@dataclass(frozen=True)
class ProbeCapability:
    """What the probe can do on one folder: for `heygemd doctor` and the start-up log."""

    method: ProbeMethod
    filesystem: str
    detail: str
    complete: bool = False  # it sees files written by any user (smbd writes as each Samba user)

    @property
    def available(self) -> bool:
        return self.method is not ProbeMethod.NONE


NETWORK_WARNING = "open files cannot be seen on this network mount: the settle window is only a first filter"


def probe_capability(folder: Path) -> ProbeCapability:
    """Try the probe on a file of our own in ``folder`` (and say whether files of other users would work)."""
    fs_type = filesystem_type(folder if folder.exists() else folder.parent)
    if is_network_filesystem(fs_type):
        return ProbeCapability(ProbeMethod.NONE, fs_type, f"{fs_type}: {NETWORK_WARNING}")
    if not folder.is_dir():
        return ProbeCapability(ProbeMethod.NONE, fs_type, "the folder does not exist yet")
    sample = folder / f".heygemd-probe-{os.getpid()}"
    try:
        with open(sample, "wb"):
            while_open = _try_lease(sample)
        after_close = _try_lease(sample)
    except OSError as err:
        return _proc_capability(fs_type, f"no test file can be written here ({err.strerror})")
    finally:
        try:
            sample.unlink()
        except OSError:
            pass
    if while_open is OpenState.OPEN and after_close is OpenState.CLOSED:
        if _has_cap_lease():
            return ProbeCapability(ProbeMethod.LEASE, fs_type, "file leases (CAP_LEASE: files of any owner)", complete=True)
        return _proc_capability(fs_type, "file leases on files this user owns only (no CAP_LEASE)", lease=True)
    return _proc_capability(fs_type, "file leases do not work here")


def _try_lease(path: Path) -> OpenState | None:
    try:
        return _lease_probe(path)
    except (_NoLease, OSError):
        return None


def _proc_capability(fs_type: str, why: str, *, lease: bool = False) -> ProbeCapability:
    writers = read_proc_writers()
    method = ProbeMethod.LEASE if lease else ProbeMethod.PROC if writers.readable else ProbeMethod.NONE
    if not writers.readable:
        return ProbeCapability(method, fs_type, f"{why}; /proc cannot be read")
    if writers.complete:
        return ProbeCapability(method, fs_type, f"{why}; /proc shows every process's open files", complete=True)
    hidden = (
        "/proc does not show every process's open files to root without CAP_SYS_PTRACE"
        if os.geteuid() == 0
        else "/proc hides other users' processes (smbd's)"
    )
    return ProbeCapability(method, fs_type, f"{why}; {hidden}: give the service CAP_LEASE (AmbientCapabilities=CAP_LEASE)")


_CAP_LEASE = 28  # linux/capability.h


def _has_cap_lease() -> bool:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> _CAP_LEASE & 1)
    except (OSError, ValueError):
        pass
    return os.geteuid() == 0
