"""The optional manifest inside a READY marker: which files the job must hold, with sizes and checksums.

One file per line, in any of these forms (fields separated by spaces or tabs; the name is
the rest of the line, so it may hold spaces)::

    <size> <name>
    <sha256> <size> <name>
    <sha256> <name>            (what `sha256sum` prints; a leading "*" on the name is dropped)

A line of exactly `sha256sum`'s shape (the checksum, two spaces or a space and ``*``, the name) is
read as such first, so that a name beginning with digits and a space (``01 intro.mp4``) is a name,
not a size: write ``<sha256> <size> <name>`` with single spaces.

Blank lines and lines starting with ``#`` are skipped, a leading ``./`` on a name is dropped,
sizes may carry thousands separators (``1,234,567`` or ``1_234_567``), checksums may be
upper or lower case, names are read as the filesystem's (bytes that are not UTF-8 kept), and names are matched exactly first, then ignoring case (SMB clients
do). Names may point into sub-folders with ``/``. A marker that is empty, or none of whose
lines has this shape (``ok``, ``done``, a date), has no manifest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_MARKER_BYTES = 1024 * 1024  # a marker is a note, not a payload; a larger one is read this far
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_SIZE = re.compile(r"\d[\d,_]*")
_SHA256SUM_LINE = re.compile(r"(?P<sha256>[0-9a-fA-F]{64})(?:  | \*)(?P<name>.+)")  # sha256sum's own output


@dataclass(frozen=True)
class ManifestEntry:
    name: str
    size: int | None
    sha256: str | None  # lower case


@dataclass(frozen=True)
class Manifest:
    entries: tuple[ManifestEntry, ...]
    bad_lines: tuple[tuple[int, str], ...] = ()  # (line number, text) that have not the shape of an entry

    @property
    def present(self) -> bool:
        return bool(self.entries)


def _parse_line(line: str) -> ManifestEntry | None:
    fields = line.split(maxsplit=2)
    sha256 = size = None
    if checksum_line := _SHA256SUM_LINE.fullmatch(line):
        sha256, name = checksum_line["sha256"].lower(), checksum_line["name"]
    elif len(fields) >= 2 and _SHA256.fullmatch(fields[0]):
        sha256 = fields[0].lower()
        rest = line.split(maxsplit=1)[1]
        second = rest.split(maxsplit=1)
        if len(second) == 2 and _SIZE.fullmatch(second[0]):
            size, name = int(second[0].replace(",", "").replace("_", "")), second[1]
        else:
            name = rest
    elif len(fields) >= 2 and _SIZE.fullmatch(fields[0]):
        size, name = int(fields[0].replace(",", "").replace("_", "")), line.split(maxsplit=1)[1]
    else:
        return None
    name = name.strip().removeprefix("*")
    while name.startswith("./"):
        name = name[2:]
    if not name or name.startswith("/") or ".." in name.split("/"):
        return None
    return ManifestEntry(name=name, size=size, sha256=sha256)


def parse_manifest(text: str) -> Manifest:
    entries: list[ManifestEntry] = []
    bad: list[tuple[int, str]] = []
    for number, raw in enumerate(text.lstrip("\ufeff").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        entry = _parse_line(line)
        if entry is None:
            bad.append((number, line))
        else:
            entries.append(entry)
    if not entries:
        return Manifest(())  # free text ("ok", a date): the marker is only a marker
    return Manifest(tuple(entries), tuple(bad))


def read_manifest(data: bytes) -> Manifest:
    return parse_manifest(data[:MAX_MARKER_BYTES].decode("utf-8", errors="surrogateescape"))  # as os.fsdecode
