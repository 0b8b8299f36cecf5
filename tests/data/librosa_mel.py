"""Oracle: heygemd's former librosa-based Wav2Lip mel features, kept to check the numpy module against.

This is the recipe as heygemd computed it with librosa up to the numpy rewrite (librosa's STFT
and its Slaney filterbank, the rest in numpy/scipy). It is imported only by tests/engine/test_audio.py
(which skips it when librosa is absent) and bench/audio_features_bench.py; the engine never
imports it. librosa stays in the `test` extra for it.
"""

from __future__ import annotations

import librosa
import numpy as np
from scipy.signal import lfilter

from heygemd.engine.audio import (
    FMAX,
    FMIN,
    HOP_LENGTH,
    MAX_ABS_VALUE,
    MIN_LEVEL_DB,
    N_FFT,
    N_MELS,
    PREEMPHASIS,
    REF_LEVEL_DB,
    SAMPLE_RATE,
)

_AMPLITUDE_FLOOR = 1e-5


def librosa_melspectrogram(wav: np.ndarray) -> np.ndarray:
    """(n_samples,) float -> (N_MELS, 1 + n_samples // HOP_LENGTH) float32 in [-4, 4]."""
    emphasised = lfilter([1.0, -PREEMPHASIS], [1.0], np.asarray(wav, dtype=np.float64))
    padded = np.pad(emphasised, N_FFT // 2, mode="reflect")  # librosa < 0.10's centring
    spectrum = librosa.stft(y=padded, n_fft=N_FFT, hop_length=HOP_LENGTH, win_length=N_FFT, window="hann", center=False)
    basis = librosa.filters.mel(
        sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=FMIN, fmax=FMAX, htk=False, norm="slaney", dtype=np.float64
    )
    db = 20.0 * np.log10(np.maximum(_AMPLITUDE_FLOOR, basis @ np.abs(spectrum))) - REF_LEVEL_DB
    scaled = 2 * MAX_ABS_VALUE * ((db - MIN_LEVEL_DB) / -MIN_LEVEL_DB) - MAX_ABS_VALUE
    return np.clip(scaled, -MAX_ABS_VALUE, MAX_ABS_VALUE).astype(np.float32)
