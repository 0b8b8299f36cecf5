"""MuseTalk 1.5 behind the model port: whisper windows, the v1.5 crop, one UNet step, a soft lower-face mask.

A template re-used from job to job skips the VAE encoding of its crops: their latents stay in a
bounded cache, keyed by the template's content hash, the frame and the crop box.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

import cv2
import numpy as np
import torch

from heygemd.engine.checkpoint import CheckpointInfo
from heygemd.engine.errors import AudioError
from heygemd.engine.generator import BatchLimit, run_shrinking
from heygemd.engine.lipsync import BackOff, CropKey, CropRule, FaceGeometry, GeneratedFaces
from heygemd.engine.musetalk.layout import (
    CHIN_MARGIN_PX,
    FACE_SIZE,
    FEATURES_PER_SECOND,
    HIDDEN_SIZE,
    HIDDEN_STATES,
    SEGMENT_SECONDS,
)
from heygemd.engine.musetalk.model import MuseTalk, load_musetalk
from heygemd.engine.musetalk.windows import kept_features, window_rows, windows
from heygemd.engine.settings import DetectorKind, EngineSettings, ModelKind

# The generated face covers the whole crop, but only its lower half was hidden from the model: the
# paste keeps the eyes and everything above the nose as they were, like the reference's "jaw" parsing.
MUSETALK_MASK_TOP = 0.5
# The reference crops from a 68-landmark box; heygemd approximates it from the detector's (padded) box. Measured
# by bench/musetalk_crop_bench.py on real photos (docs/musetalk.md): the LBP cascade's boxes are 13 % wider than
# the landmark box, centred 2 % right of it (IoU 0.845 -> 0.904 with the rule); S3FD's could not be measured here
# (no real weights), and its box is taken as it is.
MUSETALK_CROP_RULES = {DetectorKind.LBP: CropRule(left=0.04, right=-0.07)}
MUSETALK_GEOMETRY = FaceGeometry(
    face_size=FACE_SIZE,
    interpolation=cv2.INTER_LANCZOS4,
    chin_margin_px=CHIN_MARGIN_PX,
    mask_top=MUSETALK_MASK_TOP,
    crop_rules=MUSETALK_CROP_RULES,
)
MEGABYTE = 1 << 20
FEATURES_PER_SEGMENT = SEGMENT_SECONDS * FEATURES_PER_SECOND  # 1500 whisper frames a 30 s segment
KEPT_SEGMENTS = 2  # a batch's windows may straddle two segments


class WhisperFeatures:
    """One audio's whisper hidden states, encoded one 30 s segment at a time as the windows ask for them.

    The whole (floor(n / 16000 * 50), 5, 384) array would take 0.4 MB a second of audio (1.4 GB for an hour):
    only the 16 kHz samples are kept (64 kB a second) and the last KEPT_SEGMENTS segments' states (11.5 MB
    each). A render asks for its frames in order, so each segment is encoded once per render (a few tenths of
    a second on a CPU, against minutes of UNet for the segment's frames).
    """

    def __init__(self, model: MuseTalk, samples: np.ndarray) -> None:
        self.model = model
        self.samples = samples
        self.rows = kept_features(len(samples))  # whisper frames that carry audio
        self._segments: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def windows(self, frame_indices: Sequence[int], fps: float) -> np.ndarray:
        """(B, 50, 384) windows, 0.2 s each."""
        first, stop = window_rows(frame_indices, fps)
        first, stop = max(0, first), max(0, min(self.rows, stop))
        return windows(self._features(first, stop), frame_indices, fps, offset=first)

    def _features(self, first: int, stop: int) -> np.ndarray:
        """(stop - first, 5, 384): whisper frames [first, stop) of the audio."""
        if stop <= first:
            return np.zeros((0, HIDDEN_STATES, HIDDEN_SIZE), np.float32)
        segments = range(first // FEATURES_PER_SEGMENT, (stop - 1) // FEATURES_PER_SEGMENT + 1)
        with self._lock:
            rows = np.concatenate([self._segment(segment) for segment in segments])
        offset = segments[0] * FEATURES_PER_SEGMENT
        return rows[first - offset : stop - offset]

    def _segment(self, segment: int) -> np.ndarray:
        states = self._segments.get(segment)
        if states is None:
            states = self.model.segment_features(self.samples, segment)
            self._segments[segment] = states
            while len(self._segments) > KEPT_SEGMENTS:
                self._segments.popitem(last=False)
        self._segments.move_to_end(segment)
        return states


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
        if samples.size == 0:
            raise AudioError("the audio holds no samples")
        return WhisperFeatures(self.model, samples)

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
