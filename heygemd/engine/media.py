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
from heygemd.engine.probe import VideoInfo

AUDIO_BITRATE = "192k"
# Colour conversion between the codecs' YUV and our BGR frames: exact rounding and full-resolution
# chroma keep a decode/encode round trip about 1 dB closer to the source than the defaults.
SWS_FLAGS = "bicubic+accurate_rnd+full_chroma_int"
SEEK_MARGIN_FRAMES = 0.5  # seek half a frame early so rounding never skips the wanted frame


def decode_audio(path: Path, sample_rate: int = 16000) -> np.ndarray:
    """The first audio stream of ``path`` as float32 mono samples at ``sample_rate``: (n_samples,)."""
    command = [
        ffmpeg_path(), "-nostdin", "-v", "error", "-i", str(path),
        "-map", "0:a:0", "-ac", "1", "-ar", str(sample_rate), "-f", "f32le", "-",
    ]
    result = subprocess.run(command, capture_output=True, check=False)
    if result.returncode != 0:
        stderr = result.stderr.decode(errors="replace")
        if "matches no streams" in stderr:
            raise AudioError("has no audio track", path)
        raise MediaError(f"its audio could not be decoded ({last_lines(stderr, 1)})", path)
    samples = np.frombuffer(result.stdout, dtype=np.float32)
    if samples.size == 0:
        raise AudioError("audio lasts 0 seconds", path)
    return samples.copy()


def read_frames(info: VideoInfo, start: int = 0, count: int | None = None) -> Iterator[np.ndarray]:
    """BGR uint8 frames (height, width, 3) at the constant rate ``info.fps_fraction``, upright.

    Starts at frame ``start`` by seeking (not by decoding from the beginning) and stops after
    ``count`` frames (None: to the end). A still image yields its one picture ``count`` times.
    Closing the generator early stops the decoder.
    """
    if info.is_still:
        yield from _still_frames(info, 1 if count is None else count)
        return
    if count is not None and count <= 0:
        return
    command = [ffmpeg_path(), "-nostdin", "-v", "error", "-sws_flags", SWS_FLAGS]
    if start > 0:
        command += ["-ss", f"{(start - SEEK_MARGIN_FRAMES) / info.fps_fraction:.6f}"]
    command += ["-i", str(info.path), "-map", "0:v:0", "-vf", f"fps={info.fps_fraction}", "-pix_fmt", "bgr24"]
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
        ffmpeg_path(), "-nostdin", "-v", "error", "-i", str(info.path),
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


class VideoWriter:
    """One H.264/AAC MP4 encode from raw BGR frames on a pipe plus the audio of ``audio_path``.

    yuv420p needs even sides: an odd width or height is padded by one pixel (``output_size``).
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
            command += ["-vf", f"pad={self.output_size[0]}:{self.output_size[1]}"]
        command += [
            "-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-pix_fmt", "yuv420p",
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
