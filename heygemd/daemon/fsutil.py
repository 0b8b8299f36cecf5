"""File-system primitives the daemon relies on: no-replace renames, free names, filesystem types.

Small files are written with heygemd.atomic.write_atomic.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import re
import shutil
from pathlib import Path

from heygemd.names import NAME_MAX_BYTES, numbered_name, temporary_name

NETWORK_FILESYSTEMS = frozenset(
    {"nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "9p", "afs", "ceph", "glusterfs", "lustre"}
)
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


def free_name(directory: Path, name: str, suffix: str = "", max_bytes: int = NAME_MAX_BYTES) -> Path:
    """``directory/name+suffix``, or ``name (2)+suffix``, ``name (3)+suffix``... whichever does not exist yet.

    Each candidate is shortened to ``max_bytes`` (keeping the number and ``suffix``), so a legal
    name never becomes too long for the filesystem by being made unique.
    """
    number = 1
    candidate = directory / numbered_name(name, number, suffix, max_bytes)
    while os.path.lexists(candidate):
        number += 1
        candidate = directory / numbered_name(name, number, suffix, max_bytes)
    return candidate


def move_without_overwrite(
    source: Path, directory: Path, name: str, suffix: str = "", max_bytes: int = NAME_MAX_BYTES
) -> Path:
    """Move ``source`` (file or folder) into ``directory`` as ``name+suffix``, made free by free_name. Returns the new path.

    Within one filesystem this is one rename, so the result appears whole. Across filesystems the
    copy is made under a hidden temporary name, then renamed, then the source removed.
    """
    directory.mkdir(parents=True, exist_ok=True)
    while True:
        target = free_name(directory, name, suffix, max_bytes)
        try:
            rename_no_replace(source, target)
            return target
        except FileExistsError:
            continue  # someone took the name between the check and the rename: try the next one
        except OSError as err:
            if err.errno != errno.EXDEV:
                raise
            break
    staging = directory / temporary_name(f"{name}{suffix}")
    try:
        if source.is_dir() and not source.is_symlink():
            shutil.copytree(source, staging, symlinks=True)
        else:
            shutil.copy2(source, staging, follow_symlinks=False)
        while True:
            target = free_name(directory, name, suffix, max_bytes)
            try:
                rename_no_replace(staging, target)
                break
            except FileExistsError:
                continue
    except BaseException:
        _remove(staging)
        raise
    _remove(source)
    return target


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()


def remove_tree(path: Path) -> None:
    """Remove a file or folder if present; links are removed, never followed."""
    _remove(path)


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
