"""The Wav2Lip generator at run time: its device, its weights and its batches. The engine's only torch code
besides the S3FD detector; a dry-run engine never imports it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from heygemd.codes import ErrorCode
from heygemd.engine.checkpoint import CheckpointInfo, load_wav2lip
from heygemd.engine.errors import EngineError
from heygemd.engine.lipsync import BackOff
from heygemd.engine.model import prepare_for_inference


def resolve_device(requested: str) -> torch.device:
    """'auto' picks the first CUDA device when there is one, else the CPU."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise EngineError(f"device {requested!r} is not a device name: use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise EngineError(
            f"device {requested!r} was asked for but torch sees no CUDA device (driver missing, or a CPU build of torch)"
        )
    return device


class BatchLimit:
    """How many faces go through the generator at once; lowered for good when the GPU runs out of memory.

    Shared by every render of one engine (a later render does not run out of memory again), so
    it may be lowered from two threads at once: each failure halves the size it failed at, once.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        return self._size

    def lower_after(self, failed: int) -> int:
        """The size to use now that a batch of ``failed`` ran out of memory."""
        with self._lock:
            if self._size >= failed:  # not lowered meanwhile by another render
                self._size = max(1, failed // 2)
            return self._size


def run_shrinking(batch: BatchLimit, count: int, run: Callable[[int, int], np.ndarray], on_back_off: BackOff) -> np.ndarray:
    """Concatenate ``run(start, stop)`` over ``range(count)`` in slices of ``batch.size``.

    If the GPU runs out of memory the limit is halved for good and the same slice tried again, so a
    video is not started over; at one item a slice it fails with the transient code ``memory.out``.
    """
    results: list[np.ndarray] = []
    start = 0
    while start < count:
        size = batch.size
        try:
            results.append(run(start, min(count, start + size)))
            start += size
            continue
        except torch.cuda.OutOfMemoryError:
            if size == 1:
                raise EngineError(
                    "the GPU ran out of memory even for one frame at a time", code=ErrorCode.OUT_OF_MEMORY
                ) from None
        torch.cuda.empty_cache()  # out of the except block: the failed attempt's tensors can be released now
        on_back_off(size, batch.lower_after(size))
    return np.concatenate(results)


class Generator:
    """The loaded generator: a model on a device, in float16 on CUDA when asked, run in batches."""

    def __init__(
        self, model: torch.nn.Module, checkpoint: CheckpointInfo, device: torch.device, *, half: bool, batch_size: int
    ) -> None:
        self.model = model
        self.checkpoint = checkpoint
        self.device = device
        self.half = half
        self.batch = BatchLimit(batch_size)

    @classmethod
    def load(cls, checkpoint: Path, device: str | torch.device, *, half: bool, batch_size: int) -> Generator:
        model, info = load_wav2lip(checkpoint, device)
        return cls(prepare_for_inference(model, half=half), info, torch.device(device), half=half, batch_size=batch_size)

    def predict(self, mels: np.ndarray, faces: np.ndarray, on_back_off: BackOff) -> np.ndarray:
        """(B,1,80,16) mels and (B,6,96,96) faces -> (B,3,96,96) float32 in [0, 1].

        Runs in slices of the batch limit; if the GPU runs out of memory the limit is halved for
        good and the same slice tried again, so the video is not started over.
        """
        return run_shrinking(
            self.batch, len(faces), lambda start, stop: self._forward(mels[start:stop], faces[start:stop]), on_back_off
        )

    def _forward(self, mels: np.ndarray, faces: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            audio_tensor, face_tensor = _to_device(mels, self.device), _to_device(faces, self.device)
            face_tensor = face_tensor.contiguous(memory_format=torch.channels_last)
            if self.half:
                audio_tensor, face_tensor = audio_tensor.half(), face_tensor.half()
            return self.model(audio_tensor, face_tensor).float().cpu().numpy()


def _to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """Host to device; through pinned memory on CUDA so the copy can overlap."""
    tensor = torch.from_numpy(array)
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor
