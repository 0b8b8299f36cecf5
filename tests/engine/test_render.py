"""End-to-end renders with the real engine: generated media, the generated checkpoint, real ffmpeg."""

from __future__ import annotations

import json
import math
import subprocess
import threading
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from media_factory import frame_index_of, make_audio, make_still, make_video

from heygemd.atomic import find_temporaries
from heygemd.engine import LoopPolicy, NoFaceError, RenderCancelled, RenderOptions
from heygemd.engine.audio import SAMPLE_RATE, video_frame_count
from heygemd.engine.ffmpeg_tools import ffmpeg_path, ffprobe_path
from heygemd.engine.media import read_frames
from heygemd.engine.probe import ColourTags, probe_video
from heygemd.engine.schedule import template_index

SIZE = (192, 192)
FIXED_BOX = (40, 30, 152, 150)


def decoded(path: Path) -> list[np.ndarray]:
    return list(read_frames(probe_video(path), pixel_format="bgr24"))


def yuv_planes(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The file's frames as decoded yuv420p planes: Y (N, H, W), U and V (N, H/2, W/2)."""
    info = probe_video(path)
    width, height = info.width, info.height
    raw = subprocess.run(
        [ffmpeg_path(), "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "yuv420p", "-"],
        capture_output=True,
        check=True,
    ).stdout
    frames = np.frombuffer(raw, np.uint8).reshape(-1, height * width * 3 // 2)
    y = frames[:, : height * width].reshape(-1, height, width)
    u = frames[:, height * width : height * width * 5 // 4].reshape(-1, height // 2, width // 2)
    v = frames[:, height * width * 5 // 4 :].reshape(-1, height // 2, width // 2)
    return y, u, v


def video_psnr(source: Path, rendered: Path, region: np.ndarray | None = None, frames: list[int] | None = None) -> float:
    """PSNR as video tools measure it (ffmpeg's psnr filter): on the YUV planes, weighted 4:1:1.

    ``region``: a (H, W) bool mask of the pixels to compare (even-aligned); ``frames``: which frames.
    """
    total = 0.0
    for weight, a, b in zip((4, 1, 1), yuv_planes(source), yuv_planes(rendered)):
        mask = region if region is None or a.shape[1:] == region.shape else region[::2, ::2]
        pick = slice(None) if frames is None else frames
        a, b = a[pick], b[pick]
        if mask is not None:
            a, b = a[:, mask], b[:, mask]
        total += weight * float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    mse = total / 6
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def ffprobe_streams(path: Path) -> list[dict]:
    result = subprocess.run(
        [ffprobe_path(), "-v", "error", "-show_streams", "-count_packets", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)["streams"]


def audio_seconds(path: Path) -> float:
    from heygemd.engine.media import decode_audio

    return len(decode_audio(path)) / SAMPLE_RATE


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> Path:
    return make_audio(tmp_path_factory.mktemp("audio") / "speech.wav", seconds=1.0)


@pytest.mark.parametrize("fps", ["24000/1001", "25", "30000/1001", "30", "50", "60"])
def test_output_lasts_as_long_as_the_audio_at_every_frame_rate(engine, speech, tmp_path, fps):
    template = make_video(tmp_path / "template.mp4", seconds=0.6, fps=fps, size=SIZE)
    output = tmp_path / "out.mp4"
    report = engine.render(speech, template, output, RenderOptions(fixed_box=FIXED_BOX))

    rate = float(Fraction(fps))
    duration = audio_seconds(speech)
    expected_frames = video_frame_count(round(duration * SAMPLE_RATE), rate)
    video_stream = next(s for s in ffprobe_streams(output) if s["codec_type"] == "video")
    frames = int(video_stream["nb_read_packets"])
    assert frames == expected_frames == report.output.frame_count
    assert abs(frames / rate - duration) <= 1 / rate
    assert Fraction(video_stream["r_frame_rate"]) == Fraction(fps)
    assert report.loop_policy_applied


@pytest.mark.parametrize("policy", list(LoopPolicy))
def test_loop_policies_show_the_right_template_frames(engine, speech, tmp_path, policy):
    template = make_video(tmp_path / "template.mp4", seconds=0.4, fps="25", size=SIZE)  # 10 frames
    output = tmp_path / "out.mp4"
    engine.render(speech, template, output, RenderOptions(fixed_box=FIXED_BOX, loop=policy))
    shown = [frame_index_of(frame) for frame in decoded(output)]
    assert shown == [template_index(k, 10, policy) for k in range(len(shown))]
    assert len(shown) == 25


def test_longer_template_is_trimmed_to_the_audio(engine, speech, tmp_path):
    template = make_video(tmp_path / "template.mp4", seconds=2.0, fps="25", size=SIZE)
    report = engine.render(speech, template, tmp_path / "out.mp4", RenderOptions(fixed_box=FIXED_BOX))
    assert report.output.frame_count == 25
    assert not report.loop_policy_applied
    assert any("trimmed" in w for w in report.warnings)


def test_face_detection_drives_the_render(engine, speech, tmp_path):
    template = make_video(tmp_path / "template.mp4", seconds=1.0, fps="25", size=SIZE)
    report = engine.render(speech, template, tmp_path / "out.mp4")
    assert report.faces.detector == "lbp"
    assert report.faces.frames_with_face == 25 and report.faces.frames_without_face == 0
    assert report.timings.detect > 0 and report.timings.model > 0


def test_still_image_template_becomes_a_video(engine, speech, tmp_path):
    still = make_still(tmp_path / "presenter.jpg", size=SIZE)
    output = tmp_path / "out.mp4"
    report = engine.render(speech, still, output, RenderOptions(still_fps=30))
    assert report.video.is_still
    assert report.output.frame_count == 30
    assert probe_video(output).fps == pytest.approx(30)
    assert report.faces.frames_with_face == 30


def test_frames_without_a_face_pass_through_unchanged(engine, speech, tmp_path):
    faceless = set(range(8, 14))
    template = make_video(tmp_path / "template.mp4", seconds=1.0, fps="25", size=SIZE, faceless_frames=faceless)
    output = tmp_path / "out.mp4"
    report = engine.render(speech, template, output)
    assert report.faces.frames_without_face == len(faceless)
    assert report.faces.frames_with_face == 25 - len(faceless)
    for index in faceless:
        assert video_psnr(template, output, frames=[index]) > 40, f"frame {index} was altered"
    face_frames = [i for i in range(25) if i not in faceless]
    assert video_psnr(template, output, frames=face_frames) < 35, "faces were re-drawn"


def test_pixels_outside_the_face_box_are_unchanged(engine, speech, tmp_path):
    template = make_video(tmp_path / "template.mp4", seconds=1.0, fps="25", size=SIZE)
    output = tmp_path / "out.mp4"
    engine.render(speech, template, output, RenderOptions(fixed_box=FIXED_BOX))
    x1, y1, x2, y2 = FIXED_BOX
    outside = np.ones(SIZE[::-1], bool)
    outside[y1:y2, x1:x2] = False
    assert video_psnr(template, output, outside) > 40
    assert video_psnr(template, output, ~outside) < 35, "the face box itself was re-drawn"


def test_lossless_render_keeps_every_pixel_outside_the_face_box_as_decoded(engine, speech, tmp_path):
    template = make_video(tmp_path / "template.mp4", seconds=1.0, fps="25", size=SIZE)
    output = tmp_path / "out.mp4"
    engine.render(speech, template, output, RenderOptions(fixed_box=FIXED_BOX, crf=0, preset="ultrafast"))
    x1, y1, x2, y2 = FIXED_BOX  # even: the chroma blocks of the box are its own
    for plane, (before, after) in enumerate(zip(yuv_planes(template), yuv_planes(output))):
        step = 1 if plane == 0 else 2
        inside = np.zeros(before.shape[1:], bool)
        inside[y1 // step : y2 // step, x1 // step : x2 // step] = True
        assert np.array_equal(before[:, ~inside], after[:, ~inside]), f"plane {plane} changed outside the box"
        assert not np.array_equal(before[:, inside], after[:, inside]), "the face box itself was re-drawn"


def test_lossless_render_keeps_frames_without_a_face_as_decoded(engine, speech, tmp_path):
    faceless = {3, 4, 5}
    template = make_video(tmp_path / "template.mp4", seconds=1.0, fps="25", size=SIZE, faceless_frames=faceless)
    output = tmp_path / "out.mp4"
    report = engine.render(speech, template, output, RenderOptions(crf=0, preset="ultrafast"))
    assert report.faces.frames_without_face == len(faceless)
    for before, after in zip(yuv_planes(template), yuv_planes(output)):
        for index in range(25):
            assert np.array_equal(before[index], after[index]) == (index in faceless), f"frame {index}"


def test_the_output_carries_the_templates_colour_tags(engine, speech, tmp_path):
    plain = make_video(tmp_path / "plain.mp4", seconds=0.4, fps="25", size=SIZE)
    tagged = tmp_path / "bt709.mp4"
    subprocess.run(
        [
            ffmpeg_path(),
            "-v",
            "error",
            "-i",
            str(plain),
            "-c",
            "copy",
            "-bsf:v",
            "h264_metadata=colour_primaries=1:transfer_characteristics=1:matrix_coefficients=1",
            str(tagged),
        ],
        check=True,
    )
    assert probe_video(tagged).colour == ColourTags("bt709", "bt709", "bt709")
    assert probe_video(plain).colour is None
    for template in (tagged, plain):
        output = tmp_path / f"out-{template.name}"
        engine.render(speech, template, output, RenderOptions(fixed_box=FIXED_BOX))
        assert probe_video(output).colour == probe_video(template).colour


def test_output_is_a_streamable_h264_mp4_with_aac(engine, tmp_path):
    speech = make_audio(tmp_path / "speech.m4a", seconds=1.0)
    template = make_video(tmp_path / "template.mov", seconds=0.5, fps="25", size=SIZE)
    output = tmp_path / "out.mp4"
    engine.render(speech, template, output, RenderOptions(fixed_box=FIXED_BOX, crf=23))
    streams = ffprobe_streams(output)
    video = next(s for s in streams if s["codec_type"] == "video")
    audio = next(s for s in streams if s["codec_type"] == "audio")
    assert video["codec_name"] == "h264" and video["pix_fmt"] == "yuv420p"
    assert (video["width"], video["height"]) == SIZE
    assert audio["codec_name"] == "aac"
    data = output.read_bytes()
    assert 0 < data.find(b"moov") < data.find(b"mdat"), "moov atom must come first (+faststart)"
    assert abs(float(video["duration"]) - audio_seconds(speech)) <= 1 / 25 + 1e-6
    assert find_temporaries(tmp_path) == []


def test_a_video_without_any_face_fails_clearly(engine, speech, tmp_path):
    template = make_video(tmp_path / "landscape.mp4", seconds=0.4, fps="25", size=SIZE, face=False)
    output = tmp_path / "out.mp4"
    with pytest.raises(NoFaceError) as caught:
        engine.render(speech, template, output)
    assert "landscape.mp4" in str(caught.value) and "no face" in str(caught.value)
    assert list(tmp_path.glob("out*")) == [] and find_temporaries(tmp_path) == []


def test_rotated_template_is_rendered_upright(engine, speech, tmp_path):
    template = make_video(tmp_path / "phone.mp4", seconds=0.4, fps="25", size=(160, 224), rotation=90)
    info = probe_video(template)
    output = tmp_path / "out.mp4"
    report = engine.render(speech, template, output, RenderOptions(fixed_box=(10, 10, 120, 120)))
    out_info = probe_video(output)
    assert (out_info.width, out_info.height) == (info.width, info.height) == (224, 160)
    assert out_info.rotation == 0
    assert report.video.rotation in (90, 270)


def test_variable_frame_rate_template_is_rendered_at_a_constant_rate(engine, speech, tmp_path):
    template = make_video(tmp_path / "vfr.mkv", seconds=1.0, fps="25", size=SIZE, vfr=True)
    output = tmp_path / "out.mp4"
    report = engine.render(speech, template, output, RenderOptions(fixed_box=FIXED_BOX))
    video = next(s for s in ffprobe_streams(output) if s["codec_type"] == "video")
    assert video["r_frame_rate"] == video["avg_frame_rate"]
    assert abs(int(video["nb_read_packets"]) / report.output.fps - 1.0) <= 1 / report.output.fps


def test_audio_can_come_from_a_video_file(engine, tmp_path):
    recording = make_video(tmp_path / "recording.mp4", seconds=0.5, fps="25", size=SIZE, audio_seconds=0.8)
    template = make_video(tmp_path / "template.mp4", seconds=0.5, fps="25", size=SIZE)
    report = engine.render(recording, template, tmp_path / "out.mp4", RenderOptions(fixed_box=FIXED_BOX))
    # AAC pads its last frame: the decoded track is a little longer than the 0.8 s encoded.
    assert report.output.frame_count == video_frame_count(round(audio_seconds(recording) * SAMPLE_RATE), 25)
    assert report.output.frame_count >= 20


def test_cancel_leaves_nothing_behind(engine, speech, tmp_path):
    template = make_video(tmp_path / "template.mp4", seconds=1.0, fps="25", size=SIZE)
    stop = threading.Event()
    stop.set()
    with pytest.raises(RenderCancelled):
        engine.render(speech, template, tmp_path / "out" / "out.mp4", RenderOptions(fixed_box=FIXED_BOX), cancel=stop)
    assert list((tmp_path / "out").iterdir()) == []


def test_one_prepared_audio_serves_several_templates(engine, tmp_path):
    audio = engine.prepare_audio(make_audio(tmp_path / "speech.flac", seconds=0.6))
    for name in ("a.mp4", "b.webm"):
        template = make_video(tmp_path / name, seconds=0.3, fps="25", size=SIZE)
        report = engine.render(audio, template, tmp_path / f"{name}.out.mp4", RenderOptions(fixed_box=FIXED_BOX))
        assert report.output.frame_count == 15
        assert report.audio.sha256 == audio.sha256
