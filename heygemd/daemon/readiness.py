"""When a folder in the inbox becomes a job: settled (nothing changed for a while) or marked ready.

The tracker is fed one scan of the inbox at a time and remembers what it saw; it never
concludes anything from absence (a missing or empty inbox may be an unmounted share).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from heygemd.codes import ErrorCode
from heygemd.daemon.config import Readiness
from heygemd.daemon.contract import (
    EntryState,
    FolderSnapshot,
    is_hidden_job_folder,
    is_ignored_name,
    is_temporary_name,
    snapshot_folder,
)


@dataclass
class _Candidate:
    fingerprint: tuple[EntryState, ...]
    stable_since: float
    ready_since: float | None = None
    newest_mtime_ns: int = 0


@dataclass(frozen=True)
class ReadyFolder:
    name: str
    ready_since: float
    newest_mtime_ns: int


@dataclass(frozen=True)
class AbandonedFolder:
    name: str
    code: ErrorCode
    reason: str
    details: list[str]


@dataclass
class InboxScan:
    inbox_missing: bool = False
    ready: list[ReadyFolder] = field(default_factory=list)
    abandoned: list[AbandonedFolder] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    new_loose_entries: list[str] = field(default_factory=list)
    new_hidden_folders: list[str] = field(default_factory=list)  # dot-named folders: ignored, reported once

    def without(self, name: str) -> InboxScan:
        """The same scan with ``name`` gone (claimed)."""
        return InboxScan(
            inbox_missing=self.inbox_missing,
            ready=[folder for folder in self.ready if folder.name != name],
            abandoned=[folder for folder in self.abandoned if folder.name != name],
            waiting=[folder for folder in self.waiting if folder != name],
            new_loose_entries=self.new_loose_entries,
        )


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} minutes" if seconds >= 120 else f"{seconds:.0f} seconds"


def _describe(snapshot: FolderSnapshot, relative: str) -> str:
    entry = next(entry for entry in snapshot.entries if entry.relative == relative)
    what = "empty, 0 bytes" if entry.size == 0 and not is_temporary_name(relative.rsplit("/", 1)[-1]) else "a temporary file"
    return f'"{relative}" ({what})'


def _is_folder(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


class ReadinessTracker:
    def __init__(self, *, readiness: Readiness, marker_name: str, settle_seconds: float, abandon_after_seconds: float) -> None:
        self.readiness = readiness
        self.marker_name = marker_name
        self.settle_seconds = settle_seconds
        self.abandon_after_seconds = abandon_after_seconds
        self._candidates: dict[str, _Candidate] = {}
        self._loose_reported: set[str] = set()
        self._hidden_reported: set[str] = set()

    def forget(self, name: str) -> None:
        self._candidates.pop(name, None)

    def scan(self, inbox: Path, now: float) -> InboxScan:
        result = InboxScan()
        try:
            entries = list(os.scandir(inbox))
        except (FileNotFoundError, NotADirectoryError):
            result.inbox_missing = True
            return result
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
            try:
                snapshot = snapshot_folder(Path(entry.path))
            except FileNotFoundError:
                continue  # renamed away while we looked
            except PermissionError:
                result.waiting.append(name)
                continue
            self._judge(name, snapshot, now, result)
        for vanished in set(self._candidates) - seen:
            del self._candidates[vanished]
        result.new_loose_entries = sorted(loose_now - self._loose_reported)
        self._loose_reported = loose_now  # a name that leaves and comes back is reported again
        result.new_hidden_folders = sorted(hidden_now - self._hidden_reported)
        self._hidden_reported = hidden_now
        result.ready.sort(key=lambda folder: (folder.ready_since, folder.newest_mtime_ns, folder.name))
        return result

    def _judge(self, name: str, snapshot: FolderSnapshot, now: float, result: InboxScan) -> None:
        candidate = self._candidates.get(name)
        if candidate is None or candidate.fingerprint != snapshot.fingerprint:
            candidate = _Candidate(
                fingerprint=snapshot.fingerprint,
                stable_since=now,
                newest_mtime_ns=max((entry.mtime_ns for entry in snapshot.entries), default=0),
            )
            self._candidates[name] = candidate
        unchanged_for = now - candidate.stable_since

        if self.readiness is Readiness.MARKER:
            if snapshot.has_marker(self.marker_name):
                self._ready(name, candidate, now, result)
            else:
                result.waiting.append(name)
            return

        blocking = snapshot.blocking_names
        if snapshot.is_empty or blocking:
            if unchanged_for >= self.abandon_after_seconds:
                if snapshot.is_empty:
                    code, reason = ErrorCode.JOB_EMPTY, f"The folder stayed empty for {_minutes(unchanged_for)}."
                    details: list[str] = []
                else:
                    code = ErrorCode.INPUT_INCOMPLETE
                    reason = (
                        f"The copy never finished: {', '.join(_describe(snapshot, name) for name in blocking)} "
                        f"unchanged for {_minutes(unchanged_for)}. Copy the files again."
                    )
                    details = [f"still incomplete: {name}" for name in blocking]
                result.abandoned.append(AbandonedFolder(name, code, reason, details))
            else:
                result.waiting.append(name)
            return
        if unchanged_for >= self.settle_seconds:
            self._ready(name, candidate, now, result)
        else:
            result.waiting.append(name)

    @staticmethod
    def _ready(name: str, candidate: _Candidate, now: float, result: InboxScan) -> None:
        if candidate.ready_since is None:
            candidate.ready_since = now
        result.ready.append(ReadyFolder(name, candidate.ready_since, candidate.newest_mtime_ns))
