"""`heygemd render` run as a real process on real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from media_factory import make_audio, make_video

from heygemd.exitcodes import ExitCode

SIZE = (160, 160)


def heygemd(*args: str | Path, timeout: float = 300, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("heygemd")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "heygemd"]
    return subprocess.run(
        [*command, *map(str, args)], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )


def render(audio: Path, videos: list[Path], out: Path, checkpoint: Path, *extra: str) -> subprocess.CompletedProcess:
    video_args = [arg for video in videos for arg in ("--video", video)]
    return heygemd(
        "render",
        "--audio",
        audio,
        *video_args,
        "--out",
        out,
        "--checkpoint",
        checkpoint,
        "--detector",
        "lbp",
        "--device",
        "cpu",
        "--detect-max-side",
        "320",
        *extra,
    )


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("inputs")
    return {
        "audio": make_audio(folder / "script.mp3", seconds=0.8),
        "front": make_video(folder / "front view.mp4", seconds=0.5, fps="25", size=SIZE),
        "side": make_video(folder / "side.mkv", seconds=0.4, fps="30", size=SIZE),
    }


def test_renders_every_video_with_a_sidecar(inputs, wav2lip_checkpoint, tmp_path):
    out = tmp_path / "out"
    result = render(inputs["audio"], [inputs["front"], inputs["side"]], out, wav2lip_checkpoint)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["front view.json", "front view.mp4", "side.json", "side.mp4"]

    report = json.loads((out / "side.json").read_text())
    assert report["audio"]["sha256"] and report["video"]["sha256"]
    assert report["video"]["fps"] == pytest.approx(30) and report["video"]["width"] == SIZE[0]
    assert report["output"]["frame_count"] == 24
    assert abs(report["output"]["duration_s"] - 0.8) <= 1 / 30 + 0.05
    assert report["faces"]["detector"] == "lbp" and report["faces"]["frames_with_face"] > 0
    assert report["checkpoint"]["sha256"] and report["checkpoint"]["known_name"] is None
    assert report["device"] == "cpu"
    assert set(report["timings"]) >= {"decode", "detect", "model", "blend", "encode", "total"}
    assert any("not a published Wav2Lip checkpoint" in w for w in report["warnings"])


BAD_MEDIA = {
    "zero bytes": (lambda d: _write(d / "empty.mp4", b""), "empty"),
    "truncated mp4": (lambda d: _truncate(make_video(d / "cut.mp4", seconds=1.0, size=SIZE)), "truncated or damaged"),
    "text renamed .mp4": (
        lambda d: _write(d / "notes.mp4", b"Meeting notes: remember the milk\n" * 50),
        "not a video or audio file",
    ),
}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return path


@pytest.mark.parametrize("case", list(BAD_MEDIA))
def test_a_bad_video_gets_one_clear_line_and_the_others_still_render(case, inputs, wav2lip_checkpoint, tmp_path):
    make_bad, reason = BAD_MEDIA[case]
    bad = make_bad(tmp_path)
    out = tmp_path / "out"
    result = render(inputs["audio"], [bad, inputs["front"]], out, wav2lip_checkpoint)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and bad.name in errors[0] and reason in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["front view.json", "front view.mp4"]


@pytest.mark.parametrize(
    "make_audio_file, reason",
    [
        (lambda d: make_video(d / "silent film.mp4", seconds=0.5, size=SIZE), "no audio track"),
        (lambda d: make_audio(d / "nothing.wav", seconds=0.0), "0 seconds"),
        (lambda d: make_audio(d / "broken.wav", seconds=0.5, kind="nan"), "invalid samples"),
        (lambda d: _write(d / "empty.wav", b""), "empty"),
    ],
    ids=["video without audio", "0-second audio", "NaN samples", "zero bytes"],
)
def test_unusable_audio_fails_every_video_with_one_line(make_audio_file, reason, inputs, wav2lip_checkpoint, tmp_path):
    audio = make_audio_file(tmp_path)
    result = render(audio, [inputs["front"]], tmp_path / "out", wav2lip_checkpoint)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert audio.name in result.stderr and reason in result.stderr
    assert not (tmp_path / "out" / "front view.mp4").exists()


def test_an_html_page_saved_as_checkpoint_is_named_clearly(inputs, tmp_path):
    page = _write(tmp_path / "wav2lip_gan.pth", b"<!DOCTYPE html><html><body>Sign in</body></html>" * 100)
    result = render(inputs["audio"], [inputs["front"]], tmp_path / "out", page)
    assert result.returncode == ExitCode.MISSING_WEIGHTS == 69
    assert "wav2lip_gan.pth" in result.stderr and "HTML" in result.stderr


def test_existing_outputs_are_not_overwritten_without_asking(inputs, wav2lip_checkpoint, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "front view.mp4").write_bytes(b"earlier result")
    result = render(inputs["audio"], [inputs["front"]], out, wav2lip_checkpoint, "--dry-run")
    assert result.returncode == 2 and "already exists" in result.stderr
    assert (out / "front view.mp4").read_bytes() == b"earlier result"
    result = render(inputs["audio"], [inputs["front"]], out, wav2lip_checkpoint, "--dry-run", "--overwrite")
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "front view.json").read_text())["dry_run"] is True


def test_bad_flag_values_are_one_line_each(inputs, tmp_path):
    result = heygemd("render", "--audio", inputs["audio"], "--video", inputs["front"], "--out", tmp_path, "--crf", "99")
    assert result.returncode == 2 and "crf" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("variable", ["HEYGEMD_FFMPEG", "HEYGEMD_FFPROBE"])
def test_a_missing_ffmpeg_is_one_clear_line_not_a_traceback(variable, inputs, tmp_path):
    missing = tmp_path / "nowhere" / variable.removeprefix("HEYGEMD_").lower()
    result = heygemd(
        "render",
        "--audio",
        inputs["audio"],
        "--video",
        inputs["front"],
        "--out",
        tmp_path / "out",
        "--dry-run",
        env={variable: str(missing)},
    )
    assert result.returncode == ExitCode.MISSING_WEIGHTS == 69, result.stderr  # the engine could not start
    assert result.stderr.splitlines() == [f"error: {variable}={missing} does not name an executable {missing.name}"]
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_every_engine_setting_and_render_option_is_a_flag_and_reaches_the_models():
    from heygemd.cli import build_parser
    from heygemd.commands.model_flags import model_from_flags
    from heygemd.commands.render import RENAMED_ENGINE_FLAGS
    from heygemd.engine.settings import EngineSettings, RenderOptions

    parser = build_parser()
    render = next(action for action in parser._subparsers._group_actions[0].choices.items() if action[0] == "render")[1]
    flags = {option for action in render._actions for option in action.option_strings}
    for model in (EngineSettings, RenderOptions):
        for name in model.model_fields:
            assert RENAMED_ENGINE_FLAGS.get(name, "--" + name.replace("_", "-")) in flags, name

    args = parser.parse_args(
        [
            "render",
            "--audio",
            "a.wav",
            "--video",
            "v.mp4",
            "--out",
            "o",
            "--smooth-window",
            "9",
            "--face-threshold",
            "0.7",
            "--no-half-precision",
            "--fixed-box",
            "1,2,30,40",
            "--loop",
            "freeze",
        ]
    )
    settings, options = model_from_flags(EngineSettings, args), model_from_flags(RenderOptions, args)
    assert (settings.smooth_window, settings.face_threshold, settings.half_precision) == (9, 0.7, False)
    assert options.fixed_box == (1, 2, 30, 40) and options.loop == "freeze" and options.crf == RenderOptions().crf
