"""The optional face restorer: GFPGAN v1.3/v1.4 sharpens the re-synced lower face.

Wav2Lip draws the mouth at 96x96 pixels, so on HD video it is softer than the rest of the face.
After the lip-sync paste, each face is taken into an FFHQ-style 512x512 crop (restore_frame),
restored in batches, and blended back into the lip-sync model's own crop box through its own paste
mask (both from the model port's ``FaceGeometry``, so MuseTalk's taller box and its mask hold as Wav2Lip's
do), scaled by the paste's strength and ``restore_weight``: eyes, hair, background and faceless frames
are never touched.

Entry point for tests, benchmarks and other programs::

    model = load_gfpgan(Path("checkpoints/GFPGANv1.4.pth"), "cpu")   # eval mode
    restored, _ = model(faces)   # (N, 3, 512, 512) RGB in [-1, 1] -> the same shape and range
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from heygemd.engine.backoff import ShrinkingBatch
from heygemd.engine.checkpoint import STATE_DICT_KEY, CheckpointInfo, load_network
from heygemd.engine.lipsync import FaceGeometry
from heygemd.engine.restore_arch import GFPGANv1Clean
from heygemd.engine.restore_frame import (
    FRAMING_RULES,
    S3FD_FRAMING,
    Framing,
    FramingRule,
    ffhq_framing,
    from_restorer_output,
    paste_restored,
    restorer_crop,
    to_restorer_input,
)
from heygemd.engine.settings import BlendMode, Box, DetectorKind
from heygemd.engine.weights import known_name
from heygemd.engine.yuv import picture_size

NETWORK_NAME = "GFPGAN v1.3/v1.4 (clean)"
# The public files keep the averaged weights under "params_ema"; a training snapshot may hold "params" only.
# "state_dict" last: another network's training dict (Wav2Lip's) is then reported as another network.
WRAPPERS = ("params_ema", "params", STATE_DICT_KEY)


def load_gfpgan(path: Path, device: str | torch.device) -> torch.nn.Module:
    """The GFPGAN v1.3/v1.4 network of ``path`` on ``device``, in eval mode.

    ``forward(x)`` takes (N, 3, 512, 512) RGB in [-1, 1] and returns (restored image of the
    same shape and range, list of the U-Net's side outputs). The file gets the same checks as
    the Wav2Lip checkpoint (missing, empty, web page, Git LFS pointer, truncated, another
    network...), each a CheckpointError naming the file; it is read with ``weights_only=True``.
    """
    return load_gfpgan_checkpoint(path, device)[0]


def load_gfpgan_checkpoint(path: Path, device: str | torch.device) -> tuple[GFPGANv1Clean, CheckpointInfo]:
    """``load_gfpgan`` and what the file is (its sha256, and the release it is, if known)."""
    model, info = load_network(Path(path), GFPGANv1Clean, NETWORK_NAME, device, WRAPPERS)
    return model, replace(info, known_name=known_name(info.sha256))


class FaceRestorer:
    """GFPGAN loaded once; restores the re-synced faces of a batch of I420 frames in place."""

    def __init__(
        self,
        checkpoint: Path,
        device: str | torch.device,
        *,
        half: bool = False,
        batch_size: int = 4,
        detector: DetectorKind = DetectorKind.S3FD,
    ) -> None:
        self.device = torch.device(device)
        model, self.checkpoint = load_gfpgan_checkpoint(checkpoint, self.device)
        self.model = model.half() if half else model
        self.half = half
        self.batch = ShrinkingBatch(batch_size, "restorer")  # lowered for good if the GPU runs out of memory
        self.detector = detector
        self.framing_rule: FramingRule = FRAMING_RULES[detector]  # how this detector's boxes sit on a face

    def unknown_checkpoint_warning(self) -> str | None:
        if self.checkpoint.known_name is not None:
            return None
        return (
            f"restorer checkpoint {self.checkpoint.path.name} (sha256 {self.checkpoint.sha256[:12]}…) is not a "
            "published GFPGAN v1.3/v1.4 file; results depend on its training"
        )

    def restore(
        self,
        frames: Sequence[np.ndarray],
        boxes: Sequence[Box],
        *,
        geometry: FaceGeometry,
        mode: BlendMode,
        feather: float,
        weight: float,
        warn: Callable[[str], None],
        strengths: Sequence[float] | None = None,
        fixed_box: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """Restore the face in ``boxes[i]`` (the detector's) of each I420 ``frames[i]`` and blend it in, in place.

        The restored face goes where the lip-sync model pasted its own: ``geometry``'s crop box of the face
        box, through its paste mask (``mode``, ``feather``) times ``strengths[i]`` (the lip-sync paste's,
        below 1 in a cross-fade into silence; default 1) and ``weight``. ``weight`` 0 leaves every pixel as
        it is (and runs nothing). ``fixed_box``: the boxes were given by the operator, so they are framed like
        a detector's (S3FD). ``progress`` hears how many faces are restored after each slice: on a CPU a
        slice takes seconds.
        """
        if weight <= 0 or not frames:
            return
        rule = S3FD_FRAMING if fixed_box else self.framing_rule
        detector = None if fixed_box else self.detector
        pasted = [geometry.crop_box(box, *picture_size(frame), detector) for frame, box in zip(frames, boxes)]
        framings = [ffhq_framing(box, rule, holds=paste_box) for box, paste_box in zip(boxes, pasted)]
        crops = np.stack([restorer_crop(frame, framing) for frame, framing in zip(frames, framings)])

        def run(start: int, stop: int) -> np.ndarray:
            faces = self._forward(crops[start:stop])
            if progress is not None:
                progress(stop)
            return faces

        restored = self.batch.map(len(crops), run, warn)
        for index, (frame, paste_box, framing, face) in enumerate(zip(frames, pasted, framings, restored)):
            x1, y1, x2, y2 = paste_box
            mask = geometry.paste_mask(x2 - x1, y2 - y1, mode, feather)
            if strengths is not None and strengths[index] < 1:
                mask = mask * np.float32(strengths[index])
            paste_restored(frame, paste_box, framing, face, mask, weight)

    def _forward(self, crops: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            faces = torch.from_numpy(to_restorer_input(crops))
            if self.device.type == "cuda":
                faces = faces.pin_memory().to(self.device, non_blocking=True)
            if self.half:
                faces = faces.half()
            images, _ = self.model(faces, return_rgb=False)
            return from_restorer_output(images.float().cpu().numpy())


__all__ = ["FaceRestorer", "Framing", "load_gfpgan", "load_gfpgan_checkpoint"]
