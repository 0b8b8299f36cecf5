"""The lip-sync engine: media in and out, audio features, faces, the lip-sync model (Wav2Lip or MuseTalk 1.5), blending.

It knows nothing of folders, jobs or daemons. Typical use::

    engine = LipSyncEngine(EngineSettings(checkpoint=..., detector="s3fd"))   # loads once, stays warm
    with engine.prepare_audio(Path("script.wav")) as audio:                    # decoded once + features, reusable
        report = engine.render(audio, Path("template.mp4"), Path("out/template.mp4"), RenderOptions())
"""

from heygemd.engine.errors import (
    AudioError,
    CheckpointError,
    EngineError,
    MediaError,
    NoFaceError,
    OutputMismatch,
    RenderCancelled,
)
from heygemd.engine.report import EngineInfo, ProgressStage, RenderProgress, RenderReport, Stage
from heygemd.engine.settings import (
    BlendMode,
    DetectorKind,
    EngineSettings,
    LoopPolicy,
    ModelKind,
    RenderOptions,
)

__all__ = [
    "AudioError",
    "BlendMode",
    "CheckpointError",
    "DetectorKind",
    "EngineInfo",
    "EngineError",
    "EngineSettings",
    "LipSyncEngine",
    "LoopPolicy",
    "MediaError",
    "ModelKind",
    "NoFaceError",
    "OutputMismatch",
    "PreparedAudio",
    "ProgressStage",
    "RenderCancelled",
    "RenderOptions",
    "RenderProgress",
    "RenderReport",
    "Stage",
]


def __getattr__(name: str):  # torch is imported only when the engine itself is asked for
    if name in ("LipSyncEngine", "PreparedAudio"):
        from heygemd.engine import engine

        return getattr(engine, name)
    raise AttributeError(name)
