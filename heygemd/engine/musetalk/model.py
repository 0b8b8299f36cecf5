"""MuseTalk 1.5 at run time: whisper windows in, a 256-pixel face inpainted in one UNet step out.

One frame, in the reference's order: the crop is encoded by the VAE twice (its upper half alone,
its lower half set to black, and whole), the two latents are concatenated, the UNet runs once at
timestep 0 attending to the frame's whisper window plus a sinusoidal positional encoding, and the
VAE decodes its output into the new face. The one deliberate difference: the latent is the VAE's
mean, not a random draw, so a render is deterministic and free of frame-to-frame noise.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import WhisperFeatureExtractor
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from heygemd.engine.checkpoint import CheckpointInfo
from heygemd.engine.errors import AudioError
from heygemd.engine.media import decode_audio
from heygemd.engine.musetalk.layout import (
    FACE_SIZE,
    HIDDEN_SIZE,
    HIDDEN_STATES,
    LATENT_SCALE,
    MASKED_FROM_ROW,
    SAMPLE_RATE,
    SEGMENT_SECONDS,
    WINDOW_ROWS,
)
from heygemd.engine.musetalk.loading import LoadedNetworks, load_networks
from heygemd.engine.musetalk.windows import kept_features, video_frames, windows

SEGMENT_SAMPLES = SEGMENT_SECONDS * SAMPLE_RATE
SEGMENTS_PER_BATCH = 4  # 30 s segments through the whisper encoder at once
POSITIONAL_BASE = 10000.0
PIXEL_MAX = 255.0


def positional_encoding(rows: int = WINDOW_ROWS, width: int = HIDDEN_SIZE) -> torch.Tensor:
    """(rows, width): sin on even channels, cos on odd, frequency exp(-ln(10000) * 2k / width) at positions 0..rows-1."""
    position = torch.arange(rows, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, width, 2, dtype=torch.float32) * (-math.log(POSITIONAL_BASE) / width))
    encoding = torch.zeros(rows, width)
    encoding[:, 0::2] = torch.sin(position * frequency)
    encoding[:, 1::2] = torch.cos(position * frequency)
    return encoding


class MuseTalk:
    """The loaded networks on one device; float16 on CUDA when ``half``."""

    def __init__(self, networks: LoadedNetworks, device: str | torch.device, *, half: bool = False) -> None:
        self.device = torch.device(device)
        self.dtype = torch.float16 if half else torch.float32
        self.unet: UNet2DConditionModel = _placed(networks.unet, self.device, half)
        self.vae: AutoencoderKL = _placed(networks.vae, self.device, half)
        self.whisper: WhisperEncoder = _placed(networks.whisper, self.device, half)
        self.feature_extractor: WhisperFeatureExtractor = networks.feature_extractor
        self.unet_file: CheckpointInfo = networks.unet_file
        self.vae_file: CheckpointInfo = networks.vae_file
        self.whisper_file: CheckpointInfo = networks.whisper_file
        self.positions = positional_encoding().to(self.device, self.dtype)

    # -- audio --------------------------------------------------------------------------------

    def audio_features(self, wav_path: Path | str, fps: float) -> torch.Tensor:
        """(T, 50, 384) float32 windows on the CPU for every video frame, T = floor(duration * fps)."""
        samples = decode_audio(Path(wav_path), SAMPLE_RATE)
        features = self.whisper_features(samples)
        indices = np.arange(video_frames(len(samples), fps))
        return torch.from_numpy(windows(features, indices, fps))

    def whisper_features(self, samples: np.ndarray) -> np.ndarray:
        """(n,) float32 samples at 16 kHz -> (floor(n / 16000 * 50), 5, 384) float32: the encoder's hidden states."""
        if samples.size == 0:
            raise AudioError("the audio holds no samples")
        segments = [samples[start : start + SEGMENT_SAMPLES] for start in range(0, len(samples), SEGMENT_SAMPLES)]
        encoded = [
            self._encode_segments(segments[first : first + SEGMENTS_PER_BATCH])
            for first in range(0, len(segments), SEGMENTS_PER_BATCH)
        ]
        features = np.concatenate(encoded).reshape(-1, HIDDEN_STATES, HIDDEN_SIZE)
        return features[: kept_features(len(samples))]

    def segment_features(self, samples: np.ndarray, segment: int) -> np.ndarray:
        """The hidden states of one 30 s segment of ``samples``: (1500, 5, 384) float32, padding included."""
        first = segment * SEGMENT_SAMPLES
        return self._encode_segments([samples[first : first + SEGMENT_SAMPLES]])[0].reshape(-1, HIDDEN_STATES, HIDDEN_SIZE)

    def _encode_segments(self, segments: list[np.ndarray]) -> np.ndarray:
        """Up to SEGMENTS_PER_BATCH segments -> (segments, 1500, 5, 384)."""
        mel = self.feature_extractor(segments, sampling_rate=SAMPLE_RATE, return_tensors="pt").input_features
        with torch.inference_mode():
            hidden = self.whisper(mel.to(self.device, self.dtype), output_hidden_states=True).hidden_states
            return torch.stack(hidden, dim=2).float().cpu().numpy()

    # -- faces --------------------------------------------------------------------------------

    def generate(self, crops: np.ndarray, feats: torch.Tensor | np.ndarray) -> np.ndarray:
        """(N, 256, 256, 3) uint8 BGR crops and (N, 50, 384) windows -> (N, 256, 256, 3) uint8 BGR faces."""
        return self.decode(self.inpaint(self.encode(crops), feats))

    def encode(self, crops: np.ndarray) -> torch.Tensor:
        """(N, 256, 256, 3) uint8 BGR -> (N, 8, 32, 32) latents on the device: masked crop ++ whole crop."""
        if crops.ndim != 4 or crops.shape[1:] != (FACE_SIZE, FACE_SIZE, 3) or crops.dtype != np.uint8:
            raise ValueError(f"crops must be (N, {FACE_SIZE}, {FACE_SIZE}, 3) uint8, not {crops.shape} {crops.dtype}")
        with torch.inference_mode():
            rgb = torch.from_numpy(np.ascontiguousarray(crops[..., ::-1])).to(self.device)
            whole = rgb.permute(0, 3, 1, 2).contiguous().to(self.dtype) / PIXEL_MAX  # NCHW, the reference's layout
            masked = whole.clone()
            masked[:, :, MASKED_FROM_ROW:] = 0
            pixels = torch.cat([masked, whole]) * 2 - 1
            means = self.vae.encode(pixels).latent_dist.mean * LATENT_SCALE
            count = len(crops)
            return torch.cat([means[:count], means[count:]], dim=1)

    def inpaint(self, latents: torch.Tensor, feats: torch.Tensor | np.ndarray) -> torch.Tensor:
        """(N, 8, 32, 32) latents and (N, 50, 384) windows -> (N, 4, 32, 32): one UNet step at timestep 0."""
        with torch.inference_mode():
            audio = torch.as_tensor(feats).to(self.device, self.dtype) + self.positions
            timestep = torch.zeros(1, device=self.device, dtype=torch.long)
            return self.unet(latents.to(self.dtype), timestep, encoder_hidden_states=audio).sample

    def decode(self, latents: torch.Tensor) -> np.ndarray:
        """(N, 4, 32, 32) latents -> (N, 256, 256, 3) uint8 BGR."""
        with torch.inference_mode():
            images = self.vae.decode(latents / LATENT_SCALE).sample
            images = (images / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).float()
            pixels = (images * PIXEL_MAX).round().to(torch.uint8).cpu().numpy()
        return np.ascontiguousarray(pixels[..., ::-1])


NetworkT = TypeVar("NetworkT", bound=torch.nn.Module)


def _placed(network: NetworkT, device: torch.device, half: bool) -> NetworkT:
    """``network`` on ``device``, in float16 when ``half`` (the whole network: MuseTalk keeps no float32 parts)."""
    network = network.to(device)
    return network.half() if half else network


def load_musetalk(models_dir: Path | str, device: str | torch.device = "cpu", *, half: bool = False) -> MuseTalk:
    """MuseTalk 1.5 from ``models_dir`` (the published layout: musetalkV15/, sd-vae/, whisper/), on ``device``.

    Raises CheckpointError naming the file at fault. ``half`` runs it in float16 (CUDA).
    """
    return MuseTalk(load_networks(Path(models_dir)), device, half=half)
