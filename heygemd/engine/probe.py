"""What an input file holds, from ffprobe (never OpenCV): streams, frame rate, frame count, rotation.

Every problem is a MediaError naming the file in words a person who only drops files on a
share understands.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import IO

from heygemd.codes import ErrorCode
from heygemd.engine.errors import AudioError, MediaError
from heygemd.engine.ffmpeg_tools import (
    ToolRun,
    ffmpeg_path,
    ffprobe_path,
    last_lines,
    run_tool,
)
from heygemd.engine.formats import STILL_SUFFIXES

STILL_FORMATS = frozenset({"image2", "png_pipe", "jpeg_pipe", "bmp_pipe", "webp_pipe", "tiff_pipe"})
STANDARD_RATES = tuple(
    Fraction(r) for r in ("24000/1001", "24", "25", "30000/1001", "30", "48", "50", "60000/1001", "60", "120")
)
SNAP_TOLERANCE = 0.0003  # a measured rate this close to a standard one is that rate (29.97 and 30 differ by 0.1 %)
# A variable-rate file's average drifts from its nominal rate (a phone's "30 fps" averages 29.6):
# within this fraction it is rendered at the nominal rate.
VFR_SNAP_TOLERANCE = 0.03
VFR_TOLERANCE = 0.1  # frame durations varying more than this fraction of the median: variable rate
PROBE_TIMEOUT_S = 120  # reading the headers
PACKET_SCAN_TIMEOUT_S = 900  # reading every packet of a long video from a slow share
HEAD_BYTES = 512
PPM_HEADER_BYTES = 64  # "P6\n<width> <height>\n255\n"
# What the MP4 and Matroska readers say of a file that ends early while still exiting 0 with the part that is there.
CUT_SHORT_WARNINGS = ("partial file", "File ended prematurely")


@dataclass(frozen=True)
class ColourTags:
    """How a YUV stream says its numbers map to colours (ffmpeg's names, e.g. "bt709")."""

    space: str  # the YUV <-> RGB matrix
    primaries: str
    transfer: str


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    width: int  # as displayed, after rotation
    height: int
    # 0, 90, 180 or 270: degrees the display matrix turns the stored picture counter-clockwise (ffprobe's
    # sign; a phone's portrait video reads 270). ffmpeg turns the frames upright when decoding.
    rotation: int
    fps: float
    fps_fraction: Fraction
    frame_count: int  # frames that decoding at the constant rate ``fps`` yields
    duration: float
    codec: str
    container: str
    is_still: bool
    variable_frame_rate: bool
    has_audio: bool
    start_time: float = 0.0  # the first frame's own timestamp, seconds: frame k is shown at start_time + k / fps
    stream_index: int | None = None  # the picture stream's index in the file (None: its first video stream)
    colour: ColourTags | None = None  # a YUV stream's colour tags, when it carries all three

    @property
    def stream_map(self) -> str:
        """ffmpeg's ``-map`` for the picture stream (not the cover art some files carry as a "video")."""
        return "0:v:0" if self.stream_index is None else f"0:{self.stream_index}"


@dataclass(frozen=True)
class AudioInfo:
    path: Path
    duration: float
    sample_rate: int
    channels: int
    codec: str
    sample_format: str = ""  # ffmpeg's name of the samples its decoder yields, e.g. "fltp", "s16"


def probe_video(path: Path, still_fps: float = 25.0) -> VideoInfo:
    """Describe the first video stream of ``path`` (a video file or a still image).

    ``width`` and ``height`` are those of the frames ffmpeg decodes (display matrix and a photo's
    EXIF orientation applied), so ``read_frames`` always yields frames of exactly that size.
    """
    document = _ffprobe(path, ["-show_format", "-show_streams"])
    streams = document.get("streams", [])
    container = document.get("format", {}).get("format_name", "")
    video = next((s for s in streams if _is_picture_stream(s)), None)
    if video is None:
        raise MediaError("has no video picture in it (is it an audio file?)", path)
    if int(video.get("width") or 0) <= 0 or int(video.get("height") or 0) <= 0:
        raise MediaError("is truncated or damaged: its video has no picture size", path)
    rotation = _rotation(video)
    stream_index = int(video.get("index", 0))
    width, height = _decoded_size(path, stream_index)
    has_audio = any(s.get("codec_type") == "audio" for s in streams)
    if path.suffix.lower() in STILL_SUFFIXES or container in STILL_FORMATS:
        rate = Fraction(still_fps).limit_denominator(1001)
        return VideoInfo(
            path,
            width,
            height,
            rotation,
            float(rate),
            rate,
            1,
            0.0,
            video.get("codec_name", ""),
            container,
            True,
            False,
            has_audio,
            stream_index=stream_index,
        )

    packets = _packets(path, stream_index)
    if not packets:
        raise MediaError("is truncated or damaged: no video frames could be read", path)
    declared_frames = int(video.get("nb_frames") or 0)
    if declared_frames > len(packets):  # the index lists frames the file no longer holds
        raise MediaError(f"is truncated or damaged: {len(packets)} of its {declared_frames} frames are there", path)
    timestamps = [time for time, _ in packets]
    declared = _rate(video.get("avg_frame_rate")) or _rate(video.get("r_frame_rate"))
    variable = _is_variable(timestamps)
    span = _span(packets, declared)
    rate = _frame_rate(declared, len(timestamps), span, variable)
    # At a constant rate every packet is one frame. At a variable one, decoding at ``rate`` shows a
    # frame at each tick from the first frame to the end of the last one (ffmpeg's fps filter).
    frame_count = len(timestamps) if not variable else max(1, round(span * rate))
    # The video's own length: the container's duration also covers an audio track that runs longer
    # (Matroska, WebM) or counts from zero when the first frame starts later (FLV with B-frames).
    # At a variable rate, the time the frames cover as decoded (an MP4's track duration may end
    # before its last frame does).
    duration = span if variable else (_float(video.get("duration")) or span)
    return VideoInfo(
        path,
        width,
        height,
        rotation,
        float(rate),
        rate,
        frame_count,
        duration,
        video.get("codec_name", ""),
        container,
        False,
        variable,
        has_audio,
        timestamps[0],
        stream_index,
        _colour_tags(video),
    )


def _colour_tags(stream: dict) -> ColourTags | None:
    """The stream's colour tags if it is YUV and names all three (an RGB source's YUV comes from the decoder)."""
    if not str(stream.get("pix_fmt", "")).startswith(("yuv", "nv")):
        return None
    tags = [stream.get(key) for key in ("color_space", "color_primaries", "color_transfer")]
    if any(tag in (None, "", "unknown", "reserved") for tag in tags):
        return None
    return ColourTags(*(str(tag) for tag in tags))


def probe_audio(path: Path) -> AudioInfo:
    """Describe the first audio stream of ``path`` (an audio file or a video's sound track)."""
    document = _ffprobe(path, ["-show_format", "-show_streams"])
    audio = next((s for s in document.get("streams", []) if s.get("codec_type") == "audio"), None)
    if audio is None:
        raise AudioError("has no audio track", path)
    duration = _float(audio.get("duration")) or _float(document.get("format", {}).get("duration")) or 0.0
    if duration <= 0:
        raise AudioError("audio lasts 0 seconds", path)
    return AudioInfo(
        path=path,
        duration=duration,
        sample_rate=int(audio.get("sample_rate") or 0),
        channels=int(audio.get("channels") or 0),
        codec=audio.get("codec_name", ""),
        sample_format=audio.get("sample_fmt", ""),
    )


# -- running ffprobe ----------------------------------------------------------------------------


def _ffprobe(path: Path, arguments: list[str]) -> dict:
    _check_readable(path)
    result = run_reading(path, [ffprobe_path(), "-v", "error", *arguments, "-of", "json", str(path)], PROBE_TIMEOUT_S)
    if result.returncode != 0:
        raise MediaError(_unreadable_reason(path, result.stderr), path)
    return json.loads(result.stdout or b"{}")


def run_reading(path: Path, command: list[str], timeout: float) -> ToolRun:
    """Run an ffmpeg/ffprobe command that reads ``path``; a run past ``timeout`` is a MediaError."""
    try:
        result = run_tool(command, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise MediaError(
            f"could not be read within {timeout:.0f} seconds (is the disk or network share stalled?)",
            path,
            code=ErrorCode.SHARE_UNAVAILABLE,
        ) from None
    killed = killed_by_signal(result.returncode, path)
    if killed is not None:
        raise killed
    return result


def killed_by_signal(returncode: int | None, path: Path) -> MediaError | None:
    """The error for an ffmpeg/ffprobe child that a signal ended (the OOM killer, an operator): transient."""
    if returncode is None or returncode >= 0:
        return None
    return MediaError(
        f"ffmpeg was stopped from outside (signal {-returncode}) while working on it", path, code=ErrorCode.PROCESS_KILLED
    )


def _packets(path: Path, stream_index: int) -> list[tuple[float, float | None]]:
    """(presentation time, duration or None) of the video stream's packets, by time (one packet = one frame).

    Where the container gives no packet durations (ffprobe 6 on a variable-rate MP4 with B-frames),
    a packet lasts until the next one in decoding order, as the MP4's own timing table says.
    """
    result = run_reading(
        path,
        [
            ffprobe_path(),
            "-v",
            "error",
            "-select_streams",
            str(stream_index),
            "-show_entries",
            "packet=pts_time,dts_time,duration_time",
            "-of",
            "json",
            str(path),
        ],
        PACKET_SCAN_TIMEOUT_S,
    )
    if result.returncode != 0:
        raise MediaError(_unreadable_reason(path, result.stderr), path)
    if any(marker in result.stderr for marker in CUT_SHORT_WARNINGS):
        raise MediaError(f"is truncated or damaged ({_detail(path, result.stderr)})", path)
    in_decoding_order = json.loads(result.stdout or b"{}").get("packets", [])
    packets = []
    for position, packet in enumerate(in_decoding_order):
        dts = _float(packet.get("dts_time"))
        time = _float(packet.get("pts_time"))
        time = dts if time is None else time
        if time is None:
            continue
        duration = _float(packet.get("duration_time"))
        if not duration and dts is not None and position + 1 < len(in_decoding_order):
            next_dts = _float(in_decoding_order[position + 1].get("dts_time"))
            duration = next_dts - dts if next_dts is not None and next_dts > dts else None
        packets.append((time, duration))
    return sorted(packets)


def _decoded_size(path: Path, stream_index: int) -> tuple[int, int]:
    """(width, height) of the first picture ffmpeg decodes from the stream, upright as ffmpeg turns it.

    ffprobe and ffmpeg may be different builds (a photo's EXIF orientation is applied by ffmpeg 8
    and later but not reported by ffprobe 6): the decoder itself says what ``read_frames`` will get.
    Only the PPM header of one frame is read; the decoder is stopped right after it.
    """
    command = [
        ffmpeg_path(),
        "-nostdin",
        "-v",
        "error",
        "-i",
        str(path),
        "-map",
        f"0:{stream_index}",
        "-frames:v",
        "1",
        "-c:v",
        "ppm",
        "-f",
        "image2pipe",
        "-",
    ]
    with tempfile.TemporaryFile() as stderr:  # a file, not a pipe: a chatty decoder cannot block on it
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr)
        assert process.stdout is not None
        try:
            size = _ppm_header(process.stdout)
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
            process.stdout.close()
        if size is None:
            stderr.seek(0)
            detail = _detail(path, stderr.read().decode(errors="replace")) or "no picture came out"
            raise MediaError(f"is truncated or damaged: its pictures cannot be decoded ({detail})", path)
    return size


def _ppm_header(stream: IO[bytes]) -> tuple[int, int] | None:
    """Width and height from the header of a binary PPM on ``stream`` (None if it never comes)."""
    head = b""
    while len(head) < PPM_HEADER_BYTES:
        chunk = stream.read1(PPM_HEADER_BYTES - len(head))  # type: ignore[attr-defined]
        if not chunk:
            break
        head += chunk
        fields = head.split()
        if len(fields) >= 4 and fields[0] == b"P6":
            return int(fields[1]), int(fields[2])
    return None


def _detail(path: Path, stderr: str) -> str:
    """ffmpeg's last complaint, without the file name it repeats."""
    return last_lines(stderr, 1).replace(str(path) + ": ", "")


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise MediaError("file not found", path)
    if path.is_dir():
        raise MediaError("is a folder, not a file", path)
    if path.stat().st_size == 0:
        raise MediaError("is empty (0 bytes) — the copy may not have finished", path, code=ErrorCode.INPUT_EMPTY)
    if not os.access(path, os.R_OK):
        raise MediaError(
            "cannot be read by the service (permission denied): give its user read access",
            path,
            code=ErrorCode.INPUT_UNREADABLE,
        )


def _unreadable_reason(path: Path, stderr: str) -> str:
    with open(path, "rb") as handle:
        head = handle.read(HEAD_BYTES)
    if _looks_like_text(head):
        return "is not a video or audio file ffmpeg can read (it contains text)"
    detail = _detail(path, stderr)
    # A media file cut short keeps its header: that, not ffmpeg's complaint, tells a damaged video
    # from something else. (ffmpeg says "moov atom not found" of any bytes in a file named .mov.)
    if _has_media_signature(head) or any(marker in stderr for marker in ("End of file", "truncat", "partial file")):
        return f"is truncated or damaged ({detail})"
    return f"is not a video or audio file ffmpeg can read ({detail})"


MP4_BOXES = frozenset({b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip", b"pnot", b"uuid"})
MEDIA_MAGIC = (
    b"\x1a\x45\xdf\xa3",  # Matroska, WebM
    b"RIFF",  # WAV, AVI
    b"FLV",
    b"OggS",
    b"fLaC",
    b"ID3",  # MP3 with tags
    b"\x30\x26\xb2\x75",  # ASF, WMV
    b"\x00\x00\x01\xba",  # MPEG program stream
    b"\x89PNG",
    b"\xff\xd8\xff",  # JPEG
)


def _has_media_signature(head: bytes) -> bool:
    if head[4:8] in MP4_BOXES or head.startswith(MEDIA_MAGIC):
        return True
    return len(head) > 188 and head[0] == head[188] == 0x47  # MPEG transport stream


def _looks_like_text(head: bytes) -> bool:
    if not head or b"\x00" in head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return sum(ch.isprintable() or ch in "\r\n\t" for ch in text) / len(text) > 0.95


# -- stream facts -------------------------------------------------------------------------------


def _is_picture_stream(stream: dict) -> bool:
    # Cover art inside an audio file is a "video" stream with the attached_pic disposition.
    return stream.get("codec_type") == "video" and not stream.get("disposition", {}).get("attached_pic")


def _rotation(stream: dict) -> int:
    for side_data in stream.get("side_data_list", []) or []:
        if "rotation" in side_data:
            return round(float(side_data["rotation"])) % 360
    # The legacy tag (old ffprobe) counts clockwise, the display matrix counter-clockwise.
    rotate = stream.get("tags", {}).get("rotate")
    return -round(float(rotate)) % 360 if rotate else 0


def _rate(text: str | None) -> Fraction | None:
    try:
        rate = Fraction(text) if text else None
    except (ValueError, ZeroDivisionError):
        return None
    return rate if rate and rate > 0 else None


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "N/A") else None
    except ValueError:
        return None


def _span(packets: list[tuple[float, float | None]], declared: Fraction | None) -> float:
    """Seconds covered by the frames: from the first frame's start to the last frame's end.

    The last frame lasts its packet's duration; where the container does not say, the mean
    frame interval (at a variable rate the median would overshoot: 12 ms and 52 ms alternating).
    """
    first, (last, last_duration) = packets[0][0], packets[-1]
    if not last_duration or last_duration <= 0:
        if len(packets) > 1:
            last_duration = (last - first) / (len(packets) - 1)
        else:
            last_duration = float(1 / declared) if declared else 0.0
    return last - first + last_duration


def _deltas(timestamps: list[float]) -> list[float]:
    return [b - a for a, b in zip(timestamps, timestamps[1:])] or [0.0]


def _is_variable(timestamps: list[float]) -> bool:
    deltas = _deltas(timestamps)
    median = statistics.median(deltas)
    if median <= 0 or len(deltas) < 2:
        return False
    # Containers with a coarse time base (Matroska: 1 ms) jitter by one tick at constant rates.
    allowance = max(VFR_TOLERANCE * median, 0.0011)
    return any(abs(d - median) > allowance for d in deltas)


def _frame_rate(declared: Fraction | None, frames: int, span: float, variable: bool) -> Fraction:
    """The constant output rate: the declared average, else the measured one; snapped to a standard rate.

    A constant rate is kept exact (only a rounding of 29.97 to 30000/1001 is undone); a variable
    one is the nearest standard rate within ``VFR_SNAP_TOLERANCE``, else rounded to 1/100 fps.
    """
    measured = Fraction(frames / span).limit_denominator(1001) if span > 0 and frames > 1 else None
    rate = (measured if variable else None) or declared or measured or Fraction(25)
    tolerance = VFR_SNAP_TOLERANCE if variable else SNAP_TOLERANCE
    nearest = min(STANDARD_RATES, key=lambda standard: abs(float(rate) / float(standard) - 1))
    if abs(float(rate) / float(nearest) - 1) < tolerance:
        return nearest
    return Fraction(round(rate * 100), 100) if variable else rate.limit_denominator(1001)
