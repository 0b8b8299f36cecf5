"""MuseTalk on CUDA: float16 against float32, a real out-of-memory back-off, a render on the GPU.

Skipped without CUDA (tests/conftest.py); `pytest -m gpu` runs them on a GPU machine.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from media_factory import make_audio, make_video

from heygemd.engine import LipSyncEngine
from heygemd.engine.lipsync import CropKey
from heygemd.engine.musetalk import load_musetalk
from heygemd.engine.musetalk.port import MuseTalkModel
from heygemd.engine.settings import ModelKind

pytestmark = pytest.mark.gpu

# float16 against float32 in 8-bit levels of the generated face (random weights of the small configs).
HALF_MAX_LEVELS = 32
HALF_MEAN_LEVELS = 2.0
OOM_BATCH = 256
OOM_HEADROOM_BYTES = 256 << 20  # far less than the VAE needs for 256 crops of 256x256 at once


def _inputs(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    crops = rng.integers(0, 256, (count, 256, 256, 3), dtype=np.uint8)
    return crops, rng.standard_normal((count, 50, 384)).astype(np.float32)


def test_float16_on_cuda_generates_what_float32_on_the_cpu_does(musetalk_dir: Path):
    crops, windows = _inputs(8)
    full = load_musetalk(musetalk_dir, "cpu").generate(crops, windows)
    half_model = load_musetalk(musetalk_dir, "cuda", half=True)
    assert next(half_model.unet.parameters()).dtype == torch.float16
    half = half_model.generate(crops, windows)
    levels = np.abs(full.astype(int) - half.astype(int))
    assert levels.max() <= HALF_MAX_LEVELS and levels.mean() <= HALF_MEAN_LEVELS, (levels.max(), levels.mean())


def test_a_real_out_of_memory_halves_the_batch_and_every_face_is_generated(musetalk_dir: Path):
    port = MuseTalkModel(load_musetalk(musetalk_dir, "cuda", half=True), batch_size=OOM_BATCH, cache_bytes=0)
    crops, windows = _inputs(OOM_BATCH)
    keys = [CropKey("clip", index, (0, 0, 256, 256)) for index in range(OOM_BATCH)]
    device = port.model.device
    torch.cuda.synchronize(device)
    torch.cuda.empty_cache()
    cap = torch.cuda.memory_reserved(device) + OOM_HEADROOM_BYTES
    torch.cuda.set_per_process_memory_fraction(cap / torch.cuda.get_device_properties(device).total_memory, device)
    lowered: list[tuple[int, int]] = []
    try:
        generated = port.generate(crops, windows, keys, lambda failed, now: lowered.append((failed, now)))
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, device)
        torch.cuda.empty_cache()
    assert lowered and lowered[0] == (OOM_BATCH, OOM_BATCH // 2), lowered
    assert port.batch.size < OOM_BATCH and generated.faces.shape == (OOM_BATCH, 256, 256, 3)


def test_a_musetalk_render_on_the_gpu_runs_in_float16(engine_settings, musetalk_dir: Path, tmp_path: Path):
    engine = LipSyncEngine(
        engine_settings.model_copy(update={"device": "cuda", "model": ModelKind.MUSETALK, "musetalk_dir": musetalk_dir})
    )
    assert engine.describe().half_precision and engine.describe().model == ModelKind.MUSETALK
    audio = make_audio(tmp_path / "speech.wav", seconds=0.8)
    video = make_video(tmp_path / "presenter.mp4", seconds=0.6, fps="25", size=(192, 192))
    report = engine.render(audio, video, tmp_path / "out.mp4")
    assert report.device.startswith("cuda") and report.output.frame_count == 20 and report.timings.model > 0
