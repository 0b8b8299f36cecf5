"""Generated test media: presenter videos from a real face photo, speech-like audio, stills.

Nothing is downloaded: frames come from ``skimage.data.astronaut()``. Every video frame
carries its index as a strip of black and white blocks in its bottom-left corner (away from
the face), so tests can tell which template frame an output frame shows.
"""

from __future__ import annotations

import struct
import subprocess
import tempfile
from collections.abc import Collection
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from scipy.io import wavfile

from heygemd.engine.ffmpeg_tools import ffmpeg_path

SIGNATURE_BITS = 11  # frame indices up to 2047
VIDEO_CODECS = {
    ".mp4": "libx264",
    ".mov": "libx264",
    ".mkv": "libx264",
    ".flv": "libx264",
    ".avi": "mpeg4",
    ".webm": "libvpx-vp9",
}
AUDIO_CODECS = {
    ".wav": "pcm_s16le",
    ".mp3": "libmp3lame",
    ".m4a": "aac",
    ".aac": "aac",
    ".flac": "flac",
    ".ogg": "libvorbis",
    ".opus": "libopus",
}
# vfr=True: frame k is shown at (k + VFR_OFFSETS[k % 8]) / fps. Frames 3-4 come early and 5-6 late
# around a stall, so decoding at the constant rate drops frames 3 and 5 and shows frame 4 three times.
VFR_OFFSETS = (0.0, 0.0, 0.0, -0.3, -0.6, 0.6, 0.3, 0.0)
# np.rot90 turns of an upright picture that store it for each EXIF orientation (1, 3, 6, 8).
EXIF_QUARTER_TURNS = {1: 0, 3: 2, 6: 1, 8: -1}
CODEC_QUALITY = {
    "libx264": ["-preset", "veryfast", "-crf", "12", "-pix_fmt", "yuv420p"],
    "libx265": [
        "-preset",
        "ultrafast",
        "-crf",
        "14",
        "-pix_fmt",
        "yuv420p",
        "-tag:v",
        "hvc1",
        "-x265-params",
        "log-level=error",
    ],
    "libvpx-vp9": ["-deadline", "realtime", "-cpu-used", "8", "-crf", "15", "-b:v", "0", "-pix_fmt", "yuv420p"],
    "mpeg4": ["-q:v", "2", "-pix_fmt", "yuv420p"],
}


def vfr_frame_time(index: int, fps: str | Fraction = "25") -> float:
    """When frame ``index`` of a ``make_video(vfr=True)`` file is shown, in seconds from the first frame."""
    return (index + VFR_OFFSETS[index % len(VFR_OFFSETS)]) / float(Fraction(fps))


def _vfr_offset_expression() -> str:
    """VFR_OFFSETS as an ffmpeg expression of the frame number N (commas escaped for a filter graph)."""
    expression = "0"
    for position, offset in enumerate(VFR_OFFSETS):
        if offset:
            expression = f"if(eq(mod(N\\,{len(VFR_OFFSETS)})\\,{position})\\,{offset}\\,{expression})"
    return expression


@lru_cache(maxsize=1)
def _astronaut_bgr() -> np.ndarray:
    from skimage.data import astronaut

    # A touch of blur: a camera's optics are softer than this scanned photo, and x264 at the
    # service's default CRF spends its bits the way it would on real footage.
    return cv2.GaussianBlur(cv2.cvtColor(astronaut(), cv2.COLOR_RGB2BGR), (0, 0), 1.0)


def _block(size: tuple[int, int]) -> int:
    return max(6, min(size) // 24)


def presenter_frame(index: int, size: tuple[int, int], face: bool = True) -> np.ndarray:
    """One (height, width, 3) BGR frame: the astronaut filling the height, shifted a little per frame."""
    width, height = size
    canvas = np.full((height, width, 3), 90, np.uint8)
    if face:
        side = height
        photo = cv2.resize(_astronaut_bgr(), (side, side), interpolation=cv2.INTER_AREA)
        shift = index % 3
        left = (width - side) // 2 + shift
        x0, x1 = max(0, left), min(width, left + side)
        canvas[:, x0:x1] = photo[:, x0 - left : x1 - left]
    else:
        ys, xs = np.mgrid[0:height, 0:width]
        canvas[..., 0] = (xs * 255 // max(1, width - 1)).astype(np.uint8)
        canvas[..., 1] = (ys * 255 // max(1, height - 1)).astype(np.uint8)
        canvas[..., 2] = (127 + 100 * np.sin((xs + ys + index * 3) / 23.0)).astype(np.uint8)
    _stamp(canvas, index)
    return canvas


def _stamp(frame: np.ndarray, index: int) -> None:
    block = _block((frame.shape[1], frame.shape[0]))
    top = frame.shape[0] - block
    for bit in range(SIGNATURE_BITS):
        value = 255 if (index >> bit) & 1 else 0
        frame[top:, bit * block : (bit + 1) * block] = value


def frame_index_of(frame: np.ndarray) -> int:
    """The index stamped into a frame by ``presenter_frame`` (robust to lossy encoding)."""
    block = _block((frame.shape[1], frame.shape[0]))
    top = frame.shape[0] - block
    index = 0
    for bit in range(SIGNATURE_BITS):
        cell = frame[top + 1 : -1, bit * block + 1 : (bit + 1) * block - 1]
        if cell.mean() > 127:
            index |= 1 << bit
    return index


def make_video(
    path: Path,
    *,
    seconds: float = 2.0,
    fps: str = "25",
    size: tuple[int, int] = (256, 256),
    vcodec: str | None = None,
    face: bool = True,
    faceless_frames: Collection[int] = (),
    rotation: int = 0,
    vfr: bool = False,
    audio_seconds: float | None = None,
) -> Path:
    """Encode a presenter video; ``rotation`` is stored as display-matrix metadata."""
    path = Path(path)
    rate = Fraction(fps)
    frames = max(1, round(seconds * rate))
    codec = vcodec or VIDEO_CODECS.get(path.suffix.lower(), "libx264")
    with tempfile.TemporaryDirectory() as scratch:
        command = [
            ffmpeg_path(),
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "bgr24",
            "-s",
            f"{size[0]}x{size[1]}",
            "-framerate",
            str(rate),
            "-i",
            "-",
        ]
        if audio_seconds is not None:
            speech = make_audio(Path(scratch) / "track.wav", seconds=audio_seconds)
            command += [
                "-i",
                str(speech),
                "-map",
                "0:v",
                "-map",
                "1:a",
                "-c:a",
                "aac" if path.suffix != ".webm" else "libopus",
            ]
        if vfr:
            # A stutter every 8 frames (VFR_OFFSETS): frames really arrive at uneven times (kept by
            # passthrough). Millisecond time bases in the filter and the encoder: at the default
            # 1/fps the offsets round away and the file comes out constant-rate.
            command += [
                "-vf",
                f"settb=1/1000,setpts=({_vfr_offset_expression()}+N)/({float(rate)}*TB)",
                "-fps_mode",
                "passthrough",
                "-enc_time_base:v",
                "1/1000",
            ]
        command += ["-c:v", codec, *CODEC_QUALITY.get(codec, []), "-g", "12"]
        target = Path(scratch) / f"plain{path.suffix}" if rotation else path
        command.append(str(target))
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        assert process.stdin is not None
        for index in range(frames):
            process.stdin.write(presenter_frame(index, size, face and index not in faceless_frames).tobytes())
        _, stderr = process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"ffmpeg could not make {path}: {stderr.decode()[-500:]}")
        if rotation:
            _run(
                [
                    ffmpeg_path(),
                    "-nostdin",
                    "-v",
                    "error",
                    "-y",
                    "-display_rotation",
                    str(rotation),
                    "-i",
                    str(target),
                    "-c",
                    "copy",
                    str(path),
                ]
            )
    return path


def speech_like(seconds: float, sample_rate: int = 16000, seed: int = 0) -> np.ndarray:
    """(n,) float32 in [-1, 1]: a voice-like harmonic tone with moving pitch and syllable envelope."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    pitch = 140 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / sample_rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 8))
    syllables = np.clip(np.sin(2 * np.pi * 3.1 * t), 0, None) ** 0.6
    signal = 0.3 * voice * syllables + 0.01 * rng.standard_normal(t.size)
    return signal.astype(np.float32)


def make_audio(path: Path, *, seconds: float = 2.0, kind: str = "speech", sample_rate: int = 16000) -> Path:
    """Write audio in the format of ``path``'s extension. kind: speech, silence, clipped or nan."""
    path = Path(path)
    samples = speech_like(seconds, sample_rate)
    if kind == "silence":
        samples = np.zeros_like(samples)
    elif kind == "clipped":
        samples = np.clip(samples * 8, -1, 1)
    elif kind == "nan":
        if path.suffix.lower() != ".wav":
            raise ValueError("NaN samples need a float WAV: use a .wav path")
        samples[len(samples) // 3 :: 97] = np.nan
        wavfile.write(path, sample_rate, samples)  # float32 WAV: NaN survives decoding
        return path
    elif kind != "speech":
        raise ValueError(f"unknown audio kind {kind!r}")
    pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
    if path.suffix.lower() == ".wav":
        wavfile.write(path, sample_rate, pcm)
        return path
    with tempfile.TemporaryDirectory() as scratch:
        source = Path(scratch) / "source.wav"
        wavfile.write(source, sample_rate, pcm)
        codec = AUDIO_CODECS[path.suffix.lower()]
        _run([ffmpeg_path(), "-nostdin", "-v", "error", "-y", "-i", str(source), "-c:a", codec, str(path)])
    return path


def make_still(path: Path, size: tuple[int, int] = (256, 256), orientation: int = 1) -> Path:
    """A still of the presenter (frame 0), ``size`` = (width, height) as displayed.

    ``orientation`` (JPEG only) is an EXIF orientation as a phone writes it: 6 stores the picture
    turned a quarter counter-clockwise and tells viewers to turn it clockwise, 8 the other way,
    3 upside down. Shown as the tag says, the picture is upright.
    """
    path = Path(path)
    frame = presenter_frame(0, size)
    stored = np.rot90(frame, EXIF_QUARTER_TURNS[orientation])
    ok, encoded = cv2.imencode(path.suffix, np.ascontiguousarray(stored))
    if not ok:
        raise RuntimeError(f"could not write {path}")
    data = encoded.tobytes()
    if orientation != 1:
        if path.suffix.lower() not in (".jpg", ".jpeg"):
            raise ValueError("an EXIF orientation needs a .jpg")
        data = data[:2] + _exif_orientation_segment(orientation) + data[2:]  # right after the JPEG's SOI marker
    path.write_bytes(data)
    return path


def _exif_orientation_segment(orientation: int) -> bytes:
    """A JPEG APP1 segment holding an EXIF block with just the Orientation tag (0x0112)."""
    tiff = b"MM\x00\x2a" + struct.pack(">I", 8)  # big-endian TIFF header, first IFD at offset 8
    tiff += struct.pack(">H", 1) + struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack(">I", 0)
    payload = b"Exif\x00\x00" + tiff
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"ffmpeg failed: {result.stderr[-500:]}")
