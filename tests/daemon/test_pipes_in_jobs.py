"""A pipe (FIFO) where the service expects a file is never opened blocking: not the marker, not job.toml.

Each call runs in a thread the test waits on with a generous deadline: opening a FIFO for reading
blocks until a writer comes, so the old behaviour hangs the call (and the service) for good.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from heygemd.codes import ErrorCode
from heygemd.daemon.config import Readiness
from heygemd.daemon.contract import ContractViolation
from heygemd.daemon.readiness import ReadinessTracker

DEADLINE_SECONDS = 60.0


def returns(call: Callable[[], Any]) -> Any:
    """The call's result (or its exception), provided it returns at all."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except Exception as err:  # handed to the test
            outcome["error"] = err

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(DEADLINE_SECONDS)
    assert not thread.is_alive(), "blocked on the pipe"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def test_a_pipe_named_like_the_marker_does_not_block_the_scan(tmp_path):
    inbox = tmp_path / "inbox"
    job, other = inbox / "piped", inbox / "good"
    for folder in (job, other):
        folder.mkdir(parents=True)
        (folder / "a.wav").write_bytes(b"a")
        (folder / "v.mp4").write_bytes(b"v")
    os.mkfifo(job / "READY")
    (other / "READY").write_bytes(b"")
    tracker = ReadinessTracker(readiness=Readiness.MARKER, marker_name="READY", settle_seconds=1, abandon_after_seconds=10)
    returns(lambda: tracker.scan(inbox, 0))
    scan = returns(lambda: tracker.scan(inbox, 5))
    assert [folder.name for folder in scan.ready] == ["good"], scan
    abandoned = returns(lambda: tracker.scan(inbox, 20)).abandoned
    assert [folder.name for folder in abandoned] == ["piped"]


def test_a_job_toml_swapped_for_a_pipe_is_refused_not_waited_on(tmp_path: Path):
    from heygemd.daemon import contract

    folder = tmp_path / "job"
    folder.mkdir()
    os.mkfifo(folder / "job.toml")  # as if swapped after the folder was listed
    with pytest.raises(ContractViolation) as caught:
        returns(lambda: contract.read_job_file(folder))
    assert caught.value.code is ErrorCode.JOB_TOML_INVALID and "pipe" in caught.value.reason
