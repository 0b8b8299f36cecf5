"""The output's sound is the sound that was analysed: one snapshot per prepared audio, and a check of every output.

Real ffmpeg, real files, the generated Wav2Lip checkpoint (and the dry-run engine, which must obey the same).
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from media_factory import make_audio, make_still, make_video

from heygemd.codes import ErrorCode
from heygemd.engine import AudioError, EngineError, EngineSettings, MediaError, OutputMismatch, RenderOptions
from heygemd.engine.audio import SAMPLE_RATE, melspectrogram
from heygemd.engine.ffmpeg_tools import ffmpeg_path, ffprobe_path
from heygemd.engine.media import decode_audio
from heygemd.engine.output_check import check_output
from heygemd.engine.snapshot import SNAPSHOT_PREFIX, pcm_codec, remove_leftovers, take_snapshot

SIZE = (192, 192)
FIXED_BOX = (40, 30, 152, 150)
FAST = RenderOptions(fixed_box=FIXED_BOX, preset="ultrafast")


def ffmpeg(*args: str | Path) -> None:
    subprocess.run([ffmpeg_path(), "-nostdin", "-v", "error", "-y", *map(str, args)], check=True, capture_output=True)


def streams(path: Path) -> dict[str, dict]:
    """The first stream of each type, as ffprobe describes it."""
    result = subprocess.run(
        [ffprobe_path(), "-v", "error", "-show_streams", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    found: dict[str, dict] = {}
    for stream in json.loads(result.stdout)["streams"]:
        found.setdefault(stream["codec_type"], stream)
    return found


def tone(path: Path, seconds: float, frequency: int = 440, rate: int = 16000) -> Path:
    ffmpeg("-f", "lavfi", "-i", f"sine=f={frequency}:sample_rate={rate}:duration={seconds}", str(path))
    return path


def stereo_44k(path: Path, seconds: float) -> Path:
    """44.1 kHz stereo, 24-bit: speech on the left, a 1 kHz tone on the right."""
    speech = make_audio(path.with_name("left.wav"), seconds=seconds, sample_rate=44100)
    right = tone(path.with_name("right.wav"), seconds, 1000, 44100)
    ffmpeg(
        "-i",
        speech,
        "-i",
        right,
        "-filter_complex",
        "[0:a][1:a]join=inputs=2:channel_layout=stereo",
        "-c:a",
        "pcm_s24le",
        path,
    )
    return path


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation of two signals over their common length."""
    length = min(len(a), len(b))
    return float(np.corrcoef(a[:length], b[:length])[0, 1])


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.fixture(scope="module")
def dry_engine(tmp_path_factory):
    from heygemd.engine import LipSyncEngine

    return LipSyncEngine(EngineSettings(dry_run=True, temp_dir=tmp_path_factory.mktemp("engine-tmp")))


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    return make_video(tmp_path_factory.mktemp("template") / "template.mp4", seconds=0.4, fps="25", size=SIZE)


# -- the snapshot ------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".wav", ".mp3", ".m4a", ".opus", "stereo 44.1 kHz"])
def test_features_come_out_exactly_as_from_the_file_itself(engine, tmp_path, suffix):
    """The 16 kHz mono mix of the snapshot is the file's own, sample for sample: the features do not move."""
    source = (
        stereo_44k(tmp_path / "stereo.wav", 0.7)
        if suffix.startswith("stereo")
        else make_audio(tmp_path / f"voice{suffix}", seconds=0.7)
    )
    with engine.prepare_audio(source) as audio:
        samples = decode_audio(source)
        assert audio.num_samples == len(samples)
        np.testing.assert_array_equal(audio.features.mel, melspectrogram(samples))


@pytest.mark.parametrize(("suffix", "codec"), [(".wav", "pcm_s16le"), (".mp3", "pcm_f32le"), (".flac", "pcm_s16le")])
def test_the_snapshot_keeps_the_decoders_own_samples(tmp_path, suffix, codec):
    source = make_audio(tmp_path / f"voice{suffix}", seconds=0.5)
    snapshot = take_snapshot(source, tmp_path / "tmp")
    try:
        wav = streams(snapshot.path)["audio"]
        assert wav["codec_name"] == codec
        assert (snapshot.sample_rate, snapshot.channels) == (16000, 1)
        assert snapshot.num_samples == len(decode_audio(source))
        assert snapshot.sha256 == hashlib.sha256(snapshot.path.read_bytes()).hexdigest()
        assert snapshot.source_sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
        assert snapshot.source_size == source.stat().st_size
        assert snapshot.source_info.path == source and snapshot.source_info.sample_rate == 16000
        assert leftovers(snapshot.path.parent) == ["snapshot.wav"], "the copy of the file is removed once decoded"
    finally:
        snapshot.close()


def test_pcm_codecs_cover_planar_and_packed_formats():
    assert [pcm_codec(f) for f in ("s16", "s16p", "fltp", "flt", "s32p", "u8", "dblp", "s64", "")] == [
        "pcm_s16le",
        "pcm_s16le",
        "pcm_f32le",
        "pcm_f32le",
        "pcm_s32le",
        "pcm_u8",
        "pcm_f64le",
        "pcm_f32le",
        "pcm_f32le",
    ]


# -- (a) the file changes after it was prepared -------------------------------------------------


def _overwrite(path: Path, scratch: Path) -> None:
    path.write_bytes(tone(scratch / "other.mp3", 2.5).read_bytes())


def _append(path: Path, scratch: Path) -> None:
    with open(path, "ab") as handle:  # the rest of an upload arrives
        handle.write((scratch / "full.mp3").read_bytes()[path.stat().st_size :])


def _replace(path: Path, scratch: Path) -> None:
    os.replace(tone(scratch / "new.mp3", 2.5), path)


def _delete(path: Path, scratch: Path) -> None:
    path.unlink()


@pytest.mark.parametrize(
    "change", [_overwrite, _append, _replace, _delete], ids=["overwritten", "appended", "replaced", "deleted"]
)
def test_the_output_sound_is_the_snapshot_whatever_became_of_the_file(engine, template, tmp_path, change):
    full = make_audio(tmp_path / "full.mp3", seconds=1.25)
    source = tmp_path / "voice.mp3"
    source.write_bytes(full.read_bytes()[: full.stat().st_size * 2 // 5])  # an upload two fifths done
    with engine.prepare_audio(source) as audio:
        analysed = audio.snapshot.decode(SAMPLE_RATE)
        change(source, tmp_path)
        report = engine.render(audio, template, tmp_path / "out.mp4", FAST)
    heard = decode_audio(tmp_path / "out.mp4")
    assert abs(len(heard) - len(analysed)) <= SAMPLE_RATE / 25, "the sound lasts as long as what was analysed"
    assert abs(report.output.audio_duration_s - report.audio.snapshot_duration_s) <= 1 / 25
    assert report.audio.snapshot_duration_s < 0.7  # two fifths of 1.25 s, not the file as it is now
    assert similarity(heard, analysed) > 0.95
    rms = lambda x: float(np.sqrt(np.mean(x**2)))  # noqa: E731
    assert rms(heard[: len(analysed)] - analysed[: len(heard)]) < 0.25 * rms(analysed)
    if source.exists():
        assert similarity(heard, decode_audio(source)) < 0.5 or len(decode_audio(source)) > 2 * len(heard)


def test_the_report_names_the_bytes_that_were_decoded(engine, template, tmp_path):
    source = make_audio(tmp_path / "voice.m4a", seconds=0.4)
    decoded_bytes = hashlib.sha256(source.read_bytes()).hexdigest()
    with engine.prepare_audio(source) as audio:
        source.write_bytes(b"\0" * 100)  # the file is gone to something else meanwhile
        report = engine.render(audio, template, tmp_path / "out.mp4", FAST)
    assert report.audio.sha256 == audio.sha256 == decoded_bytes
    assert report.audio.snapshot_sha256 == audio.snapshot.sha256
    assert report.audio.snapshot_duration_s == pytest.approx(audio.snapshot.duration)


# -- (b) the check catches an output that is not as planned --------------------------------------


def _mux(path: Path, frames: int, audio_seconds: float | None, fps: str = "25") -> Path:
    """``frames`` pictures at ``fps`` and (unless None) ``audio_seconds`` of AAC sound, each track as long as it is."""
    inputs = ["-f", "lavfi", "-i", f"color=size=64x64:rate={fps}:duration={float(frames / Fraction(fps))}"]
    if audio_seconds is not None:
        inputs += ["-f", "lavfi", "-i", f"sine=f=300:sample_rate=44100:duration={audio_seconds}"]
    ffmpeg(*inputs, "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", path)
    return path


MISMATCHES = {
    "sound far longer": (25, 2.5, "its sound lasts 2.500 s but its picture 1.000 s"),
    "sound of another length than analysed": (25, 0.9, "the audio analysed 1.000 s"),
    "picture short": (20, 1.0, "20 pictures where 25 were planned"),
    "no sound": (25, None, "no sound track"),
}


@pytest.mark.parametrize("case", list(MISMATCHES))
def test_the_check_rejects_a_real_mismatched_file(tmp_path, case):
    frames, audio_seconds, words = MISMATCHES[case]
    muxed = _mux(tmp_path / "muxed.mp4", frames, audio_seconds)
    with pytest.raises(EngineError) as caught:
        check_output(muxed, frames=25, fps=Fraction(25), audio_duration=Fraction(1), name=tmp_path / "final.mp4")
    assert caught.value.code is ErrorCode.OUTPUT_MISMATCH
    assert isinstance(caught.value, OutputMismatch)
    assert words in str(caught.value) and "final.mp4" in str(caught.value)


@pytest.mark.parametrize("fps", ["25", "30000/1001"])
def test_the_check_accepts_sound_shorter_than_the_picture_by_less_than_a_frame(tmp_path, fps):
    rate = Fraction(fps)
    audio = Fraction(1013, 1000)
    frames = -(-audio * rate // 1)  # ceil: what the engine plans
    muxed = _mux(tmp_path / "muxed.mp4", int(frames), float(audio), fps)
    found = check_output(muxed, frames=int(frames), fps=rate, audio_duration=audio)
    assert found.video_frames == frames and found.fps == rate
    assert 0 <= found.video_duration - found.audio_duration < 1 / rate  # type: ignore[operator]


def test_a_mismatched_render_leaves_nothing(dry_engine, template, tmp_path):
    """The snapshot swapped for a longer sound behind the engine's back: caught, and no output is left."""
    out = tmp_path / "out"
    with dry_engine.prepare_audio(make_audio(tmp_path / "voice.wav", seconds=0.6)) as audio:
        tone(tmp_path / "long.wav", 3.0)
        shutil.copyfile(tmp_path / "long.wav", audio.snapshot.path)
        with pytest.raises(OutputMismatch) as caught:
            dry_engine.render(audio, template, out / "template.mp4", FAST)
    assert caught.value.code is ErrorCode.OUTPUT_MISMATCH
    assert caught.value.failure().reason.startswith("template.mp4: the finished video is not as planned")
    assert leftovers(out) == []


# -- (c) every normal render passes the check ----------------------------------------------------


def _assert_as_planned(report, output: Path, fps: Fraction) -> None:
    found = streams(output)
    video, sound = float(found["video"]["duration"]), float(found["audio"]["duration"])
    assert int(found["video"]["nb_frames"]) == report.output.frame_count
    assert report.output.planned_duration_s == pytest.approx(report.output.frame_count / fps)
    assert abs(video - report.output.planned_duration_s) <= 1 / fps
    assert 0 <= video - sound < 1 / fps
    assert sound == pytest.approx(report.audio.snapshot_duration_s, abs=1e-4)
    assert report.output.audio_duration_s == pytest.approx(sound, abs=1e-5)


@pytest.mark.parametrize("fps", ["25", "30000/1001"])
def test_a_render_passes_the_check(engine, tmp_path, fps):
    template = make_video(tmp_path / "template.mp4", seconds=0.4, fps=fps, size=SIZE)
    voice = make_audio(tmp_path / "voice.mp3", seconds=0.47)
    report = engine.render(voice, template, tmp_path / "out.mp4", FAST)
    _assert_as_planned(report, tmp_path / "out.mp4", Fraction(fps))


def test_a_still_image_render_passes_the_check(engine, tmp_path):
    still = make_still(tmp_path / "presenter.jpg", size=SIZE)
    report = engine.render(
        make_audio(tmp_path / "voice.m4a", seconds=0.43),
        still,
        tmp_path / "out.mp4",
        RenderOptions(fixed_box=FIXED_BOX, preset="ultrafast", still_fps=30),
    )
    _assert_as_planned(report, tmp_path / "out.mp4", Fraction(30))


def test_a_dry_run_passes_the_same_check(dry_engine, tmp_path):
    template = make_video(tmp_path / "template.mkv", seconds=0.3, fps="30000/1001", size=SIZE)
    report = dry_engine.render(make_audio(tmp_path / "voice.ogg", seconds=0.9), template, tmp_path / "out.mp4", FAST)
    assert report.dry_run
    _assert_as_planned(report, tmp_path / "out.mp4", Fraction(30000, 1001))


# -- (d) the sound keeps its quality ----------------------------------------------------------------


def test_44k_stereo_stays_44k_stereo(engine, template, tmp_path):
    source = stereo_44k(tmp_path / "stereo.wav", 0.5)
    with engine.prepare_audio(source) as audio:
        assert (audio.snapshot.sample_rate, audio.snapshot.channels) == (44100, 2)
        assert streams(audio.snapshot.path)["audio"]["codec_name"] == "pcm_s32le"  # 24-bit kept whole
        report = engine.render(audio, template, tmp_path / "out.mp4", FAST)
    sound = streams(tmp_path / "out.mp4")["audio"]
    assert (int(sound["sample_rate"]), sound["channels"]) == (44100, 2)
    assert (report.output.audio_sample_rate, report.output.audio_channels) == (44100, 2)
    raw = subprocess.run(
        [ffmpeg_path(), "-v", "error", "-i", str(tmp_path / "out.mp4"), "-f", "f32le", "-"], capture_output=True, check=True
    ).stdout
    left, right = np.frombuffer(raw, np.float32).reshape(-1, 2).T
    assert similarity(left, decode_audio(tmp_path / "left.wav", 44100)) > 0.95
    assert similarity(right, decode_audio(tmp_path / "right.wav", 44100)) > 0.95
    assert abs(similarity(left, right)) < 0.3, "the two channels stay apart"


# -- (e) the snapshot's lifetime ---------------------------------------------------------------------


def test_close_and_with_remove_the_snapshot(dry_engine, template, tmp_path):
    voice = make_audio(tmp_path / "voice.wav", seconds=0.5)
    audio = dry_engine.prepare_audio(voice)
    folder = audio.snapshot.path.parent
    assert folder.name.startswith(SNAPSHOT_PREFIX) and folder.parent == dry_engine.settings.temp_dir
    for name in ("a.mp4", "b.mp4"):  # one prepared audio, many renders
        dry_engine.render(audio, template, tmp_path / name, FAST)
    audio.close()
    audio.close()
    assert audio.closed and not folder.exists()
    with pytest.raises(EngineError, match="voice.wav: its prepared audio was closed"):
        dry_engine.render(audio, template, tmp_path / "c.mp4", FAST)
    assert not (tmp_path / "c.mp4").exists()
    with dry_engine.prepare_audio(voice) as again:
        folder = again.snapshot.path.parent
        assert folder.exists()
    assert not folder.exists()


def test_the_garbage_collector_removes_a_forgotten_snapshot(dry_engine, tmp_path):
    audio = dry_engine.prepare_audio(make_audio(tmp_path / "voice.wav", seconds=0.5))
    folder = audio.snapshot.path.parent
    del audio
    gc.collect()
    assert not folder.exists()


def test_leftovers_of_a_killed_process_are_removed(tmp_path):
    """What a kill -9 leaves (no close, no garbage collector) is found by its prefix; nothing else is touched."""
    voice = make_audio(tmp_path / "voice.wav", seconds=0.3)
    script = (
        "import sys, os; from pathlib import Path; from heygemd.engine.snapshot import take_snapshot; "
        "kept = take_snapshot(Path(sys.argv[1]), Path(sys.argv[2])); os._exit(0)"
    )
    temp = tmp_path / "tmp"
    subprocess.run(
        [sys.executable, "-c", script, str(voice), str(temp)],
        check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    (temp / "someone else's.wav").write_bytes(b"keep")
    [left] = [p for p in temp.iterdir() if p.name.startswith(SNAPSHOT_PREFIX)]
    assert (left / "snapshot.wav").exists()
    assert remove_leftovers(temp) == 1
    assert leftovers(temp) == ["someone else's.wav"]


def test_a_render_from_a_path_and_a_failed_prepare_leave_nothing(dry_engine, template, tmp_path):
    temp = dry_engine.settings.temp_dir
    before = leftovers(temp)
    dry_engine.render(make_audio(tmp_path / "voice.flac", seconds=0.5), template, tmp_path / "out.mp4", FAST)
    with pytest.raises(AudioError):
        dry_engine.prepare_audio(make_audio(tmp_path / "broken.wav", seconds=0.5, kind="nan"))
    with pytest.raises(MediaError):
        dry_engine.prepare_audio(tmp_path / "missing.wav")
    assert leftovers(temp) == before


def test_errors_name_the_file_never_the_private_copy(dry_engine, tmp_path):
    notes = tmp_path / "notes.mp3"
    notes.write_text("Meeting notes: remember the milk\n" * 50)
    cut = make_audio(tmp_path / "cut.m4a", seconds=1.0)
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    for bad in (notes, cut):
        with pytest.raises(MediaError) as caught:
            dry_engine.prepare_audio(bad)
        assert caught.value.path == bad and caught.value.code is ErrorCode.INPUT_UNDECODABLE
        assert SNAPSHOT_PREFIX not in str(caught.value), str(caught.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_an_unreadable_file_is_named(dry_engine, tmp_path):
    voice = make_audio(tmp_path / "voice.wav", seconds=0.5)
    voice.chmod(0)
    with pytest.raises(MediaError) as caught:
        dry_engine.prepare_audio(voice)
    assert caught.value.code is ErrorCode.INPUT_UNREADABLE and caught.value.path == voice
