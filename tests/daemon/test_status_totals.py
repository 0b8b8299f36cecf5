"""`heygemd status`'s line of totals counts its jobs in words that agree with the number ("1 job", "2 jobs")."""

from __future__ import annotations

from heygemd.commands.service import _totals
from heygemd.metrics import Counters, Metrics


def test_one_job_is_one_job_and_two_are_jobs():
    one = Metrics(counters=Counters(jobs={"ok": 1}, video_seconds_produced=4.0))
    two = Metrics(counters=Counters(jobs={"ok": 1, "failed/face.not_found": 1}))
    assert _totals(one) == "1 job (1 ok), 4 s of video produced"
    assert _totals(two).startswith("2 jobs (1 failed, 1 ok)")
