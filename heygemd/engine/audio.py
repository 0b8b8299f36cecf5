"""Audio features for Wav2Lip and the alignment of video frames to mel frames.

The recipe must match the one the public Wav2Lip checkpoints were trained on: pre-emphasis,
a centred STFT with reflect padding, a Slaney mel filterbank, decibels and a clipped
linear normalisation to [-4, 4]. Input is 16 kHz mono float audio, already decoded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import librosa
import numpy as np
from scipy.signal import lfilter

from heygemd.engine.errors import AudioError
from heygemd.engine.generator_io import MEL_BANDS as N_MELS
from heygemd.engine.generator_io import MEL_WINDOW

SAMPLE_RATE = 16000
N_FFT = 800
HOP_LENGTH = 200
WIN_LENGTH = 800
FMIN = 55
FMAX = 7600
PREEMPHASIS = 0.97
MIN_LEVEL_DB = -100
REF_LEVEL_DB = 20
MAX_ABS_VALUE = 4.0
MEL_FRAMES_PER_SECOND = SAMPLE_RATE // HOP_LENGTH  # 80
SILENCE_LEVEL = -MAX_ABS_VALUE  # the normalised value of digital silence

_AMPLITUDE_FLOOR = 1e-5  # -100 dB, so silence maps to MIN_LEVEL_DB - REF_LEVEL_DB
_OVERFLOW = "the audio features came out invalid (NaN); the samples are probably far outside [-1, 1]"


def preemphasis(wav: np.ndarray) -> np.ndarray:
    """y[n] = x[n] - 0.97 x[n-1] over the whole signal (x[-1] = 0).

    wav: (n_samples,) -> (n_samples,) float64
    """
    return lfilter([1.0, -PREEMPHASIS], [1.0], np.asarray(wav, dtype=np.float64))


def stft_magnitude(wav: np.ndarray) -> np.ndarray:
    """Magnitude of the centred STFT (Hann window).

    The signal is reflect-padded by N_FFT // 2 on both sides, as librosa < 0.10 did by
    default; librosa >= 0.10 pads with zeros, which changes the first and last frames.
    The padding is done here so no librosa default can change it.

    wav: (n_samples,) -> (N_FFT // 2 + 1, 1 + n_samples // HOP_LENGTH) float64
    """
    padded = np.pad(np.asarray(wav, dtype=np.float64), N_FFT // 2, mode="reflect")
    spectrum = librosa.stft(
        y=padded,
        n_fft=N_FFT,
        hop_length=HOP_LENGTH,
        win_length=WIN_LENGTH,
        window="hann",
        center=False,
    )
    return np.abs(spectrum)


@lru_cache(maxsize=1)
def mel_filters() -> np.ndarray:
    """Slaney-scale mel filterbank with area normalisation, read-only and cached.

    Returns: (N_MELS, N_FFT // 2 + 1) float64
    """
    basis = librosa.filters.mel(
        sr=SAMPLE_RATE,
        n_fft=N_FFT,
        n_mels=N_MELS,
        fmin=FMIN,
        fmax=FMAX,
        htk=False,
        norm="slaney",
        dtype=np.float64,
    )
    basis.setflags(write=False)
    return basis


def linear_to_mel(magnitude: np.ndarray) -> np.ndarray:
    """Project STFT magnitudes onto the mel bands.

    magnitude: (N_FFT // 2 + 1, n_frames) -> (N_MELS, n_frames)
    """
    return mel_filters() @ magnitude


def amplitude_to_db(amplitude: np.ndarray) -> np.ndarray:
    """20 log10(amplitude), floored at -100 dB, minus the reference level (20 dB)."""
    return 20.0 * np.log10(np.maximum(_AMPLITUDE_FLOOR, amplitude)) - REF_LEVEL_DB


def normalize(db: np.ndarray) -> np.ndarray:
    """Map [MIN_LEVEL_DB, 0] dB linearly onto [-4, 4] and clip to that range."""
    scaled = 2 * MAX_ABS_VALUE * ((db - MIN_LEVEL_DB) / -MIN_LEVEL_DB) - MAX_ABS_VALUE
    return np.clip(scaled, -MAX_ABS_VALUE, MAX_ABS_VALUE)


def _check_wav(wav: np.ndarray) -> np.ndarray:
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


def melspectrogram(wav: np.ndarray) -> np.ndarray:
    """Wav2Lip's normalised log-mel spectrogram of 16 kHz mono audio.

    wav: (n_samples,) float samples, nominally in [-1, 1]
    Returns: (N_MELS, 1 + n_samples // HOP_LENGTH) float32 in [-4, 4]; 80 frames per second,
    frame t centred on sample t * HOP_LENGTH.
    Raises AudioError for empty, multi-channel or non-finite input, or if the features
    come out NaN (e.g. samples so large that the transform overflows).
    """
    wav = _check_wav(wav)
    emphasised = preemphasis(wav)
    if not np.all(np.isfinite(emphasised)):
        raise AudioError(_OVERFLOW)
    mel = normalize(amplitude_to_db(linear_to_mel(stft_magnitude(emphasised))))
    if np.isnan(mel).any():
        raise AudioError(_OVERFLOW)
    return mel.astype(np.float32)


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
