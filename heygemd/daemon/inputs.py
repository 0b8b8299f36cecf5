"""A job's inputs as they were when it was planned, and whether they changed since.

A claim is a rename: a client that still holds a file open (a paused SMB upload) keeps writing
into the claimed file. So each input's size, mtime and sha256 are recorded when the job is
planned, the cheap part (size, mtime) is checked before each render, and all of it before the
job is published. A result is never published from an input that changed while it was made.

An input that is deleted, or replaced by a link, a pipe or a folder, is never read (``InputGone``):
its video fails with ``input.missing`` or ``input.replaced`` (the audio: the whole job) and the others
go on. Nothing is ever read through a link, and a pipe never blocks the service.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

from heygemd.codes import CodedError, ErrorCode, Failure, failure_from_os_error
from heygemd.daemon.reports import InputFile
from heygemd.engine.files import NotAFile, file_kind, sha256_file


class InputGone(CodedError):
    """An input of a claimed job was deleted, or replaced by something that is not a regular file."""

    def __init__(self, name: str, reason: str, code: ErrorCode) -> None:
        super().__init__(f'"{name}" {reason}', code=code)
        self.name = name


def _missing(name: str) -> InputGone:
    return InputGone(name, "was deleted from the job folder after the job was claimed.", ErrorCode.INPUT_MISSING)


def _replaced(name: str, kind: str) -> InputGone:
    return InputGone(name, f"was replaced after the claim by {kind}, not a file; it was not read.", ErrorCode.INPUT_REPLACED)


def stat_input(folder: Path, name: str) -> InputFile:
    """Size and mtime only (the sha256 left empty): cheap enough before every render. InputGone if not a file."""
    try:
        info = os.stat(folder / name, follow_symlinks=False)
    except FileNotFoundError:
        raise _missing(name) from None
    if not stat.S_ISREG(info.st_mode):
        raise _replaced(name, file_kind(info.st_mode))
    return InputFile(name=name, size_bytes=info.st_size, mtime_ns=info.st_mtime_ns, sha256="")


def _sha256_input(folder: Path, name: str, on_chunk: Callable[[], None] | None = None) -> str:
    try:
        return sha256_file(folder / name, input_file=True, on_chunk=on_chunk)
    except NotAFile as err:
        raise _replaced(name, err.kind) from None
    except FileNotFoundError:
        raise _missing(name) from None


def fingerprint_input(folder: Path, name: str, on_chunk: Callable[[], None] | None = None) -> InputFile:
    """Size, mtime and sha256 of one input. The stat is taken before and after hashing: a file that
    changed while it was hashed gets the later stat, so the next check sees the difference."""
    before = stat_input(folder, name)
    digest = _sha256_input(folder, name, on_chunk)
    after = stat_input(folder, name)
    return after.model_copy(update={"sha256": digest if after == before else ""})


def fingerprint_inputs(folder: Path, names: list[str], on_chunk: Callable[[], None] | None = None) -> list[InputFile]:
    return [fingerprint_input(folder, name, on_chunk) for name in names]


def fingerprint_each(
    folder: Path, names: list[str], on_chunk: Callable[[], None] | None = None
) -> tuple[list[InputFile], dict[str, Failure]]:
    """Fingerprint every input that can be read; the others' failures by name (unreadable, deleted, replaced).

    Other errors (the share) are raised: they are nobody's input's fault.
    """
    fingerprints: list[InputFile] = []
    failures: dict[str, Failure] = {}
    for name in names:
        try:
            fingerprints.append(fingerprint_input(folder, name, on_chunk))
        except InputGone as gone:
            failures[name] = gone.failure()
        except PermissionError as err:
            failures[name] = failure_from_os_error(err, f'reading "{name}"', reading_input=True)
    return fingerprints, failures


def quick_state(folder: Path, names: list[str]) -> list[InputFile]:
    return [stat_input(folder, name) for name in names]


def changed_names(
    folder: Path,
    recorded: list[InputFile],
    *,
    with_content: bool = False,
    on_chunk: Callable[[], None] | None = None,
) -> list[str]:
    """Names of the recorded inputs whose size or mtime (and, ``with_content``, sha256) differ now.

    A file that is gone or is not a file any more raises InputGone; other OSErrors (the share) are raised.
    """
    changed = []
    for expected in recorded:
        now = stat_input(folder, expected.name)
        if (
            (now.size_bytes, now.mtime_ns) != (expected.size_bytes, expected.mtime_ns)
            or with_content
            and _sha256_input(folder, expected.name, on_chunk) != expected.sha256
        ):
            changed.append(expected.name)
    return changed
