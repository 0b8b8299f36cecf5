"""Content hashes of the engine's inputs, and the one way an input is opened. Outputs that appear whole: heygemd.atomic."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

HASH_CHUNK_BYTES = 1 << 20


class NotAFile(OSError):
    """The path is a link, a pipe, a device or a folder, not a regular file: it was not read."""

    def __init__(self, path: Path | str, kind: str) -> None:
        super().__init__(errno.EINVAL, f"not a regular file but {kind}", str(path))
        self.kind = kind


def file_kind(mode: int) -> str:
    """What an entry of ``mode`` (st_mode) is, in words: "a file", "a symbolic link", "a pipe (FIFO)"..."""
    kinds = (
        (stat.S_ISREG, "a file"),
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISFIFO, "a pipe (FIFO)"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((kind for test, kind in kinds if test(mode)), "a device")


def open_regular(path: Path, *, follow_links: bool = False) -> BinaryIO:
    """Open ``path`` for reading only if it is a regular file: never blocks on a pipe, follows a link only if asked.

    Raises NotAFile for anything else (checked on the opened descriptor, so a swap in between is caught).
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow_links else os.O_NOFOLLOW)
    try:
        descriptor = os.open(path, flags)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise NotAFile(path, "a symbolic link") from None
        raise
    mode = os.fstat(descriptor).st_mode
    if not stat.S_ISREG(mode):
        os.close(descriptor)
        raise NotAFile(path, file_kind(mode))
    os.set_blocking(descriptor, True)
    return os.fdopen(descriptor, "rb")


def sha256_file(path: Path, *, input_file: bool = False, on_chunk: Callable[[], None] | None = None) -> str:
    """Hex sha256 of a file's content, read in 1 MiB chunks.

    ``input_file``: a job's input, opened with ``open_regular`` (NotAFile for a link, a pipe...); the
    service's own files (model weights, often linked into place) are opened as usual. ``on_chunk`` is
    called after each chunk (a stall watch's sign of progress).
    """
    digest = hashlib.sha256()
    with open_regular(path) if input_file else open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
            if on_chunk is not None:
                on_chunk()
    return digest.hexdigest()
