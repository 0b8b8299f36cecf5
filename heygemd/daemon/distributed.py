"""Cluster mode's render step of one job: the videos go to workers (heygemd.cluster.dispatch), and each
outcome is recorded through Lifecycle exactly as the embedded render records it (runner.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from heygemd.atomic import write_atomic
from heygemd.cluster.dispatch import GivenUp, Stop, TaskOutcome
from heygemd.cluster.protocol import TaskState
from heygemd.daemon.contract import JobPlan
from heygemd.daemon.fsutil import remove_tree
from heygemd.daemon.journal import JobRecord, Phase, VideoRecord
from heygemd.daemon.reports import VideoStatus
from heygemd.daemon.resultpage import make_thumbnail, thumbnail_name

if TYPE_CHECKING:
    from heygemd.daemon.runner import JobRunner, Step


def render_distributed(runner: JobRunner, record: JobRecord, plan: JobPlan, output_dir: Path) -> Step | None:
    from heygemd.daemon.runner import STOPPED, with_file_names

    dispatcher = runner.distributor
    job_dir = runner.work.job_dir(record.job_id)
    planned = {video.output_stem: video for video in plan.videos}  # this audio's videos (a job may have several)
    asked = Stop(runner.context.stop_requested.is_set, lambda: runner.context.cancel_request(record) is not None)
    step: Step | None = None

    def enqueued(video: VideoRecord, task_id: str) -> None:
        runner.lifecycle.task_enqueued(record, video, task_id)

    while True:
        for outcome in dispatcher.render(record, planned, plan.audio, job_dir, enqueued, asked, runner.context.on_tasks):
            step = _record(runner, record, outcome, output_dir, with_file_names) or step
        if record.phase is Phase.RENDERING and runner._cancel_if_asked(record):
            return None
        pending = (video for video in record.videos if video.output_stem in planned)
        if step is not None or not any(video.status is VideoStatus.PENDING for video in pending):
            return step
        if runner.context.stop_requested.is_set():
            return STOPPED  # the tasks go on; the next start re-attaches to them
        # else a render was cancelled without the job (a worker stopping): its video is enqueued again


def _record(
    runner: JobRunner, record: JobRecord, outcome: TaskOutcome | GivenUp, output_dir: Path, with_file_names
) -> Step | None:
    video = outcome.video
    video.task_id = None  # saved with the outcome below
    if isinstance(outcome, GivenUp):
        runner.lifecycle.video_failed(record, video, outcome.failure)
        return None
    step = None
    if outcome.view.state is TaskState.CANCELLED:
        runner.lifecycle.journal.save(record)
    elif outcome.report is not None:
        _adopt(runner, record, video, outcome, output_dir, with_file_names)
    else:
        assert outcome.failure is not None
        video.worker = outcome.view.worker
        step = runner._video_failure(record, video, outcome.failure, outcome.seconds)
    runner.distributor.forget(outcome.task_id)
    remove_tree(outcome.output.parent)
    return step


def _adopt(
    runner: JobRunner, record: JobRecord, video: VideoRecord, outcome: TaskOutcome, output_dir: Path, with_file_names
) -> None:
    """The worker's output into the results folder (one rename on the share), its report and thumbnail beside it."""
    report = outcome.report
    assert report is not None
    output = output_dir / f"{video.output_stem}.mp4"
    os.replace(outcome.output, output)
    write_atomic(output_dir / f"{video.output_stem}.json", with_file_names(report).model_dump_json(indent=2) + "\n")
    make_thumbnail(output, output_dir / thumbnail_name(video.output_stem), report.output.duration_s)
    video.worker = outcome.view.worker
    runner.lifecycle.video_done(record, video, report.output.duration_s, outcome.seconds)
    runner.context.on_rendered(report, outcome.seconds)
    runner.log.info(
        "video done", video=video.template, output=f"{video.output_stem}.mp4", worker=video.worker, seconds=video.seconds
    )
