"""Wav2Lip behind the model port: mel windows, a 96-pixel bilinear crop, the generator, the lower-half mask."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from heygemd.engine import audio as mel_features
from heygemd.engine.blend import MASK_TOP, generator_faces, prediction_images
from heygemd.engine.checkpoint import CheckpointInfo
from heygemd.engine.generator import Generator
from heygemd.engine.generator_io import FACE_SIZE
from heygemd.engine.lipsync import BackOff, CropKey, FaceGeometry, GeneratedFaces
from heygemd.engine.settings import EngineSettings, ModelKind

WAV2LIP_GEOMETRY = FaceGeometry(
    face_size=FACE_SIZE, interpolation=cv2.INTER_LINEAR, chin_margin_px=0, mask_top=MASK_TOP
)  # the render's pads already move the box's bottom down (10 px by default)


@dataclass(frozen=True)
class MelFeatures:
    """The audio's (80, 1 + n // 200) normalised mel spectrogram."""

    mel: np.ndarray

    def windows(self, frame_indices: Sequence[int], fps: float) -> np.ndarray:
        """(B, 1, 80, 16) mel windows, 200 ms each."""
        return mel_features.mel_windows(self.mel, frame_indices, fps)


class Wav2LipModel:
    kind = ModelKind.WAV2LIP
    geometry = WAV2LIP_GEOMETRY

    def __init__(self, generator: Generator) -> None:
        self.generator = generator

    @property
    def weights(self) -> CheckpointInfo:
        return self.generator.checkpoint

    @property
    def files(self) -> tuple[CheckpointInfo, ...]:
        return (self.generator.checkpoint,)

    def unknown_weights_warning(self) -> str | None:
        checkpoint = self.generator.checkpoint
        if checkpoint.known_name is not None:
            return None
        return (
            f"checkpoint {checkpoint.path.name} (sha256 {checkpoint.sha256[:12]}…) is not a "
            "published Wav2Lip checkpoint; results depend on its training"
        )

    def audio_features(self, samples: np.ndarray) -> MelFeatures:
        return MelFeatures(mel_features.melspectrogram(samples))

    def generate(
        self, crops: np.ndarray, windows: np.ndarray, keys: Sequence[CropKey], on_back_off: BackOff
    ) -> GeneratedFaces:
        """(B, 96, 96, 3) uint8 crops and (B, 1, 80, 16) mels -> (B, 96, 96, 3) float faces (no template cache)."""
        return GeneratedFaces(prediction_images(self.generator.predict(windows, generator_faces(crops), on_back_off)))


def load(settings: EngineSettings, device: str, half: bool) -> Wav2LipModel:
    return Wav2LipModel(Generator.load(settings.checkpoint, device, half=half, batch_size=settings.batch_size))
