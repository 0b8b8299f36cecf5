"""Streaming media I/O through ffmpeg pipes: audio samples in, video frames in, one encode out.

Nothing here holds a whole video: frames are read from the decoder's pipe one at a time and
written to the encoder's pipe one at a time. ffmpeg's stderr goes to a temporary file so a
chatty ffmpeg can never block on a full pipe.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import IO

import numpy as np

from heygemd.engine.errors import AudioError, MediaError
from heygemd.engine.ffmpeg_tools import ffmpeg_path, last_lines
from heygemd.engine.probe import CUT_SHORT_WARNINGS, VideoInfo, _check_readable, _unreadable_reason, run_reading

AUDIO_BITRATE = "192k"
AUDIO_DECODE_TIMEOUT_S = 1800  # hours of speech decode in seconds; only a stalled share takes this long
# Colour conversion between the codecs' YUV and our BGR frames: exact rounding and full-resolution
# chroma keep a decode/encode round trip about 1 dB closer to the source than the defaults.
SWS_FLAGS = "bicubic+accurate_rnd+full_chroma_int"
# Seeking lands on a keyframe at or before the seek point; decoding goes on from there and the
# frames before the wanted one are cut by timestamp. The seek point is this far before the wanted
# frame, so a container's coarse timestamps or a B-frame delay can never put that keyframe after it.
SEEK_PREROLL_S = 0.5
# No seek to a point this close to the start: decoding from the start costs next to nothing there,
# and FLV files with B-frames come back empty from a seek into their first tenth of a second.
SEEK_MIN_S = 0.5


def decode_audio(path: Path, sample_rate: int = 16000) -> np.ndarray:
    """The first audio stream of ``path`` as float32 mono samples at ``sample_rate``: (n_samples,)."""
    command = [
        ffmpeg_path(), "-nostdin", "-v", "error", "-i", str(path),
        "-map", "0:a:0", "-ac", "1", "-ar", str(sample_rate), "-f", "f32le", "-",
    ]
    _check_readable(path)
    result = run_reading(path, command, AUDIO_DECODE_TIMEOUT_S)
    stderr = result.stderr
    if result.returncode != 0:
        if "matches no streams" in stderr:
            raise AudioError("has no audio track", path)
        if "Error opening input" in stderr:
            raise MediaError(_unreadable_reason(path, stderr), path)
        raise MediaError(f"its audio could not be decoded ({last_lines(stderr, 1)})", path)
    if any(marker in stderr for marker in CUT_SHORT_WARNINGS):  # ffmpeg exits 0 and decodes what is there
        raise MediaError(f"is truncated or damaged ({last_lines(stderr, 1)})", path)
    samples = np.frombuffer(result.stdout, dtype=np.float32)
    if samples.size == 0:
        raise AudioError("audio lasts 0 seconds", path)
    return samples.copy()


def read_frames(info: VideoInfo, start: int = 0, count: int | None = None) -> Iterator[np.ndarray]:
    """BGR uint8 frames (height, width, 3) at the constant rate ``info.fps_fraction``, upright.

    Frame ``k`` is the ``k``-th frame that decoding the whole file yields, whatever ``start``.
    Starts at frame ``start`` by seeking (not by decoding from the beginning; within the first
    second it decodes from the beginning) and stops after ``count`` frames (None: to the end).
    A still image yields its one picture ``count`` times. Closing the generator early stops the decoder.
    """
    if info.is_still:
        yield from _still_frames(info, 1 if count is None else count)
        return
    if count is not None and count <= 0:
        return
    start = max(0, start)
    command = [ffmpeg_path(), "-nostdin", "-v", "error", "-sws_flags", SWS_FLAGS]
    seek = float(start / info.fps_fraction) - SEEK_PREROLL_S
    if seek >= SEEK_MIN_S:
        command += ["-ss", f"{seek:.6f}", "-noaccurate_seek"]
    # The file's own timestamps (-copyts), moved so the first frame is at 0, put every frame on
    # the same tick of the constant-rate clock whether decoding started at the beginning or at a
    # keyframe after a seek. fps= then repeats or drops frames of a variable-rate file, and trim
    # keeps the ticks from ``start`` on: its timestamps are frame numbers, so the cut is exact.
    filters = [f"setpts=PTS-({info.start_time:.6f})/TB", f"fps={info.fps_fraction}"]
    if start > 0:
        filters.append(f"trim=start_pts={start}")
    # The probe's size is the decoder's own; this only matters for a stream that changes size
    # mid-way, whose frames would otherwise no longer fit the byte count read per frame.
    filters.append(f"scale={info.width}:{info.height}")
    command += ["-copyts", "-i", str(info.path), "-map", info.stream_map, "-vf", ",".join(filters),
                "-fps_mode", "passthrough", "-pix_fmt", "bgr24"]
    if count is not None:
        command += ["-frames:v", str(count)]
    command += ["-f", "rawvideo", "-"]
    yield from _frames_from(command, info)


def read_frames_reversed(info: VideoInfo, first: int, last: int, chunk: int = 32) -> Iterator[np.ndarray]:
    """Frames ``last``, ``last - 1``, ..., ``first`` (inclusive); at most ``chunk`` frames held at once."""
    end = last
    while end >= first:
        begin = max(first, end - chunk + 1)
        frames = list(read_frames(info, begin, end - begin + 1))
        yield from reversed(frames)
        end = begin - 1


def _still_frames(info: VideoInfo, count: int) -> Iterator[np.ndarray]:
    command = [
        ffmpeg_path(), "-nostdin", "-v", "error", "-i", str(info.path), "-map", info.stream_map,
        "-frames:v", "1", "-pix_fmt", "bgr24", "-f", "rawvideo", "-",
    ]
    picture = next(_frames_from(command, info), None)
    if picture is None:
        raise MediaError("the image could not be decoded", info.path)
    for _ in range(count):
        yield picture.copy()


def _frames_from(command: list[str], info: VideoInfo) -> Iterator[np.ndarray]:
    frame_bytes = info.width * info.height * 3
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr)
        assert process.stdout is not None
        finished = False
        try:
            while True:
                buffer = bytearray(frame_bytes)
                if not _read_exactly(process.stdout, buffer):
                    break
                yield np.frombuffer(buffer, dtype=np.uint8).reshape(info.height, info.width, 3)
            finished = process.wait() == 0
            if not finished:
                raise MediaError(f"could not be decoded ({_tail(stderr)})", info.path)
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
        return ["-c:v", "h264_nvenc", "-preset", "p5", "-tune", "hq", "-rc", "vbr", "-cq", str(crf), "-b:v", "0",
                "-pix_fmt", "yuv420p"]
    return ["-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-pix_fmt", "yuv420p"]


class VideoWriter:
    """One H.264/AAC MP4 encode from raw BGR frames on a pipe plus the audio of ``audio_path``.

    yuv420p needs even sides: an odd width or height is padded by one pixel on the right or
    bottom, a copy of the picture's edge (``output_size`` is the encoded size).
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
    ) -> None:
        self.path = path
        self.frame_shape = (height, width, 3)
        self.output_size = (width + width % 2, height + height % 2)
        command = [
            ffmpeg_path(), "-nostdin", "-v", "error", "-y", "-sws_flags", SWS_FLAGS,
            "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{width}x{height}", "-framerate", str(fps), "-i", "-",
            "-i", str(audio_path),
            "-map", "0:v:0", "-map", "1:a:0",
        ]
        if self.output_size != (width, height):
            # The extra row/column repeats the picture's edge: no black line along the border.
            command += ["-vf", f"pad={self.output_size[0]}:{self.output_size[1]},"
                               f"fillborders=right={width % 2}:bottom={height % 2}:mode=smear"]
        command += [
            *video_codec_arguments(encoder, crf, preset),
            "-c:a", "aac", "-b:a", AUDIO_BITRATE,
            "-movflags", "+faststart", "-f", "mp4", str(path),
        ]
        self._stderr = tempfile.TemporaryFile()
        self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=self._stderr)

    def write(self, frame: np.ndarray) -> None:
        if frame.shape != self.frame_shape or frame.dtype != np.uint8:
            raise ValueError(f"frame of shape {frame.shape} {frame.dtype}, expected {self.frame_shape} uint8")
        assert self._process.stdin is not None
        try:
            self._process.stdin.write(memoryview(np.ascontiguousarray(frame)).cast("B"))
        except BrokenPipeError:
            self._process.wait()
            raise MediaError(f"the encoder stopped ({_tail(self._stderr)})", self.path) from None

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
            message = _tail(self._stderr)
            self._stderr.close()
            self.path.unlink(missing_ok=True)
            raise MediaError(f"the encoder failed ({message})", self.path)
        self._stderr.close()

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
