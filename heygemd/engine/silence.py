"""Silence closes the mouth: where the audio is quiet long enough, the template's own frames are shown.

A generator asked to speak over silence keeps the mouth moving ("chewing"). The audio's loudness is
measured every 10 ms; a video frame is silent when every 10 ms step it spans is below the threshold,
and a run of silent frames at least ``min_seconds`` long passes the template through. The lip-sync
fades out over the first FADE_SECONDS of a run and back in over its last, so the mouth does not snap.
Free of torch and of any model: it only weighs how much of the generated face each frame shows.
"""

from __future__ import annotations

import math

import numpy as np

HOP_SECONDS = 0.01
FADE_SECONDS = 0.12
DB_FLOOR = -120.0
ROUNDING = 1e-9  # frame edges that fall on a step's edge stay there despite float error


def loudness_db(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """(n,) float samples in [-1, 1] -> (ceil(n / hop),) RMS level in dBFS of each 10 ms step (floored at -120)."""
    hop = max(1, round(sample_rate * HOP_SECONDS))
    steps = -(-len(samples) // hop)
    padded = np.zeros(steps * hop, np.float64)
    padded[: len(samples)] = samples
    power = np.mean(padded.reshape(steps, hop) ** 2, axis=1)
    return np.maximum(10 * np.log10(np.maximum(power, 1e-30)), DB_FLOOR).astype(np.float32)


def lip_sync_strength(
    loudness: np.ndarray, frame_count: int, fps: float, threshold_db: float, min_seconds: float
) -> np.ndarray:
    """(frame_count,) float32 in [0, 1]: how much of the generated face each video frame shows.

    0 inside a silent run (the template's frame as it is), 1 in speech, a ramp over the first and
    last FADE_SECONDS of a silent run. ``min_seconds`` 0 turns the pass-through off (all ones).
    """
    strength = np.ones(frame_count, np.float32)
    if min_seconds <= 0 or frame_count == 0:
        return strength
    silent = _silent_frames(loudness, frame_count, fps, threshold_db)
    min_frames = max(1, math.ceil(min_seconds * fps))
    fade = max(1, round(FADE_SECONDS * fps))
    for start, stop in _runs(silent):
        if stop - start < min_frames:
            continue
        inside = np.arange(stop - start)
        beyond = np.full(stop - start, fade + 1)  # no speech on that side (the run starts or ends the audio): no fade
        from_start = inside + 1 if start > 0 else beyond
        from_stop = stop - start - inside if stop < frame_count else beyond
        strength[start:stop] = np.clip(1 - np.minimum(from_start, from_stop) / (fade + 1), 0, 1)
    return strength


def _silent_frames(loudness: np.ndarray, frame_count: int, fps: float, threshold_db: float) -> np.ndarray:
    """(frame_count,) bool: every 10 ms step the frame spans is below ``threshold_db`` (beyond the audio: silent)."""
    loud_before = np.concatenate([[0], np.cumsum(loudness >= threshold_db)])  # loud steps before each step
    edges = np.arange(frame_count + 1) / fps / HOP_SECONDS
    starts = np.floor(edges[:-1] + ROUNDING).astype(np.int64)
    stops = np.maximum(starts + 1, np.ceil(edges[1:] - ROUNDING).astype(np.int64))
    steps = len(loudness)  # steps past the audio's end are silent
    return loud_before[np.minimum(stops, steps)] == loud_before[np.minimum(starts, steps)]


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of each run of True in ``flags``."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flags.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))
