"""Errors the engine raises. Each names the file at fault and says what is wrong in plain language."""

from __future__ import annotations

from pathlib import Path


class EngineError(Exception):
    """Base class: a render could not be done. ``str(err)`` is one line, fit for a person."""

    def __init__(self, message: str, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.reason = message
        super().__init__(f"{self.path}: {message}" if self.path is not None else message)


class MediaError(EngineError):
    """An input file is not usable media (empty, truncated, not audio/video, no stream...)."""


class AudioError(MediaError):
    """The audio decodes but cannot drive a render (silent length, NaN features...)."""


class NoFaceError(EngineError):
    """No face was found in any frame of the template."""


class CheckpointError(EngineError):
    """A model checkpoint file is missing, not a checkpoint, truncated, or of the wrong shape."""


class RenderCancelled(EngineError):
    """The caller asked the render to stop; the partial output was removed."""
