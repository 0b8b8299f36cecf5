"""Streaming media I/O through ffmpeg pipes: audio samples in, video frames in, one encode out.

Nothing here holds a whole video: frames are read from the decoder's pipe one at a time and
written to the encoder's pipe one at a time. ffmpeg's stderr goes to a temporary file so a
chatty ffmpeg can never block on a full pipe.
"""

from __future__ import annotations

import math
import subprocess
import tempfile
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import IO, Literal

import numpy as np

from heygemd.codes import ErrorCode
from heygemd.engine.errors import AudioError, EngineError, MediaError
from heygemd.engine.ffmpeg_tools import ToolRun, ffmpeg_path, last_lines
from heygemd.engine.probe import (
    CUT_SHORT_WARNINGS,
    ColourTags,
    VideoInfo,
    _check_readable,
    _unreadable_reason,
    killed_by_signal,
    run_reading,
)

AUDIO_BITRATE = "192k"
DISK_FULL_MESSAGES = ("No space left on device", "Disk quota exceeded")  # ffmpeg's words for ENOSPC and EDQUOT
AUDIO_DECODE_TIMEOUT_S = 1800  # hours of speech decode in seconds; only a stalled share takes this long
# Colour conversion between the codecs' YUV and our BGR frames: exact rounding and full-resolution
# chroma. ffmpeg's defaults come out about 1 level darker each way: a lossless yuv420p -> bgr24 ->
# yuv420p round trip of a test pattern keeps Y at 52.1 dB PSNR with these flags, 45.7 dB without.
# ``-sws_flags`` is an output option: given before an input (ffmpeg 5 and later) it is ignored.
SWS_FLAGS = "bicubic+accurate_rnd+full_chroma_int"
# Seeking lands on a keyframe at or before the seek point; decoding goes on from there and the
# frames before the wanted one are cut by timestamp. The seek point is this far before the wanted
# frame, so a container's coarse timestamps or a B-frame delay can never put that keyframe after it.
SEEK_PREROLL_S = 0.5
# No seek to a point this close to the start: decoding from the start costs next to nothing there,
# and FLV files with B-frames come back empty from a seek into their first tenth of a second.
SEEK_MIN_S = 0.5
# Detection frames are shrunk in the decoder by area averaging: every source pixel counts once,
# as in cv2.INTER_AREA, and nothing aliases however far the picture shrinks. With chroma brought to
# full resolution first they match cv2.resize(INTER_AREA) of the BGR frame within 0.1 level on
# average; without full_chroma_int they come out up to a level darker and 2 levels off on average.
DETECTION_SWS_FLAGS = "area+accurate_rnd+full_chroma_int"

PixelFormat = Literal["bgr24", "yuv420p"]
"""The layout of raw frames on a pipe; every reader and writer is told which (no default).

``bgr24``: (height, width, 3) interleaved BGR, the picture's own size: the face detector's frames,
and ffmpeg's own conversion that the tests hold the I420 path against.
``yuv420p``: I420, what H.264 stores: (H * 3 // 2, W) uint8 where (W, H) = ``even_size(width, height)``;
rows 0..H hold the Y plane, then the (H/2, W/2) U plane and the (H/2, W/2) V plane follow, each
packed as contiguous bytes (the layout cv2.COLOR_YUV2BGR_I420 reads). Limited-range BT.601 levels
as far as the colours are concerned (see heygemd.engine.yuv). An odd side is padded by one
row/column repeating the picture's edge.
"""


def even_size(width: int, height: int) -> tuple[int, int]:
    """(width, height) rounded up to even sides: the size of an encoded yuv420p picture."""
    return width + width % 2, height + height % 2


def frame_shape(width: int, height: int, pixel_format: PixelFormat) -> tuple[int, ...]:
    """The array shape of one raw frame of a ``width`` x ``height`` picture in ``pixel_format``.

    bgr24: (height, width, 3). yuv420p: (H * 3 // 2, W), (W, H) = ``even_size(width, height)``.
    """
    if pixel_format == "bgr24":
        return height, width, 3
    if pixel_format == "yuv420p":
        padded_width, padded_height = even_size(width, height)
        return padded_height * 3 // 2, padded_width
    raise ValueError(f"unknown pixel format {pixel_format!r}")


def _even_padding(width: int, height: int) -> list[str]:
    """Filters padding an odd side of a BGR picture by one row/column that repeats its edge (no black line).

    Not for yuv420p pictures: ``pad`` rounds a 4:2:0 input's odd side down and paints black over
    its last row or column (``_i420_frame`` pads those).
    """
    padded_width, padded_height = even_size(width, height)
    if (padded_width, padded_height) == (width, height):
        return []
    return [
        f"pad={padded_width}:{padded_height}",
        f"fillborders=right={padded_width - width}:bottom={padded_height - height}:mode=smear",
    ]


def _layout_filters(info: VideoInfo, pixel_format: PixelFormat) -> list[str]:
    """Filters turning decoded pictures into ``frame_shape(info.width, info.height, pixel_format)`` frames.

    The probe's size is the decoder's own; forcing it only matters for a stream that changes size
    mid-way, whose frames would otherwise no longer fit the byte count read per frame. For
    yuv420p, a yuv420p limited-range source passes through untouched (no swscale work); anything
    else (4:4:4, 10-bit, RGB, a JPEG's full range) is converted once. An odd side is padded
    after the pipe (``_i420_frame``).
    """
    if pixel_format == "bgr24":
        return [f"scale={info.width}:{info.height}"]
    if pixel_format == "yuv420p":
        return [f"scale={info.width}:{info.height}:out_range=tv", "format=yuv420p"]
    raise ValueError(f"unknown pixel format {pixel_format!r}")


def _raw_frame_bytes(width: int, height: int, pixel_format: PixelFormat) -> int:
    """Bytes ffmpeg's rawvideo muxer writes per ``width`` x ``height`` frame (4:2:0 chroma rounds odd sides up)."""
    if pixel_format == "yuv420p":
        padded_width, padded_height = even_size(width, height)
        return width * height + padded_width * padded_height // 2
    return math.prod(frame_shape(width, height, pixel_format))


def _i420_frame(raw: np.ndarray, width: int, height: int) -> np.ndarray:
    """(n,) uint8 rawvideo yuv420p of a ``width`` x ``height`` picture -> (H * 3 // 2, W) I420 of even sides.

    An odd side's chroma already covers the extra row/column; the Y plane gets a copy of its edge.
    """
    shape = frame_shape(width, height, "yuv420p")
    if (width, height) == even_size(width, height):
        return raw.reshape(shape)
    luma = np.pad(raw[: width * height].reshape(height, width), ((0, height % 2), (0, width % 2)), mode="edge")
    return np.concatenate([luma.reshape(-1), raw[width * height :]]).reshape(shape)


def decode_audio(path: Path, sample_rate: int = 16000) -> np.ndarray:
    """The first audio stream of ``path`` as float32 mono samples at ``sample_rate``: (n_samples,)."""
    command = [
        ffmpeg_path(),
        "-nostdin",
        "-v",
        "error",
        "-i",
        str(path),
        "-map",
        "0:a:0",
        "-ac",
        "1",
        "-ar",
        str(sample_rate),
        "-f",
        "f32le",
        "-",
    ]
    _check_readable(path)
    result = run_reading(path, command, AUDIO_DECODE_TIMEOUT_S)
    _raise_for_audio_decode(path, result)
    samples = np.frombuffer(result.stdout, dtype=np.float32)
    if samples.size == 0:
        raise AudioError("audio lasts 0 seconds", path)
    return samples.copy()


def decode_audio_to_wav(path: Path, target: Path, codec: str) -> None:
    """Decode the first audio stream of ``path`` into ``target``: a WAV (RF64 past 4 GiB) of ``codec``
    (a PCM codec), at the stream's own sample rate, channels and layout, with no tags."""
    command = [
        ffmpeg_path(),
        "-nostdin",
        "-v",
        "error",
        "-y",
        "-i",
        str(path),
        "-map",
        "0:a:0",
        "-map_metadata",
        "-1",
        "-c:a",
        codec,
        "-rf64",
        "auto",
        "-fflags",
        "+bitexact",
        "-f",
        "wav",
        str(target),
    ]
    _check_readable(path)
    _raise_for_audio_decode(path, run_reading(path, command, AUDIO_DECODE_TIMEOUT_S))


def _raise_for_audio_decode(path: Path, result: ToolRun) -> None:
    """The error of an ffmpeg run that decoded the audio of ``path``, if it did not succeed."""
    stderr = result.stderr
    if result.returncode != 0:
        if "matches no streams" in stderr:
            raise AudioError("has no audio track", path)
        if "Error opening input" in stderr:
            raise MediaError(_unreadable_reason(path, stderr), path)
        if any(full in stderr for full in DISK_FULL_MESSAGES):
            raise MediaError(
                "could not be decoded: the disk of the temporary folder is full", path, code=ErrorCode.DISK_FULL
            )
        raise MediaError(f"its audio could not be decoded ({last_lines(stderr, 1)})", path)
    if any(marker in stderr for marker in CUT_SHORT_WARNINGS):  # ffmpeg exits 0 and decodes what is there
        raise MediaError(f"is truncated or damaged ({last_lines(stderr, 1)})", path)


def read_frames(
    info: VideoInfo, start: int = 0, count: int | None = None, *, pixel_format: PixelFormat
) -> Iterator[np.ndarray]:
    """Frames at the constant rate ``info.fps_fraction``, upright, as uint8 arrays of ``frame_shape``.

    bgr24: (height, width, 3) BGR. yuv420p: (H * 3 // 2, W) I420, odd sides padded to even
    (``PixelFormat``); a yuv420p source's planes come through as decoded, with no colour conversion.
    Frame ``k`` is the ``k``-th frame that decoding the whole file yields, whatever ``start``.
    Starts at frame ``start`` by seeking (not by decoding from the beginning; within the first
    second it decodes from the beginning) and stops after ``count`` frames (None: to the end).
    A still image yields its one picture ``count`` times. Closing the generator early stops the decoder.
    """
    if info.is_still:
        yield from _still_frames(info, 1 if count is None else count, pixel_format)
        return
    if count is not None and count <= 0:
        return
    start = max(0, start)
    command = [ffmpeg_path(), "-nostdin", "-v", "error"]
    seek = float(start / info.fps_fraction) - SEEK_PREROLL_S
    if seek >= SEEK_MIN_S:
        command += ["-ss", f"{seek:.6f}", "-noaccurate_seek"]
    filters = _timing_filters(info)
    if start > 0:
        filters.append(f"trim=start_pts={start}")
    filters += _layout_filters(info, pixel_format)
    command += [
        "-copyts",
        "-i",
        str(info.path),
        "-map",
        info.stream_map,
        "-sws_flags",
        SWS_FLAGS,
        "-vf",
        ",".join(filters),
        "-fps_mode",
        "passthrough",
        "-pix_fmt",
        pixel_format,
    ]
    if count is not None:
        command += ["-frames:v", str(count)]
    command += ["-f", "rawvideo", "-"]
    yield from _frames_from(command, info.path, info.width, info.height, pixel_format)


def _timing_filters(info: VideoInfo) -> list[str]:
    """Filters putting the file's frames on the constant-rate clock: frame k leaves as the k-th.

    The file's own timestamps (-copyts), moved so the first frame is at 0, put every frame on
    the same tick of the constant-rate clock whether decoding started at the beginning or at a
    keyframe after a seek. fps= then repeats or drops frames of a variable-rate file; a trim or a
    select after it sees frame numbers, so its cut is exact.
    """
    return [f"setpts=PTS-({info.start_time:.6f})/TB", f"fps={info.fps_fraction}"]


def read_frames_reversed(
    info: VideoInfo, first: int, last: int, chunk: int = 32, *, pixel_format: PixelFormat
) -> Iterator[np.ndarray]:
    """Frames ``last``, ``last - 1``, ..., ``first`` (inclusive); at most ``chunk`` frames held at once."""
    end = last
    while end >= first:
        begin = max(first, end - chunk + 1)
        frames = list(read_frames(info, begin, end - begin + 1, pixel_format=pixel_format))
        yield from reversed(frames)
        end = begin - 1


def detection_size(info: VideoInfo, max_side: int) -> tuple[int, int]:
    """(width, height) of ``read_detection_frames``' frames: the picture shrunk, aspect kept, so its
    longer side is at most ``max_side`` (never enlarged). A box found in them maps back to the full
    picture by multiplying x by ``info.width / width`` and y by ``info.height / height``.
    """
    if max_side < 1:
        raise ValueError(f"max_side must be at least 1, not {max_side}")
    scale = min(1.0, max_side / max(info.width, info.height))
    return max(1, round(info.width * scale)), max(1, round(info.height * scale))


def read_detection_frames(info: VideoInfo, count: int, max_side: int, every: int = 1) -> Iterator[np.ndarray]:
    """Small BGR frames for face detection: frames 0, ``every``, 2 * ``every``, ... below ``count``.

    Each is (h, w, 3) uint8 with (w, h) = ``detection_size(info, max_side)``, shrunk by the decoder
    (area averaging) while converting to BGR, so a full-size BGR frame never exists. The frames
    in between are decoded (the codec needs them) but dropped before any scaling or conversion
    and never piped. Yields ``ceil(count / every)`` frames, fewer only if the file ends first;
    the ``j``-th is frame ``j * every`` of ``read_frames``. A still image yields its picture once.
    """
    if every < 1:
        raise ValueError(f"every must be at least 1, not {every}")
    if count <= 0:
        return
    width, height = detection_size(info, max_side)
    shrink = f"scale={width}:{height}:flags={DETECTION_SWS_FLAGS}"
    if info.is_still:
        command = [
            ffmpeg_path(),
            "-nostdin",
            "-v",
            "error",
            "-i",
            str(info.path),
            "-map",
            info.stream_map,
            "-frames:v",
            "1",
            "-vf",
            shrink,
            "-pix_fmt",
            "bgr24",
            "-f",
            "rawvideo",
            "-",
        ]
        picture = next(_frames_from(command, info.path, width, height, "bgr24"), None)
        if picture is None:
            raise MediaError("the image could not be decoded", info.path)
        yield picture
        return
    filters = _timing_filters(info)
    if every > 1:
        filters.append(f"select=not(mod(n\\,{every}))")
    filters.append(shrink)
    command = [
        ffmpeg_path(),
        "-nostdin",
        "-v",
        "error",
        "-copyts",
        "-i",
        str(info.path),
        "-map",
        info.stream_map,
        "-vf",
        ",".join(filters),
        "-fps_mode",
        "passthrough",
        "-frames:v",
        str(math.ceil(count / every)),
        "-pix_fmt",
        "bgr24",
        "-f",
        "rawvideo",
        "-",
    ]
    yield from _frames_from(command, info.path, width, height, "bgr24")


def _still_frames(info: VideoInfo, count: int, pixel_format: PixelFormat) -> Iterator[np.ndarray]:
    command = [
        ffmpeg_path(),
        "-nostdin",
        "-v",
        "error",
        "-i",
        str(info.path),
        "-map",
        info.stream_map,
        "-frames:v",
        "1",
        "-sws_flags",
        SWS_FLAGS,
        "-vf",
        ",".join(_layout_filters(info, pixel_format)),
        "-pix_fmt",
        pixel_format,
        "-f",
        "rawvideo",
        "-",
    ]
    picture = next(_frames_from(command, info.path, info.width, info.height, pixel_format), None)
    if picture is None:
        raise MediaError("the image could not be decoded", info.path)
    for _ in range(count):
        yield picture.copy()


def _frames_from(command: list[str], path: Path, width: int, height: int, pixel_format: PixelFormat) -> Iterator[np.ndarray]:
    """Run the decoder ``command`` and yield its rawvideo ``width`` x ``height`` frames as
    ``frame_shape(width, height, pixel_format)`` uint8 arrays."""
    frame_bytes = _raw_frame_bytes(width, height, pixel_format)
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr)
        assert process.stdout is not None
        finished = False
        try:
            while True:
                buffer = bytearray(frame_bytes)
                if not _read_exactly(process.stdout, buffer):
                    break
                raw = np.frombuffer(buffer, dtype=np.uint8)
                if pixel_format == "yuv420p":
                    yield _i420_frame(raw, width, height)
                else:
                    yield raw.reshape(frame_shape(width, height, pixel_format))
            returncode = process.wait()
            finished = returncode == 0
            if not finished:
                raise killed_by_signal(returncode, path) or MediaError(f"could not be decoded ({_tail(stderr)})", path)
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
            process.stdout.close()


def _read_exactly(stream: IO[bytes], buffer: bytearray) -> bool:
    """Fill ``buffer`` from ``stream``; False at a clean end of stream (a partial last frame is dropped)."""
    view = memoryview(buffer)
    filled = 0
    while filled < len(buffer):
        got = stream.readinto(view[filled:])  # type: ignore[attr-defined]
        if not got:
            return False
        filled += got
    return True


def _tail(stderr: IO[bytes]) -> str:
    stderr.seek(0)
    return last_lines(stderr.read().decode(errors="replace")) or "ffmpeg failed without a message"


def video_codec_arguments(encoder: str, crf: int, preset: str) -> list[str]:
    """ffmpeg output options for H.264 yuv420p at quality ``crf`` with ``encoder``.

    NVENC has no CRF; constant-quality VBR (``-cq``) at the same number is its closest match.
    """
    if encoder == "h264_nvenc":
        return [
            "-c:v",
            "h264_nvenc",
            "-preset",
            "p5",
            "-tune",
            "hq",
            "-rc",
            "vbr",
            "-cq",
            str(crf),
            "-b:v",
            "0",
            "-pix_fmt",
            "yuv420p",
        ]
    return ["-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-pix_fmt", "yuv420p"]


class VideoWriter:
    """One H.264/AAC MP4 encode from raw frames on a pipe plus the audio of ``audio_path``.

    ``width`` x ``height`` is the picture's size. yuv420p needs even sides: ``output_size`` is the
    encoded size, an odd side padded by one pixel on the right or bottom.
    bgr24 (``pixel_format``): frames are (height, width, 3) BGR; ffmpeg converts them to yuv420p
    and pads an odd side with a copy of the picture's edge.
    yuv420p: frames are I420 of ``output_size``, (H * 3 // 2, W), already padded (as
    ``read_frames(..., pixel_format="yuv420p")`` yields them); they reach the encoder as they are,
    with no colour conversion and no filter, and ``colour`` (the source's tags) labels them as the
    source was labelled, so a player shows the colours the source showed.
    ``close`` and ``abort`` leave no partial file behind when the encode does not succeed.
    """

    def __init__(
        self,
        path: Path,
        width: int,
        height: int,
        fps: Fraction,
        audio_path: Path,
        crf: int = 18,
        preset: str = "medium",
        encoder: str = "libx264",
        *,
        pixel_format: PixelFormat,
        colour: ColourTags | None = None,
    ) -> None:
        self.path = path
        self.pixel_format = pixel_format
        self.frame_shape = frame_shape(width, height, pixel_format)
        self.output_size = even_size(width, height)
        input_size = (width, height) if pixel_format == "bgr24" else self.output_size
        command = [
            ffmpeg_path(),
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-f",
            "rawvideo",
            "-pix_fmt",
            pixel_format,
            "-s",
            f"{input_size[0]}x{input_size[1]}",
            "-framerate",
            str(fps),
            "-i",
            "-",
            "-i",
            str(audio_path),
            "-map",
            "0:v:0",
            "-map",
            "1:a:0",
            "-sws_flags",
            SWS_FLAGS,
        ]
        filters = _even_padding(*input_size)
        if colour is not None and pixel_format == "yuv420p":
            # Frame properties, not the encoder's -colorspace options: ffmpeg 9 lets the frames' win.
            filters.append(
                f"setparams=colorspace={colour.space}:color_primaries={colour.primaries}:color_trc={colour.transfer}"
            )
        if filters:
            command += ["-vf", ",".join(filters)]
        command += [
            *video_codec_arguments(encoder, crf, preset),
            "-c:a",
            "aac",
            "-b:a",
            AUDIO_BITRATE,
            "-movflags",
            "+faststart",
            "-f",
            "mp4",
            str(path),
        ]
        self._stderr = tempfile.TemporaryFile()
        self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=self._stderr)

    def write(self, frame: np.ndarray) -> None:
        if frame.shape != self.frame_shape or frame.dtype != np.uint8:
            raise ValueError(f"frame of shape {frame.shape} {frame.dtype}, expected {self.frame_shape} uint8")
        assert self._process.stdin is not None
        try:
            self._process.stdin.write(np.ascontiguousarray(frame).data.cast("B"))
        except BrokenPipeError:
            self._process.wait()
            raise self._encoder_error("the encoder stopped") from None

    def close(self) -> None:
        """Finish the file; raises MediaError if ffmpeg did not succeed."""
        if self._process.returncode is not None:
            return
        assert self._process.stdin is not None
        try:
            self._process.stdin.close()
        except BrokenPipeError:
            pass
        if self._process.wait() != 0:
            error = self._encoder_error("the encoder failed")
            self._stderr.close()
            self.path.unlink(missing_ok=True)
            raise error
        self._stderr.close()

    def _encoder_error(self, what: str) -> EngineError:
        """Why the encoder ended: never the inputs' fault (they were decoded): the disk, a kill, or the encoder itself."""
        message = _tail(self._stderr)
        if any(full in message for full in DISK_FULL_MESSAGES):
            return MediaError(f"{what}: the disk is full", self.path, code=ErrorCode.DISK_FULL)
        return killed_by_signal(self._process.returncode, self.path) or EngineError(
            f"{what} ({message})", self.path, code=ErrorCode.RENDER_ENCODER_FAILED
        )

    def abort(self) -> None:
        """Stop the encoder and delete the partial file."""
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        if self._process.stdin:
            try:
                self._process.stdin.close()
            except BrokenPipeError:
                pass
        self._stderr.close()
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()
