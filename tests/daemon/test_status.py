"""The live status: what `heygemd status` and systemd's STATUS= say in each state."""

from __future__ import annotations

import warnings

from heygemd.daemon.status import IDLE, WAITING_FOR_INBOX, CurrentJob, ServiceStatus, WorkerTask
from heygemd.engine.report import DETECT_SHARE, ProgressStage


def test_idle_while_the_inbox_is_missing_is_waiting_for_it():
    status = ServiceStatus(inbox="/srv/share/inbox")
    status.set_state(IDLE)
    assert status.state == IDLE and status.summary() == "idle; 0 queued, 0 arriving"
    status.inbox_missing = True
    status.set_state(IDLE)
    assert status.state == WAITING_FOR_INBOX
    assert status.summary() == "waiting for the inbox: /srv/share/inbox is missing (share unmounted?)"
    status.inbox_missing = False
    status.set_state(IDLE)
    assert status.state == IDLE


def test_other_states_are_kept_while_the_inbox_is_missing():
    status = ServiceStatus(inbox="inbox", inbox_missing=True)
    for state in ("loading model", "working", "stopping", "stopped"):
        status.set_state(state)
        assert status.state == state
    status.current = CurrentJob(job="campaign 1", job_id="x", index=1, total=2, percent=40.0)
    assert status.summary() == "job campaign 1: video 1/2 40%; 0 queued"  # a claimed job renders on


def test_progress_gives_frames_speed_and_time_left_per_stage():
    from datetime import UTC, datetime, timedelta

    start = datetime(2025, 1, 1, tzinfo=UTC)
    job = CurrentJob(job="j", job_id="x", video="a.mp4", index=1, total=1, percent=0.0)
    job.advance(0, 100, "detect", now=start)
    assert job.percent == 0.0 and job.fps is None and job.eta_seconds is None
    job.advance(50, 100, "detect", now=start + timedelta(seconds=2))
    assert (job.frames_done, job.frames_total, job.fps, job.eta_seconds) == (50, 100, 25.0, 2.0)
    assert job.percent == 100 * DETECT_SHARE * 0.5  # finding the face is the first part of the video's percent
    job.advance(10, 200, "render", now=start + timedelta(seconds=3))  # a new stage counts from its own start
    assert job.stage == "render" and job.stage_started_at == start + timedelta(seconds=3) and job.fps is None
    job.advance(110, 200, "render", now=start + timedelta(seconds=5))
    assert job.fps == 55.0 and job.eta_seconds == round(90 / 55.0, 1)
    assert job.percent == round(100 * (DETECT_SHARE + (1 - DETECT_SHARE) * 0.55), 1)


def test_a_videos_percent_never_falls_from_one_stage_to_the_next():
    job = CurrentJob(job="j", job_id="x", video="a.mp4", index=1, total=1)
    seen = []
    for done, total, stage in [(92, 100, "detect"), (100, 100, "detect"), (24, 100, "render"), (20, 100, "restore")]:
        job.advance(done, total, stage)
        seen.append(job.percent)
    assert seen == sorted(seen) and seen[-1] > seen[1], seen
    assert isinstance(job.stage, ProgressStage)  # stored as the enum: no serialization warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        job.model_dump_json()
    plain = CurrentJob(job="j", job_id="x")  # a render without a face-finding stage of its own (a GPU, a cached track)
    plain.advance(30, 100, "render")
    assert plain.percent == 30.0


def test_a_cluster_task_reads_as_queued_or_on_its_worker():
    waiting = WorkerTask(video="front.mp4", task_id="t1", state="PENDING")
    assert waiting.describe() == "front.mp4 queued"  # not "front.mp4 on queued"
    taken = waiting.model_copy(update={"worker": "box/cuda:0/41", "state": "STARTED", "percent": 40.2})
    assert taken.describe() == "front.mp4 on box/cuda:0/41 40%"
