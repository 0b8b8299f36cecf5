"""Renders with MuseTalk 1.5 through the real engine and the real `heygemd render`: generated media and weights, real ffmpeg.

Also the silence pass-through, which holds for both models.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from media_factory import make_audio, make_video, speech_like
from scipy.io import wavfile
from test_cli_render import render

from heygemd.engine import LipSyncEngine, RenderOptions
from heygemd.engine.audio import SAMPLE_RATE, video_frame_count
from heygemd.engine.blend import first_pasted_row
from heygemd.engine.media import decode_audio
from heygemd.engine.musetalk.port import MUSETALK_GEOMETRY
from heygemd.engine.settings import BlendMode, DetectorKind, ModelKind
from heygemd.engine.silence import lip_sync_strength, loudness_db
from heygemd.engine.yuv import chroma_aligned

SIZE = (192, 192)
FIXED_BOX = (40, 30, 152, 140)  # MuseTalk's crop box reaches 10 px lower: (40, 30, 152, 150)
LOSSLESS = RenderOptions(fixed_box=FIXED_BOX, crf=0, preset="ultrafast")


@pytest.fixture(scope="module")
def muse_engine(engine_settings, musetalk_dir: Path) -> LipSyncEngine:
    return LipSyncEngine(
        engine_settings.model_copy(update={"model": ModelKind.MUSETALK, "musetalk_dir": musetalk_dir, "batch_size": 8})
    )


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> Path:
    return make_audio(tmp_path_factory.mktemp("audio") / "speech.wav", seconds=1.0)


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    return make_video(tmp_path_factory.mktemp("video") / "template.mp4", seconds=1.0, fps="25", size=SIZE)


def yuv_frames(path: Path) -> np.ndarray:
    from heygemd.engine.ffmpeg_tools import ffmpeg_path

    raw = subprocess.run(
        [ffmpeg_path(), "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "yuv420p", "-"],
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, SIZE[1] * 3 // 2, SIZE[0])


def changed_region(box: tuple[int, int, int, int], mask_top: float, feather: float) -> tuple[int, int, int, int]:
    """The rectangle a FEATHER paste into ``box`` may change: from the mask's first row down, chroma-aligned."""
    x1, y1, x2, y2 = box
    return chroma_aligned((x1, y1 + first_pasted_row(y2 - y1, BlendMode.FEATHER, feather, mask_top), x2, y2))


def outside_mask(region: tuple[int, int, int, int]) -> np.ndarray:
    """(H * 3 // 2, W) bool over an I420 frame: True outside ``region`` in Y, U and V."""
    width, height = SIZE
    x1, y1, x2, y2 = region
    keep = np.ones((height * 3 // 2, width), bool)
    keep[y1:y2, x1:x2] = False
    chroma = np.ones((height // 2, width // 2), bool)
    chroma[y1 // 2 : y2 // 2, x1 // 2 : x2 // 2] = False
    flat = keep.reshape(-1)
    flat[width * height : width * height * 5 // 4] = chroma.reshape(-1)
    flat[width * height * 5 // 4 :] = chroma.reshape(-1)
    return keep


def test_the_crop_box_approximates_the_landmark_box_from_each_detectors_box():
    """bench/musetalk_crop_bench.py measured LBP's boxes wider than the landmark box; S3FD's and fixed ones stay."""
    box = (400, 200, 600, 420)  # 200 wide, 220 high, in a 1280x720 frame
    assert MUSETALK_GEOMETRY.crop_box(box, 1280, 720, DetectorKind.LBP) == (408, 200, 586, 430)
    assert MUSETALK_GEOMETRY.crop_box(box, 1280, 720, DetectorKind.S3FD) == (400, 200, 600, 430)
    assert MUSETALK_GEOMETRY.crop_box(box, 1280, 720) == (400, 200, 600, 430)  # a fixed box, as the operator drew it
    assert MUSETALK_GEOMETRY.crop_box((0, 600, 100, 716), 1280, 720, DetectorKind.LBP) == (4, 600, 93, 720)


def test_a_lossless_musetalk_render_lasts_as_the_audio_and_changes_nothing_outside_the_mask(
    muse_engine, speech, template, tmp_path
):
    output = tmp_path / "out.mp4"
    report = muse_engine.render(speech, template, output, LOSSLESS)
    samples = decode_audio(speech)
    assert report.output.frame_count == video_frame_count(len(samples), 25.0) == 25
    assert report.model == ModelKind.MUSETALK
    assert report.checkpoint is not None and report.checkpoint.path.name == "unet.pth"
    crop_box = MUSETALK_GEOMETRY.crop_box(FIXED_BOX, *SIZE)
    assert crop_box == (40, 30, 152, 150)
    keep = outside_mask(changed_region(crop_box, MUSETALK_GEOMETRY.mask_top, LOSSLESS.feather))
    before, after = yuv_frames(template), yuv_frames(output)
    assert len(after) == 25
    for index in range(25):
        assert np.array_equal(before[index][keep], after[index][keep]), f"frame {index} changed outside the mask"
        assert not np.array_equal(before[index][~keep], after[index][~keep]), f"frame {index}: the mouth was re-drawn"
    lower_lip_rows = after[:, 120:150, 40:152].astype(int) - before[:, 120:150, 40:152].astype(int)
    assert np.abs(lower_lip_rows).mean() > 1


def test_faceless_frames_pass_through_with_musetalk(muse_engine, speech, tmp_path):
    faceless = {3, 4, 5}
    template = make_video(tmp_path / "template.mp4", seconds=1.0, fps="25", size=SIZE, faceless_frames=faceless)
    output = tmp_path / "out.mp4"
    report = muse_engine.render(speech, template, output, RenderOptions(crf=0, preset="ultrafast"))
    assert report.faces.frames_without_face == len(faceless)
    for index, (before, after) in enumerate(zip(yuv_frames(template), yuv_frames(output))):
        assert np.array_equal(before, after) == (index in faceless), f"frame {index}"


def test_a_reused_template_skips_the_vae_encoding_and_renders_the_same(muse_engine, tmp_path):
    speech = make_audio(tmp_path / "short.wav", seconds=0.4)  # 10 frames of a 15-frame template
    template = make_video(tmp_path / "template.mp4", seconds=0.6, fps="25", size=SIZE)
    first = muse_engine.render(speech, template, tmp_path / "first.mp4", LOSSLESS)
    second = muse_engine.render(speech, template, tmp_path / "second.mp4", LOSSLESS)
    assert first.lipsync.template_cache_hits == 0
    assert second.lipsync.template_cache_hits == second.faces.frames_with_face == 10
    assert np.array_equal(yuv_frames(tmp_path / "first.mp4"), yuv_frames(tmp_path / "second.mp4"))
    moved = RenderOptions(fixed_box=(42, 30, 152, 140), crf=0, preset="ultrafast")
    assert muse_engine.render(speech, template, tmp_path / "moved.mp4", moved).lipsync.template_cache_hits == 0, (
        "another crop box is another crop"
    )


def _speech_then_silence(path: Path, speech_s: float, silence_s: float, tail_s: float) -> Path:
    samples = np.concatenate(
        [speech_like(speech_s), np.zeros(int(silence_s * SAMPLE_RATE), np.float32), speech_like(tail_s, seed=1)]
    )
    wavfile.write(path, SAMPLE_RATE, (np.clip(samples, -1, 1) * 32767).astype(np.int16))
    return path


@pytest.mark.parametrize("model", ["wav2lip", "musetalk"])
def test_silence_shows_the_templates_own_frames_with_a_cross_fade(request, model, tmp_path):
    engine = request.getfixturevalue("engine" if model == "wav2lip" else "muse_engine")
    audio = _speech_then_silence(tmp_path / "pause.wav", 0.4, 0.8, 0.4)  # 40 frames: 10 speech, 20 silent, 10 speech
    template = make_video(tmp_path / "template.mp4", seconds=1.6, fps="25", size=SIZE)
    output = tmp_path / "out.mp4"
    report = engine.render(audio, template, output, LOSSLESS)
    strength = lip_sync_strength(
        loudness_db(decode_audio(audio), SAMPLE_RATE), 40, 25.0, LOSSLESS.silence_db, LOSSLESS.silence_min_s
    )
    passed = np.flatnonzero(strength == 0)
    assert report.lipsync.silent_frames == len(passed) >= 10
    assert passed.min() > 10 and passed.max() < 30, "inside the pause, after the fade"
    before, after = yuv_frames(template), yuv_frames(output)
    for index in range(40):
        same = np.array_equal(before[index], after[index])
        assert same == (strength[index] == 0), f"frame {index} (lip-sync strength {strength[index]})"
    fading = [index for index in range(40) if 0 < strength[index] < 1]
    assert len(fading) >= 4, "a fade at each edge of the pause"


def test_silence_pass_through_can_be_turned_off(engine, tmp_path):
    audio = _speech_then_silence(tmp_path / "pause.wav", 0.2, 0.8, 0.2)
    template = make_video(tmp_path / "template.mp4", seconds=1.2, fps="25", size=SIZE)
    report = engine.render(audio, template, tmp_path / "out.mp4", LOSSLESS.model_copy(update={"silence_min_s": 0}))
    assert report.lipsync.silent_frames == 0


def test_heygemd_render_with_model_musetalk(musetalk_dir, wav2lip_checkpoint, speech, template, tmp_path):
    out = tmp_path / "out"
    musetalk = ("--model", "musetalk", "--musetalk-dir", str(musetalk_dir), "--crf", "0", "--preset", "ultrafast")
    result = render(speech, [template], out, wav2lip_checkpoint, *musetalk)  # --checkpoint is Wav2Lip's: unused
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "template.json").read_text())
    assert report["model"] == "musetalk"
    assert report["output"]["frame_count"] == 25
    assert report["checkpoint"]["path"].endswith("unet.pth")


def test_heygemd_render_names_a_missing_musetalk_file(wav2lip_checkpoint, speech, template, tmp_path):
    nowhere = ("--model", "musetalk", "--musetalk-dir", str(tmp_path / "nowhere"))
    result = render(speech, [template], tmp_path / "out", wav2lip_checkpoint, *nowhere)
    assert result.returncode != 0
    assert "nowhere/musetalkV15/musetalk.json" in result.stderr and "not found" in result.stderr
