"""Optional retention (``outputs.keep_days``): old entries of the outbox, quarantine and archive are removed.

An entry is a folder or a ``.zip`` file directly in one of those folders; its age is its own
modification time, which heygemd sets when the entry arrives (a published folder gets its
job.json last, a quarantined one its error.json, an archived one is stamped when it is moved
there). Entries are removed oldest first. Never touched: hidden names (a zip or a copy still
being written, a temporary name), links, other files, and any entry that is or holds another
folder of the service (the work area, the inbox, the state folder). The work area itself is not
looked at: a job in progress lives only there.
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

import structlog

from heygemd.daemon.config import PathsConfig
from heygemd.daemon.fsutil import remove_tree
from heygemd.resultfiles import ZIP_SUFFIX

RETENTION_INTERVAL_SECONDS = 3600.0
SECONDS_PER_DAY = 86400


@dataclass(frozen=True)
class Expired:
    path: Path
    modified: float  # seconds since the epoch

    def age_days(self, now: float) -> float:
        return round((now - self.modified) / SECONDS_PER_DAY, 1)


def _protected(paths: PathsConfig) -> list[Path]:
    return [
        Path(os.path.realpath(folder))
        for folder in (paths.work, paths.inbox, paths.state, paths.outbox, paths.quarantine, paths.archive)
    ]


def _holds_protected(entry: Path, protected: list[Path]) -> bool:
    real = Path(os.path.realpath(entry))
    return any(real == folder or real in folder.parents for folder in protected)


def expired_entries(paths: PathsConfig, keep_days: int, now: float) -> list[Expired]:
    """Entries of outbox, quarantine and archive last modified more than ``keep_days`` ago, oldest first."""
    if keep_days <= 0:
        return []
    cutoff = now - keep_days * SECONDS_PER_DAY
    protected = _protected(paths)
    found: list[Expired] = []
    seen: set[Path] = set()
    for folder in (paths.outbox, paths.quarantine, paths.archive):
        real = Path(os.path.realpath(folder))
        if real in seen:  # two settings naming one folder
            continue
        seen.add(real)
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                info = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            is_zip = stat.S_ISREG(info.st_mode) and entry.name.lower().endswith(ZIP_SUFFIX)
            if not (stat.S_ISDIR(info.st_mode) or is_zip) or info.st_mtime >= cutoff:
                continue
            if _holds_protected(Path(entry.path), protected):
                continue
            found.append(Expired(Path(entry.path), info.st_mtime))
    found.sort(key=lambda expired: (expired.modified, str(expired.path)))
    return found


def apply_retention(
    paths: PathsConfig, keep_days: int, log: structlog.stdlib.BoundLogger, now: float | None = None
) -> list[Path]:
    """Remove what ``expired_entries`` lists, logging each; one that cannot be removed is logged and skipped."""
    now = time.time() if now is None else now
    removed: list[Path] = []
    for expired in expired_entries(paths, keep_days, now):
        try:
            remove_tree(expired.path)
        except OSError as err:
            log.warning("retention: cannot remove an old entry", path=str(expired.path), error=err.strerror or str(err))
            continue
        removed.append(expired.path)
        log.info(
            "retention: removed an old entry", path=str(expired.path), age_days=expired.age_days(now), keep_days=keep_days
        )
    return removed


class RetentionClock:
    """Says when retention is due: at the first question (start-up), then every ``interval`` seconds."""

    def __init__(self, interval: float = RETENTION_INTERVAL_SECONDS) -> None:
        self.interval = interval
        self._next: float | None = None

    def due(self, now: float) -> bool:
        if self._next is not None and now < self._next:
            return False
        self._next = now + self.interval
        return True
