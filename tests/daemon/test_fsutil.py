"""File-system primitives: renames that never overwrite, and the filesystem type from the mount table."""

from __future__ import annotations

from pathlib import Path

import pytest

from heygemd.daemon.fsutil import filesystem_type, is_network_filesystem, move_without_overwrite, rename_no_replace

MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 22 0:35 / /srv/share rw,relatime shared:20 - cifs //nas/media rw,vers=3.1.1
41 22 0:36 / /srv/nfs\\040area rw,relatime - nfs4 nas:/export rw
42 22 0:37 / /srv/share/local rw - tmpfs tmpfs rw
"""


@pytest.mark.parametrize(
    ("path", "expected"),
    [("/srv/share/inbox", "cifs"), ("/srv/nfs area/inbox", "nfs4"), ("/srv/share/local/x", "tmpfs"),
     ("/home/x", "ext4"), ("/srv/shared", "ext4")],
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
