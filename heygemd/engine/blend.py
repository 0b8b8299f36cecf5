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

from heygemd.engine.settings import BlendMode, Box

FACE_SIZE = 96  # the generator's input and output side, in pixels
MASK_FROM_ROW = FACE_SIZE // 2  # rows from here down are hidden from the generator
MASK_TOP = 0.5  # the blend mask covers the box from this fraction of its height down


def crop_face(frame: np.ndarray, box: Box) -> np.ndarray:
    """(H, W, 3) uint8 frame -> (96, 96, 3) uint8 crop of ``box``, bilinear like the reference."""
    x1, y1, x2, y2 = box
    return cv2.resize(frame[y1:y2, x1:x2], (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_LINEAR)


def generator_faces(crops: np.ndarray) -> np.ndarray:
    """(B, 96, 96, 3) uint8 crops -> (B, 6, 96, 96) float32 in [0, 1]: masked crop, then the whole crop."""
    masked = crops.copy()
    masked[:, MASK_FROM_ROW:] = 0
    stacked = np.concatenate([masked, crops], axis=3).astype(np.float32) / 255.0
    return np.ascontiguousarray(stacked.transpose(0, 3, 1, 2))


def prediction_images(predictions: np.ndarray) -> np.ndarray:
    """(B, 3, 96, 96) float in [0, 1] -> (B, 96, 96, 3) float32 in [0, 255], BGR."""
    return predictions.transpose(0, 2, 3, 1).astype(np.float32) * 255.0


def paste(frame: np.ndarray, box: Box, face: np.ndarray, mode: BlendMode, feather: float) -> None:
    """Paste one predicted (96, 96, 3) float face into ``frame`` (in place) at ``box``."""
    x1, y1, x2, y2 = box
    width, height = x2 - x1, y2 - y1
    if mode == BlendMode.HARD:
        # The reference truncates to uint8 before resizing; reproduce it exactly.
        frame[y1:y2, x1:x2] = cv2.resize(face.astype(np.uint8), (width, height))
        return
    resized = cv2.resize(face, (width, height), interpolation=cv2.INTER_LINEAR)
    mask = lower_face_mask(width, height, feather)
    region = frame[y1:y2, x1:x2].astype(np.float32)
    blended = region + (resized - region) * mask
    frame[y1:y2, x1:x2] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)


@lru_cache(maxsize=64)
def lower_face_mask(width: int, height: int, feather: float) -> np.ndarray:
    """(height, width, 1) float32 weights: 1 over the lower face, easing to 0 at its edges.

    Rows above ``MASK_TOP`` keep the original frame (the generator only re-draws the mouth
    region); the top, left, right and bottom edges ramp smoothly over ``feather`` of the box's
    size so no seam shows.
    """
    rows = _profile(height, MASK_TOP, feather)
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
