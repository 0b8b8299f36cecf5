"""A job's inputs as they were when it was planned, and whether they changed since.

A claim is a rename: a client that still holds a file open (a paused SMB upload) keeps writing
into the claimed file. So each input's size, mtime and sha256 are recorded when the job is
planned, the cheap part (size, mtime) is checked before each render, and all of it before the
job is published. A result is never published from an input that changed while it was made.
"""

from __future__ import annotations

import os
from pathlib import Path

from heygemd.daemon.reports import InputFile
from heygemd.engine.files import sha256_file


def stat_input(folder: Path, name: str) -> InputFile:
    """Size and mtime only (the sha256 left empty): cheap enough before every render."""
    info = os.stat(folder / name, follow_symlinks=False)
    return InputFile(name=name, size_bytes=info.st_size, mtime_ns=info.st_mtime_ns, sha256="")


def fingerprint_inputs(folder: Path, names: list[str]) -> list[InputFile]:
    """Size, mtime and sha256 of each input. The stat is taken before and after hashing: a file that
    changed while it was hashed gets the later stat, so the next check sees the difference."""
    fingerprints = []
    for name in names:
        before = stat_input(folder, name)
        digest = sha256_file(folder / name)
        after = stat_input(folder, name)
        fingerprints.append(after.model_copy(update={"sha256": digest if after == before else ""}))
    return fingerprints


def quick_state(folder: Path, names: list[str]) -> list[InputFile]:
    return [stat_input(folder, name) for name in names]


def changed_names(folder: Path, recorded: list[InputFile], *, with_content: bool = False) -> list[str]:
    """Names of the recorded inputs whose size or mtime (and, ``with_content``, sha256) differ now.

    A file that is gone counts as changed. An OSError other than a missing file (the share) is raised.
    """
    changed = []
    for expected in recorded:
        try:
            now = stat_input(folder, expected.name)
        except FileNotFoundError:
            changed.append(expected.name)
            continue
        if (
            (now.size_bytes, now.mtime_ns) != (expected.size_bytes, expected.mtime_ns)
            or with_content
            and sha256_file(folder / expected.name) != expected.sha256
        ):
            changed.append(expected.name)
    return changed
