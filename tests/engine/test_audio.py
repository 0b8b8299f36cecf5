"""Wav2Lip audio features and the video-frame to mel-window alignment."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from heygemd.engine import audio
from heygemd.engine.errors import AudioError

DATA = Path(__file__).parents[1] / "data"
GOLDEN = DATA / "mel_golden.npz"
FPS_RATES = [24000 / 1001, 25.0, 30000 / 1001, 30.0, 50.0, 60.0]
# The module computes in float64 and rounds once to float32, as both references do: it agrees
# with them to the last bit today; the margin only absorbs another BLAS's summation order.
# (1e-5 normalised units is 1.25e-4 dB.)
FEATURE_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    with np.load(GOLDEN) as data:
        return {key: data[key] for key in data.files}


def tone(seconds: float, freq: float = 220.0, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(round(seconds * audio.SAMPLE_RATE)) / audio.SAMPLE_RATE
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


# --- melspectrogram -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["speech", "short"])
def test_matches_independent_golden_values(golden: dict[str, np.ndarray], name: str) -> None:
    wav, expected = golden[f"{name}_wav"], golden[f"{name}_mel"]
    mel = audio.melspectrogram(wav)
    assert mel.dtype == np.float32
    assert mel.shape == expected.shape
    assert np.abs(mel - expected).max() < FEATURE_TOLERANCE


def test_golden_signal_exercises_the_clipped_stretch_and_the_edges(golden: dict[str, np.ndarray]) -> None:
    wav = golden["speech_wav"]
    assert (np.abs(wav) >= 1.0).sum() > 100
    # Reflect padding only matters if the first and last frames carry signal.
    assert np.abs(wav[:400]).max() > 0.05 and np.abs(wav[-400:]).max() > 0.05


def speech_like(seconds: float, seed: int) -> np.ndarray:
    """The golden values' speech-like signal (gliding harmonics, syllables, noise, a clipped stretch)."""
    sys.path.insert(0, str(DATA))
    from make_mel_golden import speech_like as make

    return make(seconds, np.random.default_rng(seed))


def comparison_signals() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    signals = {
        "speech 3 s": speech_like(3.0, 1),
        "speech 0.3 s": speech_like(0.3, 2),
        "white noise": (0.3 * rng.standard_normal(24000)).astype(np.float32),
        "quiet noise": (1e-4 * rng.standard_normal(8000)).astype(np.float32),
        "tone": tone(1.0, freq=220.0),
        "quiet high tone": tone(0.5, freq=5000.0, amplitude=1e-3),
        "square": np.sign(tone(0.5, freq=150.0)),
        "overdriven": tone(0.5, freq=150.0, amplitude=30.0),
        "silence with a click": np.zeros(8000, dtype=np.float32),
        "float64 noise": 0.2 * rng.standard_normal(5000),
    }
    signals["silence with a click"][4000] = 1.0
    for n in (1, 2, 3, 199, 401, 799, 801):  # shorter than the reflect padding, and around it
        signals[f"{n} samples"] = (0.1 * rng.standard_normal(n)).astype(np.float32)
    return signals


COMPARISON_SIGNALS = comparison_signals()


@pytest.mark.parametrize("name", list(COMPARISON_SIGNALS))
def test_matches_the_former_librosa_implementation(name: str) -> None:
    pytest.importorskip("librosa", reason="the librosa oracle needs librosa (pip install -e '.[test]')")
    sys.path.insert(0, str(DATA))
    from librosa_mel import librosa_melspectrogram

    wav = COMPARISON_SIGNALS[name]
    expected = librosa_melspectrogram(wav)
    mel = audio.melspectrogram(wav)
    assert mel.shape == expected.shape
    assert np.abs(mel - expected).max() < FEATURE_TOLERANCE


def test_filterbank_matches_librosa_slaney() -> None:
    librosa = pytest.importorskip("librosa", reason="the librosa oracle needs librosa (pip install -e '.[test]')")
    expected = librosa.filters.mel(
        sr=audio.SAMPLE_RATE, n_fft=audio.N_FFT, n_mels=audio.N_MELS, fmin=audio.FMIN, fmax=audio.FMAX,
        htk=False, norm="slaney", dtype=np.float64,
    )  # fmt: skip
    np.testing.assert_allclose(audio.mel_filters(), expected, rtol=1e-12, atol=1e-15)


def test_slaney_scale_is_linear_to_1khz_then_27_mels_per_factor_6_4() -> None:
    assert audio.hz_to_mel(200.0) == pytest.approx(3.0)
    assert audio.hz_to_mel(1000.0) == pytest.approx(15.0)
    assert audio.hz_to_mel(6400.0) == pytest.approx(15.0 + 27.0)
    assert audio.hz_to_mel(1000.0 * 6.4**2) == pytest.approx(15.0 + 54.0)
    hz = np.array([0.0, 55.0, 999.0, 1000.0, 1001.0, 4321.0, 7600.0, 8000.0])
    np.testing.assert_allclose(audio.mel_to_hz(audio.hz_to_mel(hz)), hz, rtol=1e-12)
    # Continuous at the break: no step between the linear and the logarithmic part.
    assert audio.hz_to_mel(1000.0 - 1e-9) == pytest.approx(audio.hz_to_mel(1000.0 + 1e-9), abs=1e-9)


def test_filterbank_triangles_have_unit_area_and_peak_on_mel_spaced_centres() -> None:
    basis = audio.mel_filters()
    assert basis.shape == (audio.N_MELS, audio.N_FFT // 2 + 1)
    assert basis.dtype == np.float64 and not basis.flags.writeable
    assert (basis >= 0).all()
    bin_hz = audio.SAMPLE_RATE / audio.N_FFT
    edges = audio.mel_to_hz(np.linspace(audio.hz_to_mel(audio.FMIN), audio.hz_to_mel(audio.FMAX), audio.N_MELS + 2))
    widths = edges[2:] - edges[:-2]
    # "slaney" normalisation: height 2 / width, so each triangle's area (in Hz) is 1. Sampled
    # every 20 Hz the narrowest (3.6 bins wide) are within 4 %, the wider ones closer.
    areas = basis.sum(axis=1) * bin_hz
    np.testing.assert_allclose(areas, 1.0, rtol=0.04)
    wide = widths > 8 * bin_hz
    assert wide.sum() > audio.N_MELS // 3
    np.testing.assert_allclose(areas[wide], 1.0, rtol=0.015)
    # Each band's largest weight sits on the STFT bin nearest its centre edge.
    nearest = np.rint(edges[1:-1] / bin_hz)
    peaks = basis.argmax(axis=1)
    assert (np.abs(peaks - nearest) <= 1).all()
    # Nothing outside [FMIN, FMAX].
    hz = np.arange(basis.shape[1]) * bin_hz
    assert (basis[:, (hz <= audio.FMIN) | (hz >= audio.FMAX)] == 0).all()


def test_frame_t_is_centred_on_sample_t_times_hop() -> None:
    wav = np.arange(1001, dtype=np.float64)
    framed = audio.frames(wav)
    assert framed.shape == (1 + 1001 // audio.HOP_LENGTH, audio.N_FFT)
    for t in range(len(framed)):
        assert framed[t, audio.N_FFT // 2] == t * audio.HOP_LENGTH
    # Reflect padding mirrors about the first sample without repeating it.
    np.testing.assert_array_equal(framed[0, : audio.N_FFT // 2], np.arange(audio.N_FFT // 2, 0, -1))


def test_blocks_of_frames_give_the_same_features_as_one_block(monkeypatch: pytest.MonkeyPatch) -> None:
    wav = speech_like(1.0, 3)
    whole = audio.melspectrogram(wav)
    monkeypatch.setattr(audio, "_FRAMES_PER_BLOCK", 7)  # 81 frames: 11 full blocks and a partial one
    np.testing.assert_array_equal(audio.melspectrogram(wav), whole)


def test_features_import_neither_librosa_nor_numba_nor_scipy() -> None:
    """The first job of a process must not pay for lazily compiled code: nothing heavy is imported."""
    script = (
        "import sys, numpy as np\n"
        "from heygemd.engine.audio import melspectrogram\n"
        "melspectrogram(np.zeros(1600, dtype=np.float32))\n"
        "print(sorted(m for m in ('librosa', 'numba', 'scipy', 'torch') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("n_samples", [1, 2, 199, 200, 201, 401, 799, 800, 1600, 16000, 16123])
def test_shape_is_80_by_one_plus_samples_over_hop(n_samples: int) -> None:
    rng = np.random.default_rng(n_samples)
    wav = (0.1 * rng.standard_normal(n_samples)).astype(np.float32)
    mel = audio.melspectrogram(wav)
    assert mel.shape == (80, 1 + n_samples // 200)
    assert mel.dtype == np.float32
    assert np.isfinite(mel).all()


def test_digital_silence_is_the_silence_level_everywhere() -> None:
    mel = audio.melspectrogram(np.zeros(8000, dtype=np.float32))
    assert audio.SILENCE_LEVEL == -4.0
    assert (mel == audio.SILENCE_LEVEL).all()


def test_loud_tone_is_louder_than_quiet_tone() -> None:
    loud = audio.melspectrogram(tone(0.5, amplitude=0.5))
    quiet = audio.melspectrogram(tone(0.5, amplitude=0.005))
    assert loud.max() > quiet.max() + 3.0  # 40 dB apart = 3.2 normalised units


def test_clipped_input_stays_finite_and_in_range() -> None:
    square = np.sign(tone(0.5, freq=150.0))  # exactly +-1 (and 0)
    overdriven = tone(0.5, freq=150.0, amplitude=30.0)  # far past +-1
    for wav in (square, overdriven):
        mel = audio.melspectrogram(wav)
        assert np.isfinite(mel).all()
        assert mel.min() >= -4.0 and mel.max() <= 4.0
    assert audio.melspectrogram(overdriven).max() == 4.0  # saturates at the top of the range


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_raise_audio_error(bad: float) -> None:
    wav = tone(0.2)
    wav[100] = bad
    with pytest.raises(AudioError, match=r"invalid samples \(NaN or infinity\)") as info:
        audio.melspectrogram(wav)
    assert info.value.path is None


def test_empty_input_raises_audio_error() -> None:
    with pytest.raises(AudioError, match="empty"):
        audio.melspectrogram(np.zeros(0, dtype=np.float32))


def test_multichannel_input_raises_audio_error() -> None:
    with pytest.raises(AudioError, match="mono"):
        audio.melspectrogram(np.zeros((2, 1600), dtype=np.float32))


def test_integer_samples_raise_audio_error() -> None:
    with pytest.raises(AudioError, match="floating point"):
        audio.melspectrogram(np.zeros(1600, dtype=np.int16))


@pytest.mark.parametrize("magnitude", [1e308, 1e306])  # overflows in pre-emphasis / in the FFT
def test_overflowing_samples_raise_audio_error_not_nan(magnitude: float) -> None:
    wav = np.full(1600, magnitude)
    wav[::2] = -magnitude
    with pytest.raises(AudioError, match="NaN"):
        audio.melspectrogram(wav)


# --- frame alignment ------------------------------------------------------------------


@pytest.mark.parametrize("fps", FPS_RATES)
def test_window_start_is_the_reference_index(fps: float) -> None:
    # The reference computes int(i * (80 / fps)); for the first hour of frames at these
    # rates that also equals int(i * 80 / fps) except at 24000/1001 (see next test).
    for i in range(int(3600 * fps)):
        assert audio.mel_window_start(i, fps) == int(i * (80.0 / fps))
    for i in range(3000):
        assert audio.mel_window_start(i, fps) == int(i * 80 / fps)


def test_window_start_is_exact_where_the_division_order_matters() -> None:
    # 3900 frames at 24000/1001 fps is exactly 13013 mel frames; i * 80 / fps rounds to
    # 13012.999..., the reference's i * (80 / fps) gives 13013.0.
    assert audio.mel_window_start(3900, 24000 / 1001) == 13013


def test_window_start_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        audio.mel_window_start(-1, 25.0)
    for fps in (0.0, -25.0, math.nan, math.inf):
        with pytest.raises(ValueError):
            audio.mel_window_start(0, fps)


def test_windows_are_the_mel_columns_at_each_start() -> None:
    mel = audio.melspectrogram(tone(2.0))
    fps = 30000 / 1001
    indices = [0, 1, 7, 29, 40]
    windows = audio.mel_windows(mel, indices, fps)
    assert windows.shape == (5, 1, 80, 16) and windows.dtype == np.float32
    for window, i in zip(windows, indices):
        start = int(i * 80 / fps)
        np.testing.assert_array_equal(window[0], mel[:, start : start + 16])


def test_short_clip_gets_full_windows_padded_with_silence(golden: dict[str, np.ndarray]) -> None:
    wav = golden["short_wav"]
    mel = audio.melspectrogram(wav)
    assert mel.shape == (80, 9)
    n = audio.video_frame_count(wav.size, 25.0)
    assert n == 3  # 0.1 s at 25 fps
    windows = audio.mel_windows(mel, np.arange(n), 25.0)
    assert windows.shape == (3, 1, 80, 16)
    for window, i in zip(windows, range(n)):
        start = audio.mel_window_start(i, 25.0)
        real = mel.shape[1] - start
        np.testing.assert_array_equal(window[0, :, :real], mel[:, start:])
        assert (window[0, :, real:] == audio.SILENCE_LEVEL).all()
    assert (windows[0, 0, :, :9] != audio.SILENCE_LEVEL).any()


def test_empty_frame_list_gives_no_windows() -> None:
    mel = audio.melspectrogram(tone(0.5))
    assert audio.mel_windows(mel, [], 25.0).shape == (0, 1, 80, 16)


def test_windows_reject_a_mel_of_the_wrong_shape() -> None:
    with pytest.raises(ValueError):
        audio.mel_windows(np.zeros((40, 100), dtype=np.float32), [0], 25.0)


@pytest.mark.parametrize("fps", FPS_RATES)
@pytest.mark.parametrize("n_samples", [1, 199, 1600, 16000, 16001, 20800, 17 * 16000 + 123, 640640])
def test_frame_count_covers_the_audio_and_last_window_is_in_the_mel(fps: float, n_samples: int) -> None:
    n_frames = audio.video_frame_count(n_samples, fps)
    duration = n_samples / audio.SAMPLE_RATE
    video = n_frames / fps
    assert video >= duration - 1e-6  # the tail of the audio is not cut
    assert video - duration < 1.0 / fps  # and no more than one frame of overrun
    n_mel = 1 + n_samples // audio.HOP_LENGTH
    last_start = audio.mel_window_start(n_frames - 1, fps)
    assert last_start <= n_mel - 1  # the last window starts inside the real mel


@pytest.mark.parametrize("fps", FPS_RATES)
def test_every_frame_gets_a_window_to_the_end_of_the_audio(fps: float) -> None:
    wav = tone(1.37)
    mel = audio.melspectrogram(wav)
    n_frames = audio.video_frame_count(wav.size, fps)
    windows = audio.mel_windows(mel, np.arange(n_frames), fps)
    assert windows.shape == (n_frames, 1, 80, 16)
    # The reference would stop at the first window that runs past the end; we keep them all.
    reference_frames = next(i for i in range(n_frames + 1) if audio.mel_window_start(i, fps) + 16 > mel.shape[1])
    assert n_frames > reference_frames
    assert (windows[-1, 0, :, -1] == audio.SILENCE_LEVEL).all()


def test_exact_frame_multiples_do_not_gain_a_frame() -> None:
    assert audio.video_frame_count(16000, 25.0) == 25
    assert audio.video_frame_count(16000 * 1001, 30000 / 1001) == 30000
    assert audio.video_frame_count(16000 * 1001, 24000 / 1001) == 24000
    assert audio.video_frame_count(16001, 25.0) == 26
    assert audio.video_frame_count(1, 60.0) == 1


def test_frame_count_rejects_empty_audio() -> None:
    with pytest.raises(AudioError):
        audio.video_frame_count(0, 25.0)
