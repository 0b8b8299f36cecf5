"""The loop policies: which template frame each output frame shows."""

import pytest

from heygemd.engine.schedule import Segment, frame_indices, schedule, template_index
from heygemd.engine.settings import LoopPolicy


def test_pingpong_does_not_show_the_turning_frame_twice():
    indices = list(frame_indices(schedule(4, 14, LoopPolicy.PINGPONG)))
    assert indices == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3, 2, 1, 0, 1]


def test_loop_jumps_back_to_the_start():
    assert list(frame_indices(schedule(3, 8, LoopPolicy.LOOP))) == [0, 1, 2, 0, 1, 2, 0, 1]


def test_freeze_holds_the_last_frame():
    segments = schedule(3, 7, LoopPolicy.FREEZE)
    assert list(frame_indices(segments)) == [0, 1, 2, 2, 2, 2, 2]
    assert segments[-1] == Segment(2, 4, 0)


@pytest.mark.parametrize("policy", list(LoopPolicy))
def test_longer_template_is_trimmed(policy):
    assert schedule(100, 10, policy) == [Segment(0, 10, 1)]


@pytest.mark.parametrize("policy", list(LoopPolicy))
def test_single_frame_template_is_held(policy):
    assert schedule(1, 5, policy) == [Segment(0, 5, 0)]


def test_two_frame_pingpong_alternates():
    assert list(frame_indices(schedule(2, 5, LoopPolicy.PINGPONG))) == [0, 1, 0, 1, 0]


@pytest.mark.parametrize("policy", list(LoopPolicy))
@pytest.mark.parametrize("n", [1, 2, 3, 7, 25])
def test_closed_form_matches_segments(policy, n):
    out = 3 * n + 5
    assert list(frame_indices(schedule(n, out, policy))) == [template_index(k, n, policy) for k in range(out)]


def test_backward_segments_run_downwards():
    segments = schedule(5, 9, LoopPolicy.PINGPONG)
    assert segments == [Segment(0, 5, 1), Segment(3, 3, -1), Segment(0, 1, 1)]
    assert segments[1].last == 1


def test_rejects_empty_inputs():
    with pytest.raises(ValueError):
        schedule(0, 5, LoopPolicy.LOOP)
