"""Files that appear whole or not at all, for the engine and the daemon alike, and the clean-up of their leftovers.

Everything is first written under a temporary sibling name (heygemd.names.temporary_name), then
renamed over the final name, so a reader sees the old content or the new, never a mix.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from heygemd.names import TemporaryName, parse_temporary_name, temporary_name

FOREIGN_TEMPORARY_SECONDS = 24 * 3600.0  # another machine's temporary file unchanged this long is a leftover


def fsync_directory(directory: Path) -> None:
    """Make the renames in ``directory`` survive a power cut, where the filesystem allows it."""
    try:
        descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # some network filesystems refuse fsync on directories
    finally:
        os.close(descriptor)


def fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


@contextmanager
def atomic_output(path: Path, *, durable: bool = False, create_parent: bool = True) -> Iterator[Path]:
    """Yield a hidden temporary path beside ``path``; rename it to ``path`` only if the block succeeds.

    On any exception the temporary file is removed, so a reader never sees half a file and
    nothing is left behind. ``durable`` adds the fsyncs that make the new content survive a
    power cut. Without ``create_parent``, a missing folder is a FileNotFoundError rather than
    created again (a job folder another service removed stays removed).
    """
    if create_parent:
        path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(temporary_name(path.name))
    try:
        yield temporary
        if durable:
            fsync_file(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    if durable:
        fsync_directory(path.parent)


def write_atomic(path: Path, content: str | bytes, *, durable: bool = True, create_parent: bool = True) -> None:
    """Write ``content`` (text as UTF-8) to ``path`` so that readers see the old or the new content, never a mix."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    with atomic_output(path, durable=durable, create_parent=create_parent) as temporary:
        with open(temporary, "wb") as handle:
            handle.write(data)


# ---------------------------------------------------------------------------- leftovers


@dataclass(frozen=True)
class FoundTemporary:
    path: Path
    name: TemporaryName
    changed: float  # newest mtime or ctime (a copy keeps its source's mtime, not its ctime), epoch seconds


def find_temporaries(folder: Path) -> list[FoundTemporary]:
    """heygemd's temporary files and folders directly in ``folder`` (none if it is missing or unreadable)."""
    found = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    for entry in entries:
        parsed = parse_temporary_name(entry.name)
        if parsed is None:
            continue
        try:
            found.append(FoundTemporary(Path(entry.path), parsed, _last_change(entry)))
        except OSError:
            continue  # removed meanwhile
    return sorted(found, key=lambda item: item.path.name)


def _last_change(entry: os.DirEntry) -> float:
    info = entry.stat(follow_symlinks=False)
    newest = max(info.st_mtime, info.st_ctime)
    if entry.is_dir(follow_symlinks=False):  # a folder being copied: its newest entry tells
        with os.scandir(entry.path) as inside:
            for item in inside:
                item_info = item.stat(follow_symlinks=False)
                newest = max(newest, item_info.st_mtime, item_info.st_ctime)
    return newest


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, another user's
    return True


def is_leftover(found: FoundTemporary, started_at: float, now: float | None = None) -> bool:
    """True if nobody is writing ``found`` any more.

    A download is kept (the next fetch resumes it). A file of this machine is a leftover once
    unchanged since ``started_at`` (this process's start) and its process is gone, or its pid
    is this process's own (reused after a reboot). Another machine's, or one whose name does not
    say, is a leftover only once unchanged for FOREIGN_TEMPORARY_SECONDS.
    """
    name = found.name
    if name.resumable:
        return False
    if name.checkable:
        assert name.pid is not None
        return found.changed < started_at and (name.pid == os.getpid() or not pid_alive(name.pid))
    return (time.time() if now is None else now) - found.changed >= FOREIGN_TEMPORARY_SECONDS


@dataclass
class CleanUp:
    removed: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)  # and why (e.g. permission denied)


def remove_leftover_temporaries(folders: Iterable[Path], started_at: float) -> CleanUp:
    """Remove heygemd's leftover temporary files and folders directly in ``folders``."""
    result = CleanUp()
    for folder in folders:
        for found in find_temporaries(folder):
            if not is_leftover(found, started_at):
                continue
            try:
                if found.path.is_dir() and not found.path.is_symlink():
                    shutil.rmtree(found.path)
                else:
                    found.path.unlink()
            except FileNotFoundError:
                continue  # another service cleaned it first
            except OSError as err:
                result.failed.append((found.path, err.strerror or str(err)))
                continue
            result.removed.append(found.path)
    return result
