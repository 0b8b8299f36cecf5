"""Settings of the engine (loaded once) and of one render (may change per render)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from heygemd.engine.weights import MUSETALK_FILES, SAFETENSORS_SUFFIX, SD_VAE, PublishedWeights, WeightsRole

Box = tuple[int, int, int, int]
"""A face box in pixels of the (rotated, displayed) frame: (x1, y1, x2, y2), x2/y2 exclusive."""

Pads = tuple[int, int, int, int]
"""Extra pixels around a detected face: (top, bottom, left, right)."""


class LoopPolicy(StrEnum):
    """What to do when the audio is longer than the template video."""

    PINGPONG = "pingpong"  # forward, backward, forward... the turning frame is not shown twice
    LOOP = "loop"  # jump back to the first frame
    FREEZE = "freeze"  # hold the last frame


class BlendMode(StrEnum):
    FEATHER = "feather"  # soft-edged mask over the lower face
    HARD = "hard"  # the reference's pasted rectangle, exactly


class ModelKind(StrEnum):
    """The lip-sync model a service runs (one, loaded once and kept warm)."""

    WAV2LIP = "wav2lip"  # 96x96 mouth; weights for personal/research use only (trained on LRS2)
    MUSETALK = "musetalk"  # MuseTalk 1.5: a 256x256 face in one latent UNet step; weights for any purpose


class DetectorKind(StrEnum):
    S3FD = "s3fd"  # face-alignment's S3FD, weights from checkpoints/
    LBP = "lbp"  # scikit-image's LBP frontal-face cascade: no download, lower quality


class RestorerKind(StrEnum):
    NONE = "none"  # the lip-sync's own 96x96 mouth
    GFPGAN = "gfpgan"  # GFPGAN v1.3/v1.4 sharpens the re-synced lower face (restorer_checkpoint)


class Encoder(StrEnum):
    AUTO = "auto"  # NVENC when ffmpeg and the GPU offer it, else libx264
    LIBX264 = "libx264"
    H264_NVENC = "h264_nvenc"


class X264Preset(StrEnum):
    """libx264's speed presets, fastest first (an unknown one makes ffmpeg exit before the first frame)."""

    ULTRAFAST = "ultrafast"
    SUPERFAST = "superfast"
    VERYFAST = "veryfast"
    FASTER = "faster"
    FAST = "fast"
    MEDIUM = "medium"
    SLOW = "slow"
    SLOWER = "slower"
    VERYSLOW = "veryslow"
    PLACEBO = "placebo"


GENERATOR_LABEL = "Wav2Lip weights"
DETECTOR_LABEL = "S3FD face detector"
RESTORER_LABEL = "GFPGAN face restorer"


@dataclass(frozen=True)
class WeightFile:
    """One weight file the settings name: what it is for, a label for people, and where it must be."""

    role: WeightsRole  # also the key under which the configuration's ``[models]`` says where it comes from
    label: str
    path: Path
    published: PublishedWeights | None = None  # the weights table's row when it fixes the source (MuseTalk's files)


class EngineSettings(BaseModel):
    """Chosen once per engine object; changing them means loading a new engine."""

    model_config = ConfigDict(extra="forbid")

    model: ModelKind = Field(
        ModelKind.WAV2LIP,
        description="the lip-sync model: wav2lip (research-only weights) or musetalk (MuseTalk 1.5, weights for any "
        "purpose; needs musetalk_dir)",
    )
    checkpoint: Path = Field(
        Path("checkpoints/wav2lip_gan.pth"), description="Wav2Lip generator weights (wav2lip_gan.pth or wav2lip.pth)"
    )
    musetalk_dir: Path = Field(
        Path("checkpoints/musetalk"),
        description='MuseTalk 1.5\'s files as its download script leaves them (musetalkV15/, sd-vae/, whisper/), used when model = "musetalk"',
    )
    latent_cache_max_mb: int = Field(
        256, ge=0, description="MuseTalk: memory for the VAE latents of re-used template frames (0: no cache)"
    )
    detector: DetectorKind = Field(
        DetectorKind.S3FD, description="s3fd (needs detector_checkpoint) or lbp (no download, lower quality)"
    )
    detector_checkpoint: Path = Field(
        Path("checkpoints/s3fd.pth"), description='S3FD face detector weights, used when detector = "s3fd"'
    )
    device: str = Field("auto", description="auto (CUDA when available), cpu, cuda or cuda:N")
    batch_size: int = Field(32, ge=1, le=1024, description="frames per generator batch")
    detector_batch_size: int = Field(8, ge=1, le=256, description="frames per detector batch")
    detect_max_side: int = Field(640, ge=64, description="frames are downscaled to this longest side for detection")
    face_threshold: float = Field(0.5, gt=0, lt=1, description="S3FD confidence below which a detection is ignored")
    smooth_window: int = Field(5, ge=1, le=25, description="boxes are averaged over this many frames (forward)")
    detect_stride: int = Field(1, ge=1, le=25, description="detect every k-th frame and interpolate the boxes between")
    face_cache_dir: Path | None = Field(
        None, description="folder for cached face tracks (unset: no cache; the service uses <paths.state>/face-tracks)"
    )
    face_cache_max_mb: int = Field(256, ge=1, description="size limit of the face-track cache")
    restorer: RestorerKind = Field(
        RestorerKind.NONE,
        description="none, or gfpgan: GFPGAN v1.3/v1.4 sharpens the re-synced lower face (slow on a "
        "CPU; `heygemd fetch-models` gets restorer_checkpoint)",
    )
    restorer_checkpoint: Path = Field(
        Path("checkpoints/GFPGANv1.4.pth"), description='GFPGAN v1.4 (or v1.3) weights, used when restorer = "gfpgan"'
    )
    restorer_batch_size: int = Field(
        4, ge=1, le=256, description="faces per restorer batch (512x512 each; a CPU takes seconds a face)"
    )
    encoder: Encoder = Field(
        Encoder.AUTO, description="auto (NVENC when ffmpeg and the GPU offer it, else libx264), libx264 or h264_nvenc"
    )
    half_precision: bool = Field(True, description="on CUDA, run the generator, detector and restorer in float16")
    dry_run: bool = Field(False, description="run the whole flow without the model: template fitted to the audio")
    temp_dir: Path | None = Field(
        None,
        description="folder for the decoded audio of the job being rendered, a WAV of up to 21 MB a minute "
        "(44.1 kHz stereo) (unset: <paths.state>/audio-snapshots for the service, $TMPDIR or /tmp for heygemd render)",
    )

    def weight_files(self) -> list[WeightFile]:
        """The weight files these settings name (a dry run names them too, and loads none)."""
        files = self._lip_sync_files()
        if self.detector == DetectorKind.S3FD:
            files.append(WeightFile(WeightsRole.FACE_DETECTOR, DETECTOR_LABEL, self.detector_checkpoint))
        if self.restorer == RestorerKind.GFPGAN:
            files.append(WeightFile(WeightsRole.FACE_RESTORER, RESTORER_LABEL, self.restorer_checkpoint))
        return files

    def _lip_sync_files(self) -> list[WeightFile]:
        if self.model is ModelKind.MUSETALK:  # its files at their places in the layout of MuseTalk's download script
            return [
                WeightFile(WeightsRole.LIP_SYNC, f"MuseTalk {row.file_name}", self._musetalk_path(row), row)
                for row in MUSETALK_FILES
            ]
        return [WeightFile(WeightsRole.LIP_SYNC, GENERATOR_LABEL, self.checkpoint)]

    def _musetalk_path(self, row: PublishedWeights) -> Path:
        path = self.musetalk_dir / row.file_name
        safetensors = path.with_suffix(SAFETENSORS_SUFFIX)
        if row is SD_VAE and safetensors.exists():  # the engine loads the VAE from this one when it is there
            return safetensors
        return path

    def files_to_load(self) -> list[WeightFile]:
        """The weight files an engine with these settings loads when it starts (none in a dry run)."""
        return [] if self.dry_run else self.weight_files()


class RenderOptions(BaseModel):
    """Per-render choices (a daemon job may override them)."""

    model_config = ConfigDict(extra="forbid")

    fixed_box: Box | None = Field(None, description="skip detection and use this box (x1, y1, x2, y2)")
    pads: Pads = Field((0, 10, 0, 0), description="extra pixels around the detected face: [top, bottom, left, right]")
    loop: LoopPolicy = Field(
        LoopPolicy.PINGPONG, description="when the audio outlasts the template: pingpong, loop or freeze"
    )
    blend: BlendMode = Field(
        BlendMode.FEATHER, description="feather (soft-edged mouth area) or hard (the reference's pasted box)"
    )
    feather: float = Field(0.12, ge=0, le=0.5, description="soft edge width as a fraction of the box size")
    restore_weight: float = Field(
        0.6,
        ge=0,
        le=1,
        description="with the restorer on: share of restored pixels in the re-synced area (0: off for this render)",
    )
    crf: int = Field(18, ge=0, le=51, description="libx264 quality: lower is better and bigger (0-51)")
    preset: X264Preset = Field(
        X264Preset.MEDIUM, description="libx264 preset: " + ", ".join(preset.value for preset in X264Preset)
    )
    still_fps: float = Field(25.0, gt=0, le=120, description="frame rate of the video made from a still image")
    silence_db: float = Field(
        -45.0, ge=-120, le=0, description="audio quieter than this (dBFS, per 10 ms) counts as silence"
    )
    silence_min_s: float = Field(
        0.4,
        ge=0,
        le=60,
        description="silences at least this long show the template's own mouth, cross-faded at the edges (0: off)",
    )

    @field_validator("fixed_box")
    @classmethod
    def _box_has_area(cls, box: Box | None) -> Box | None:
        if box is not None and (box[2] <= box[0] or box[3] <= box[1] or min(box) < 0):
            raise ValueError("fixed_box must be x1,y1,x2,y2 with x2 > x1 >= 0 and y2 > y1 >= 0")
        return box
