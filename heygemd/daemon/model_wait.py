"""Waiting for the model files: a service whose weights are missing (an offline first run) or unusable keeps
running, says which file goes where, and builds its engine the moment valid files are in place, with no restart.

The engine settings name the files (``EngineSettings.files_to_load``); the configuration's ``[models]`` says
where each comes from (MuseTalk's: the weights table). A file is tried once it has stopped changing for ``SETTLE_SECONDS`` (a 400 MB copy
is not loaded half-way), and tried again only after it changed: a damaged file is not reloaded every poll.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

from pydantic import BaseModel, Field

from heygemd.daemon.config import ModelsConfig
from heygemd.engine.errors import CheckpointError
from heygemd.engine.settings import EngineSettings, WeightFile

POLL_SECONDS = 2.0  # how often the service looks at the checkpoint paths while it waits
SETTLE_SECONDS = 2.0  # a file must stay unchanged this long before it is loaded (a copy may be under way)
MISSING = "missing"

EngineT = TypeVar("EngineT")
FileState = tuple[bool, int, int]  # (exists, size, mtime_ns) of one weight file
Fingerprint = tuple[FileState, ...]


class MissingModelFile(BaseModel):
    """One weight file the service waits for: what it is, where it must be, what is wrong, where to get it."""

    label: str = Field(description='what the file is, e.g. "Wav2Lip weights"')
    path: str = Field(description="the absolute path the file must have")
    problem: str = Field(MISSING, description='"missing", or why the file there cannot be loaded')
    url: str = Field("", description="where `heygemd fetch-models` downloads it from")
    sha256: str = Field("", description="its expected sha256 (or the first digits of it)")

    def describe(self) -> str:
        """One line for a person: "place wav2lip_gan.pth at /srv/heygemd/checkpoints/wav2lip_gan.pth (...)"."""
        name = Path(self.path).name
        where = f"place {name} at {self.path}"
        source = f"download {self.url} on a machine with internet access" if self.url else "get it"
        check = f", sha256 starting {self.sha256[:16]}" if self.sha256 else ""
        state = "" if self.problem == MISSING else f"; the file there now {self.problem}"
        return f"{self.label}: {where} ({source}{check}){state}"


def file_state(path: Path) -> FileState:
    try:
        stat = path.stat()
    except OSError:
        return (False, 0, 0)
    return (True, stat.st_size, stat.st_mtime_ns)


class ModelWait(Generic[EngineT]):
    """Builds the engine when its weight files are valid; until then, ``missing`` says what is wanted.

    ``build`` makes the engine from the settings (``LipSyncEngine``); a ``CheckpointError`` means "not yet",
    any other error is the caller's to handle (no ffmpeg: waiting for weights would not help).
    """

    def __init__(
        self,
        settings: EngineSettings,
        sources: ModelsConfig,
        build: Callable[[EngineSettings], EngineT],
        clock: Callable[[], float] = time.monotonic,
        before_build: Callable[[], None] = lambda: None,
    ) -> None:
        """``before_build``: called just before a build is tried (the service shows "loading model")."""
        self.settings = settings
        self.before_build = before_build
        self.sources = sources
        self.build = build
        self.clock = clock
        self.files: list[WeightFile] = settings.files_to_load()
        self.missing: list[MissingModelFile] = []
        self._tried: Fingerprint | None = None
        self._seen: Fingerprint | None = None
        self._seen_since = 0.0

    def fingerprint(self) -> Fingerprint:
        return tuple(file_state(file.path) for file in self.files)

    def try_build(self) -> EngineT | None:
        """The engine if it could be built now; else None, with ``missing`` saying what is wanted.

        Tries at once the first time; after that, only files that changed, once they have stopped changing.
        """
        now = self.clock()
        self.files = self.settings.files_to_load()  # MuseTalk's VAE: its .safetensors once one is placed
        current = self.fingerprint()
        first_look = self._seen is None
        if current != self._seen:
            self._seen, self._seen_since = current, now
        if current == self._tried or (not first_look and now - self._seen_since < SETTLE_SECONDS):
            return None
        self._tried = current
        self.missing = [self._wanted(file, MISSING) for file, state in zip(self.files, current, strict=True) if not state[0]]
        if self.missing:
            return None
        self.before_build()
        try:
            engine = self.build(self.settings)
        except CheckpointError as err:
            self.missing = [self._problem(err)]
            return None
        self.missing = []
        return engine

    def _problem(self, err: CheckpointError) -> MissingModelFile:
        """The file the error names (or the first one), with the error's reason."""
        named = err.path.resolve() if err.path is not None else None
        file = next((file for file in self.files if file.path.resolve() == named), self.files[0] if self.files else None)
        if file is None:
            return MissingModelFile(label="model", path=str(named or ""), problem=err.reason)
        return self._wanted(file, err.reason)

    def _wanted(self, file: WeightFile, problem: str) -> MissingModelFile:
        url, sha256 = self.sources.source(file)
        return MissingModelFile(label=file.label, path=str(file.path.resolve()), problem=problem, url=url, sha256=sha256)
