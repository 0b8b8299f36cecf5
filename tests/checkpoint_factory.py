"""Build checkpoints shaped like the public downloads, so tests need no weights.

Random weights (seeded), real layouts: the Wav2Lip training dict
``{"state_dict", "optimizer", "global_step", "global_epoch"}`` and S3FD's bare state_dict,
both in PyTorch's legacy pickle format like the published files (``legacy=False`` writes
the zip format of ``torch.save`` since 1.6); GFPGAN's ``{"params_ema", "params"}`` in the zip
format (the public v1.3/v1.4 files are zip archives holding ``params_ema``).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from heygemd.engine.model import Wav2Lip

WRAPS = ("public", "module_prefix", "bare")
GFPGAN_WRAPS = ("ema_and_params", "ema_only", "params_only", "bare")
GLOBAL_STEP = 1_000
GLOBAL_EPOCH = 7
LEARNING_RATE = 1e-4


def make_wav2lip_checkpoint(path: Path, seed: int = 0, *, wrap: str = "public", legacy: bool = True) -> Path:
    """Save a seeded Wav2Lip to ``path`` and return ``path``.

    wrap: "public" (the training dict), "module_prefix" (the training dict with
    DataParallel ``module.`` keys) or "bare" (the state_dict alone).
    """
    if wrap not in WRAPS:
        raise ValueError(f"wrap must be one of {WRAPS}, got {wrap!r}")
    torch.manual_seed(seed)
    model = Wav2Lip()
    state = model.state_dict()
    if wrap == "module_prefix":
        state = {f"module.{key}": value for key, value in state.items()}
    payload = state if wrap == "bare" else _training_dict(model, state)
    return _save(payload, path, legacy)


def make_s3fd_checkpoint(path: Path, seed: int = 0, *, legacy: bool = True) -> Path:
    """Save a seeded face-alignment S3FD network's bare state_dict, as published."""
    from face_alignment.detection.sfd.net_s3fd import s3fd

    torch.manual_seed(seed)
    return _save(s3fd().state_dict(), path, legacy)


def make_gfpgan_checkpoint(path: Path, seed: int = 0, *, wrap: str = "ema_and_params", legacy: bool = False) -> Path:
    """Save a seeded GFPGAN v1.3/v1.4 network (heygemd's module) to ``path`` and return ``path``.

    wrap: "ema_and_params" (``{"params_ema": ..., "params": ...}``, as the trainer saves),
    "ema_only" (the published files: their size holds one state_dict), "params_only" or "bare".
    ``params`` shares the tensors of ``params_ema`` except its final linear bias, which is
    zeroed, so a test can tell which one was loaded without doubling the file's size.
    """
    from heygemd.engine.restore_arch import GFPGANv1Clean

    if wrap not in GFPGAN_WRAPS:
        raise ValueError(f"wrap must be one of {GFPGAN_WRAPS}, got {wrap!r}")
    torch.manual_seed(seed)
    ema = GFPGANv1Clean().state_dict()
    params = {**ema, GFPGAN_DISTINCT_KEY: torch.zeros_like(ema[GFPGAN_DISTINCT_KEY])}
    payload: object = {
        "ema_and_params": {"params_ema": ema, "params": params},
        "ema_only": {"params_ema": ema},
        "params_only": {"params": params},
        "bare": ema,
    }[wrap]
    return _save(payload, path, legacy)


GFPGAN_DISTINCT_KEY = "final_linear.bias"  # differs between the factory's params_ema and params


def _training_dict(model: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, object]:
    """The public layout; the optimizer keeps its param groups but no moment tensors (file size)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    return {
        "state_dict": state,
        "optimizer": optimizer.state_dict(),
        "global_step": GLOBAL_STEP,
        "global_epoch": GLOBAL_EPOCH,
    }


def _save(payload: object, path: Path, legacy: bool) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, path, _use_new_zipfile_serialization=not legacy)
    return path
