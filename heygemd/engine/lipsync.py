"""The model port: what a lip-sync model brings to the engine, and nothing the models share.

Everything else (decoding, faces and their cache, the schedule, encoding, the restorer, progress,
cancel, reports) is written once in ``engine.engine``. A model supplies:

- its audio features: one object per audio, asked for the windows of any video frames;
- its crop geometry and paste mask (``FaceGeometry``);
- its generator: crops and windows in, new faces out, halving its batch when the GPU runs out of memory.

Free of torch: the implementations (``engine.wav2lip_port``, ``engine.musetalk.port``) import it,
and ``engine.models`` loads the one a setting names. A third model is one new module and a row there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from heygemd.engine.settings import Box, ModelKind

if TYPE_CHECKING:
    from heygemd.engine.checkpoint import CheckpointInfo

BackOff = Callable[[int, int], None]
"""Told (failed batch size, new batch size) when the GPU ran out of memory and the batch was halved."""


@dataclass(frozen=True)
class FaceGeometry:
    """How a model crops a face box and where pasting its face back may change pixels."""

    face_size: int  # the side of the square crop in and of the face out, in pixels
    interpolation: int  # the cv2 flag the crop is resized with
    chin_margin_px: int  # the crop box's bottom moves down this much (clamped to the frame)
    mask_top: float  # the soft lower-face paste mask starts this fraction down the box

    def crop_box(self, box: Box, width: int, height: int) -> Box:
        """The box the model crops (and pastes into) for a face ``box`` in a ``width`` x ``height`` frame."""
        x1, y1, x2, y2 = box
        return x1, y1, x2, min(height, y2 + self.chin_margin_px)


@dataclass(frozen=True)
class CropKey:
    """What a crop is made of: the template's content, the frame and the crop box (a template cache's key)."""

    video_sha256: str
    template_index: int
    box: Box


@dataclass(frozen=True)
class GeneratedFaces:
    faces: np.ndarray  # (B, S, S, 3) float32 in [0, 255], BGR
    cache_hits: int = 0  # crops whose encoding came from the model's template cache


class AudioFeatures(Protocol):
    """One audio's features, computed once and reused for every template of a job."""

    def windows(self, frame_indices: Sequence[int], fps: float) -> np.ndarray:
        """The model's audio input for each video frame at ``fps`` (its own shape)."""
        ...


class LipSyncModel(Protocol):
    """A loaded lip-sync model on its device."""

    kind: ModelKind
    geometry: FaceGeometry

    @property
    def weights(self) -> CheckpointInfo:
        """The generator's weights file: named in reports."""
        ...

    @property
    def files(self) -> tuple[CheckpointInfo, ...]:
        """Every weights file the model loaded."""
        ...

    def unknown_weights_warning(self) -> str | None:
        """A warning for the report when the weights are not a published release heygemd recognises."""
        ...

    def audio_features(self, samples: np.ndarray) -> AudioFeatures:
        """(n,) float32 mono samples at 16 kHz -> the features of that audio. Raises AudioError."""
        ...

    def generate(
        self, crops: np.ndarray, windows: np.ndarray, keys: Sequence[CropKey], on_back_off: BackOff
    ) -> GeneratedFaces:
        """(B, S, S, 3) uint8 BGR crops, their frames' windows and what each crop is made of -> new faces."""
        ...
