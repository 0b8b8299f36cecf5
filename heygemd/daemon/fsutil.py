"""File-system primitives the daemon relies on: no-replace renames, atomic small files, filesystem types."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import json
import os
import re
import shutil
from pathlib import Path

NETWORK_FILESYSTEMS = frozenset({"nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "9p", "afs", "ceph", "glusterfs", "lustre"})
# write_atomic's temporary: ".<name>.<pid>.tmp" beside the file it replaces.
_ATOMIC_TEMPORARY = re.compile(r"^\..+\.[0-9]+\.tmp$", re.DOTALL)
_RENAME_NOREPLACE = 1
_AT_FDCWD = -100

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_renameat2 = getattr(_libc, "renameat2", None)


def rename_no_replace(source: Path, target: Path) -> None:
    """Rename ``source`` to ``target``, failing with FileExistsError if ``target`` exists.

    Uses renameat2(RENAME_NOREPLACE) where the kernel and filesystem support it (atomic);
    elsewhere (some network filesystems) an existence check right before the rename.
    """
    if _renameat2 is not None:
        result = _renameat2(_AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(target), _RENAME_NOREPLACE)
        if result == 0:
            return
        code = ctypes.get_errno()
        if code not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
            raise OSError(code, os.strerror(code), str(source), None, str(target))
    if os.path.lexists(target):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(target))
    os.rename(source, target)


def free_name(directory: Path, name: str, suffix: str = "") -> Path:
    """``directory/name+suffix``, or ``name (2)+suffix``, ``name (3)+suffix``... whichever does not exist yet."""
    candidate = directory / f"{name}{suffix}"
    number = 2
    while os.path.lexists(candidate):
        candidate = directory / f"{name} ({number}){suffix}"
        number += 1
    return candidate


def move_without_overwrite(source: Path, directory: Path, name: str) -> Path:
    """Move ``source`` (file or folder) into ``directory`` as ``name``, suffixed if taken. Returns the new path.

    Within one filesystem this is one rename, so the result appears whole. Across filesystems the
    copy is made under a hidden temporary name, then renamed, then the source removed.
    """
    directory.mkdir(parents=True, exist_ok=True)
    while True:
        target = free_name(directory, name)
        try:
            rename_no_replace(source, target)
            return target
        except FileExistsError:
            continue  # someone took the name between the check and the rename: try the next one
        except OSError as err:
            if err.errno != errno.EXDEV:
                raise
            break
    staging = directory / f".{name}.heygemd-partial-{os.getpid()}"
    _remove(staging)
    try:
        if source.is_dir() and not source.is_symlink():
            shutil.copytree(source, staging, symlinks=True)
        else:
            shutil.copy2(source, staging, follow_symlinks=False)
    except BaseException:
        discard_partial(staging)  # e.g. the destination's disk filled up: the source is intact, the copy is junk
        raise
    while True:
        target = free_name(directory, name)
        try:
            rename_no_replace(staging, target)
            break
        except FileExistsError:
            continue
    _remove(source)
    return target


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()


def discard_partial(path: Path) -> None:
    """Remove a half-written temporary file or folder, on the way out of an error (which stays the one raised)."""
    try:
        _remove(path)
    except OSError:
        pass


def remove_tree(path: Path) -> None:
    """Remove a file or folder if present; links are removed, never followed."""
    _remove(path)


def fsync_directory(directory: Path) -> None:
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


def write_atomic(path: Path, text: str, *, durable: bool = True, create_parent: bool = True) -> None:
    """Write ``text`` to ``path`` so that readers see the old or the new content, never a mix.

    ``durable`` adds the fsyncs that make the new content survive a power cut. Without
    ``create_parent``, a missing folder is a FileNotFoundError rather than created again.
    """
    if create_parent:
        path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(atomic_temporary_name(path.name))
    try:
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(text)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        discard_partial(temporary)  # a full disk must not leave half a temporary file behind
        raise
    if durable:
        fsync_directory(path.parent)


def atomic_temporary_name(name: str, pid: int | None = None) -> str:
    """The name write_atomic writes ``name`` under first (a crash may leave it behind)."""
    return f".{name}.{os.getpid() if pid is None else pid}.tmp"


def is_atomic_temporary(name: str) -> bool:
    return _ATOMIC_TEMPORARY.match(name) is not None


def write_json_atomic(path: Path, data: object, *, durable: bool = True) -> None:
    write_atomic(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n", durable=durable)


def filesystem_type(path: Path, mountinfo: Path = Path("/proc/self/mountinfo")) -> str:
    """Type of the filesystem holding ``path`` (its longest mount point prefix), e.g. ext4, nfs4, cifs."""
    target = os.path.realpath(path)
    best_mount, best_type = "", "unknown"
    try:
        lines = mountinfo.read_text().splitlines()
    except OSError:
        return best_type
    for line in lines:
        before, _, after = line.partition(" - ")
        fields = before.split()
        if len(fields) < 5 or not after:
            continue
        mount_point = fields[4].encode().decode("unicode_escape")  # \040 for spaces
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best_mount):
            best_mount, best_type = mount_point, after.split()[0]
    return best_type


def is_network_filesystem(fs_type: str) -> bool:
    return fs_type in NETWORK_FILESYSTEMS or fs_type.startswith("fuse")


def same_filesystem(first: Path, second: Path) -> bool:
    return os.stat(first).st_dev == os.stat(second).st_dev


_SIZE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def human_size(size: int, separator: str = " ") -> str:
    """``size`` bytes for a person, in binary units with at most one decimal: "900 B", "1.5 GiB", "2 TiB"."""
    value = float(size)
    unit = _SIZE_UNITS[0]
    for unit in _SIZE_UNITS:
        if abs(value) < 1024 or unit == _SIZE_UNITS[-1]:
            break
        value /= 1024
    number = f"{value:.1f}".removesuffix(".0") if unit != "B" else f"{int(value)}"
    return f"{number}{separator}{unit}"
