"""probe_video / probe_audio on real generated files, and the errors a person sees for bad inputs."""

from __future__ import annotations

import math
import re
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from media_factory import (
    frame_index_of,
    make_audio,
    make_still,
    make_video,
    presenter_frame,
    vfr_frame_time,
)
from scipy.io import wavfile

from heygemd.engine.errors import AudioError, MediaError
from heygemd.engine.ffmpeg_tools import ffmpeg_path, ffmpeg_version
from heygemd.engine.media import decode_audio, read_frames, read_frames_reversed
from heygemd.engine.probe import probe_audio, probe_video

SIZE = (112, 96)  # not square: swapped sides show
VFR_CLIP_S = 1.6  # long enough for a read at 1.2 s to seek
EXIF_AWARE_FFMPEG = 8  # the first ffmpeg release that turns a JPEG by its EXIF orientation when decoding


def indices(frames: list[np.ndarray]) -> list[int]:
    return [frame_index_of(frame) for frame in frames]


def ffmpeg_major_version() -> int:
    """7 for "ffmpeg version 7.1.1-1ubuntu1", 9 for "n9.0.2-17-g2a571b6068"; git builds ("N-118...") count as new."""
    found = re.search(r"version n?(\d+)\.", ffmpeg_version())
    return int(found.group(1)) if found else 99


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("probe")


# -- frame rates ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fps", ["24000/1001", "25", "30000/1001", "30", "50", "60"])
def test_frame_rate_count_and_duration(tmp_path, fps):
    rate = Fraction(fps)
    video = make_video(tmp_path / "clip.mp4", seconds=0.5, fps=fps, size=SIZE)
    frames = round(0.5 * rate)

    info = probe_video(video)

    assert info.fps_fraction == rate  # exact: 30000/1001, not 29.97 or 2997/100
    assert info.fps == pytest.approx(float(rate), abs=1e-9)
    assert info.frame_count == frames
    assert info.duration == pytest.approx(frames / float(rate), abs=0.002)
    assert not info.variable_frame_rate and not info.is_still and not info.has_audio
    decoded = list(read_frames(info, pixel_format="bgr24"))
    assert indices(decoded) == list(range(frames))


# -- containers and codecs ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("suffix", "vcodec", "codec", "container"),
    [
        (".mp4", None, "h264", "mp4"),
        (".mov", None, "h264", "mov"),
        (".mkv", None, "h264", "matroska"),
        (".webm", None, "vp9", "webm"),
        (".avi", None, "mpeg4", "avi"),
        (".flv", None, "h264", "flv"),
        (".mp4", "libx265", "hevc", "mp4"),
        (".mkv", "libx265", "hevc", "matroska"),
    ],
)
def test_container_and_codec(tmp_path, suffix, vcodec, codec, container):
    video = make_video(tmp_path / f"clip{suffix}", seconds=0.48, fps="25", size=SIZE, vcodec=vcodec)

    info = probe_video(video)

    assert info.codec == codec
    assert container in info.container.split(",")
    assert (info.width, info.height, info.rotation) == (112, 96, 0)
    assert info.fps_fraction == 25 and info.frame_count == 12
    # The video's own length: FLV counts its duration from 0 although B-frames start it at 0.08 s.
    assert info.duration == pytest.approx(0.48, abs=0.002)
    decoded = list(read_frames(info, pixel_format="bgr24"))
    assert [frame.shape for frame in decoded] == [(96, 112, 3)] * 12
    assert indices(decoded) == list(range(12))


@pytest.mark.parametrize("suffix", [".mkv", ".webm", ".mp4"])
def test_duration_is_the_pictures_not_a_longer_sound_track(tmp_path, suffix):
    video = make_video(tmp_path / f"clip{suffix}", seconds=0.48, fps="25", size=SIZE, audio_seconds=1.0)
    info = probe_video(video)
    assert info.has_audio
    assert info.frame_count == 12
    assert info.duration == pytest.approx(0.48, abs=0.002)


# -- rotation -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("rotation", "suffix"), [(90, ".mp4"), (270, ".mov"), (180, ".mp4"), (90, ".mkv")])
def test_rotated_video_is_described_and_decoded_upright(tmp_path, rotation, suffix):
    video = make_video(tmp_path / f"phone{suffix}", seconds=0.4, fps="25", size=(160, 96), rotation=rotation)

    info = probe_video(video)

    assert info.rotation == rotation
    upright = (96, 160) if rotation in (90, 270) else (160, 96)
    assert (info.width, info.height) == upright
    decoded = list(read_frames(info, pixel_format="bgr24"))
    assert len(decoded) == info.frame_count == 10
    assert all(frame.shape == (upright[1], upright[0], 3) for frame in decoded)
    # The display matrix turns the picture counter-clockwise by ``rotation``; turning each decoded
    # frame back clockwise must give the frame as it was encoded, index stamp and all.
    back = [np.rot90(frame, -rotation // 90) for frame in decoded]
    assert indices(back) == list(range(10))
    assert all(frame.shape == (96, 160, 3) for frame in back)


# -- variable frame rate --------------------------------------------------------------------------


def constant_rate_indices(frames: int, rate: Fraction, ticks: int) -> list[int]:
    """Which frame of a vfr=True file each tick of the ``rate`` clock shows: the last frame whose
    time rounds to that tick or an earlier one (ffmpeg's fps filter)."""
    tick_of = [math.floor(vfr_frame_time(index, rate) * rate + Fraction(1, 2)) for index in range(frames)]
    return [max(index for index, tick in enumerate(tick_of) if tick <= wanted) for wanted in range(ticks)]


@pytest.mark.parametrize(
    ("suffix", "fps"), [(".mkv", "25"), (".webm", "30000/1001"), (".mp4", "30000/1001"), (".mov", "25")]
)
def test_variable_frame_rate_decodes_at_a_constant_rate(tmp_path, suffix, fps):
    rate = Fraction(fps)
    frames = round(VFR_CLIP_S * rate)
    video = make_video(tmp_path / f"vfr{suffix}", seconds=VFR_CLIP_S, fps=fps, size=SIZE, vfr=True)

    info = probe_video(video)

    assert info.variable_frame_rate
    assert info.fps_fraction == rate
    decoded = indices(read_frames(info, pixel_format="bgr24"))
    assert len(decoded) == info.frame_count  # the probe promises what decoding yields
    assert abs(len(decoded) - info.duration * info.fps) <= 1
    assert decoded == constant_rate_indices(frames, rate, len(decoded))
    assert len(set(decoded)) < len(decoded) and set(range(frames)) - set(decoded)  # repeats and drops happened
    # A seek (past SEEK_MIN_S + SEEK_PREROLL_S) lands on the same constant-rate frames as decoding from 0.
    for start in (5, round(1.2 * rate), len(decoded) - 3):
        assert indices(read_frames(info, start, 3, pixel_format="bgr24")) == decoded[start : start + 3], start
    assert indices(read_frames_reversed(info, 2, len(decoded) - 1, chunk=5, pixel_format="bgr24")) == decoded[:1:-1]


def test_constant_rate_in_a_millisecond_container_is_not_variable(tmp_path):
    # Matroska stores 29.97 fps as 33 and 34 ms steps: that jitter is not a variable rate.
    info = probe_video(make_video(tmp_path / "cfr.mkv", seconds=0.5, fps="30000/1001", size=SIZE))
    assert not info.variable_frame_rate
    assert info.fps_fraction == Fraction(30000, 1001)


# -- stills and cover art -------------------------------------------------------------------------


@pytest.mark.parametrize(("suffix", "codec"), [(".jpg", "mjpeg"), (".png", "png")])
def test_still_image(tmp_path, suffix, codec):
    still = make_still(tmp_path / f"presenter{suffix}", size=SIZE)

    info = probe_video(still, still_fps=30)

    assert info.is_still and info.codec == codec
    assert info.frame_count == 1
    assert info.fps_fraction == 30 and info.fps == 30.0
    assert (info.width, info.height) == SIZE
    assert not info.variable_frame_rate and not info.has_audio
    frames = list(read_frames(info, 0, 3, pixel_format="bgr24"))
    assert len(frames) == 3 and all(frame.shape == (96, 112, 3) for frame in frames)
    assert indices(frames) == [0, 0, 0]
    assert probe_video(still, still_fps=24000 / 1001).fps_fraction == Fraction(24000, 1001)


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_phone_photo_is_turned_upright_by_its_exif_orientation(tmp_path, orientation):
    photo = make_still(tmp_path / "portrait.jpg", size=SIZE, orientation=orientation)

    info = probe_video(photo)
    [frame] = read_frames(info, pixel_format="bgr24")

    # Whatever the decoder does with the tag, the probe describes the frames it yields.
    assert frame.shape == (info.height, info.width, 3)
    if ffmpeg_major_version() < EXIF_AWARE_FFMPEG:
        pytest.skip("this ffmpeg ignores EXIF orientation")
    assert (info.width, info.height) == SIZE
    assert np.abs(frame.astype(int) - presenter_frame(0, SIZE)).mean() < 6  # upright, not turned or mirrored


def test_cover_art_in_an_mp3_is_not_a_video_picture(tmp_path):
    speech = make_audio(tmp_path / "speech.wav", seconds=0.5)
    cover = make_still(tmp_path / "cover.jpg", size=(64, 64))
    song = tmp_path / "song.mp3"
    subprocess.run(
        [
            ffmpeg_path(),
            "-nostdin",
            "-v",
            "error",
            "-i",
            str(speech),
            "-i",
            str(cover),
            "-map",
            "0:a",
            "-map",
            "1:v",
            "-c:a",
            "libmp3lame",
            "-c:v",
            "mjpeg",
            "-disposition:v",
            "attached_pic",
            "-id3v2_version",
            "3",
            str(song),
        ],
        check=True,
        capture_output=True,
    )
    with pytest.raises(MediaError, match="no video picture"):
        probe_video(song)
    assert probe_audio(song).codec == "mp3"
    assert len(decode_audio(song)) == pytest.approx(8000, abs=800)


# -- audio ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("suffix", "codec", "sample_rate", "tolerance"),
    [
        (".wav", "pcm_s16le", 16000, 0.001),
        (".flac", "flac", 16000, 0.001),
        (".m4a", "aac", 16000, 0.05),
        (".ogg", "vorbis", 16000, 0.05),
        (".opus", "opus", 48000, 0.05),  # Opus always decodes at 48 kHz
        # ffprobe 6 counts an MP3's encoder delay and padding (1105 + 495 samples here) in its duration
        (".mp3", "mp3", 16000, 0.15),
    ],
)
def test_probe_audio_fields(folder, suffix, codec, sample_rate, tolerance):
    audio = make_audio(folder / f"fields{suffix}", seconds=0.8)
    info = probe_audio(audio)
    assert info.path == audio
    assert info.codec == codec
    assert info.sample_rate == sample_rate
    assert info.channels == 1
    assert info.duration == pytest.approx(0.8, abs=tolerance)


def test_probe_audio_of_a_videos_sound_track(tmp_path):
    video = make_video(tmp_path / "talk.mp4", seconds=0.4, size=SIZE, audio_seconds=0.8)
    info = probe_audio(video)
    assert (info.codec, info.sample_rate, info.channels) == ("aac", 16000, 1)
    assert info.duration == pytest.approx(0.8, abs=0.05)


# -- errors a person can act on -------------------------------------------------------------------


@pytest.fixture(scope="module")
def talk(folder) -> Path:
    """A real mp4 with sound, for cutting short."""
    return make_video(folder / "talk.mp4", seconds=1.0, size=(128, 128), audio_seconds=1.0)


def check_error(error: pytest.ExceptionInfo, path: Path, *phrases: str) -> None:
    message = str(error.value)
    assert isinstance(error.value, MediaError)
    assert error.value.path == path
    assert message.startswith(f"{path}: "), message
    for phrase in phrases:
        assert phrase in message, message
    assert "\n" not in message


@pytest.mark.parametrize("read", [probe_video, probe_audio, decode_audio])
def test_missing_file(tmp_path, read):
    path = tmp_path / "never copied.mp4"
    with pytest.raises(MediaError) as error:
        read(path)
    check_error(error, path, "file not found")


@pytest.mark.parametrize("read", [probe_video, probe_audio, decode_audio])
def test_zero_byte_file(tmp_path, read):
    path = tmp_path / "still copying.mp4"
    path.touch()
    with pytest.raises(MediaError) as error:
        read(path)
    check_error(error, path, "empty")


@pytest.mark.parametrize("read", [probe_video, probe_audio, decode_audio])
def test_truncated_mp4(tmp_path, talk, read):
    path = tmp_path / "cut short.mp4"
    data = talk.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(MediaError) as error:
        read(path)
    check_error(error, path, "truncated or damaged")


@pytest.mark.parametrize("read", [probe_video, decode_audio])
@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".webm"])
def test_cut_short_with_its_header_whole(tmp_path, talk, read, suffix):
    # Header first (a faststart MP4, any Matroska/WebM): only the end is missing, and ffmpeg reads
    # what is there and exits 0, saying "partial file" or "File ended prematurely".
    whole = tmp_path / f"whole{suffix}"
    audio = ["-c:a", "libopus"] if suffix == ".webm" else ["-c:a", "copy"]
    video = ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8"] if suffix == ".webm" else ["-c:v", "copy"]
    subprocess.run(
        [ffmpeg_path(), "-nostdin", "-v", "error", "-i", str(talk), *video, *audio, "-movflags", "+faststart", str(whole)],
        check=True,
        capture_output=True,
    )
    path = tmp_path / f"cut short{suffix}"
    data = whole.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(MediaError) as error:
        read(path)
    check_error(error, path, "truncated or damaged")


@pytest.mark.parametrize("read", [probe_video, probe_audio, decode_audio])
def test_text_renamed_mp4(tmp_path, read):
    path = tmp_path / "notes.mp4"
    path.write_text("Meeting notes\nThe presenter video will follow tomorrow.\n" * 20)
    with pytest.raises(MediaError) as error:
        read(path)
    check_error(error, path, "not a video or audio file")


@pytest.mark.parametrize("read", [probe_video, probe_audio, decode_audio])
def test_random_bytes_renamed_mov(tmp_path, read):
    path = tmp_path / "garbage.mov"
    path.write_bytes(np.random.default_rng(7).integers(0, 256, 64 * 1024, dtype=np.uint8).tobytes())
    with pytest.raises(MediaError) as error:
        read(path)
    check_error(error, path, "not a video or audio file")
    assert "truncated" not in str(error.value)  # nothing suggests it was ever a video


@pytest.mark.parametrize("read", [probe_audio, decode_audio])
def test_video_without_audio(tmp_path, read):
    path = make_video(tmp_path / "silent film.mp4", seconds=0.2, size=SIZE)
    with pytest.raises(AudioError) as error:
        read(path)
    check_error(error, path, "no audio track")


@pytest.mark.parametrize("read", [probe_audio, decode_audio])
def test_zero_second_wav(tmp_path, read):
    path = tmp_path / "nothing said.wav"
    wavfile.write(path, 16000, np.zeros(0, np.int16))
    with pytest.raises(AudioError) as error:
        read(path)
    check_error(error, path, "0 seconds")


@pytest.mark.parametrize("suffix", [".mp3", ".wav"])
def test_audio_file_given_as_the_video(tmp_path, suffix):
    path = make_audio(tmp_path / f"speech{suffix}", seconds=0.3)
    with pytest.raises(MediaError) as error:
        probe_video(path)
    check_error(error, path, "no video picture")
