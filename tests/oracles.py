"""Test oracles: what the engine does on I420 frames, done the plain way on whole BGR frames."""

from __future__ import annotations

import numpy as np

from heygemd.engine.blend import blend_face
from heygemd.engine.settings import BlendMode, Box


def paste(frame: np.ndarray, box: Box, face: np.ndarray, mode: BlendMode, feather: float) -> None:
    """Paste one predicted (96, 96, 3) float face into the (H, W, 3) uint8 BGR ``frame`` (in place) at ``box``."""
    x1, y1, x2, y2 = box
    frame[y1:y2, x1:x2] = blend_face(frame[y1:y2, x1:x2], face, mode, feather)
