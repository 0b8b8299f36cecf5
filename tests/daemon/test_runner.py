"""The job runner in process, with a fake engine: the steps of one job and every state change they make.

The fake stands for the engine only (heygemd.daemon.render_port.RenderEngine), under the real local
renderer; the folders, journal, lifecycle and publishing are the real ones. End-to-end behaviour with the real engine is in
test_service.py and test_failures.py.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from heygemd.codes import ErrorCode
from heygemd.daemon.claim import WorkArea
from heygemd.daemon.config import HeygemdConfig, PathsConfig
from heygemd.daemon.journal import JobRecord, Journal, Phase, VideoRecord
from heygemd.daemon.lifecycle import Lifecycle, RetryPolicy
from heygemd.daemon.local_render import LocalRenderer
from heygemd.daemon.outputs import Destinations
from heygemd.daemon.reports import VideoStatus
from heygemd.daemon.runner import JobRunner, RenderContext, StepKind
from heygemd.engine import (
    EngineError,
    EngineInfo,
    MediaError,
    RenderOptions,
    RenderProgress,
    RenderReport,
)
from heygemd.engine.report import (
    AudioInput,
    FaceStats,
    OutputFile,
    StageTimings,
    VideoInput,
)


class FakeAudio:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.closed = False

    def __enter__(self) -> FakeAudio:
        return self

    def __exit__(self, *exc: object) -> None:
        self.closed = True


class FakeEngine:
    """Writes a few bytes as the video; ``faults`` maps a template name to errors raised by its next renders."""

    def __init__(self) -> None:
        self.faults: dict[str, list[Exception]] = {}
        self.rendered: list[str] = []
        self.during_render: Callable[[Path], None] | None = None
        self.audios: list[FakeAudio] = []

    def describe(self) -> EngineInfo:
        return EngineInfo(heygemd_version="test", device="fake", dry_run=True, batch_size=1, encoder="none")

    def prepare_audio(self, path: Path) -> FakeAudio:
        self.audios.append(FakeAudio(path))
        return self.audios[-1]

    def render(
        self,
        audio: Any,
        video: Path,
        output: Path,
        options: RenderOptions | None = None,
        *,
        progress: Callable[[RenderProgress], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> RenderReport:
        if progress is not None:
            progress(RenderProgress(video=video, frames_done=0, frames_total=10))
        if self.during_render is not None:
            self.during_render(video)
        errors = self.faults.get(video.name)
        if errors:
            raise errors.pop(0)
        output.write_bytes(b"fake video of " + video.name.encode())
        self.rendered.append(video.name)
        return fake_report(audio.path, video, output)


def fake_report(audio: Path, video: Path, output: Path) -> RenderReport:
    now = datetime.now(UTC)
    return RenderReport(
        heygemd_version="test",
        started_at=now,
        finished_at=now,
        audio=AudioInput(
            path=audio,
            sha256="a",
            size_bytes=1,
            duration_s=1.0,
            sample_rate=16000,
            channels=1,
            codec="pcm",
            snapshot_sha256="s",
            snapshot_duration_s=1.0,
        ),
        video=VideoInput(
            path=video, sha256="v", size_bytes=1, duration_s=1.0, fps=25, width=16, height=16, frame_count=25, codec="h264"
        ),
        output=OutputFile(
            path=output,
            duration_s=1.0,
            planned_duration_s=1.0,
            audio_duration_s=1.0,
            audio_sample_rate=16000,
            audio_channels=1,
            fps=25,
            width=16,
            height=16,
            frame_count=25,
            crf=18,
        ),
        options=RenderOptions(),
        faces=FaceStats(detector="fake", frames_with_face=25, frames_without_face=0),
        device="fake",
        timings=StageTimings(),
    )


class RecordingObserver:
    """The service's side of the render port: what it would show."""

    def __init__(self) -> None:
        self.updates: list[RenderProgress] = []
        self.started: list[str] = []

    def progress(self, progress: RenderProgress) -> None:
        self.updates.append(progress)

    def video_started(self, record: JobRecord, video: VideoRecord, index: int, total: int) -> None:
        self.started.append(video.template)

    def tasks(self, tasks: list[Any]) -> None:
        raise AssertionError("only the cluster renderer reports tasks")


class Bench:
    """A service folder, a journal, a runner over the fake engine, and a job claimed by hand."""

    def __init__(self, root: Path, **service: Any) -> None:
        self.paths = PathsConfig(
            inbox=root / "inbox",
            outbox=root / "outbox",
            quarantine=root / "quarantine",
            work=root / "work",
            archive=root / "archive",
            state=root / "state",
        )
        self.config = HeygemdConfig.model_validate(
            {"paths": self.paths.model_dump(), "service": {"retry_first_delay_seconds": 1.0, **service}}
        )
        self.work = WorkArea(self.paths.work)
        self.dest = Destinations(self.paths, self.work)
        self.dest.ensure()
        self.journal = Journal(self.paths.state)
        policy = RetryPolicy(self.config.service.retry_attempts, 3600, 1.0, 1.0)
        self.lifecycle = Lifecycle(self.journal, policy, max_crashes=5)
        self.engine = FakeEngine()
        self.stop = threading.Event()
        self.observer = RecordingObserver()
        self.progress = self.observer.updates
        context = RenderContext(self.stop, threading.Event(), self.observer)
        renderer = LocalRenderer(lambda: self.engine)
        self.runner = JobRunner(self.config, renderer, self.engine.describe, self.lifecycle, self.dest, context)

    def claimed(self, name: str, files: dict[str, bytes]) -> JobRecord:
        record = JobRecord(job_id=f"job-{name}", name=name, phase=Phase.CLAIMED, results_dir="output-test")
        input_dir = self.work.input_dir(record.job_id)
        input_dir.mkdir(parents=True)
        for file_name, content in files.items():
            (input_dir / file_name).write_bytes(content)
        self.journal.save(record)
        return record


JOB = {"voice.wav": b"RIFF audio", "a.mp4": b"video a", "b.mp4": b"video b"}


@pytest.fixture
def bench(tmp_path: Path) -> Bench:
    return Bench(tmp_path)


def test_a_job_is_planned_rendered_and_published(bench):
    record = bench.claimed("campaign", JOB)
    step = bench.runner.work_on(record)
    assert step.kind is StepKind.DONE and record.phase is Phase.PUBLISHING
    assert bench.engine.rendered == ["a.mp4", "b.mp4"] and all(audio.closed for audio in bench.engine.audios)
    report = json.loads((bench.paths.outbox / "campaign" / "job.json").read_text())
    assert report["status"] == "ok" and [video["status"] for video in report["videos"]] == ["ok", "ok"]
    assert {item["name"] for item in report["inputs"]} == set(JOB) and all(item["sha256"] for item in report["inputs"])
    assert sorted(path.name for path in (bench.paths.archive / "campaign").iterdir()) == sorted(JOB)
    assert record.working_since is not None, "only done() clears it: the service finishes the job"
    assert bench.progress, "progress reaches the service"


def test_a_transient_failure_waits_and_the_next_turn_finishes_the_job(bench):
    bench.engine.faults["b.mp4"] = [MediaError("the disk is full", code=ErrorCode.DISK_FULL)]
    record = bench.claimed("flaky", JOB)
    step = bench.runner.work_on(record)
    assert step.kind is StepKind.RETRY and step.failure is not None and step.failure.code is ErrorCode.DISK_FULL
    assert step.retry_at is not None and record.retry.failures == 1 and record.working_since is None
    saved = bench.journal.records()[0]
    assert [video.status for video in saved.videos] == [VideoStatus.OK, VideoStatus.PENDING]
    assert saved.videos[1].failure is not None and saved.videos[1].failure.code is ErrorCode.DISK_FULL

    assert bench.runner.work_on(record).kind is StepKind.DONE
    assert bench.engine.rendered == ["a.mp4", "b.mp4"], "the finished video is not rendered again"
    assert record.retry.failures == 0, "a success ends the streak"
    assert json.loads((bench.paths.outbox / "flaky" / "job.json").read_text())["status"] == "ok"


def test_a_transient_failure_that_persists_fails_the_video_with_its_code(tmp_path):
    bench = Bench(tmp_path, retry_attempts=2)
    bench.engine.faults["b.mp4"] = [MediaError("killed", code=ErrorCode.PROCESS_KILLED) for _ in range(5)]
    record = bench.claimed("doomed", JOB)
    assert bench.runner.work_on(record).kind is StepKind.RETRY
    assert bench.runner.work_on(record).kind is StepKind.DONE
    report = json.loads((bench.paths.outbox / "doomed" / "job.json").read_text())
    assert report["status"] == "partial" and report["videos"][1]["code"] == "process.killed"
    error = json.loads((bench.paths.quarantine / "doomed" / "error.json").read_text())
    assert [(video["template"], video["code"]) for video in error["failed_videos"]] == [("b.mp4", "process.killed")]


def test_a_permanent_failure_fails_its_video_at_once(bench):
    bench.engine.faults["a.mp4"] = [EngineError("no face", code=ErrorCode.FACE_NOT_FOUND)]
    record = bench.claimed("no face", JOB)
    assert bench.runner.work_on(record).kind is StepKind.DONE
    assert [video.status for video in record.videos] == [VideoStatus.FAILED, VideoStatus.OK]
    assert record.retry.failures == 0


def test_an_input_changed_during_a_render_is_rendered_again_once_settled(tmp_path):
    bench = Bench(tmp_path)
    bench.config.watch.settle_seconds = 0.0
    record = bench.claimed("uploading", JOB)
    input_dir = bench.work.input_dir(record.job_id)

    def append_once(video: Path) -> None:
        if video.name == "a.mp4" and not bench.engine.rendered:
            with open(input_dir / "voice.wav", "ab") as handle:
                handle.write(b" more")

    bench.engine.during_render = append_once
    step = bench.runner.work_on(record)
    assert step.kind is StepKind.RETRY and step.failure is not None
    assert step.failure.code is ErrorCode.INPUT_CHANGED_WHILE_RENDERING
    assert record.changed_inputs is not None and record.changed_inputs.names == ["voice.wav"]
    assert all(video.status is VideoStatus.PENDING for video in record.videos), "every video used the audio"

    assert bench.runner.work_on(record).kind is StepKind.DONE
    report = json.loads((bench.paths.outbox / "uploading" / "job.json").read_text())
    voice = next(item for item in report["inputs"] if item["name"] == "voice.wav")
    assert voice["size_bytes"] == len(JOB["voice.wav"]) + len(b" more")
    assert record.input_changes == 1


def test_too_many_input_changes_quarantine_the_job(tmp_path):
    bench = Bench(tmp_path)
    bench.config.watch.max_input_changes = 0
    record = bench.claimed("never done", JOB)
    input_dir = bench.work.input_dir(record.job_id)
    bench.engine.during_render = lambda video: (input_dir / "b.mp4").write_bytes(b"a longer video b")
    assert bench.runner.work_on(record).kind is StepKind.DONE
    error = json.loads((bench.paths.quarantine / "never done" / "error.json").read_text())
    assert error["code"] == "input.changed_while_rendering" and '"b.mp4"' in error["reason"]
    assert (bench.paths.quarantine / "never done" / "b.mp4").read_bytes() == b"a longer video b"


def test_a_stop_leaves_the_job_to_resume(bench):
    bench.engine.during_render = lambda video: bench.stop.set()
    record = bench.claimed("interrupted", JOB)
    assert bench.runner.work_on(record).kind is StepKind.STOPPED
    assert record.phase is Phase.RENDERING and record.working_since is None
    assert [video.status for video in record.videos] == [VideoStatus.OK, VideoStatus.PENDING]


def test_a_bad_job_file_goes_to_quarantine_with_its_code(bench):
    record = bench.claimed("bad toml", {**JOB, "job.toml": b"render = [[[[\n"})
    assert bench.runner.work_on(record).kind is StepKind.DONE
    assert json.loads((bench.paths.quarantine / "bad toml" / "error.json").read_text())["code"] == "job_toml.invalid"
    assert bench.engine.rendered == []
