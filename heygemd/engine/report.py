"""What one render reports: written as the JSON sidecar next to each output video."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, Field

from heygemd.engine.settings import Box, DetectorKind, ModelKind, RenderOptions


class InputFile(BaseModel):
    path: Path
    sha256: str
    size_bytes: int
    duration_s: float


class VideoInput(InputFile):
    fps: float
    width: int
    height: int
    frame_count: int
    codec: str
    rotation: int = 0
    variable_frame_rate: bool = False
    is_still: bool = False


class AudioInput(InputFile):
    """``sha256`` and ``size_bytes`` are those of exactly the bytes that were decoded (the file was read once)."""

    sample_rate: int
    channels: int
    codec: str
    snapshot_sha256: str = Field(description="sha256 of the decoded audio (a WAV) that was analysed and muxed")
    snapshot_duration_s: float = Field(description="length of that decoded audio: the output's sound lasts this long")


class OutputFile(BaseModel):
    path: Path
    duration_s: float = Field(description="length of the picture track")
    planned_duration_s: float = Field(description="frame_count / fps as planned; the picture track was checked against it")
    audio_duration_s: float = Field(description="length of the sound track, checked against the picture and the snapshot")
    audio_sample_rate: int
    audio_channels: int
    fps: float
    width: int
    height: int
    frame_count: int
    codec: str = "h264"
    crf: int
    encoder: str = "libx264"


class FaceStats(BaseModel):
    detector: str  # "s3fd", "lbp" or "fixed_box"
    frames_with_face: int
    frames_without_face: int
    fixed_box: Box | None = None
    cache_hit: bool = Field(False, description="the face track came from the cache: no detection ran")
    detect_stride: int = 1


class LipSyncStats(BaseModel):
    """What the lip-sync model did besides drawing mouths."""

    silent_frames: int = Field(
        0, description="frames with a face where the audio was silent: the template's own frame was shown"
    )
    template_cache_hits: int = Field(
        0, description="face crops whose encoding came from the template cache (MuseTalk: VAE latents)"
    )


class CheckpointReport(BaseModel):
    path: Path
    sha256: str
    size_bytes: int
    known_name: str | None = Field(None, description="public checkpoint the hash matches, or None if unknown")


class Stage(StrEnum):
    """The timed stages of a render: the fields of StageTimings besides ``total``."""

    PROBE = "probe"
    AUDIO = "audio"
    DECODE = "decode"
    DETECT = "detect"
    MODEL = "model"
    BLEND = "blend"
    RESTORE = "restore"
    ENCODE = "encode"


class ProgressStage(StrEnum):
    DETECT = "detect"  # the face track is being built (a CPU render waits for it before encoding)
    RENDER = "render"  # frames are being written
    RESTORE = "restore"  # faces of the frames just rendered are being restored (GFPGAN)
    SPEECH = "speech"  # a script is being spoken (frames_done / frames_total count its sentences)


class EngineInfo(BaseModel):
    """What a loaded engine is: in the service's log at start-up, its status and every job.json."""

    heygemd_version: str
    device: str = Field(description="where the model runs: cpu, cuda, cuda:N (a dry run: cpu)")
    dry_run: bool = Field(False, description="no model: templates are fitted to the audio, mouths unchanged")
    model: ModelKind = Field(ModelKind.WAV2LIP, description="the lip-sync model: wav2lip or musetalk")
    model_files: list[CheckpointReport] = Field(
        default_factory=list, description="every weights file the model loaded (MuseTalk: UNet, VAE, whisper)"
    )
    detector: DetectorKind | None = Field(None, description="s3fd or lbp; None in a dry run")
    checkpoint: CheckpointReport | None = Field(
        None, description="the lip-sync generator's weights (Wav2Lip's .pth, MuseTalk's unet.pth); None in a dry run"
    )
    detector_checkpoint: CheckpointReport | None = Field(None, description="the S3FD weights; None for lbp or a dry run")
    batch_size: int = Field(description="frames per generator batch, as configured")
    encoder: str = Field(description="the video encoder: libx264 or h264_nvenc")
    half_precision: bool = Field(False, description="the model and the detector run in float16 (CUDA only)")
    face_cache: Path | None = Field(None, description="folder of the face-track cache; None: no cache")
    restorer: CheckpointReport | None = Field(None, description="the GFPGAN face restorer's weights; None: no restorer")


class StageTimings(BaseModel):
    """Seconds spent in each stage (wall clock inside that stage); one field per Stage, and the total."""

    probe: float = 0.0
    audio: float = 0.0
    decode: float = 0.0
    detect: float = 0.0
    model: float = 0.0
    blend: float = 0.0
    restore: float = 0.0  # the face restorer: crops, network and blend
    encode: float = 0.0
    total: float = 0.0


class RenderReport(BaseModel):
    heygemd_version: str
    started_at: datetime
    finished_at: datetime
    audio: AudioInput
    video: VideoInput
    output: OutputFile
    options: RenderOptions
    faces: FaceStats
    model: ModelKind = ModelKind.WAV2LIP
    lipsync: LipSyncStats = Field(default_factory=LipSyncStats)
    checkpoint: CheckpointReport | None = Field(None, description="None in dry-run mode")
    restorer: CheckpointReport | None = Field(None, description="the face restorer's weights; None when no restorer ran")
    device: str
    dry_run: bool = False
    loop_policy_applied: bool = Field(False, description="the audio outlasted the template and it was extended")
    timings: StageTimings
    warnings: list[str] = Field(default_factory=list)


class RenderProgress(BaseModel):
    """Sent to the caller's progress callback as frames are written."""

    video: Path
    frames_done: int
    frames_total: int
    stage: ProgressStage = ProgressStage.RENDER


DETECT_SHARE = 0.3  # of a video's percent, for finding the face when a render reports it as a stage of its own


def percent_done(
    frames_done: int, frames_total: int | None, stage: ProgressStage = ProgressStage.RENDER, detected: bool = False
) -> float:
    """How far a video is, in percent with one decimal, from its current stage (a stage of no frames is done).

    Finding the face, when a render reports it as a stage of its own (``detected``: a CPU render does it
    first), fills the first DETECT_SHARE of the video; rendering (and restoring beside it) the rest. Without
    such a stage, the stage's own percent is the video's."""
    fraction = frames_done / frames_total if frames_total else 1.0
    if stage is ProgressStage.DETECT:
        overall = DETECT_SHARE * fraction
    elif detected:
        overall = DETECT_SHARE + (1 - DETECT_SHARE) * fraction
    else:
        overall = fraction
    return round(100 * overall, 1)
