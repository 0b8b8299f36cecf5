"""File-system primitives: renames that never overwrite, and the filesystem type from the mount table."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from heygemd.daemon.fsutil import (
    filesystem_type,
    free_name,
    is_network_filesystem,
    move_without_overwrite,
    rename_no_replace,
)
from heygemd.names import NAME_MAX_BYTES, name_bytes

MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 22 0:35 / /srv/share rw,relatime shared:20 - cifs //nas/media rw,vers=3.1.1
41 22 0:36 / /srv/nfs\\040area rw,relatime - nfs4 nas:/export rw
42 22 0:37 / /srv/share/local rw - tmpfs tmpfs rw
"""


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/srv/share/inbox", "cifs"),
        ("/srv/nfs area/inbox", "nfs4"),
        ("/srv/share/local/x", "tmpfs"),
        ("/home/x", "ext4"),
        ("/srv/shared", "ext4"),
    ],
)
def test_filesystem_type_from_the_mount_table(tmp_path, path, expected):
    table = tmp_path / "mountinfo"
    table.write_text(MOUNTINFO)
    assert filesystem_type(Path(path), table) == expected


def test_network_filesystems():
    assert all(is_network_filesystem(kind) for kind in ("nfs", "nfs4", "cifs", "smb3", "fuse.sshfs"))
    assert not any(is_network_filesystem(kind) for kind in ("ext4", "xfs", "btrfs", "zfs", "tmpfs"))


def test_renames_never_overwrite(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x").write_text("new")
    (tmp_path / "job").mkdir()
    (tmp_path / "job" / "x").write_text("old")
    with pytest.raises(FileExistsError):
        rename_no_replace(tmp_path / "a", tmp_path / "job")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileExistsError):  # plain rename(2) would replace an empty folder
        rename_no_replace(tmp_path / "a", tmp_path / "empty")
    moved = move_without_overwrite(tmp_path / "a", tmp_path, "job")
    assert moved.name == "job (2)" and (moved / "x").read_text() == "new"
    assert (tmp_path / "job" / "x").read_text() == "old"


@pytest.mark.parametrize("name", ["j" * NAME_MAX_BYTES, "名" * 85, "🎬" * 63 + "abc"])
def test_free_names_of_the_longest_names_fit(tmp_path, name):
    (tmp_path / name).mkdir()
    second = free_name(tmp_path, name)
    assert second.name.endswith(" (2)") and name_bytes(second.name) <= NAME_MAX_BYTES
    second.mkdir()
    third = free_name(tmp_path, name)
    assert third.name.endswith(" (3)") and name_bytes(third.name) <= NAME_MAX_BYTES
    zipped = free_name(tmp_path, name, ".zip")
    assert zipped.name.endswith(".zip") and name_bytes(zipped.name) <= NAME_MAX_BYTES
    zipped.write_bytes(b"z")
    assert free_name(tmp_path, name, ".zip").name.endswith(" (2).zip")
    for number in range(2, 12):
        moved = move_without_overwrite(_file(tmp_path / "src", number), tmp_path, name)
        assert moved.name.endswith(f" ({number + 1})") and name_bytes(moved.name) <= NAME_MAX_BYTES


def _file(path: Path, number: int) -> Path:
    path.write_text(str(number))
    return path


def test_a_move_across_filesystems_with_the_longest_name_leaves_no_staging(tmp_path):
    other = Path("/dev/shm")
    if not other.is_dir() or other.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("needs /dev/shm on another filesystem than the test's temporary folder")
    name = "名" * 85
    (tmp_path / name).mkdir()
    source = Path(tempfile.mkdtemp(dir=other))
    try:
        (source / "a.wav").write_bytes(b"a")
        moved = move_without_overwrite(source, tmp_path, name)
        assert moved.name == "名" * 83 + " (2)" and (moved / "a.wav").read_bytes() == b"a"
        assert sorted(entry.name for entry in tmp_path.iterdir()) == sorted([name, moved.name])
        assert not source.exists()
    finally:
        shutil.rmtree(source, ignore_errors=True)
