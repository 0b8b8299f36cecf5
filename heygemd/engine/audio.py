"""Audio features for Wav2Lip and the alignment of video frames to mel frames.

The recipe must match the one the public Wav2Lip checkpoints were trained on: pre-emphasis,
a centred STFT with reflect padding, a Slaney mel filterbank, decibels and a clipped
linear normalisation to [-4, 4]. Input is 16 kHz mono float audio, already decoded.

Everything is plain numpy: nothing is compiled on first use (librosa's numba kernels cost
seconds on the first job of a process), so the first call costs what every later call does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from heygemd.engine.errors import AudioError
from heygemd.engine.generator_io import MEL_BANDS as N_MELS
from heygemd.engine.generator_io import MEL_WINDOW

SAMPLE_RATE = 16000
N_FFT = 800
HOP_LENGTH = 200
N_FREQS = N_FFT // 2 + 1  # rfft bins, 0 .. SAMPLE_RATE / 2 in steps of SAMPLE_RATE / N_FFT (20 Hz)
FMIN = 55
FMAX = 7600
PREEMPHASIS = 0.97
MIN_LEVEL_DB = -100
REF_LEVEL_DB = 20
MAX_ABS_VALUE = 4.0
MEL_FRAMES_PER_SECOND = SAMPLE_RATE // HOP_LENGTH  # 80
SILENCE_LEVEL = -MAX_ABS_VALUE  # the normalised value of digital silence

_AMPLITUDE_FLOOR = 1e-5  # -100 dB, so silence maps to MIN_LEVEL_DB - REF_LEVEL_DB
# Slaney's mel scale (Auditory Toolbox): 3 mels per 200 Hz up to 1 kHz (= 15 mels), then
# logarithmic, 27 mels per factor 6.4 in frequency.
_SLANEY_HZ_PER_MEL = 200.0 / 3.0
_SLANEY_BREAK_HZ = 1000.0
_SLANEY_BREAK_MEL = _SLANEY_BREAK_HZ / _SLANEY_HZ_PER_MEL
_SLANEY_LOG_STEP = math.log(6.4) / 27.0
# STFT frames transformed at once: bounds the float64 temporaries to ~13 MB each, so memory
# does not grow with the audio beyond the (N_MELS, n_frames) result.
_FRAMES_PER_BLOCK = 2048
_OVERFLOW = "the audio features came out invalid (NaN); the samples are probably far outside [-1, 1]"


def preemphasis(wav: np.ndarray) -> np.ndarray:
    """y[n] = x[n] - 0.97 x[n-1] over the whole signal (x[-1] = 0).

    wav: (n_samples,) -> (n_samples,) float64
    """
    samples = np.asarray(wav)
    emphasised = np.empty(samples.shape, dtype=np.float64)  # float32 input is widened element by element, not copied
    emphasised[:1] = samples[:1]
    np.multiply(samples[:-1], -PREEMPHASIS, out=emphasised[1:], dtype=np.float64)
    emphasised[1:] += samples[1:]
    return emphasised


def frames(wav: np.ndarray) -> np.ndarray:
    """The STFT's frames: N_FFT samples every HOP_LENGTH, frame t centred on sample t * HOP_LENGTH.

    The signal is reflect-padded (mirrored about its end samples) by N_FFT // 2 on both sides,
    as librosa < 0.10 did by default; librosa >= 0.10 pads with zeros, which changes the first
    and last frames.

    wav: (n_samples,) -> (1 + n_samples // HOP_LENGTH, N_FFT), a read-only view of the padded signal
    """
    padded = np.pad(wav, N_FFT // 2, mode="reflect")
    return sliding_window_view(padded, N_FFT)[::HOP_LENGTH]


@lru_cache(maxsize=1)
def hann_window() -> np.ndarray:
    """The periodic Hann window (the DFT-even one, as for spectral analysis), read-only and cached.

    Returns: (N_FFT,) float64
    """
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(N_FFT) / N_FFT)
    window.setflags(write=False)
    return window


def stft_magnitude(framed: np.ndarray) -> np.ndarray:
    """Magnitude of the windowed frames' spectra (power 1).

    framed: (n_frames, N_FFT) -> (n_frames, N_FREQS) float64
    """
    return np.abs(np.fft.rfft(framed * hann_window(), axis=-1))


def hz_to_mel(frequency: npt.ArrayLike) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above. (...,) Hz -> (...,) mels, float64."""
    hz = np.asarray(frequency, dtype=np.float64)
    above = _SLANEY_BREAK_MEL + np.log(np.maximum(hz, _SLANEY_BREAK_HZ) / _SLANEY_BREAK_HZ) / _SLANEY_LOG_STEP
    return np.where(hz >= _SLANEY_BREAK_HZ, above, hz / _SLANEY_HZ_PER_MEL)


def mel_to_hz(mel: npt.ArrayLike) -> np.ndarray:
    """The inverse of `hz_to_mel`. (...,) mels -> (...,) Hz, float64."""
    mels = np.asarray(mel, dtype=np.float64)
    above = _SLANEY_BREAK_HZ * np.exp(_SLANEY_LOG_STEP * (np.maximum(mels, _SLANEY_BREAK_MEL) - _SLANEY_BREAK_MEL))
    return np.where(mels >= _SLANEY_BREAK_MEL, above, mels * _SLANEY_HZ_PER_MEL)


@lru_cache(maxsize=1)
def mel_filters() -> np.ndarray:
    """Slaney-scale mel filterbank with area normalisation ("slaney"), read-only and cached.

    Band b is a triangle over the STFT bins rising from edge b to a peak at edge b + 1 and
    falling to edge b + 2, the N_MELS + 2 edges equally spaced in mels from FMIN to FMAX;
    each triangle is scaled by 2 / (its width in Hz), so all have the same area.

    Returns: (N_MELS, N_FREQS) float64
    """
    bins_hz = np.arange(N_FREQS) * (SAMPLE_RATE / N_FFT)
    edges_hz = mel_to_hz(np.linspace(hz_to_mel(FMIN), hz_to_mel(FMAX), N_MELS + 2))
    low, peak, high = edges_hz[:-2, None], edges_hz[1:-1, None], edges_hz[2:, None]
    rising = (bins_hz - low) / (peak - low)
    falling = (high - bins_hz) / (high - peak)
    basis: np.ndarray = np.maximum(0.0, np.minimum(rising, falling)) * (2.0 / (high - low))
    basis.setflags(write=False)
    return basis


def linear_to_mel(magnitude: np.ndarray) -> np.ndarray:
    """Project STFT magnitudes onto the mel bands.

    magnitude: (n_frames, N_FREQS) -> (n_frames, N_MELS) float64
    """
    mel: np.ndarray = magnitude @ mel_filters().T
    return mel


def amplitude_to_db(amplitude: np.ndarray) -> np.ndarray:
    """20 log10(amplitude), floored at -100 dB, minus the reference level (20 dB). Shape kept."""
    db: np.ndarray = 20.0 * np.log10(np.maximum(_AMPLITUDE_FLOOR, amplitude)) - REF_LEVEL_DB
    return db


def normalize(db: np.ndarray) -> np.ndarray:
    """Map [MIN_LEVEL_DB, 0] dB linearly onto [-4, 4] and clip to that range. Shape kept."""
    scaled = 2 * MAX_ABS_VALUE * ((db - MIN_LEVEL_DB) / -MIN_LEVEL_DB) - MAX_ABS_VALUE
    return np.clip(scaled, -MAX_ABS_VALUE, MAX_ABS_VALUE)


def check_samples(wav: np.ndarray) -> np.ndarray:
    """``wav`` if it is usable audio: one channel of finite float samples, not empty. Raises AudioError."""
    wav = np.asarray(wav)
    if wav.ndim != 1:
        raise AudioError(f"the audio must be one mono channel of samples, got an array of shape {wav.shape}")
    if wav.size == 0:
        raise AudioError("the audio is empty (no samples)")
    if not np.issubdtype(wav.dtype, np.floating):
        raise AudioError(f"the audio samples must be floating point in [-1, 1], got {wav.dtype}")
    if not np.all(np.isfinite(wav)):
        raise AudioError("the audio contains invalid samples (NaN or infinity)")
    return wav


def _features(framed: np.ndarray) -> np.ndarray:
    """Every transform after framing, for one block of frames: (n, N_FFT) -> (n, N_MELS)."""
    return normalize(amplitude_to_db(linear_to_mel(stft_magnitude(framed))))


def melspectrogram(wav: np.ndarray) -> np.ndarray:
    """Wav2Lip's normalised log-mel spectrogram of 16 kHz mono audio.

    wav: (n_samples,) float samples, nominally in [-1, 1]
    Returns: (N_MELS, 1 + n_samples // HOP_LENGTH) float32 in [-4, 4]; 80 frames per second,
    frame t centred on sample t * HOP_LENGTH.
    Raises AudioError for empty, multi-channel or non-finite input, or if the features
    come out NaN (e.g. samples so large that the transform overflows).
    """
    wav = check_samples(wav)
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported below as an AudioError
        emphasised = preemphasis(wav)
        if not np.all(np.isfinite(emphasised)):
            raise AudioError(_OVERFLOW)
        framed = frames(emphasised)
        del emphasised  # the frames view a padded copy; this frees the signal's size in float64
        mel = np.empty((N_MELS, len(framed)), dtype=np.float32)
        for start in range(0, len(framed), _FRAMES_PER_BLOCK):
            block = framed[start : start + _FRAMES_PER_BLOCK]
            mel[:, start : start + len(block)] = _features(block).T
    if np.isnan(mel).any():
        raise AudioError(_OVERFLOW)
    return mel


def _check_fps(fps: float) -> None:
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive finite number, got {fps!r}")


def mel_window_start(frame_index: int, fps: float) -> int:
    """Index of the first mel frame of the window for video frame `frame_index` at `fps`.

    Computed as the reference does, int(frame_index * (80 / fps)), so indices agree
    with it bit for bit (the order of the float operations matters at 24000/1001 fps).
    """
    _check_fps(fps)
    if frame_index < 0:
        raise ValueError(f"frame_index must be >= 0, got {frame_index}")
    return int(frame_index * (MEL_FRAMES_PER_SECOND / fps))


def mel_windows(mel: np.ndarray, frame_indices: Sequence[int] | np.ndarray, fps: float) -> np.ndarray:
    """The model's audio input for each video frame: MEL_WINDOW mel frames from its start index.

    mel: (N_MELS, n_mel_frames), as returned by `melspectrogram`
    frame_indices: (N,) video frame indices, >= 0
    Returns: (N, 1, N_MELS, MEL_WINDOW) float32

    Near the end of the audio the reference takes the last MEL_WINDOW frames once and stops,
    dropping the remaining video frames. Here a window that runs past the end is padded on the
    right with SILENCE_LEVEL instead, so every frame up to `video_frame_count` gets its own
    window and the output lasts as long as the audio. (A window starting past the end is all
    silence.)
    """
    _check_fps(fps)
    mel = np.asarray(mel)
    if mel.ndim != 2 or mel.shape[0] != N_MELS:
        raise ValueError(f"mel must have shape ({N_MELS}, n_frames), got {mel.shape}")
    indices = [int(i) for i in np.asarray(frame_indices).reshape(-1)]
    starts = np.array([mel_window_start(i, fps) for i in indices], dtype=np.int64)
    if starts.size == 0:
        return np.empty((0, 1, N_MELS, MEL_WINDOW), dtype=np.float32)

    shortfall = max(0, int(starts.max()) + MEL_WINDOW - mel.shape[1])
    padded = np.pad(mel.astype(np.float32, copy=False), ((0, 0), (0, shortfall)), constant_values=SILENCE_LEVEL)
    columns = starts[:, None] + np.arange(MEL_WINDOW)  # (N, MEL_WINDOW)
    windows = padded[:, columns]  # (N_MELS, N, MEL_WINDOW)
    return np.ascontiguousarray(windows.transpose(1, 0, 2)[:, None])


def video_frame_count(num_samples: int, fps: float) -> int:
    """How many video frames at `fps` the render needs to cover `num_samples` of audio.

    N frames last N / fps seconds. The output must not cut the audio (N / fps >= duration)
    and must not run on for a whole extra frame (N / fps < duration + 1 / fps), so
    N = ceil(duration * fps). The 1e-6 absorbs float error when the duration is an exact
    number of frames (e.g. 16000 * k / 25 samples), which would otherwise add a frame.
    Any non-empty audio gets at least one frame.

    The last frame's mel window then still starts inside the mel: its start
    int((N - 1) * 80 / fps) <= duration * 80 = num_samples / 200, i.e. at most
    num_samples // 200, the mel's last index; `mel_windows` pads the rest of it.
    """
    _check_fps(fps)
    if num_samples <= 0:
        raise AudioError("the audio is empty (no samples)")
    return max(1, math.ceil(num_samples * fps / SAMPLE_RATE - 1e-6))
