"""The service's metrics.json: counters that add up across restarts, gauges of now."""

from __future__ import annotations

from pathlib import Path

from heygemd.codes import ErrorCode, Failure
from heygemd.daemon.config import PathsConfig
from heygemd.daemon.journal import JobRecord, Phase, VideoRecord
from heygemd.daemon.metrics_recorder import MetricsRecorder, job_key
from heygemd.daemon.reports import JobStatus, VideoStatus
from heygemd.engine.report import FaceStats, OutputFile, RenderReport
from heygemd.metrics import read_metrics


def paths(root: Path) -> PathsConfig:
    return PathsConfig(
        inbox=root / "inbox",
        outbox=root / "outbox",
        quarantine=root / "quarantine",
        work=root / "work",
        archive=root / "archive",
        state=root / "state",
    )


def report(seconds: float, *, cache_hit: bool, detector: str = "lbp", dry_run: bool = False) -> RenderReport:
    output = OutputFile.model_construct(duration_s=seconds)
    faces = FaceStats(detector=detector, frames_with_face=25, frames_without_face=0, cache_hit=cache_hit)
    return RenderReport.model_construct(output=output, faces=faces, dry_run=dry_run)


def record(status: JobStatus, failure: Failure | None = None, videos: list[VideoRecord] | None = None) -> JobRecord:
    return JobRecord(job_id="J", name="job", phase=Phase.DONE, status=status, failure=failure, videos=videos or [])


def test_counters_add_up_across_restarts(tmp_path):
    (tmp_path / "outbox").mkdir()
    first = MetricsRecorder(tmp_path / "state", paths(tmp_path))
    first.rendered(report(10.0, cache_hit=False), wall_seconds=4.0)
    first.rendered(report(10.0, cache_hit=True), wall_seconds=2.0)
    failed = VideoRecord(
        template="b.mp4",
        output_stem="b",
        status=VideoStatus.FAILED,
        failure=Failure(code=ErrorCode.FACE_NOT_FOUND, reason="no face"),
    )
    first.job_finished(
        record(JobStatus.PARTIAL, videos=[VideoRecord(template="a.mp4", output_stem="a", status=VideoStatus.OK), failed])
    )
    first.gauges(up=True, ready=True, paused=True, queue_length=3, folders_arriving=1)

    again = MetricsRecorder(tmp_path / "state", paths(tmp_path))  # a restart
    again.rendered(report(5.0, cache_hit=False, detector="fixed_box"), wall_seconds=10.0)
    again.rendered(report(5.0, cache_hit=False, detector="none (dry run)", dry_run=True), wall_seconds=1.0)
    again.job_finished(record(JobStatus.FAILED, Failure(code=ErrorCode.CANCELLED, reason="cancelled")))

    metrics = read_metrics(tmp_path / "state")
    counters = metrics.counters
    assert counters.jobs == {"partial": 1, "failed/cancelled": 1}
    assert counters.videos == {"ok": 1, "failed/face.not_found": 1}
    assert counters.video_seconds_produced == 30.0
    assert counters.render_seconds.count == 4 and counters.render_seconds.sum == 17.0
    assert (counters.face_track_cache_hits, counters.face_track_cache_misses) == (1, 1)  # fixed box, dry run: neither
    gauges = metrics.gauges
    assert gauges.up and not gauges.ready and not gauges.paused, "gauges are of now: not carried over a restart"
    assert gauges.last_real_time_factor == 5.0
    assert gauges.free_bytes["outbox"] > 0 and "work" not in gauges.free_bytes  # work/ is not there: no number


def test_the_stop_is_written_at_once(tmp_path):
    recorder = MetricsRecorder(tmp_path / "state", paths(tmp_path))
    recorder.gauges(up=True, ready=True, paused=False, queue_length=0, folders_arriving=0)
    recorder.gauges(up=False, ready=False, paused=False, queue_length=0, folders_arriving=0)
    gauges = read_metrics(tmp_path / "state").gauges
    assert not gauges.up and not gauges.ready


def test_job_keys():
    assert job_key(record(JobStatus.OK)) == "ok"
    assert job_key(record(JobStatus.FAILED, Failure(code=ErrorCode.JOB_NO_AUDIO, reason="x"))) == "failed/job.no_audio"
