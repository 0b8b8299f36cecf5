"""MuseTalk 1.5's files as its download script leaves them, and the numbers of its contract. Free of torch.

Shapes (N = frames):
    crops    (N, FACE_SIZE, FACE_SIZE, 3) uint8 BGR        the face crops in, and the new faces out
    latents  (N, 2 * LATENT_CHANNELS, LATENT_SIDE, LATENT_SIDE)   masked crop ++ reference crop, VAE latent means
    windows  (N, WINDOW_ROWS, HIDDEN_SIZE) float32          whisper hidden states, time-major (row = t * 5 + layer)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from heygemd.engine.weights import SAFETENSORS_SUFFIX

UNET_WEIGHTS = Path("musetalkV15/unet.pth")
UNET_CONFIG = Path("musetalkV15/musetalk.json")
VAE_CONFIG = Path("sd-vae/config.json")
VAE_WEIGHTS_BIN = Path("sd-vae/diffusion_pytorch_model.bin")
VAE_WEIGHTS_SAFETENSORS = VAE_WEIGHTS_BIN.with_suffix(SAFETENSORS_SUFFIX)
WHISPER_CONFIG = Path("whisper/config.json")
WHISPER_WEIGHTS = Path("whisper/pytorch_model.bin")
WHISPER_PREPROCESSOR = Path("whisper/preprocessor_config.json")

FACE_SIZE = 256  # the crop's side in pixels
MASKED_FROM_ROW = FACE_SIZE // 2  # rows from here down are hidden from the masked input
VAE_DOWNSCALE = 8
LATENT_SIDE = FACE_SIZE // VAE_DOWNSCALE
LATENT_CHANNELS = 4
LATENT_SCALE = 0.18215  # diffusers' default scaling factor: the published VAE config does not carry one
CHIN_MARGIN_PX = 10  # v1.5 moves the crop box's bottom down by this much, clamped to the frame

SAMPLE_RATE = 16000
SEGMENT_SECONDS = 30  # whisper encodes 30 s at a time (padded)
FEATURES_PER_SECOND = 50  # whisper's encoder frames per second of audio
HIDDEN_STATES = 5  # the embedding output and the 4 layers of whisper-tiny's encoder
HIDDEN_SIZE = 384
PAD_LEFT = 2  # the window reaches this many video frames back...
PAD_RIGHT = 2  # ... and this many forward
WINDOW_FEATURES = 2 * (PAD_LEFT + PAD_RIGHT + 1)  # 10 whisper frames, 0.2 s, whatever the fps
WINDOW_ROWS = WINDOW_FEATURES * HIDDEN_STATES  # 50


@dataclass(frozen=True)
class ModelFiles:
    """Where each of MuseTalk's files lies under one models folder."""

    root: Path

    @property
    def unet_weights(self) -> Path:
        return self.root / UNET_WEIGHTS

    @property
    def unet_config(self) -> Path:
        return self.root / UNET_CONFIG

    @property
    def vae_config(self) -> Path:
        return self.root / VAE_CONFIG

    @property
    def vae_weights(self) -> Path:
        """The .safetensors file when it is there, else the .bin the download script fetches."""
        safetensors = self.root / VAE_WEIGHTS_SAFETENSORS
        return safetensors if safetensors.exists() else self.root / VAE_WEIGHTS_BIN

    @property
    def whisper_config(self) -> Path:
        return self.root / WHISPER_CONFIG

    @property
    def whisper_weights(self) -> Path:
        return self.root / WHISPER_WEIGHTS

    @property
    def whisper_preprocessor(self) -> Path:
        return self.root / WHISPER_PREPROCESSOR

    def required(self) -> tuple[Path, ...]:
        """Every file a load needs (the VAE's as .bin or .safetensors)."""
        return (
            self.unet_weights,
            self.unet_config,
            self.vae_config,
            self.vae_weights,
            self.whisper_config,
            self.whisper_weights,
            self.whisper_preprocessor,
        )
