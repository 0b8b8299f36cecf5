"""Face-region math on I420 frames: the crop for the generator out, its prediction pasted back in.

A frame is what ``read_frames(..., pixel_format="yuv420p")`` yields and ``VideoWriter(...,
pixel_format="yuv420p")`` takes: (H * 3 // 2, W) uint8, W and H even, holding the (H, W) Y plane,
then the (H/2, W/2) U plane, then the (H/2, W/2) V plane as contiguous bytes. Only a small
rectangle around the face is ever converted to BGR; every other pixel goes from the decoder to the
encoder as it was decoded.

Colour: cv2's COLOR_YUV2BGR_I420 and COLOR_BGR2YUV_I420 use limited-range BT.601 (Y 16..235),
the same convention as ffmpeg's default yuv420p <-> bgr24 conversion of an untagged stream
(media.read_frames brings every source to limited range), so the generator sees the colours the
bgr24 path gives it. Measured on smooth areas (tests/engine/test_yuv.py): cv2 is within 1 level of
the exact BT.601 formula, and so is ffmpeg with media.SWS_FLAGS; cv2's BGR from ffmpeg's I420 and
ffmpeg's own bgr24 frame differ by at most 6 levels, mean 1.2, unbiased, and cv2's I420 from a
BGR frame has ffmpeg's Y exactly and its U/V within 3. What differs is chroma resampling: cv2
repeats each U/V sample over its 2x2 pixels and averages 2x2 blocks back, ffmpeg interpolates and
filters over more pixels, so the two part more at sharp colour edges.
A source tagged BT.709 (HD video often is) differs: ffmpeg's bgr24 reader honours the tag, cv2
always uses BT.601, so the generator's crop is off by a few levels (mean 6.6, max 32 on a
gradient). The paste converts back with the same BT.601, so the pixels around the face stay
consistent with it, and everything outside keeps the source's own planes.
"""

from __future__ import annotations

import cv2
import numpy as np

from heygemd.engine.blend import MASK_TOP, blend_face, crop_face, first_pasted_row
from heygemd.engine.generator_io import FACE_SIZE
from heygemd.engine.settings import BlendMode, Box

CHROMA_STEP = 2  # one U and one V sample per 2x2 pixels: I420 rectangles start and end on even pixels

Rect = tuple[int, int, int, int]
"""A rectangle of pixels (x1, y1, x2, y2), x2/y2 exclusive, like ``Box``."""


def picture_size(frame: np.ndarray) -> tuple[int, int]:
    """(W, H) of the picture an (H * 3 // 2, W) I420 frame holds."""
    return frame.shape[1], frame.shape[0] * 2 // 3


def planes(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Views of a contiguous (H * 3 // 2, W) I420 frame's (H, W) Y, (H/2, W/2) U and (H/2, W/2) V planes."""
    width, height = picture_size(frame)
    if frame.dtype != np.uint8 or frame.shape != (height * 3 // 2, width) or width % 2 or height % 2:
        raise ValueError(f"not an I420 frame of even sides: {frame.shape} {frame.dtype}")
    if not frame.flags.c_contiguous:
        raise ValueError("an I420 frame must be contiguous")
    flat = frame.reshape(-1)
    luma_bytes, chroma_bytes = width * height, width * height // 4
    chroma_shape = (height // 2, width // 2)
    return (
        flat[:luma_bytes].reshape(height, width),
        flat[luma_bytes : luma_bytes + chroma_bytes].reshape(chroma_shape),
        flat[luma_bytes + chroma_bytes :].reshape(chroma_shape),
    )


def chroma_aligned(rect: Rect) -> Rect:
    """The smallest rectangle of whole 2x2 chroma blocks covering ``rect``."""
    x1, y1, x2, y2 = rect
    return x1 - x1 % CHROMA_STEP, y1 - y1 % CHROMA_STEP, x2 + x2 % CHROMA_STEP, y2 + y2 % CHROMA_STEP


def region_i420(frame: np.ndarray, rect: Rect) -> np.ndarray:
    """A copy of the chroma-aligned ``rect`` of ``frame`` as its own (h * 3 // 2, w) I420 image."""
    x1, y1, x2, y2 = rect
    luma, u, v = planes(frame)
    pieces = [luma[y1:y2, x1:x2], u[y1 // 2 : y2 // 2, x1 // 2 : x2 // 2], v[y1 // 2 : y2 // 2, x1 // 2 : x2 // 2]]
    return np.concatenate([piece.reshape(-1) for piece in pieces]).reshape((y2 - y1) * 3 // 2, x2 - x1)


def write_region(frame: np.ndarray, rect: Rect, image: np.ndarray, luma_rect: Rect) -> None:
    """Write the (h * 3 // 2, w) I420 ``image`` of the chroma-aligned ``rect`` into ``frame`` (in place).

    Chroma goes in over all of ``rect``; luma only inside ``luma_rect`` (within ``rect``), so pixels
    around it that were only converted to BGR and back keep their exact Y.
    """
    x1, y1, x2, y2 = rect
    lx1, ly1, lx2, ly2 = luma_rect
    luma, u, v = planes(frame)
    new_luma, new_u, new_v = planes(image)
    luma[ly1:ly2, lx1:lx2] = new_luma[ly1 - y1 : ly2 - y1, lx1 - x1 : lx2 - x1]
    u[y1 // 2 : y2 // 2, x1 // 2 : x2 // 2] = new_u
    v[y1 // 2 : y2 // 2, x1 // 2 : x2 // 2] = new_v


def bgr_region(frame: np.ndarray, rect: Rect) -> tuple[np.ndarray, Rect]:
    """BGR pixels covering ``rect``: ((h, w, 3) uint8 of the chroma-aligned rectangle, that rectangle)."""
    aligned = chroma_aligned(rect)
    return cv2.cvtColor(region_i420(frame, aligned), cv2.COLOR_YUV2BGR_I420), aligned


def _relative(rect: Rect, origin: Rect) -> Rect:
    """``rect`` in the coordinates of a region whose top-left corner is ``origin``'s."""
    return rect[0] - origin[0], rect[1] - origin[1], rect[2] - origin[0], rect[3] - origin[1]


def crop_face_i420(frame: np.ndarray, box: Box, size: int = FACE_SIZE, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """(H * 3 // 2, W) I420 frame -> (size, size, 3) uint8 BGR crop of ``box``, as ``blend.crop_face``
    crops the frame's BGR conversion (byte for byte: cv2 converts each 2x2 block on its own)."""
    bgr, aligned = bgr_region(frame, box)
    return crop_face(bgr, _relative(box, aligned), size, interpolation)


def paste_i420(
    frame: np.ndarray,
    box: Box,
    face: np.ndarray,
    mode: BlendMode,
    feather: float,
    mask_top: float = MASK_TOP,
    strength: float = 1.0,
) -> None:
    """Paste one predicted (S, S, 3) float face into the (H * 3 // 2, W) I420 ``frame`` (in place) at ``box``.

    What blending the face over the frame's BGR conversion gives: the rows of the box the paste changes (all for HARD, from
    ``MASK_TOP`` down for FEATHER) are converted to BGR, blended by ``blend.blend_face`` and
    converted back. Y changes only inside those rows of the box, U and V only in the 2x2 blocks
    they touch; everything else stays byte for byte as decoded.
    """
    x1, y1, x2, y2 = box
    top = first_pasted_row(y2 - y1, mode, feather, mask_top)
    if top >= y2 - y1 or strength <= 0:
        return
    pasted = (x1, y1 + top, x2, y2)
    bgr, aligned = bgr_region(frame, pasted)
    px1, py1, px2, py2 = _relative(pasted, aligned)
    bgr[py1:py2, px1:px2] = blend_face(bgr[py1:py2, px1:px2], face, mode, feather, top, mask_top, strength)
    write_region(frame, aligned, cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420), pasted)
