"""MuseTalk 1.5 behind the model port: whisper windows, the v1.5 crop, one UNet step, a soft lower-face mask.

A template re-used from job to job skips the VAE encoding of its crops: their latents stay in a
bounded cache, keyed by the template's content hash, the frame and the crop box.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from heygemd.engine.checkpoint import CheckpointInfo
from heygemd.engine.generator import BatchLimit, run_shrinking
from heygemd.engine.lipsync import BackOff, CropKey, FaceGeometry, GeneratedFaces
from heygemd.engine.musetalk.layout import CHIN_MARGIN_PX, FACE_SIZE
from heygemd.engine.musetalk.model import MuseTalk, load_musetalk
from heygemd.engine.musetalk.windows import windows
from heygemd.engine.settings import EngineSettings, ModelKind

# The generated face covers the whole crop, but only its lower half was hidden from the model: the
# paste keeps the eyes and everything above the nose as they were, like the reference's "jaw" parsing.
MUSETALK_MASK_TOP = 0.5
MUSETALK_GEOMETRY = FaceGeometry(
    face_size=FACE_SIZE, interpolation=cv2.INTER_LANCZOS4, chin_margin_px=CHIN_MARGIN_PX, mask_top=MUSETALK_MASK_TOP
)
MEGABYTE = 1 << 20


@dataclass(frozen=True)
class WhisperFeatures:
    """The audio's (floor(n / 16000 * 50), 5, 384) whisper hidden states."""

    features: np.ndarray

    def windows(self, frame_indices: Sequence[int], fps: float) -> np.ndarray:
        """(B, 50, 384) windows, 0.2 s each."""
        return windows(self.features, frame_indices, fps)


class LatentCache:
    """The (8, 32, 32) latents of crops already encoded, least recently used dropped first beyond ``max_bytes``."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[CropKey, torch.Tensor] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: CropKey) -> torch.Tensor | None:
        with self._lock:
            latent = self._entries.get(key)
            if latent is not None:
                self._entries.move_to_end(key)
            return latent

    def put(self, key: CropKey, latent: torch.Tensor) -> None:
        size = latent.numel() * latent.element_size()
        if size > self.max_bytes:
            return
        with self._lock:
            if key in self._entries:
                return
            self._entries[key] = latent
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, dropped = self._entries.popitem(last=False)
                self._bytes -= dropped.numel() * dropped.element_size()

    def __len__(self) -> int:
        return len(self._entries)


class MuseTalkModel:
    kind = ModelKind.MUSETALK
    geometry = MUSETALK_GEOMETRY

    def __init__(self, model: MuseTalk, batch_size: int, cache_bytes: int) -> None:
        self.model = model
        self.batch = BatchLimit(batch_size)
        self.cache = LatentCache(cache_bytes)

    @property
    def weights(self) -> CheckpointInfo:
        return self.model.unet_file

    @property
    def files(self) -> tuple[CheckpointInfo, ...]:
        return (self.model.unet_file, self.model.vae_file, self.model.whisper_file)

    def unknown_weights_warning(self) -> str | None:
        return None  # heygemd knows no published digests for MuseTalk's files (docs/musetalk.md says why)

    def audio_features(self, samples: np.ndarray) -> WhisperFeatures:
        return WhisperFeatures(self.model.whisper_features(samples))

    def generate(
        self, crops: np.ndarray, windows: np.ndarray, keys: Sequence[CropKey], on_back_off: BackOff
    ) -> GeneratedFaces:
        """(B, 256, 256, 3) uint8 crops and (B, 50, 384) windows -> (B, 256, 256, 3) float faces."""
        latents, hits = self._latents(crops, keys, on_back_off)

        def faces(start: int, stop: int) -> np.ndarray:
            return self.model.decode(self.model.inpaint(latents[start:stop], windows[start:stop]))

        generated = run_shrinking(self.batch, len(crops), faces, on_back_off)
        return GeneratedFaces(generated.astype(np.float32), cache_hits=hits)

    def _latents(self, crops: np.ndarray, keys: Sequence[CropKey], on_back_off: BackOff) -> tuple[torch.Tensor, int]:
        """(B, 8, 32, 32) on the device: from the cache where the crop was seen, else encoded (and cached)."""
        cached = [self.cache.get(key) for key in keys]
        missing = [index for index, latent in enumerate(cached) if latent is None]
        if missing:

            def encode(start: int, stop: int) -> np.ndarray:
                return self.model.encode(crops[missing[start:stop]]).cpu().numpy()

            encoded = torch.from_numpy(run_shrinking(self.batch, len(missing), encode, on_back_off))
            for index, latent in zip(missing, encoded):
                on_device = latent.to(self.model.device)
                cached[index] = on_device
                self.cache.put(keys[index], on_device)
        return torch.stack([latent for latent in cached if latent is not None]), len(keys) - len(missing)


def load(settings: EngineSettings, device: str, half: bool) -> MuseTalkModel:
    model = load_musetalk(settings.musetalk_dir, device, half=half)
    return MuseTalkModel(model, settings.batch_size, settings.latent_cache_max_mb * MEGABYTE)
