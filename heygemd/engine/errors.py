"""Errors the engine raises. Each names the file at fault, says what is wrong in plain language and carries
a stable code (heygemd.codes) that tells a caller whether trying again can help."""

from __future__ import annotations

from pathlib import Path

from heygemd.codes import ErrorCode, Failure


class EngineError(Exception):
    """Base class: a render could not be done. ``str(err)`` is one line, fit for a person."""

    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(self, message: str, path: Path | str | None = None, *, code: ErrorCode | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.reason = message
        if code is not None:
            self.code = code
        super().__init__(f"{self.path}: {message}" if self.path is not None else message)

    def failure(self) -> Failure:
        """The error as a report shows it: the file's name (never its place in a work folder) and the reason."""
        reason = f"{self.path.name}: {self.reason}" if self.path is not None else self.reason
        return Failure(code=self.code, reason=reason)


class MediaError(EngineError):
    """An input file is not usable media (empty, truncated, not audio/video, no stream...)."""

    code = ErrorCode.INPUT_UNDECODABLE


class AudioError(MediaError):
    """The audio decodes but cannot drive a render (silent length, NaN features...)."""

    code = ErrorCode.AUDIO_UNUSABLE


class NoFaceError(EngineError):
    """No face was found in any frame of the template."""

    code = ErrorCode.FACE_NOT_FOUND


class CheckpointError(EngineError):
    """A model checkpoint file is missing, not a checkpoint, truncated, or of the wrong shape."""


class RenderCancelled(EngineError):
    """The caller asked the render to stop; the partial output was removed."""

    code = ErrorCode.CANCELLED


class OutputMismatch(EngineError):
    """The finished video's sound and picture do not last as planned; it was not kept."""

    code = ErrorCode.OUTPUT_MISMATCH
