"""Renders with the face restorer: only the re-synced area changes, weight 0 is no restorer, reports name it.

A random-weight GFPGAN at 512x512 costs seconds a face on a CPU: clips here are three frames.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from checkpoint_factory import make_gfpgan_checkpoint
from media_factory import make_audio, make_video
from test_render import yuv_planes

from heygemd.engine import RenderOptions
from heygemd.engine.blend import first_pasted_row
from heygemd.engine.files import sha256_file
from heygemd.engine.settings import BlendMode
from heygemd.exitcodes import ExitCode

SIZE = (192, 192)
FIXED_BOX = (40, 30, 152, 150)  # even corners: its chroma blocks are its own
FRAMES = 3
LOSSLESS = {"crf": 0, "preset": "ultrafast"}


@pytest.fixture(scope="module")
def gfpgan_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_gfpgan_checkpoint(tmp_path_factory.mktemp("restorer") / "GFPGANv1.4.pth", seed=1, wrap="ema_only")


@pytest.fixture(scope="module")
def restoring_engine(engine_settings, gfpgan_checkpoint):
    from heygemd.engine import LipSyncEngine

    return LipSyncEngine(engine_settings.model_copy(update={"restorer": "gfpgan", "restorer_checkpoint": gfpgan_checkpoint}))


@pytest.fixture(scope="module")
def short_speech(tmp_path_factory) -> Path:
    return make_audio(tmp_path_factory.mktemp("audio") / "speech.wav", seconds=FRAMES / 25)


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    return make_video(tmp_path_factory.mktemp("template") / "template.mp4", seconds=FRAMES / 25, fps="25", size=SIZE)


def _render(engine, speech: Path, template: Path, output: Path, progress=None, **options) -> tuple:
    report = engine.render(speech, template, output, RenderOptions(**LOSSLESS, **options), progress=progress)
    return report, yuv_planes(output)


def test_weight_zero_gives_the_pixels_of_no_restorer(engine, restoring_engine, short_speech, template, tmp_path):
    _, plain = _render(engine, short_speech, template, tmp_path / "plain.mp4", fixed_box=FIXED_BOX)
    report, off = _render(
        restoring_engine, short_speech, template, tmp_path / "off.mp4", fixed_box=FIXED_BOX, restore_weight=0
    )
    for before, after in zip(plain, off):
        assert np.array_equal(before, after)
    assert report.restorer is None and report.timings.restore == 0


def test_the_engine_names_its_restorer(restoring_engine, gfpgan_checkpoint):
    described = restoring_engine.describe().restorer
    assert described is not None and described.sha256 == sha256_file(gfpgan_checkpoint) and described.known_name is None


@pytest.mark.slow
def test_only_the_re_synced_area_is_restored(engine, restoring_engine, gfpgan_checkpoint, short_speech, template, tmp_path):
    # One blend mode end to end (the hard mask's rows: test_restore.py, on paste_restored itself): 20 s a render here.
    blend = BlendMode.FEATHER
    _, plain = _render(engine, short_speech, template, tmp_path / "plain.mp4", fixed_box=FIXED_BOX, blend=blend)
    report, restored = _render(
        restoring_engine,
        short_speech,
        template,
        tmp_path / "restored.mp4",
        fixed_box=FIXED_BOX,
        blend=blend,
        restore_weight=0.6,
    )
    x1, y1, x2, y2 = FIXED_BOX
    top = y1 + first_pasted_row(y2 - y1, blend, RenderOptions().feather)
    for plane, (before, after) in enumerate(zip(plain, restored)):
        step = 1 if plane == 0 else 2
        inside = np.zeros(before.shape[1:], bool)
        inside[top // step : y2 // step, x1 // step : x2 // step] = True
        assert np.array_equal(before[:, ~inside], after[:, ~inside]), f"plane {plane} changed outside the lip-sync's mask"
        assert not np.array_equal(before[:, inside], after[:, inside]), "the re-synced area was not restored"
    assert report.restorer is not None and report.restorer.sha256 == sha256_file(gfpgan_checkpoint)
    assert report.timings.restore > 0
    assert any("not a published GFPGAN" in warning for warning in report.warnings)


@pytest.mark.slow
def test_faceless_frames_and_everything_outside_the_lip_sync_stay_as_they_were(
    engine, restoring_engine, short_speech, tmp_path
):
    faceless = 1
    template = make_video(tmp_path / "template.mp4", seconds=FRAMES / 25, fps="25", size=SIZE, faceless_frames={faceless})
    _, plain = _render(engine, short_speech, template, tmp_path / "plain.mp4")
    stages: list[str] = []
    report, restored = _render(
        restoring_engine,
        short_speech,
        template,
        tmp_path / "restored.mp4",
        progress=lambda update: stages.append(update.stage),
        restore_weight=0.6,
    )
    assert report.faces.frames_without_face == 1
    assert "restore" in stages, "a CPU restores a face in seconds: progress must not stall meanwhile"
    source = yuv_planes(template)
    for plane in range(3):
        assert np.array_equal(restored[plane][faceless], source[plane][faceless]), "a frame without a face was altered"
    luma_before, luma_plain, luma_restored = source[0], plain[0], restored[0]
    for index in (0, 2):
        touched_by_lip_sync = np.argwhere(luma_plain[index] != luma_before[index])
        (top, left), (bottom, right) = touched_by_lip_sync.min(axis=0), touched_by_lip_sync.max(axis=0) + 1
        outside = np.ones(luma_before.shape[1:], bool)
        outside[top:bottom, left:right] = False
        assert np.array_equal(luma_restored[index][outside], luma_plain[index][outside])
        assert not np.array_equal(luma_restored[index], luma_plain[index])


# ---------------------------------------------------------------------------- `heygemd render`


def test_render_cli_names_a_bad_restorer_file(tmp_path, wav2lip_checkpoint, short_speech, template):
    from test_cli_render import render

    page = tmp_path / "GFPGANv1.4.pth"
    page.write_bytes(b"<!DOCTYPE html><html><body>Sign in to GitHub</body></html>" * 100)
    result = render(
        short_speech,
        [template],
        tmp_path / "out",
        wav2lip_checkpoint,
        "--restorer",
        "gfpgan",
        "--restorer-checkpoint",
        str(page),
    )
    assert result.returncode == ExitCode.MISSING_WEIGHTS == 69
    assert "GFPGANv1.4.pth" in result.stderr and "HTML" in result.stderr


def test_render_cli_takes_the_restorer_flags(tmp_path, wav2lip_checkpoint, gfpgan_checkpoint, short_speech, template):
    from test_cli_render import render

    bad = render(short_speech, [template], tmp_path / "out", wav2lip_checkpoint, "--restore-weight", "1.5")
    assert bad.returncode == 2 and "--restore-weight" in bad.stderr
    result = render(
        short_speech,
        [template],
        tmp_path / "out",
        wav2lip_checkpoint,
        "--restorer",
        "gfpgan",
        "--restorer-checkpoint",
        str(gfpgan_checkpoint),
        "--restorer-batch-size",
        "2",
        "--restore-weight",
        "0",
    )
    assert result.returncode == 0, result.stderr
    sidecar = json.loads((tmp_path / "out" / "template.json").read_text())
    assert sidecar["options"]["restore_weight"] == 0 and sidecar["restorer"] is None
