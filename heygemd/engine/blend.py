"""Frame math around the model: face crops in, predictions pasted back.

The generator sees a 96x96 BGR face crop twice (once with its lower half blacked out, once
whole) and returns a new 96x96 face whose lower half follows the audio. The reference pastes
that square back hard; we blend it over the lower face with a soft-edged mask so no square
shows, and keep the reference's hard paste as an option.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from heygemd.engine.generator_io import FACE_SIZE
from heygemd.engine.settings import BlendMode, Box

MASK_FROM_ROW = FACE_SIZE // 2  # rows from here down are hidden from the generator
MASK_TOP = 0.5  # the blend mask covers the box from this fraction of its height down


def crop_face(frame: np.ndarray, box: Box, size: int = FACE_SIZE, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """(H, W, 3) uint8 frame -> (size, size, 3) uint8 crop of ``box`` (Wav2Lip: 96, bilinear like its reference)."""
    x1, y1, x2, y2 = box
    return cv2.resize(frame[y1:y2, x1:x2], (size, size), interpolation=interpolation)


def generator_faces(crops: np.ndarray) -> np.ndarray:
    """(B, 96, 96, 3) uint8 crops -> (B, 6, 96, 96) float32 in [0, 1]: masked crop, then the whole crop."""
    masked = crops.copy()
    masked[:, MASK_FROM_ROW:] = 0
    stacked = np.concatenate([masked, crops], axis=3).astype(np.float32) / 255.0
    return np.ascontiguousarray(stacked.transpose(0, 3, 1, 2))


def prediction_images(predictions: np.ndarray) -> np.ndarray:
    """(B, 3, 96, 96) float in [0, 1] -> (B, 96, 96, 3) float32 in [0, 255], BGR."""
    return predictions.transpose(0, 2, 3, 1).astype(np.float32) * 255.0


def blend_face(
    region: np.ndarray,
    face: np.ndarray,
    mode: BlendMode,
    feather: float,
    top: int = 0,
    mask_top: float = MASK_TOP,
    strength: float = 1.0,
) -> np.ndarray:
    """The pasted pixels of a box's rows ``top`` to its bottom.

    ``region``: (h, w, 3) uint8, those rows of the frame in a box ``w`` wide and ``top + h`` high.
    ``face``: (S, S, 3) float in [0, 255], the prediction for the whole box (Wav2Lip: S = 96).
    Returns (h, w, 3) uint8: the face resized to the box and blended over ``region`` (FEATHER) or
    put in its place (HARD). Rows above ``first_pasted_row`` come back as they were. ``mask_top``: where
    the model's lower-face mask starts; ``strength`` (0..1) scales the mask (a cross-fade into silence).
    """
    width, height = region.shape[1], top + region.shape[0]
    if mode == BlendMode.HARD and strength >= 1.0:
        # The reference truncates to uint8 before resizing; reproduce it exactly.
        return cv2.resize(face.astype(np.uint8), (width, height))[top:]
    resized = cv2.resize(face, (width, height), interpolation=cv2.INTER_LINEAR)[top:]
    if mode == BlendMode.HARD:
        mask = np.full((height - top, width, 1), strength, np.float32)
    else:
        mask = lower_face_mask(width, height, feather, mask_top)[top:] * np.float32(strength)
    original = region.astype(np.float32)
    blended = original + (resized - original) * mask
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)


def first_pasted_row(height: int, mode: BlendMode, feather: float, mask_top: float = MASK_TOP) -> int:
    """The first row of a box ``height`` high that pasting a face may change (``height``: none does).

    HARD replaces the whole box; FEATHER's mask is 0 down to ``MASK_TOP`` of the box.
    """
    if mode == BlendMode.HARD:
        return 0
    weighted = np.flatnonzero(_profile(height, mask_top, feather))
    return int(weighted[0]) if weighted.size else height


@lru_cache(maxsize=64)
def lower_face_mask(width: int, height: int, feather: float, mask_top: float = MASK_TOP) -> np.ndarray:
    """(height, width, 1) float32 weights: 1 over the lower face, easing to 0 at its edges.

    Rows above ``MASK_TOP`` keep the original frame (the generator only re-draws the mouth
    region); the top, left, right and bottom edges ramp smoothly over ``feather`` of the box's
    size so no seam shows.
    """
    rows = _profile(height, mask_top, feather)
    cols = _profile(width, 0.0, feather)
    return (rows[:, None] * cols[None, :])[:, :, None].astype(np.float32)


def _profile(length: int, start: float, feather: float) -> np.ndarray:
    """1-D weights along one side of the box: 0 before ``start``, smooth ramps of ``feather`` at both ends."""
    position = (np.arange(length, dtype=np.float32) + 0.5) / length
    ramp = max(feather, 1e-6)
    rise = np.clip((position - start) / ramp, 0.0, 1.0)
    fall = np.clip((1.0 - position) / ramp, 0.0, 1.0)
    return _smoothstep(np.minimum(rise, fall))


def _smoothstep(t: np.ndarray) -> np.ndarray:
    return t * t * (3.0 - 2.0 * t)
