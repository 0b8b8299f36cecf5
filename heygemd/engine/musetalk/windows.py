"""Which whisper frames each video frame sees: padding and window indexing. Free of torch.

Whisper gives FEATURES_PER_SECOND frames a second. Video frame i at ``fps`` starts at whisper frame
``floor(i * 50 / fps)`` of the padded sequence and takes WINDOW_FEATURES of them: with
``m = ceil(50 / fps)`` frames per video frame (rounded up), ``m * PAD_LEFT`` zero frames go in front,
so at 25 fps frame i covers whisper frames 2i - 4 ... 2i + 5 (-80 ms to +120 ms). The true rate is
used; the reference truncates it to an integer (29.97 fps becomes 29).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from heygemd.engine.musetalk.layout import (
    FEATURES_PER_SECOND,
    HIDDEN_SIZE,
    HIDDEN_STATES,
    PAD_LEFT,
    SAMPLE_RATE,
    WINDOW_FEATURES,
    WINDOW_ROWS,
)


def kept_features(num_samples: int) -> int:
    """Whisper frames that carry audio (the rest of the last 30 s segment is padding)."""
    return math.floor(num_samples / SAMPLE_RATE * FEATURES_PER_SECOND)


def frames_per_video_frame(fps: float) -> int:
    """``m``: whisper frames per video frame, rounded up (2 at 25 fps)."""
    return math.ceil(FEATURES_PER_SECOND / fps)


def video_frames(num_samples: int, fps: float) -> int:
    """T = floor(duration * fps): the frames the reference renders for this audio."""
    return math.floor(num_samples / SAMPLE_RATE * fps)


def window_start(frame_index: int, fps: float) -> int:
    """The first whisper frame of video frame ``frame_index``'s window, in the padded sequence."""
    return math.floor(frame_index * FEATURES_PER_SECOND / fps)


def window_rows(frame_indices: Sequence[int] | np.ndarray, fps: float) -> tuple[int, int]:
    """[first, stop) of the unpadded whisper frames the windows of ``frame_indices`` read (may reach past either end)."""
    front = frames_per_video_frame(fps) * PAD_LEFT
    starts = [window_start(int(frame_index), fps) - front for frame_index in frame_indices]
    return min(starts), max(starts) + WINDOW_FEATURES


def windows(features: np.ndarray, frame_indices: Sequence[int] | np.ndarray, fps: float, offset: int = 0) -> np.ndarray:
    """(F, 5, 384) unpadded features -> (len(frame_indices), 50, 384) windows, time-major.

    ``features`` may be a part of the audio's features, from whisper frame ``offset`` on: it must then hold
    every frame the windows read that carries audio (``window_rows``).
    Whatever lies before the first or after the last feature is zeros, as the reference's padding
    is (it pads m * 3 * PAD_RIGHT frames behind; a frame the engine adds so that the picture lasts as
    long as the sound may reach further, and gets zeros too).
    """
    if fps <= 0:
        raise ValueError(f"fps must be positive, not {fps}")
    m = frames_per_video_frame(fps)
    out = np.zeros((len(frame_indices), WINDOW_FEATURES, HIDDEN_STATES, HIDDEN_SIZE), np.float32)
    front = m * PAD_LEFT
    for row, frame_index in enumerate(frame_indices):
        start = window_start(int(frame_index), fps) - front - offset  # in ``features``
        first, last = max(0, start), min(len(features), start + WINDOW_FEATURES)
        if last > first:
            out[row, first - start : last - start] = features[first:last]
    return out.reshape(len(frame_indices), WINDOW_ROWS, HIDDEN_SIZE)
