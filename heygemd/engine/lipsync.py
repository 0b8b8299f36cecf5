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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

from heygemd.engine.blend import first_pasted_row, lower_face_mask
from heygemd.engine.settings import BlendMode, Box, DetectorKind, ModelKind

if TYPE_CHECKING:
    from heygemd.engine.checkpoint import CheckpointInfo

BackOff = Callable[[int, int], None]
"""Told (failed batch size, new batch size) when the GPU ran out of memory and the batch was halved."""


@dataclass(frozen=True)
class CropRule:
    """Moves each edge of a (padded) detector box by a fraction of the box's width (left, right) or height (top,
    bottom), positive right or down: how a model that was trained on landmark boxes approximates one from a
    detector's box."""

    left: float = 0.0
    top: float = 0.0
    right: float = 0.0
    bottom: float = 0.0

    def apply(self, box: Box) -> Box:
        x1, y1, x2, y2 = box
        width, height = x2 - x1, y2 - y1
        moved = (
            round(x1 + self.left * width),
            round(y1 + self.top * height),
            round(x2 + self.right * width),
            round(y2 + self.bottom * height),
        )
        return moved if moved[2] > moved[0] and moved[3] > moved[1] else box


@dataclass(frozen=True)
class FaceGeometry:
    """How a model crops a face box and where pasting its face back may change pixels."""

    face_size: int  # the side of the square crop in and of the face out, in pixels
    interpolation: int  # the cv2 flag the crop is resized with
    chin_margin_px: int  # the crop box's bottom moves down this much (clamped to the frame)
    mask_top: float  # the soft lower-face paste mask starts this fraction down the box
    # By the detector whose boxes it corrects (none: the box as it is; a fixed box is never corrected).
    crop_rules: Mapping[DetectorKind, CropRule] = field(default_factory=dict)

    def crop_box(self, box: Box, width: int, height: int, detector: DetectorKind | None = None) -> Box:
        """The box the model crops (and pastes into) for a face ``box`` in a ``width`` x ``height`` frame.

        ``detector``: whose box it is (its crop rule applies); None for a box the operator fixed.
        """
        rule = self.crop_rules.get(detector) if detector is not None else None
        x1, y1, x2, y2 = rule.apply(box) if rule is not None else box
        x1, y1, x2, y2 = max(0, x1), max(0, y1), min(width, x2), min(height, y2)
        return x1, y1, x2, min(height, y2 + self.chin_margin_px)

    def paste_mask(self, width: int, height: int, mode: BlendMode, feather: float) -> np.ndarray:
        """(height, width, 1) float32: how much pasting a face into a crop box of that size changes each pixel."""
        if mode == BlendMode.HARD:
            return np.ones((height, width, 1), np.float32)
        return lower_face_mask(width, height, feather, self.mask_top)

    def first_pasted_row(self, height: int, mode: BlendMode, feather: float) -> int:
        """The first row of a crop box ``height`` high that pasting may change (``height``: none)."""
        return first_pasted_row(height, mode, feather, self.mask_top)


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
