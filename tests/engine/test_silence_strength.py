"""Where silence closes the mouth: the per-frame lip-sync strength from the audio's loudness."""

from __future__ import annotations

import numpy as np

from heygemd.engine.silence import FADE_SECONDS, lip_sync_strength, loudness_db

RATE = 16000
LOUD = 0.3


def _audio(*parts: tuple[str, float]) -> np.ndarray:
    t = np.arange(RATE * 10) / RATE  # 400 Hz: four whole periods in each 10 ms step
    tone = (LOUD * np.sin(2 * np.pi * 400 * t)).astype(np.float32)
    pieces = [
        tone[: int(seconds * RATE)] if kind == "speech" else np.zeros(int(seconds * RATE), np.float32)
        for kind, seconds in parts
    ]
    return np.concatenate(pieces)


def _strength(samples: np.ndarray, frames: int, min_seconds: float = 0.4) -> np.ndarray:
    return lip_sync_strength(loudness_db(samples, RATE), frames, 25.0, -45.0, min_seconds)


def test_loudness_is_the_rms_level_of_each_10_ms_step():
    levels = loudness_db(_audio(("speech", 0.1), ("silence", 0.1)), RATE)
    assert levels.shape == (20,)
    np.testing.assert_allclose(levels[:10], 20 * np.log10(LOUD / np.sqrt(2)), atol=0.1)
    assert (levels[10:] == -120).all()


def test_a_long_pause_passes_through_with_a_fade_at_each_edge():
    strength = _strength(_audio(("speech", 1.0), ("silence", 1.0), ("speech", 1.0)), 75)
    fade = round(FADE_SECONDS * 25)  # 3 frames
    np.testing.assert_array_equal(strength[:25], 1)
    np.testing.assert_allclose(strength[25 : 25 + fade], [0.75, 0.5, 0.25])
    np.testing.assert_array_equal(strength[25 + fade : 50 - fade], 0)
    np.testing.assert_allclose(strength[50 - fade : 50], [0.25, 0.5, 0.75])
    np.testing.assert_array_equal(strength[50:], 1)


def test_a_short_pause_keeps_the_lip_sync():
    np.testing.assert_array_equal(_strength(_audio(("speech", 1.0), ("silence", 0.3), ("speech", 1.0)), 57), 1)


def test_a_frame_touching_speech_is_not_silent():
    strength = _strength(_audio(("speech", 1.01), ("silence", 1.0), ("speech", 1.0)), 75)
    assert strength[25] == 1, "frame 25 spans 1.00-1.04 s and hears 10 ms of speech: it still speaks"


def test_silence_at_the_start_and_the_end_has_no_fade_on_its_outer_side():
    strength = _strength(_audio(("silence", 1.0), ("speech", 1.0), ("silence", 1.0)), 75)
    np.testing.assert_array_equal(strength[:22], 0)
    np.testing.assert_allclose(strength[22:25], [0.25, 0.5, 0.75])
    np.testing.assert_allclose(strength[50:53], [0.75, 0.5, 0.25])
    np.testing.assert_array_equal(strength[53:], 0)


def test_zero_minimum_length_turns_it_off():
    np.testing.assert_array_equal(_strength(_audio(("silence", 2.0)), 50, min_seconds=0), 1)


def test_frames_beyond_the_audio_count_as_silent():
    strength = _strength(_audio(("speech", 1.0)), 40)
    np.testing.assert_array_equal(strength[:25], 1)
    assert (strength[25 + 3 :] == 0).all()
