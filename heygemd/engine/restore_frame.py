"""Frame math around the face restorer: the 512x512 face crop out, the restored face blended back in.

The restorer was trained on FFHQ-aligned faces. FFHQ frames a face from its landmarks: a square
of side 4 x the eye-to-eye distance, centred a tenth of the eye-to-mouth distance below the eyes'
midpoint. Here only the (smoothed) face box is known, so the square is set from the box with the
face's usual proportions: a detector's box (S3FD, like WIDER FACE annotations) runs from the upper
forehead to the chin and between the cheeks, about 2.2 eye distances wide and 2.6 high, with the
eyes about 0.7 eye distances below its top. That gives a square about 1.7 times the box's mean
side, centred 0.12 of its side above the box's centre. The LBP cascade's boxes are tighter and sit
lower on the face: on the test photo (scikit-image's astronaut, eyes and mouth placed by eye) the
square that puts them where FFHQ has them is 1.8 times the box, raised 0.07. A framing off by a
few percent changes little: the restored pixels are only kept inside the lip-sync's lower-face mask.

The crop and the paste touch I420 frames (see yuv.py) only where they must: the crop converts the
square's part of the frame to BGR; the paste converts the rows of the box that the lip-sync paste
changed, blends them through the same mask scaled by ``weight``, and writes Y back only there (U
and V in the 2x2 blocks those rows touch). Every other pixel stays as the lip-sync left it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from heygemd.engine.settings import Box, DetectorKind
from heygemd.engine.yuv import Rect, bgr_region, picture_size, write_region

RESTORER_SIZE = 512  # the restorer's input and output side, in pixels
CONTAIN_MARGIN = 2  # pixels: the square always holds the whole box, whatever its shape


@dataclass(frozen=True)
class FramingRule:
    """How a detector's face box maps to the FFHQ square."""

    scale: float  # side of the square / mean side of the box
    raise_: float  # the square's centre sits this fraction of its side above the box's centre


S3FD_FRAMING = FramingRule(scale=1.7, raise_=0.12)  # also for a fixed box: drawn like a detector's
LBP_FRAMING = FramingRule(scale=1.8, raise_=0.07)
FRAMING_RULES = {DetectorKind.S3FD: S3FD_FRAMING, DetectorKind.LBP: LBP_FRAMING}


@dataclass(frozen=True)
class Framing:
    """The square of the frame (pixels; it may reach past the frame's edges) that the restorer sees."""

    x: int
    y: int
    side: int

    @property
    def scale(self) -> float:
        """Restorer pixels per frame pixel."""
        return RESTORER_SIZE / self.side


def ffhq_framing(box: Box, rule: FramingRule = S3FD_FRAMING, holds: Box | None = None) -> Framing:
    """The FFHQ-style square around a face box; it always contains the box, and ``holds`` too when given
    (the lip-sync model's crop box, into which the restored face is pasted)."""
    x1, y1, x2, y2 = box
    width, height = x2 - x1, y2 - y1
    centre_x, centre_y = (x1 + x2) / 2, (y1 + y2) / 2
    hx1, hy1, hx2, hy2 = holds if holds is not None else box
    side = max(
        round(rule.scale * (width + height) / 2),
        math.ceil(2 * (max(centre_x - hx1, hx2 - centre_x) + CONTAIN_MARGIN)),
        # the held box's bottom must fit below the raised centre, its top above it
        math.ceil((hy2 - centre_y + CONTAIN_MARGIN) / (0.5 - rule.raise_)),
        math.ceil((centre_y - hy1 + CONTAIN_MARGIN) / (0.5 + rule.raise_)),
    )
    left = round(centre_x - side / 2)
    top = round(centre_y - (0.5 + rule.raise_) * side)
    return Framing(left, top, side)


def restorer_crop(frame: np.ndarray, framing: Framing) -> np.ndarray:
    """(H * 3 // 2, W) I420 frame -> (512, 512, 3) uint8 BGR view of ``framing``'s square.

    Only the square's part of the frame is converted; beyond the frame's edges the nearest
    edge pixels are repeated.
    """
    width, height = picture_size(frame)
    inside = (
        max(0, framing.x),
        max(0, framing.y),
        min(width, framing.x + framing.side),
        min(height, framing.y + framing.side),
    )
    if inside[2] <= inside[0] or inside[3] <= inside[1]:
        raise ValueError(f"the face square {framing} lies outside the {width}x{height} frame")
    bgr, aligned = bgr_region(frame, inside)
    visible = bgr[inside[1] - aligned[1] : inside[3] - aligned[1], inside[0] - aligned[0] : inside[2] - aligned[0]]
    square = cv2.copyMakeBorder(
        visible,
        inside[1] - framing.y,
        framing.y + framing.side - inside[3],
        inside[0] - framing.x,
        framing.x + framing.side - inside[2],
        cv2.BORDER_REPLICATE,
    )
    return _resize(square, RESTORER_SIZE)


def paste_restored(
    frame: np.ndarray, box: Box, framing: Framing, restored: np.ndarray, mask: np.ndarray, weight: float
) -> None:
    """Blend a restored (512, 512, 3) float BGR face ([0, 255]) into the I420 ``frame`` in place.

    ``box``: where the lip-sync pasted its face (the model's crop box); ``mask``: (h, w, 1) float32 of that
    box, how much the lip-sync paste changed each pixel (the model's paste mask times its strength). Inside
    ``box`` the restored pixels replace the frame's by ``weight`` times ``mask``; where that is 0 nothing
    changes. Only the rows the lip-sync paste touched are converted and written.
    """
    if weight <= 0:
        return
    x1, y1, x2, y2 = box
    if mask.shape[:2] != (y2 - y1, x2 - x1):
        raise ValueError(f"a {mask.shape[1]}x{mask.shape[0]} mask for the {x2 - x1}x{y2 - y1} box {box}")
    weighted = np.flatnonzero(mask.reshape(len(mask), -1).max(axis=1) > 0)
    if not weighted.size:
        return
    top = int(weighted[0])
    rows: Rect = (x1, y1 + top, x2, y2)
    bgr, aligned = bgr_region(frame, rows)
    ry1, ry2, rx1, rx2 = rows[1] - aligned[1], rows[3] - aligned[1], rows[0] - aligned[0], rows[2] - aligned[0]
    current = bgr[ry1:ry2, rx1:rx2].astype(np.float32)
    face = _restored_rows(restored, framing, rows)
    weights = mask[top:] * np.float32(weight)
    bgr[ry1:ry2, rx1:rx2] = np.clip(current + (face - current) * weights + 0.5, 0, 255).astype(np.uint8)
    write_region(frame, aligned, cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420), rows)


def _restored_rows(restored: np.ndarray, framing: Framing, rect: Rect) -> np.ndarray:
    """The restored face brought back to frame pixels, cut to ``rect`` (which lies inside the square)."""
    x1, y1, x2, y2 = rect
    left, top = x1 - framing.x, y1 - framing.y
    if left < 0 or top < 0 or x2 - framing.x > framing.side or y2 - framing.y > framing.side:
        raise ValueError(f"{rect} is not inside the face square {framing}")
    full = _resize(restored.astype(np.float32, copy=False), framing.side)
    return full[top : top + y2 - y1, left : left + x2 - x1]


def _resize(image: np.ndarray, side: int) -> np.ndarray:
    """Resize a square image to ``side``: area averaging when shrinking (no aliasing), bilinear when enlarging."""
    if image.shape[0] == side:
        return image
    interpolation = cv2.INTER_AREA if side < image.shape[0] else cv2.INTER_LINEAR
    return cv2.resize(image, (side, side), interpolation=interpolation)


def to_restorer_input(crops: np.ndarray) -> np.ndarray:
    """(B, 512, 512, 3) uint8 BGR -> (B, 3, 512, 512) float32 RGB in [-1, 1]."""
    rgb = crops[..., ::-1].transpose(0, 3, 1, 2).astype(np.float32)
    return np.ascontiguousarray(rgb / 127.5 - 1.0)


def from_restorer_output(images: np.ndarray) -> np.ndarray:
    """(B, 3, 512, 512) float RGB in [-1, 1] -> (B, 512, 512, 3) float32 BGR in [0, 255]."""
    bgr = images.transpose(0, 2, 3, 1)[..., ::-1].astype(np.float32)
    return np.ascontiguousarray((np.clip(bgr, -1.0, 1.0) + 1.0) * 127.5)
