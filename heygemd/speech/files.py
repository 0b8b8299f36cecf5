"""The sha256 of a voice's weights or library file, computed once per (path, size, mtime)."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

_HASH_CHUNK = 1 << 20


@cache
def _file_sha256(path: Path, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    info = path.stat()
    return _file_sha256(path.resolve(), info.st_size, info.st_mtime_ns)
