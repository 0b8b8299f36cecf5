"""Which template frame each output frame shows.

The output has as many frames as the audio needs (see ``audio.video_frame_count``). When the
template has fewer, a loop policy extends it; when it has more, it is trimmed. The schedule is a
short list of segments (runs of consecutive frames, forwards, backwards or held), so the frame
source can stream each run from the decoder instead of holding the template in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from heygemd.engine.settings import LoopPolicy


@dataclass(frozen=True)
class Segment:
    """``count`` output frames showing template frames start, start+step, start+2*step...

    step is 1 (forwards), -1 (backwards) or 0 (the same frame held).
    """

    start: int
    count: int
    step: int

    @property
    def last(self) -> int:
        return self.start + (self.count - 1) * self.step


def template_index(output_index: int, template_frames: int, policy: LoopPolicy) -> int:
    """The template frame shown at ``output_index`` (closed form of the schedule)."""
    n = template_frames
    if output_index < n or n == 1:
        return min(output_index, n - 1)
    match policy:
        case LoopPolicy.LOOP:
            return output_index % n
        case LoopPolicy.FREEZE:
            return n - 1
        case LoopPolicy.PINGPONG:
            period = 2 * (n - 1)  # 0..n-1 then n-2..1: the turning frames are not shown twice
            phase = output_index % period
            return phase if phase < n else period - phase
    raise ValueError(f"unknown loop policy {policy!r}")


def schedule(template_frames: int, output_frames: int, policy: LoopPolicy) -> list[Segment]:
    """Segments covering exactly ``output_frames`` output frames."""
    if template_frames < 1 or output_frames < 1:
        raise ValueError("template_frames and output_frames must be positive")
    segments = list(_cycle(template_frames, policy, output_frames))
    assert sum(s.count for s in segments) == output_frames
    return segments


def _cycle(n: int, policy: LoopPolicy, wanted: int) -> Iterator[Segment]:
    """Yield the policy's segments, the last one cut so the total is ``wanted``."""
    if n == 1:
        yield Segment(0, wanted, 0)
        return
    left = wanted
    for segment in _segments_forever(n, policy):
        take = min(segment.count, left)
        yield Segment(segment.start, take, segment.step)
        left -= take
        if left == 0:
            return


def _segments_forever(n: int, policy: LoopPolicy) -> Iterator[Segment]:
    yield Segment(0, n, 1)
    match policy:
        case LoopPolicy.FREEZE:
            yield Segment(n - 1, 1 << 62, 0)
        case LoopPolicy.LOOP:
            while True:
                yield Segment(0, n, 1)
        case LoopPolicy.PINGPONG:
            while True:
                if n > 2:
                    yield Segment(n - 2, n - 2, -1)
                yield Segment(0, n, 1)


def frame_indices(segments: list[Segment]) -> Iterator[int]:
    """The template frame index of every output frame, in order."""
    for segment in segments:
        for k in range(segment.count):
            yield segment.start + k * segment.step
