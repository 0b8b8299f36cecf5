"""Write tests/data/mel_golden.npz: Wav2Lip mel features computed independently of heygemd.

This is a second, plain-numpy implementation of the recipe (no librosa, no scipy), written
from the formulas, so the test compares two implementations rather than one with itself.
Run once from the repository root:  python tests/data/make_mel_golden.py

Stored arrays (all float32):
  speech_wav (20800,)   1.3 s of a seeded speech-like signal with a clipped stretch at +-1
  speech_mel (80, 105)
  short_wav  (1600,)    0.1 s clip
  short_mel  (80, 9)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SR = 16000
N_FFT = 800
HOP = 200
N_MELS = 80
FMIN = 55.0
FMAX = 7600.0
SEED = 20240611

OUT = Path(__file__).with_name("mel_golden.npz")


def speech_like(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Harmonics of a gliding pitch under a syllable envelope, plus noise; one stretch clipped."""
    t = np.arange(int(round(seconds * SR))) / SR
    f0 = 120.0 + 40.0 * np.sin(2 * np.pi * 1.7 * t) + 15.0 * t  # Hz
    phase = 2 * np.pi * np.cumsum(f0) / SR
    voiced = sum((0.6 / k) * np.sin(k * phase + rng.uniform(0, 2 * np.pi)) for k in range(1, 9))
    envelope = 0.15 + 0.85 * np.sin(np.pi * 3.5 * t) ** 2
    wav = 0.5 * envelope * voiced + 0.01 * rng.standard_normal(t.size)
    loud = (t >= 0.55) & (t < 0.75)
    wav[loud] *= 4.0  # overdriven: clipped to the full scale below
    return np.clip(wav, -1.0, 1.0).astype(np.float32)


def preemphasis(x: np.ndarray) -> np.ndarray:
    y = x.astype(np.float64).copy()
    y[1:] -= 0.97 * x[:-1].astype(np.float64)
    return y


def reflect_pad(x: np.ndarray, width: int) -> np.ndarray:
    """Mirror about the end samples (the end sample itself is not repeated)."""
    assert x.size > width, "this helper only handles signals longer than the pad"
    head = x[1 : width + 1][::-1]
    tail = x[-width - 1 : -1][::-1]
    return np.concatenate([head, x, tail])


def stft_magnitude(x: np.ndarray) -> np.ndarray:
    padded = reflect_pad(x, N_FFT // 2)
    n_frames = 1 + (padded.size - N_FFT) // HOP
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)  # periodic Hann
    frames = np.stack([padded[i * HOP : i * HOP + N_FFT] for i in range(n_frames)])
    return np.abs(np.fft.rfft(frames * window, axis=1)).T  # (401, n_frames)


def hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's scale: linear (3 per 200 Hz) below 1 kHz, logarithmic above."""
    f = np.asarray(f, dtype=np.float64)
    step = np.log(6.4) / 27.0
    return np.where(f < 1000.0, f * 3.0 / 200.0, 15.0 + np.log(np.maximum(f, 1e-12) / 1000.0) / step)


def mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    step = np.log(6.4) / 27.0
    return np.where(m < 15.0, m * 200.0 / 3.0, 1000.0 * np.exp(step * (m - 15.0)))


def mel_filterbank() -> np.ndarray:
    """Triangles between consecutive mel-spaced edges, each scaled to unit area (2 / width)."""
    bins_hz = np.linspace(0.0, SR / 2, N_FFT // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(FMIN), hz_to_mel(FMAX), N_MELS + 2))
    bank = np.zeros((N_MELS, bins_hz.size))
    for b in range(N_MELS):
        lo, mid, hi = edges[b], edges[b + 1], edges[b + 2]
        rising = (bins_hz - lo) / (mid - lo)
        falling = (hi - bins_hz) / (hi - mid)
        bank[b] = np.maximum(0.0, np.minimum(rising, falling)) * 2.0 / (hi - lo)
    return bank


def wav2lip_mel(wav: np.ndarray) -> np.ndarray:
    mel = mel_filterbank() @ stft_magnitude(preemphasis(wav))
    db = 20.0 * np.log10(np.maximum(1e-5, mel)) - 20.0
    return np.clip(8.0 * ((db + 100.0) / 100.0) - 4.0, -4.0, 4.0).astype(np.float32)


def main() -> None:
    rng = np.random.default_rng(SEED)
    speech = speech_like(1.3, rng)
    short = speech_like(0.1, rng)
    np.savez_compressed(
        OUT,
        speech_wav=speech,
        speech_mel=wav2lip_mel(speech),
        short_wav=short,
        short_mel=wav2lip_mel(short),
    )
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
