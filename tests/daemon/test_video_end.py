"""One failure classification for every renderer: what a render raised, as the job's report tells it.

The local renderer, the cluster renderer and the cluster worker all classify through
daemon/video_end.render_failure, so a failure reads the same wherever the video rendered.
"""

from __future__ import annotations

import errno

import pytest

from heygemd.codes import ErrorCode
from heygemd.daemon.supervise import RenderStalled
from heygemd.daemon.video_end import render_failure
from heygemd.engine import MediaError


class OutOfMemoryError(RuntimeError):
    """Stands for torch.cuda.OutOfMemoryError, which is told apart by its name (torch is not imported)."""


@pytest.mark.parametrize(
    ("raised", "code", "reason"),
    [
        (OutOfMemoryError("CUDA out of memory"), ErrorCode.OUT_OF_MEMORY, "a.mp4: the GPU ran out of memory."),
        (MemoryError(), ErrorCode.OUT_OF_MEMORY, "a.mp4: the machine ran out of memory."),
        (
            RenderStalled(120, "detect"),
            ErrorCode.RENDER_STALLED,
            "a.mp4: the render made no progress (no progress for 120 seconds (stage: detect)) and was stopped.",
        ),
        (ValueError("boom"), ErrorCode.INTERNAL, "a.mp4: internal error while rendering (ValueError: boom)"),
    ],
)
def test_each_kind_of_failure_reads_one_way(raised: BaseException, code: ErrorCode, reason: str) -> None:
    failure = render_failure("a.mp4", raised)
    assert (failure.code, failure.reason) == (code, reason)


def test_an_engine_error_keeps_its_code_and_names_the_file() -> None:
    failure = render_failure(
        "a.mp4", MediaError("cannot be decoded", "/work/x/input/a.mp4", code=ErrorCode.INPUT_UNDECODABLE)
    )
    assert failure.code is ErrorCode.INPUT_UNDECODABLE and failure.reason == "a.mp4: cannot be decoded"


def test_a_full_disk_is_transient_and_says_what_it_was_doing() -> None:
    failure = render_failure("a.mp4", OSError(errno.ENOSPC, "No space left on device", "/work/x/output/a.mp4"))
    assert failure.code is ErrorCode.DISK_FULL and failure.transient
    assert "While rendering a.mp4: No space left on device" in failure.reason and "/work" not in failure.reason


def test_the_cluster_worker_classifies_with_the_same_function() -> None:
    from heygemd.cluster import worker

    assert worker.render_failure is render_failure
