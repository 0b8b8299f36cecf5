"""The web upload's mark: a job folder the web page wrote completely is claimed at once, without a settle window.

`heygemd web` writes every file of an upload into a staging folder, then this mark, then renames the folder
into the inbox (one rename). The mark lists each file with its size, modification time and inode. The
service's readiness trusts the folder only while every file, and no other, matches the mark exactly: a
folder copied or dropped by hand (mark included) has new inodes and is settled like any other, and a file
added or changed after the upload makes the folder settle again.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ValidationError

UPLOAD_MARK = ".heygemd-web-upload.json"  # hidden: the folder contract ignores it as job content
MAX_MARK_BYTES = 1024 * 1024


class MarkedFile(BaseModel):
    relative: str
    size: int
    mtime_ns: int
    inode: int


class UploadMark(BaseModel):
    files: list[MarkedFile]


def _files(folder: Path) -> list[MarkedFile]:
    """Every regular file under ``folder`` but the mark, as the mark lists them (links and odd entries: none)."""
    found: list[MarkedFile] = []
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        for name in sorted(names):
            path = Path(root) / name
            relative = path.relative_to(folder).as_posix()
            if relative == UPLOAD_MARK:
                continue
            info = path.lstat()
            found.append(MarkedFile(relative=relative, size=info.st_size, mtime_ns=info.st_mtime_ns, inode=info.st_ino))
    return found


def write_upload_mark(folder: Path) -> None:
    """The web, last before the rename: mark ``folder``'s files as written completely."""
    (folder / UPLOAD_MARK).write_text(UploadMark(files=_files(folder)).model_dump_json(), encoding="utf-8")


def is_complete_upload(folder: Path) -> bool:
    """The service: ``folder`` is a web upload exactly as the web wrote it (claimed without settling)."""
    try:
        with open(folder / UPLOAD_MARK, "rb") as handle:
            mark = UploadMark.model_validate_json(handle.read(MAX_MARK_BYTES))
        return bool(mark.files) and mark.files == _files(folder)
    except (OSError, ValidationError, ValueError):
        return False
