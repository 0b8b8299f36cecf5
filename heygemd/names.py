"""Names heygemd makes up: shortened to fit one directory entry, and one convention for temporary names.

A name on Linux filesystems and on SMB and NFS shares is at most ``NAME_MAX_BYTES`` bytes of UTF-8,
so a legal 255-byte name grows too long as soon as a ``" (2)"``, a ``".zip"`` or a temporary
prefix is added. Every such name is made here, shortened at a character boundary, keeping its
extension (or the suffix that makes it unique).

Temporary files and folders follow one convention::

    .<final name, shortened>.heygemd-<machine>-<pid>-<random>.tmp

hidden (a leading dot) and ending in ``.tmp``, so the folder contract ignores them and never takes
one for content; ``<machine>`` says which kernel's process table ``<pid>`` belongs to, so that
start-up can tell a leftover of a crash from a file another live service is writing. A download
that must survive a restart to be resumed has no pid: ``.<final name>.heygemd-download.tmp``.

A name that is not valid UTF-8 (a Latin-1 or CP437 client, an old NFS mount, an unzipped legacy
archive) keeps its bytes on disk: Python holds it with each undecodable byte as a lone surrogate
(``os.fsdecode``). Such a string cannot be written as UTF-8, so wherever a name reaches JSON, a log
line or HTML it goes through ``display_name``: each undecodable byte is shown as ``\\xNN``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.parse import quote

from pydantic import BaseModel

NAME_MAX_BYTES = 255  # NAME_MAX: the longest name of one directory entry, in bytes (ext4, xfs, btrfs, SMB, NFS)
EXTENSION_MAX_CHARS = 16  # a longer "extension" is part of the name, not a file type
TEMPORARY_MARK = "heygemd"
TEMPORARY_SUFFIX = ".tmp"
DOWNLOAD_MARK = "download"
_RANDOM_BYTES = 3
_DANGLING = frozenset("\u200d\ufe0e\ufe0f")  # zero-width joiner, variation selectors: never left at the end of a cut
_TRAILING_JUNK = " ."  # Windows clients cannot open a name that ends with a space or a dot

_SURROGATE = re.compile("[\ud800-\udfff]")

_KERNEL_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
_PID_NAMESPACE = Path("/proc/self/ns/pid")

_TEMPORARY = re.compile(
    rf"\.(?P<final>.+)\.{TEMPORARY_MARK}-(?P<machine>[0-9a-f]+)-(?P<pid>\d+)-[0-9a-f]+{re.escape(TEMPORARY_SUFFIX)}",
    re.DOTALL,
)
_DOWNLOAD = re.compile(rf"\.(?P<final>.+)\.{TEMPORARY_MARK}-{DOWNLOAD_MARK}{re.escape(TEMPORARY_SUFFIX)}", re.DOTALL)
# Written by heygemd before this convention; recognised so that start-up removes them too.
_LEGACY = (
    re.compile(r"\.(?P<final>.+)\.heygemd-partial(?:-(?P<pid>\d+))?", re.DOTALL),  # move and zip staging, audio copy
    re.compile(r"\.(?P<final>.+)\.(?P<pid>\d+)\.(?:tmp|partial)(?:\.[A-Za-z0-9]+)?", re.DOTALL),  # small files, outputs
)


def display_name(name: str) -> str:
    """``name`` as it can be shown and written as UTF-8: each byte that is not UTF-8 shown as ``\\xNN``.

    Valid names come back unchanged. ``"face\\udcff.mp4"`` (the bytes ``face\\xff.mp4``) becomes
    ``"face\\\\xff.mp4"``, which prints as ``face\\xff.mp4``.
    """
    if not _SURROGATE.search(name):
        return name
    try:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that no byte made (not from the filesystem): escape it as is
        return name.encode("utf-8", "backslashreplace").decode("utf-8")


_SHOWN_BYTE = re.compile(r"\\x([89a-f][0-9a-f])")


def real_name(shown: str) -> str:
    """The name that ``display_name`` showed as ``shown``: each ``\\xNN`` (NN from 80) back to its byte.

    ``"face\\\\xff.mp4"`` -> ``"face\\udcff.mp4"`` (the bytes ``face\\xff.mp4``). Links and the page carry the
    shown form, which is plain UTF-8, and find the file on disk through this."""
    return _SHOWN_BYTE.sub(lambda match: chr(0xDC00 + int(match.group(1), 16)), shown)


def displayable(value: object) -> object:
    """``value`` (JSON-like: dicts, lists, strings, numbers) with every string, keys too, through ``display_name``."""
    if isinstance(value, str):
        return display_name(value)
    if isinstance(value, dict):
        return {displayable(key): displayable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [displayable(item) for item in value]
    return value


def url_quoted(name: str, safe: str = "") -> str:
    """``name`` as one segment of a URL path (``safe="/"``: a relative path): its own bytes percent-encoded
    (``%FF`` for a byte that is not UTF-8)."""
    return quote(os.fsencode(name), safe=safe)


def display_json(model: BaseModel, indent: int | None = 2) -> str:
    """``model`` as JSON text for people and other programs (reports, status, history, webhooks): names shown escaped."""
    separators = (",", ":") if indent is None else None
    return json.dumps(displayable(model.model_dump(mode="json")), ensure_ascii=False, indent=indent, separators=separators)


def name_bytes(name: str) -> int:
    """Length of ``name`` as the filesystem stores it (UTF-8; undecodable bytes count one each)."""
    return len(os.fsencode(name))


def extension(name: str) -> str:
    """``".mp4"`` of ``"a b.mp4"``: a short ASCII suffix after the last dot, else ``""``."""
    dot = name.rfind(".")
    found = name[dot:] if dot > 0 else ""
    tail = found[1:]
    return found if 0 < len(tail) <= EXTENSION_MAX_CHARS and tail.isascii() and tail.isalnum() else ""


def fit_name(name: str, max_bytes: int = NAME_MAX_BYTES, keep_suffix: str | None = None) -> str:
    """``name`` itself if it fits in ``max_bytes``, else shortened at a character boundary.

    What is kept at the end: ``keep_suffix`` (which ``name`` must end with, e.g. ``" (2).zip"``),
    by default the name's extension. A cut never splits a character, never separates a letter
    from its accents, and leaves no trailing space or dot.
    """
    if name_bytes(name) <= max_bytes:
        return name
    suffix = extension(name) if keep_suffix is None else keep_suffix
    if not name.endswith(suffix):
        raise ValueError(f"{name!r} does not end with {suffix!r}")
    head = name[: len(name) - len(suffix)]
    shortened = _cut(head, max_bytes - name_bytes(suffix))
    if not shortened:
        raise ValueError(f"{suffix!r} leaves no room for a name in {max_bytes} bytes")
    return shortened + suffix


def _cut(text: str, room: int) -> str:
    used = end = 0
    for char in text:
        size = name_bytes(char)
        if used + size > room:
            break
        used += size
        end += 1
    cluster_end = end
    while 0 < cluster_end < len(text) and _inside_cluster(text, cluster_end):
        cluster_end -= 1  # a letter and its accents, an emoji sequence: cut before it, not through it
    kept = text[: cluster_end or end]  # one cluster longer than the room (zalgo text): cut through it after all
    return kept.rstrip(_TRAILING_JUNK) or kept


def _inside_cluster(text: str, index: int) -> bool:
    return bool(unicodedata.combining(text[index])) or text[index] in _DANGLING or text[index - 1] in _DANGLING


def numbered_name(name: str, number: int, suffix: str = "", max_bytes: int = NAME_MAX_BYTES) -> str:
    """``name + suffix`` (number 1) or ``name (number) + suffix``, shortened to fit, keeping the number and suffix."""
    tail = suffix if number <= 1 else f" ({number}){suffix}"
    return fit_name(f"{name}{tail}", max_bytes, keep_suffix=tail)


@cache
def machine_tag() -> str:
    """Short id of this kernel and pid namespace: where a pid in a temporary name can be checked with kill(pid, 0)."""
    parts = []
    for source in (_KERNEL_BOOT_ID, _PID_NAMESPACE):
        try:
            parts.append(os.readlink(source) if source.is_symlink() else source.read_text().strip())
        except OSError:
            parts.append("")
    if not any(parts):  # nothing to tell machines apart: the host name it is
        parts.append(os.uname().nodename)
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:8]


def temporary_name(final_name: str) -> str:
    """A hidden, unique, ignored-by-the-contract sibling name under which ``final_name`` is prepared."""
    tail = f".{TEMPORARY_MARK}-{machine_tag()}-{os.getpid()}-{secrets.token_hex(_RANDOM_BYTES)}{TEMPORARY_SUFFIX}"
    return f".{fit_name(final_name, NAME_MAX_BYTES - 1 - name_bytes(tail), keep_suffix='')}{tail}"


def download_name(final_name: str) -> str:
    """The name a resumable download of ``final_name`` keeps across runs (no pid: the next run resumes it)."""
    tail = f".{TEMPORARY_MARK}-{DOWNLOAD_MARK}{TEMPORARY_SUFFIX}"
    return f".{fit_name(final_name, NAME_MAX_BYTES - 1 - name_bytes(tail), keep_suffix='')}{tail}"


@dataclass(frozen=True)
class TemporaryName:
    """What a name of heygemd's temporary convention says."""

    final: str  # the (perhaps shortened) name it was being prepared for
    pid: int | None  # the writing process; None for downloads and some older names
    machine: str | None  # machine_tag() of the writer; None where the name does not say (older names)
    resumable: bool = False  # a download kept on purpose across runs

    @property
    def checkable(self) -> bool:
        """True if ``pid`` is a process of this machine, so kill(pid, 0) tells whether it lives."""
        return self.pid is not None and self.machine == machine_tag()


def parse_temporary_name(name: str) -> TemporaryName | None:
    """The parts of a heygemd temporary name (this convention or an older one), or None for any other name."""
    if match := _TEMPORARY.fullmatch(name):
        return TemporaryName(match["final"], int(match["pid"]), match["machine"])
    if match := _DOWNLOAD.fullmatch(name):
        return TemporaryName(match["final"], None, None, resumable=True)
    for pattern in _LEGACY:
        if match := pattern.fullmatch(name):
            return TemporaryName(match["final"], int(match["pid"]) if match["pid"] else None, None)
    return None


def is_heygemd_temporary(name: str) -> bool:
    return parse_temporary_name(name) is not None
