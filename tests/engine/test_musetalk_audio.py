"""MuseTalk's audio windows: whisper-tiny's hidden states, and which of them each video frame sees.

The facts, from the published reference: 16 kHz audio in 30 s segments; 50 whisper frames a second;
5 hidden states of 384 (the embedding output and the 4 layers, the last after the final LayerNorm);
2 video frames of padding either side, so a window is 10 whisper frames (0.2 s) whatever the fps.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.io import wavfile

from heygemd.engine.musetalk.windows import windows

SAMPLE_RATE = 16000


def _speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    return (0.3 * envelope * np.sin(2 * np.pi * 220 * t) + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


def _write_wav(path: Path, samples: np.ndarray) -> Path:
    wavfile.write(path, SAMPLE_RATE, (samples * 32767).astype(np.int16))
    return path


def _numbered_features(count: int) -> np.ndarray:
    """Feature frame k holds k + 1 everywhere (0 is left for padding), layer l adds l / 10."""
    layers = np.arange(5, dtype=np.float32)[None, :, None] / 10
    return (np.arange(count, dtype=np.float32)[:, None, None] + 1 + layers) * np.ones((1, 5, 384), np.float32)


@pytest.mark.parametrize(("fps", "left_pad"), [(25.0, 4), (30.0, 4), (24.0, 6), (60.0, 2)])
def test_frame_i_starts_at_floor_i_times_50_over_fps_after_2m_padding_frames(fps: float, left_pad: int):
    """m = ceil(50 / fps) whisper frames per video frame; 2m zeros in front; 10 frames a window, time-major."""
    assert left_pad == 2 * math.ceil(50 / fps)
    features = _numbered_features(200)
    frames = range(int(200 / 50 * fps))
    got = windows(features, list(frames), fps).reshape(len(frames), 10, 5, 384)
    for frame in frames:
        first = math.floor(frame * 50 / fps) - left_pad
        for t in range(10):
            k = first + t
            expected = features[k] if 0 <= k < 200 else np.zeros((5, 384), np.float32)
            np.testing.assert_array_equal(got[frame, t], expected)


def test_at_25_fps_frame_i_covers_whisper_frames_2i_minus_4_to_2i_plus_5():
    features = _numbered_features(100)
    window = windows(features, [10], 25.0)[0]
    assert window.shape == (50, 384)
    rows_by_time = window[::5, 0] - 1  # layer 0 of each of the 10 time steps: the whisper frame's index
    np.testing.assert_array_equal(rows_by_time, np.arange(16, 26))
    np.testing.assert_allclose(window[:5, 0] - window[0, 0], np.arange(5) / 10, atol=1e-6), "row = t * 5 + layer"


def test_the_first_frames_see_zeros_before_the_audio_and_the_last_after_it():
    features = _numbered_features(100)  # 2 s
    first, last = windows(features, [0, 49], 25.0)
    assert (first[:20] == 0).all() and (first[20:] > 0).all()  # whisper frames -4..-1 are padding
    assert (last[-20:] == 0).all() and (last[:-20] > 0).all()  # frame 49 covers 94..103: 100..103 are padding


def test_the_true_frame_rate_is_used_not_its_integer_part():
    features = _numbered_features(6000)
    frame = 2997  # at 29.97 fps: 100 s; the reference's int(29.97) = 29 would start at floor(2997 * 50 / 29) = 5167
    start = windows(features, [frame], 29.97)[0, 0, 0] - 1 + 4
    assert start == math.floor(frame * 50 / 29.97) == 5000


def test_whisper_features_are_the_encoders_five_hidden_states_at_50_per_second(musetalk):
    samples = _speechlike(2.37)
    features = musetalk.whisper_features(samples)
    assert features.shape == (math.floor(2.37 * 50), 5, 384)
    mel = musetalk.feature_extractor(samples, sampling_rate=SAMPLE_RATE, return_tensors="pt").input_features
    assert tuple(mel.shape) == (1, 80, 3000), "80 mel bins, 10 ms hop, padded to 30 s"
    with torch.inference_mode():
        out = musetalk.whisper(mel, output_hidden_states=True)
    assert len(out.hidden_states) == 5
    np.testing.assert_allclose(features[:, 4], out.last_hidden_state[0, : len(features)].numpy(), atol=1e-5)
    np.testing.assert_allclose(features[:, 0], out.hidden_states[0][0, : len(features)].numpy(), atol=1e-5)


def test_audio_over_30_seconds_is_encoded_in_segments_and_concatenated(musetalk):
    samples = _speechlike(31.0, seed=1)
    features = musetalk.whisper_features(samples)
    assert features.shape == (1550, 5, 384)
    np.testing.assert_allclose(features[:1500], musetalk.whisper_features(samples[: 30 * SAMPLE_RATE]), atol=1e-5)
    np.testing.assert_allclose(features[1500:], musetalk.whisper_features(samples[30 * SAMPLE_RATE :]), atol=1e-5)

    # The engine's features encode a segment when its windows are asked for, and keep two: the same windows.
    from heygemd.engine.musetalk.port import WhisperFeatures

    lazy = WhisperFeatures(musetalk, samples)
    for batch in ([0, 1, 2], list(range(744, 752)), [773, 774, 775, 776], [3, 775]):  # 30 s is frame 750 at 25 fps
        np.testing.assert_allclose(lazy.windows(batch, 25.0), windows(features, batch, 25.0), atol=1e-5)
    assert len(lazy._segments) == 2


@pytest.mark.parametrize("fps", [25.0, 29.97])
def test_audio_features_of_a_file_give_floor_duration_times_fps_windows(musetalk, tmp_path: Path, fps: float):
    samples = _speechlike(1.93)
    wav = _write_wav(tmp_path / "speech.wav", samples)
    feats = musetalk.audio_features(wav, fps)
    assert isinstance(feats, torch.Tensor) and feats.dtype == torch.float32
    assert tuple(feats.shape) == (math.floor(len(samples) / SAMPLE_RATE * fps), 50, 384)
    again = musetalk.audio_features(wav, fps)
    assert torch.equal(feats, again), "deterministic"
    quantised = np.asarray(samples * 32767, dtype=np.int16).astype(np.float32) / 32768
    expected = windows(musetalk.whisper_features(quantised), range(len(feats)), fps)
    np.testing.assert_allclose(feats.numpy(), expected, atol=1e-4)
