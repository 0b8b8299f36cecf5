"""The warm engine of `heygemd run` and `heygemd worker`: loaded once per process, the same way in both."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from heygemd.engine import EngineSettings

if TYPE_CHECKING:
    from heygemd.engine.engine import LipSyncEngine

FACE_TRACKS_FOLDER = "face-tracks"  # under the state folder: re-used templates skip face detection


def with_state_defaults(settings: EngineSettings, state_dir: Path) -> EngineSettings:
    """The settings, with the face tracks kept in the state folder unless the configuration says where."""
    if settings.face_cache_dir is not None:
        return settings
    return settings.model_copy(update={"face_cache_dir": state_dir / FACE_TRACKS_FOLDER})


def start_engine(settings: EngineSettings, state_dir: Path) -> LipSyncEngine:
    """Load the engine (torch is imported here, once); raises EngineError (CheckpointError) when it cannot start."""
    from heygemd.engine import LipSyncEngine

    settings = with_state_defaults(settings, state_dir)
    structlog.get_logger("heygemd.engine").info(
        "loading engine", dry_run=settings.dry_run, checkpoint=str(settings.checkpoint), device=settings.device
    )
    return LipSyncEngine(settings)
