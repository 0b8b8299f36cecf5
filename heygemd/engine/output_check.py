"""The finished MP4 checked against its plan: its sound and its picture last as long as they should.

A render plans ``frames`` pictures at ``fps`` to cover the audio snapshot (``audio.video_frame_count``:
the picture outlasts the sound by less than one frame) and muxes that snapshot whole. So in a right
output the picture lasts the planned time, the sound lasts the snapshot's time, and the two agree
within one frame. Anything else (the sound of another file, a track cut short, a missing track) is
an OutputMismatch, and the output is not kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from heygemd.engine.errors import OutputMismatch
from heygemd.engine.probe import _ffprobe


@dataclass(frozen=True)
class OutputStreams:
    """What the finished MP4 holds, from its headers."""

    video_duration: Fraction
    video_frames: int | None  # None where the container does not say
    fps: Fraction
    width: int
    height: int
    video_codec: str
    audio_duration: Fraction | None  # None: no sound track
    audio_sample_rate: int = 0
    audio_channels: int = 0
    audio_codec: str = ""


def probe_output(path: Path) -> OutputStreams:
    """The first video and audio streams of ``path`` (durations exact, in the streams' own time bases)."""
    streams = _ffprobe(path, ["-show_streams"]).get("streams", [])
    video = next((s for s in streams if s.get("codec_type") == "video"), None)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    if video is None:
        raise OutputMismatch("the finished video has no picture track", path)
    frames = int(video.get("nb_frames") or 0) or None
    return OutputStreams(
        video_duration=_duration(video),
        video_frames=frames,
        fps=_fraction(video.get("r_frame_rate")) or _fraction(video.get("avg_frame_rate")) or Fraction(0),
        width=int(video.get("width") or 0),
        height=int(video.get("height") or 0),
        video_codec=video.get("codec_name", ""),
        audio_duration=None if audio is None else _duration(audio),
        audio_sample_rate=0 if audio is None else int(audio.get("sample_rate") or 0),
        audio_channels=0 if audio is None else int(audio.get("channels") or 0),
        audio_codec="" if audio is None else audio.get("codec_name", ""),
    )


def check_output(
    path: Path, *, frames: int, fps: Fraction, audio_duration: Fraction, name: Path | None = None
) -> OutputStreams:
    """Raise OutputMismatch (naming ``name``, default ``path``) unless ``path`` holds ``frames`` pictures
    at ``fps`` and a sound track of ``audio_duration`` seconds, each within one frame, and the two
    tracks agree within one frame. Returns what the file holds."""
    found = probe_output(path)
    problems = mismatches(found, frames=frames, fps=fps, audio_duration=audio_duration)
    if problems:
        raise OutputMismatch("the finished video is not as planned: " + "; ".join(problems), name or path)
    return found


def mismatches(found: OutputStreams, *, frames: int, fps: Fraction, audio_duration: Fraction) -> list[str]:
    """Each way ``found`` differs from the plan, in words (empty: it is right)."""
    frame = 1 / fps
    planned = frames / fps
    problems = []
    if found.video_frames is not None and found.video_frames != frames:
        problems.append(f"it holds {found.video_frames} pictures where {frames} were planned")
    if abs(found.video_duration - planned) > frame:
        problems.append(f"its picture lasts {_s(found.video_duration)} where {_s(planned)} were planned")
    if found.audio_duration is None:
        problems.append("it has no sound track")
        return problems
    if abs(found.audio_duration - found.video_duration) > frame:
        problems.append(f"its sound lasts {_s(found.audio_duration)} but its picture {_s(found.video_duration)}")
    if abs(found.audio_duration - audio_duration) > frame:
        problems.append(f"its sound lasts {_s(found.audio_duration)} but the audio analysed {_s(audio_duration)}")
    return problems


def _duration(stream: dict) -> Fraction:
    """A stream's duration: exact from its time base where the container gives one, else as printed."""
    ticks, time_base = stream.get("duration_ts"), _fraction(stream.get("time_base"))
    if ticks not in (None, "N/A") and time_base:
        return int(ticks) * time_base
    return _fraction(stream.get("duration")) or Fraction(0)


def _fraction(text: str | None) -> Fraction | None:
    try:
        value = Fraction(text) if text not in (None, "", "N/A") else None
    except (ValueError, ZeroDivisionError):
        return None
    return value if value and value > 0 else None


def _s(seconds: Fraction) -> str:
    return f"{float(seconds):.3f} s"
