"""Face tracks cached per template, so a re-used template runs no face detection at all.

A track is the raw detector box (or none) of each template frame, before pads and smoothing,
so a render with other pads still hits. The key is the template's content hash plus every
setting that changes what the detector finds. Entries are small .npy files written atomically;
the least recently used are removed when the folder outgrows its size limit.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from heygemd.atomic import atomic_output
from heygemd.engine.settings import Box

NO_FACE = -1  # a frame without a face is stored as a row of -1
SUFFIX = ".track.npy"


def track_key(template_sha256: str, detector_settings: dict[str, object]) -> str:
    """A file-name-safe key for one template under one detector configuration."""
    settings = json.dumps(detector_settings, sort_keys=True, default=str)
    return hashlib.sha256(f"{template_sha256}\n{settings}".encode()).hexdigest()[:40]


class TrackCache:
    """Raw face tracks in ``folder``, at most ``max_bytes`` in total."""

    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder = folder
        self.max_bytes = max_bytes

    def load(self, key: str, frames: int) -> list[Box | None] | None:
        """The cached track for the first ``frames`` frames, or None if it is not (all) there."""
        path = self.folder / f"{key}{SUFFIX}"
        try:
            rows = np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            return None
        if rows.ndim != 2 or rows.shape[1] != 4 or len(rows) < frames:
            return None
        os.utime(path)  # recently used: evicted last
        return [None if row[0] == NO_FACE else (int(row[0]), int(row[1]), int(row[2]), int(row[3])) for row in rows[:frames]]

    def store(self, key: str, track: Sequence[Box | None]) -> None:
        """Save ``track`` (replacing a shorter one), then trim the folder to its size limit."""
        self.folder.mkdir(parents=True, exist_ok=True)
        rows = np.array([box if box is not None else (NO_FACE,) * 4 for box in track], dtype=np.int32).reshape(-1, 4)
        path = self.folder / f"{key}{SUFFIX}"
        with atomic_output(path) as temporary, open(temporary, "wb") as handle:
            np.save(handle, rows, allow_pickle=False)
        self._evict()

    def _evict(self) -> None:
        entries = []
        for path in self.folder.glob(f"*{SUFFIX}"):
            try:
                stat = path.stat()
            except FileNotFoundError:  # another process evicted it
                continue
            entries.append((stat.st_mtime, stat.st_size, path))
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries):
            if total <= self.max_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size
