"""When a folder in the inbox becomes a job: settled (nothing changed for a while) or marked ready.

The tracker is fed one scan of the inbox at a time and remembers what it saw; it never
concludes anything from absence (a missing or empty inbox may be an unmounted share).

Quiet is not finished: a file some process still has open for writing (an SMB client pausing
on Wi-Fi, a copy that set the full size first) keeps its folder waiting whatever its settle
state, and restarts the settle clock. Every folder that waits says why (``WaitingFolder``);
a folder that can never become a job goes to quarantine with a ``Failure`` (code and reason).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from heygemd.codes import ErrorCode, Failure
from heygemd.daemon.config import Readiness
from heygemd.daemon.contract import (
    EntryState,
    FolderSnapshot,
    is_hidden_job_folder,
    is_ignored_name,
    is_temporary_name,
    snapshot_folder,
)
from heygemd.daemon.manifest import (
    MAX_MARKER_BYTES,
    Manifest,
    ManifestEntry,
    read_manifest,
)
from heygemd.daemon.openfiles import OpenFileProbe
from heygemd.engine.files import NotAFile, open_regular, sha256_file
from heygemd.uploadmark import is_complete_upload

# In marker mode a file the kernel reports closed counts without its settle window, but unless the marker
# was the last thing written, the folder must still be quiet this long: a copy of several files leaves a
# short gap between closing one and creating the next.
CLOSED_QUIET_SECONDS = 2.0
_NAMES_SHOWN = 3


class WaitKind(StrEnum):
    SETTLING = "settling"  # files changed less than settle_seconds ago
    OPEN_FOR_WRITING = "open_for_writing"  # some process still writes a file
    UPLOADING = "uploading"  # a temporary or empty file: an upload in progress
    EMPTY_FILES = "empty_files"  # empty files unchanged past the settle window: not an upload any more, a mistake
    EMPTY = "empty"
    NO_MARKER = "no_marker"
    MARKER_EARLY = "marker_early"  # the marker is there, other files are still arriving
    MANIFEST_MISMATCH = "manifest_mismatch"  # the marker lists files that do not match (yet)
    UNREADABLE = "unreadable"  # the service may not list a folder or read the marker


@dataclass(frozen=True)
class WaitingFolder:
    """A folder of the inbox that is not a job yet, and what it waits for (shown by `heygemd status`)."""

    name: str
    kind: WaitKind
    reason: str


@dataclass(frozen=True)
class ReadyFolder:
    name: str
    ready_since: float
    newest_mtime_ns: int


@dataclass(frozen=True)
class AbandonedFolder:
    """A folder that will never become a job as it is: it goes to quarantine with ``failure``."""

    name: str
    failure: Failure

    @property
    def reason(self) -> str:
        return self.failure.reason

    @property
    def details(self) -> list[str]:
        return self.failure.details


@dataclass
class InboxScan:
    inbox_missing: bool = False
    ready: list[ReadyFolder] = field(default_factory=list)
    abandoned: list[AbandonedFolder] = field(default_factory=list)
    arriving: list[WaitingFolder] = field(default_factory=list)
    new_loose_entries: list[str] = field(default_factory=list)
    new_hidden_folders: list[str] = field(default_factory=list)  # dot-named folders: ignored, reported once

    def without(self, name: str) -> InboxScan:
        """The same scan with ``name`` gone (claimed)."""
        return InboxScan(
            inbox_missing=self.inbox_missing,
            ready=[folder for folder in self.ready if folder.name != name],
            abandoned=[folder for folder in self.abandoned if folder.name != name],
            arriving=[folder for folder in self.arriving if folder.name != name],
            new_loose_entries=self.new_loose_entries,
            new_hidden_folders=self.new_hidden_folders,
        )

    @property
    def waiting(self) -> list[str]:
        """Names of the folders still arriving (``arriving`` says why each waits)."""
        return [folder.name for folder in self.arriving]


@dataclass
class _FileClock:
    size: int
    mtime_ns: int
    since: float  # when this size and mtime were first seen (or the file last seen open)


@dataclass
class _Candidate:
    fingerprint: tuple[EntryState, ...]
    stable_since: float
    first_seen: float  # when the folder was first seen in the inbox (time.monotonic())
    ready_since: float | None = None
    newest_mtime_ns: int = 0
    files: dict[str, _FileClock] = field(default_factory=dict)
    unreadable_since: float | None = None  # since when something in it cannot be listed or read
    unreadable_now: bool = False  # seen so in this scan
    hashes: dict[str, tuple[int, int, str]] = field(default_factory=dict)  # relative -> (size, mtime_ns, sha256)


@dataclass
class _ManifestCheck:
    mismatches: list[str] = field(default_factory=list)  # what does not match, naming the file
    proven: set[str] = field(default_factory=set)  # files whose sha256 matches: complete, whatever their clock
    pending: list[str] = field(default_factory=list)  # listed files whose checksum waits for them to settle
    unreadable: list[str] = field(default_factory=list)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} minutes" if seconds >= 120 else f"{seconds:.0f} seconds"


def _quoted(names: list[str]) -> str:
    shown = ", ".join(f'"{name}"' for name in names[:_NAMES_SHOWN])
    return shown + (f" and {len(names) - _NAMES_SHOWN} more" if len(names) > _NAMES_SHOWN else "")


def _describe(snapshot: FolderSnapshot, relative: str) -> str:
    entry = next(entry for entry in snapshot.entries if entry.relative == relative)
    what = "empty, 0 bytes" if entry.size == 0 and not is_temporary_name(relative.rsplit("/", 1)[-1]) else "a temporary file"
    return f'"{relative}" ({what})'


def _only_empty_files(snapshot: FolderSnapshot, names: list[str]) -> bool:
    """Every one of ``names`` is an empty file under its final name (no temporary name: no upload says it goes on)."""
    sizes = {entry.relative: entry.size for entry in snapshot.entries}
    return all(sizes.get(name) == 0 and not is_temporary_name(name.rsplit("/", 1)[-1]) for name in names)


def _is_folder(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


def _content_files(snapshot: FolderSnapshot) -> list[EntryState]:
    """Regular files that are (or may be) the job's content: what a writer may still hold open."""
    return [
        entry for entry in snapshot.entries
        if not entry.is_dir and not entry.is_link and not is_ignored_name(entry.relative.rsplit("/", 1)[-1])
    ]  # fmt: skip


class ReadinessTracker:
    def __init__(
        self,
        *,
        readiness: Readiness,
        marker_name: str,
        settle_seconds: float,
        abandon_after_seconds: float,
        probe: OpenFileProbe | None = None,
    ) -> None:
        """``probe`` asks whether files are still open for writing; by default one is made for the inbox."""
        self.readiness = readiness
        self.marker_name = marker_name
        self.settle_seconds = settle_seconds
        self.abandon_after_seconds = abandon_after_seconds
        self.probe = probe
        self._candidates: dict[str, _Candidate] = {}
        self._loose_reported: set[str] = set()
        self._hidden_reported: set[str] = set()

    def first_seen(self, name: str) -> float | None:
        """When ``name`` was first seen in the inbox (the clock of ``scan``), or None if it is not tracked."""
        candidate = self._candidates.get(name)
        return candidate.first_seen if candidate is not None else None

    def forget(self, name: str) -> None:
        self._candidates.pop(name, None)

    def scan(self, inbox: Path, now: float) -> InboxScan:
        result = InboxScan()
        try:
            entries = list(os.scandir(inbox))
        except (FileNotFoundError, NotADirectoryError):
            result.inbox_missing = True
            return result
        if self.probe is None:
            self.probe = OpenFileProbe.for_folder(inbox)
        self.probe.new_round()
        seen: set[str] = set()
        loose_now: set[str] = set()
        hidden_now: set[str] = set()
        for entry in entries:
            name = entry.name
            if is_ignored_name(name):
                if is_hidden_job_folder(name) and _is_folder(entry):
                    hidden_now.add(name)
                continue
            try:
                mode = entry.stat(follow_symlinks=False).st_mode
            except FileNotFoundError:
                continue
            if not stat.S_ISDIR(mode):  # loose files and links (even to folders) are left alone
                loose_now.add(name)
                continue
            seen.add(name)
            folder = Path(entry.path)
            try:
                snapshot = snapshot_folder(folder)
            except FileNotFoundError:
                continue  # renamed away while we looked
            except PermissionError:
                self._unreadable(name, self._candidate(name, None, now), [name], now, result)
                continue
            self._judge(name, folder, snapshot, now, result)
        for vanished in set(self._candidates) - seen:
            del self._candidates[vanished]
        result.new_loose_entries = sorted(loose_now - self._loose_reported)
        self._loose_reported = loose_now  # a name that leaves and comes back is reported again
        result.new_hidden_folders = sorted(hidden_now - self._hidden_reported)
        self._hidden_reported = hidden_now
        result.ready.sort(key=lambda folder: (folder.ready_since, folder.newest_mtime_ns, folder.name))
        return result

    # ------------------------------------------------------------------ what we saw

    def _candidate(self, name: str, snapshot: FolderSnapshot | None, now: float) -> _Candidate:
        candidate = self._candidates.get(name)
        if candidate is None:
            candidate = self._candidates[name] = _Candidate(fingerprint=(), stable_since=now, first_seen=now)
        if snapshot is None:
            return candidate
        if candidate.fingerprint != snapshot.fingerprint:
            candidate.fingerprint = snapshot.fingerprint
            candidate.stable_since = now
            candidate.ready_since = None
            candidate.newest_mtime_ns = max((entry.mtime_ns for entry in snapshot.entries), default=0)
        clocks: dict[str, _FileClock] = {}
        for entry in _content_files(snapshot):
            clock = candidate.files.get(entry.relative)
            if clock is None or (clock.size, clock.mtime_ns) != (entry.size, entry.mtime_ns):
                clock = _FileClock(entry.size, entry.mtime_ns, now)
            clocks[entry.relative] = clock
        candidate.files = clocks
        return candidate

    def _still_open(self, folder: Path, candidate: _Candidate) -> tuple[list[str], set[str]]:
        """(files some process has open for writing, files the kernel says nobody writes)."""
        assert self.probe is not None
        still_open: list[str] = []
        closed: set[str] = set()
        for relative in candidate.files:
            probe = self.probe.probe(folder / relative)
            if probe.open:
                still_open.append(relative)
            elif probe.closed:
                closed.add(relative)
        return still_open, closed

    # ------------------------------------------------------------------ the verdict

    def _judge(self, name: str, folder: Path, snapshot: FolderSnapshot, now: float, result: InboxScan) -> None:
        candidate = self._candidate(name, snapshot, now)
        candidate.unreadable_now = False
        self._verdict(name, folder, snapshot, candidate, now, result)
        if not candidate.unreadable_now:  # readable again: its clock starts afresh next time
            candidate.unreadable_since = None

    def _verdict(
        self, name: str, folder: Path, snapshot: FolderSnapshot, candidate: _Candidate, now: float, result: InboxScan
    ) -> None:
        if snapshot.unreadable:
            self._unreadable(name, candidate, list(snapshot.unreadable), now, result)
            return
        still_open, closed = self._still_open(folder, candidate)
        if still_open:  # quiet is not finished: the settle clock starts again once the writer closes
            candidate.stable_since = now
            candidate.ready_since = None
            for relative in still_open:
                candidate.files[relative].since = now
            self._wait(result, name, WaitKind.OPEN_FOR_WRITING, f"{_quoted(still_open)} still open for writing")
            return
        if is_complete_upload(folder):  # written whole by the web page and renamed in: nothing left to settle
            self._ready(name, candidate, now, result)
        elif self.readiness is Readiness.MARKER:
            self._judge_marker(name, folder, snapshot, candidate, closed, now, result)
        else:
            self._judge_settle(name, snapshot, candidate, now, result)

    def _judge_settle(
        self, name: str, snapshot: FolderSnapshot, candidate: _Candidate, now: float, result: InboxScan
    ) -> None:
        if self._incomplete(name, snapshot, candidate, snapshot.blocking_names, now, result):
            return
        unchanged_for = now - candidate.stable_since
        if unchanged_for >= self.settle_seconds:
            self._ready(name, candidate, now, result)
        else:
            self._wait(
                result,
                name,
                WaitKind.SETTLING,
                f"settling: unchanged for {unchanged_for:.0f} of {self.settle_seconds:.0f} seconds",
            )

    def _incomplete(
        self, name: str, snapshot: FolderSnapshot, candidate: _Candidate, blocking: list[str], now: float, result: InboxScan
    ) -> bool:
        """Empty, or holding temporary or empty files: waits, and after abandon_after_seconds unchanged, is abandoned."""
        if not snapshot.is_empty and not blocking:
            return False
        unchanged_for = now - candidate.stable_since
        if unchanged_for < self.abandon_after_seconds:
            if snapshot.is_empty:
                self._wait(result, name, WaitKind.EMPTY, "empty")
            elif unchanged_for >= self.settle_seconds and _only_empty_files(snapshot, blocking):
                self._wait(
                    result,
                    name,
                    WaitKind.EMPTY_FILES,
                    f"{_quoted(blocking)} empty (0 bytes), unchanged for {_minutes(unchanged_for)}: set aside "
                    f"after {_minutes(self.abandon_after_seconds)} unless written",
                )
            else:
                self._wait(result, name, WaitKind.UPLOADING, f"upload in progress: {_quoted(blocking)}")
            return True
        if snapshot.is_empty:
            failure = Failure(code=ErrorCode.JOB_EMPTY, reason=f"The folder stayed empty for {_minutes(unchanged_for)}.")
        else:
            failure = Failure(
                code=ErrorCode.INPUT_INCOMPLETE,
                reason=f"The copy never finished: {', '.join(_describe(snapshot, item) for item in blocking)} "
                f"unchanged for {_minutes(unchanged_for)}. Copy the files again.",
                details=[f"still incomplete: {item}" for item in blocking],
            )
        result.abandoned.append(AbandonedFolder(name, failure))
        return True

    def _judge_marker(
        self,
        name: str,
        folder: Path,
        snapshot: FolderSnapshot,
        candidate: _Candidate,
        closed: set[str],
        now: float,
        result: InboxScan,
    ) -> None:
        marker = next((entry for entry in snapshot.top_level() if entry.relative.lower() == self.marker_name.lower()
                       and not entry.is_dir), None)  # fmt: skip
        if marker is None:
            self._wait(result, name, WaitKind.NO_MARKER, f'waiting for the marker "{self.marker_name}"')
            return
        try:
            manifest = _read_marker(folder / marker.relative)
        except (PermissionError, NotAFile):
            self._unreadable(name, candidate, [marker.relative], now, result, what="read")
            return
        except FileNotFoundError:
            return  # removed while we looked: the next scan sees
        check = self._check_manifest(manifest, folder, snapshot, candidate, closed, now)
        if check.unreadable:
            self._unreadable(name, candidate, check.unreadable, now, result, what="read")
            return
        if check.mismatches:
            self._mismatch(name, marker.relative, candidate, check.mismatches, now, result)
            return
        listed_empty = {entry.relative for entry in snapshot.entries if entry.size == 0} & check.proven
        blocking = [item for item in snapshot.blocking_names if item != marker.relative and item not in listed_empty]
        if self._incomplete(name, snapshot, candidate, blocking, now, result):
            return
        arriving = [
            relative for relative, clock in candidate.files.items()
            if relative != marker.relative and relative not in check.proven and relative not in closed
            and now - clock.since < self.settle_seconds
        ]  # fmt: skip
        quiet_for = now - candidate.stable_since
        if arriving or check.pending:
            waiting_for = arriving + [item for item in check.pending if item not in arriving]
            self._wait(result, name, WaitKind.MARKER_EARLY, f"the marker is there; {_quoted(waiting_for)} not settled yet")
        elif not self._marker_came_last(candidate, marker.relative) and quiet_for < min(
            CLOSED_QUIET_SECONDS, self.settle_seconds
        ):
            self._wait(result, name, WaitKind.SETTLING, "the marker is there; the folder changed a moment ago")
        else:
            self._ready(name, candidate, now, result)

    @staticmethod
    def _marker_came_last(candidate: _Candidate, marker: str) -> bool:
        """The uploader wrote the marker after everything else: the marker is the folder's last change."""
        marker_clock = candidate.files.get(marker)
        others = [clock.since for relative, clock in candidate.files.items() if relative != marker]
        return marker_clock is not None and all(since < marker_clock.since for since in others)

    def _check_manifest(
        self, manifest: Manifest, folder: Path, snapshot: FolderSnapshot, candidate: _Candidate, closed: set[str], now: float
    ) -> _ManifestCheck:
        check = _ManifestCheck()
        if not manifest.present:
            return check
        files = {entry.relative: entry for entry in snapshot.entries if not entry.is_dir}
        folded = {relative.casefold(): entry for relative, entry in files.items()}
        for listed in manifest.entries:
            entry = files.get(listed.name) or folded.get(listed.name.casefold())
            if entry is None:
                check.mismatches.append(f'"{listed.name}" is missing')
            elif listed.size is not None and entry.size != listed.size:
                check.mismatches.append(f'"{entry.relative}" is {entry.size} bytes; the marker lists {listed.size}')
            elif listed.sha256 is not None:
                self._check_checksum(listed, entry, folder, candidate, closed, now, check)
        for number, text in manifest.bad_lines:
            check.mismatches.append(
                f'line {number} of the marker is not "<size> <name>" or "<sha256> <size> <name>": {text[:80]!r}'
            )
        return check

    def _check_checksum(
        self,
        listed: ManifestEntry,
        entry: EntryState,
        folder: Path,
        candidate: _Candidate,
        closed: set[str],
        now: float,
        check: _ManifestCheck,
    ) -> None:
        clock = candidate.files.get(entry.relative)
        settled = entry.relative in closed or (clock is not None and now - clock.since >= self.settle_seconds)
        if listed.size is None and not settled:
            check.pending.append(entry.relative)  # no size to wait for: hash once the file is quiet
            return
        cached = candidate.hashes.get(entry.relative)
        if cached is not None and cached[:2] == (entry.size, entry.mtime_ns):
            digest = cached[2]
        else:
            try:
                digest = sha256_file(folder / entry.relative, input_file=True)
            except PermissionError:
                check.unreadable.append(entry.relative)
                return
            except OSError:
                check.pending.append(entry.relative)
                return
            candidate.hashes[entry.relative] = (entry.size, entry.mtime_ns, digest)
        if digest == listed.sha256:
            check.proven.add(entry.relative)
        else:
            check.mismatches.append(f'"{entry.relative}" has sha256 {digest}; the marker lists {listed.sha256}')

    def _mismatch(
        self, name: str, marker: str, candidate: _Candidate, mismatches: list[str], now: float, result: InboxScan
    ) -> None:
        unchanged_for = now - candidate.stable_since
        if unchanged_for < self.abandon_after_seconds:
            self._wait(
                result, name, WaitKind.MANIFEST_MISMATCH, f'not as "{marker}" lists: {"; ".join(mismatches[:_NAMES_SHOWN])}'
            )
            return
        failure = Failure(
            code=ErrorCode.INPUT_MANIFEST_MISMATCH,
            reason=f'The files do not match the list in "{marker}" ({"; ".join(mismatches[:_NAMES_SHOWN])}), unchanged for '
            f"{_minutes(unchanged_for)}. Copy the files again (or correct the marker), then drop the folder again.",
            details=mismatches,
        )
        result.abandoned.append(AbandonedFolder(name, failure))

    def _unreadable(
        self, name: str, candidate: _Candidate, items: list[str], now: float, result: InboxScan, *, what: str = "list"
    ) -> None:
        """A folder the service may not list (or a file it may not read) waits, then goes to quarantine: never forever."""
        candidate.unreadable_now = True
        if candidate.unreadable_since is None:
            candidate.unreadable_since = now
        for_seconds = now - candidate.unreadable_since
        sentence = f"the service may not {what} {_quoted(items)} (permission denied)"
        if for_seconds < self.abandon_after_seconds:
            self._wait(result, name, WaitKind.UNREADABLE, sentence)
            return
        failure = Failure(
            code=ErrorCode.INPUT_UNREADABLE,
            reason=f"{sentence[0].upper()}{sentence[1:]} for {_minutes(for_seconds)}. Give the service's user read "
            "permission (and, for folders, execute permission), then drop the folder again.",
            details=[f"cannot be {'listed' if what == 'list' else 'read'}: {item}" for item in items],
        )
        result.abandoned.append(AbandonedFolder(name, failure))

    def _wait(self, result: InboxScan, name: str, kind: WaitKind, reason: str) -> None:
        result.arriving.append(WaitingFolder(name, kind, reason))

    @staticmethod
    def _ready(name: str, candidate: _Candidate, now: float, result: InboxScan) -> None:
        if candidate.ready_since is None:
            candidate.ready_since = now
        result.ready.append(ReadyFolder(name, candidate.ready_since, candidate.newest_mtime_ns))


def _read_marker(path: Path) -> Manifest:
    with open_regular(path) as handle:  # a pipe named like the marker never blocks the watching
        return read_manifest(handle.read(MAX_MARKER_BYTES))
