"""What only a CUDA device shows: float16 parity, pinned-memory copies, a render on the GPU, NVENC,
and a real out-of-memory back-off. Skipped without CUDA (tests/conftest.py); `pytest -m gpu` runs
just these on a GPU machine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from media_factory import make_audio, make_video

from heygemd.engine import LipSyncEngine, RenderOptions
from heygemd.engine.ffmpeg_tools import nvenc_usable
from heygemd.engine.generator import Generator
from heygemd.engine.generator_io import FACE_CHANNELS, FACE_SIZE, MEL_BANDS, MEL_WINDOW, OUTPUT_CHANNELS

pytestmark = pytest.mark.gpu

# float16 against float32 in 8-bit levels of the predicted face (random weights of the public shapes;
# bench/precision_check.py measures the real weights).
HALF_MAX_LEVELS = 16
HALF_MEAN_LEVELS = 1.0
OOM_BATCH = 512
OOM_HEADROOM_BYTES = 256 << 20  # what the generator may use beyond its weights: far less than a batch of 512 needs
SIZE = (160, 160)
FIXED_BOX = (30, 20, 130, 140)


def generator_inputs(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    mels = rng.uniform(-4, 4, (count, 1, MEL_BANDS, MEL_WINDOW)).astype(np.float32)
    faces = rng.random((count, FACE_CHANNELS, FACE_SIZE, FACE_SIZE), dtype=np.float32)
    return mels, faces


def never_backs_off(failed: int, now: int) -> None:
    raise AssertionError(f"the batch was lowered from {failed} to {now}")


def test_float16_on_cuda_predicts_what_float32_on_the_cpu_does(wav2lip_checkpoint):
    mels, faces = generator_inputs(16)
    full = Generator.load(wav2lip_checkpoint, "cpu", half=False, batch_size=16).predict(mels, faces, never_backs_off)
    half = Generator.load(wav2lip_checkpoint, "cuda", half=True, batch_size=16).predict(mels, faces, never_backs_off)
    assert half.shape == full.shape == (16, OUTPUT_CHANNELS, FACE_SIZE, FACE_SIZE)
    levels = np.abs(full - half) * 255
    assert levels.max() <= HALF_MAX_LEVELS and levels.mean() <= HALF_MEAN_LEVELS, (levels.max(), levels.mean())


def test_batches_reach_the_gpu_through_pinned_memory(wav2lip_checkpoint, monkeypatch):
    pinned: list[bool] = []
    pin_memory = torch.Tensor.pin_memory

    def recording(self: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        result = pin_memory(self, *args, **kwargs)
        pinned.append(result.is_pinned())
        return result

    generator = Generator.load(wav2lip_checkpoint, "cuda", half=True, batch_size=8)
    monkeypatch.setattr(torch.Tensor, "pin_memory", recording)
    predicted = generator.predict(*generator_inputs(16), never_backs_off)
    assert pinned == [True] * 4, "mels and faces of each of the two batches"
    assert predicted.shape == (16, OUTPUT_CHANNELS, FACE_SIZE, FACE_SIZE) and np.isfinite(predicted).all()


def test_a_real_out_of_memory_halves_the_batch_and_every_face_is_still_predicted(wav2lip_checkpoint):
    generator = Generator.load(wav2lip_checkpoint, "cuda", half=True, batch_size=OOM_BATCH)
    mels, faces = generator_inputs(OOM_BATCH)
    device = generator.device
    torch.cuda.synchronize(device)
    torch.cuda.empty_cache()
    cap = torch.cuda.memory_reserved(device) + OOM_HEADROOM_BYTES
    torch.cuda.set_per_process_memory_fraction(cap / torch.cuda.get_device_properties(device).total_memory, device)
    lowered: list[tuple[int, int]] = []
    try:
        predicted = generator.predict(mels, faces, lambda failed, now: lowered.append((failed, now)))
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, device)
        torch.cuda.empty_cache()
    assert lowered and lowered[0] == (OOM_BATCH, OOM_BATCH // 2), lowered
    assert generator.batch.size == lowered[-1][1] < OOM_BATCH, "kept lower for the engine's later renders"
    again = Generator.load(wav2lip_checkpoint, "cuda", half=True, batch_size=16).predict(mels, faces, never_backs_off)
    assert np.abs(predicted - again).max() * 255 <= HALF_MAX_LEVELS, "the same faces, in smaller batches"


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("gpu-media")
    return (
        make_audio(folder / "speech.wav", seconds=0.8),
        make_video(folder / "presenter.mp4", seconds=0.6, fps="25", size=SIZE),
    )


def test_a_render_on_the_gpu_runs_the_generator_in_float16(engine_settings, clip, tmp_path):
    engine = LipSyncEngine(engine_settings.model_copy(update={"device": "cuda"}))
    info = engine.describe()
    assert info.device.startswith("cuda") and info.half_precision and engine.detect_while_rendering
    report = engine.render(*clip, tmp_path / "out.mp4")
    assert report.device.startswith("cuda") and report.output.frame_count == 20
    assert report.faces.frames_with_face > 0 and report.timings.model > 0


def test_nvenc_encodes_a_render_when_this_gpu_has_it(engine_settings, clip, tmp_path):
    if not nvenc_usable():
        pytest.skip("this GPU or ffmpeg cannot encode with NVENC (data-centre GPUs such as the A100 or H100 have none)")
    engine = LipSyncEngine(engine_settings.model_copy(update={"device": "cuda", "encoder": "h264_nvenc"}))
    report = engine.render(*clip, tmp_path / "out.mp4", RenderOptions(fixed_box=FIXED_BOX))
    assert engine.encoder == report.output.encoder == "h264_nvenc"
    assert report.output.codec == "h264" and report.output.frame_count == 20
    auto = LipSyncEngine(engine_settings.model_copy(update={"device": "cuda"}))
    assert auto.encoder == "h264_nvenc", "auto picks NVENC on a GPU that has it"
