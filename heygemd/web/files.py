"""Serving a job's files: opened by name inside a known folder, never through a link, ranges and ZIPs streamed.

A file is reached in two steps that never take a path from the request: the job's folder in the
outbox or quarantine is opened by its listed name with O_NOFOLLOW (a link put there is refused),
then the file inside it is opened relative to that folder, again with O_NOFOLLOW, and must be a
regular file. What is sent is what was opened, even if the name changes meanwhile.

The ZIP of a job is written by the standard library's zipfile onto a sink that cannot seek: each
member is then followed by a data descriptor (sizes and CRC after the data) and zip64 is used where
sizes need it. So the archive streams out as it is read, with no temporary file and no second
read of the videos, and no extra dependency (zipstream-ng would do the same for one more package).
Members are stored, not deflated: the videos are compressed already and the web process should not
spend CPU the renders need.
"""

from __future__ import annotations

import mimetypes
import os
import re
import stat
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import quote

from heygemd.names import display_name, real_name
from heygemd.web.views import plain_name

CHUNK_BYTES = 256 * 1024
ZIP_CHUNK_BYTES = 1024 * 1024
# Shown in the browser; anything else (an index.html, a .mov) is only ever downloaded, never rendered on this site.
INLINE_TYPES = frozenset({
    "video/mp4", "video/webm", "audio/mpeg", "audio/wav", "audio/x-wav", "image/jpeg", "image/png", "image/webp",
    "application/json", "text/plain",
})  # fmt: skip
_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK  # NONBLOCK: a FIFO never hangs the open


class NotServed(Exception):
    """The file is not there to be served (missing, a link, not a regular file)."""


@dataclass
class OpenedFile:
    fd: int
    name: str
    size: int
    mtime: float
    inode: int

    @property
    def etag(self) -> str:
        return f'"{self.inode:x}-{self.size:x}-{int(self.mtime * 1e6):x}"'

    @property
    def last_modified(self) -> str:
        return format_datetime(datetime.fromtimestamp(self.mtime, UTC), usegmt=True)

    @property
    def media_type(self) -> str:
        return mimetypes.guess_type(self.name)[0] or "application/octet-stream"

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def open_folder(parent: Path, name: str) -> int:
    """A descriptor of the folder ``parent/name`` itself; links and anything else are refused."""
    if not plain_name(name):
        raise NotServed(name)
    try:
        return os.open(parent / name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        raise NotServed(name) from None


def open_in(folder_fd: int, name: str) -> OpenedFile:
    """Open the regular file ``name`` in the folder ``folder_fd`` (a link or a device is refused)."""
    if not plain_name(name):
        raise NotServed(name)
    try:
        fd = os.open(name, _OPEN_FLAGS, dir_fd=folder_fd)
    except OSError:
        raise NotServed(name) from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise NotServed(name)
    return OpenedFile(fd, name, info.st_size, info.st_mtime, info.st_ino)


def open_job_file(parent: Path, folder: str, name: str) -> OpenedFile:
    """The file ``name`` of the job folder ``parent/folder``; either may come in its shown form (``\\xNN``)."""
    try:
        return _open_job_file(parent, folder, name)
    except NotServed:
        if (real_name(folder), real_name(name)) == (folder, name):
            raise
    return _open_job_file(parent, real_name(folder), real_name(name))


def _open_job_file(parent: Path, folder: str, name: str) -> OpenedFile:
    folder_fd = open_folder(parent, folder)
    try:
        return open_in(folder_fd, name)
    finally:
        os.close(folder_fd)


# ---------------------------------------------------------------------------- ranges (RFC 9110 section 14)


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end}/{size}"


class Unsatisfiable(Exception):
    """The range lies outside the file: answered with 416 and the file's size."""


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The one range asked for, None for the whole file. A header this does not understand is ignored, as allowed."""
    if not header:
        return None
    match = _RANGE.match(header)  # several ranges ("0-1,5-6") do not match: the whole file is sent
    if match is None:
        return None
    first, last = match.group(1), match.group(2)
    if not first and not last:
        return None
    if not first:  # the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise Unsatisfiable
        return ByteRange(max(0, size - suffix), size - 1)
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None  # syntactically invalid: ignored
    if start >= size:
        raise Unsatisfiable
    return ByteRange(start, min(end, size - 1))


def if_range_allows(if_range: str | None, opened: OpenedFile) -> bool:
    """A Range with If-Range is honoured only while the file is still the one the client has part of."""
    return if_range is None or if_range.strip() in (opened.etag, opened.last_modified)


def read_span(opened: OpenedFile, start: int, length: int) -> Iterator[bytes]:
    """The bytes of the span, chunk by chunk; the file is closed when done (or when the client goes)."""
    try:
        position, left = start, length
        while left > 0:
            chunk = os.pread(opened.fd, min(CHUNK_BYTES, left), position)
            if not chunk:
                break  # the file shrank: the client sees a short body and can ask again
            position += len(chunk)
            left -= len(chunk)
            yield chunk
    finally:
        opened.close()


def content_disposition(name: str, attachment: bool) -> str:
    fallback = "".join(char if char.isascii() and char.isprintable() and char not in '"\\' else "_" for char in name)
    kind = "attachment" if attachment else "inline"
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(display_name(name), safe='')}"


# ---------------------------------------------------------------------------- the ZIP of a job


class _Sink:
    """Collects what zipfile writes; it has no seek or tell, so zipfile streams (data descriptors)."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._chunks.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


@dataclass(frozen=True)
class ZipMember:
    parent: Path  # the outbox or the quarantine
    folder: str  # the job's folder in it
    name: str  # a file in that folder
    arcname: str  # its name in the archive


def zip_stream(members: list[ZipMember]) -> Iterator[bytes]:
    """The archive, piece by piece. A member that vanished before its turn (retention) is left out."""
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:  # type: ignore[call-overload]
        for member in members:
            try:
                opened = open_job_file(member.parent, member.folder, member.name)
            except NotServed:
                continue
            try:
                info = zipfile.ZipInfo(member.arcname, date_time=_zip_time(opened.mtime))
                info.compress_type = zipfile.ZIP_STORED
                info.file_size = opened.size  # lets zipfile choose zip64 up front for large videos
                info.external_attr = 0o644 << 16
                with archive.open(info, "w") as target:
                    position = 0
                    while chunk := os.pread(opened.fd, ZIP_CHUNK_BYTES, position):
                        target.write(chunk)
                        position += len(chunk)
                        yield sink.take()
            finally:
                opened.close()
            yield sink.take()
    yield sink.take()  # the central directory


def _zip_time(mtime: float) -> tuple[int, int, int, int, int, int]:
    stamp = datetime.fromtimestamp(mtime).timetuple()[:6]
    return max(stamp, _ZIP_EPOCH)
