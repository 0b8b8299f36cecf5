"""Cluster mode with real processes and a real broker: `heygemd worker` processes (dry run) render the videos a
real coordinator (`heygemd run` with cluster.broker_url) enqueues on a real redis-server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from service_harness import Daemon, drop_job, service_config

pytestmark = pytest.mark.slow

HEARTBEAT_SECONDS = 2.0


class Worker:
    """`python -m heygemd worker` with the coordinator's config, logs to a file."""

    def __init__(self, root: Path, config: Path, index: int) -> None:
        self.log_path = root / f"worker{index}.log"
        env = {key: value for key, value in os.environ.items() if not key.startswith("HEYGEMD_")}
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "heygemd", "worker", "--config", str(config)],
            cwd=root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for raw in self.log_path.read_text(errors="replace").splitlines():
            try:
                lines.append(json.loads(raw))
            except ValueError:
                pass
        return lines

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


def cluster_config(root: Path, broker_url: str) -> dict[str, dict[str, Any]]:
    return service_config(
        root,
        cluster={
            "broker_url": broker_url,
            "heartbeat_seconds": HEARTBEAT_SECONDS,
            "coordinator_lock_seconds": 3.0,
            "poll_seconds": 0.2,
        },
        log={"format": "json", "level": "info"},
    )


@pytest.fixture
def cluster(tmp_path: Path, redis_server: Any) -> Iterator[Callable[[int], tuple[Daemon, list[Worker]]]]:
    redis_server.flush()
    made: list[Any] = []

    def start(workers: int) -> tuple[Daemon, list[Worker]]:
        daemon = Daemon(tmp_path / "service")
        daemon.root.mkdir(parents=True, exist_ok=True)
        daemon.write_config(cluster_config(daemon.root, redis_server.url))
        started = [Worker(daemon.root, daemon.config_path, index) for index in range(workers)]
        made.extend(started)
        made.append(daemon)
        daemon.start()
        daemon.wait_ready()
        for worker in started:
            daemon.wait_for(
                lambda worker=worker: any(line.get("event") == "ready" for line in worker.log_lines()),
                "the worker to be ready",
            )
        return daemon, started

    yield start
    for item in made:
        if isinstance(item, Worker):
            item.stop()
        elif item.process is not None and item.process.poll() is None:
            item.process.kill()
            item.process.wait(timeout=30)


def test_a_jobs_videos_spread_over_workers_one_at_a_time_each(cluster, media, tmp_path: Path) -> None:
    daemon, workers = cluster(3)
    templates = {f"t{index}.mp4": media["video"] for index in range(6)}
    drop_job(daemon.inbox, "spread", {"voice.wav": media["audio"], **templates})
    out = daemon.wait_outbox("spread")
    report = json.loads((out / "job.json").read_text())
    assert report["status"] == "ok" and len(report["videos"]) == 6
    done = [line for line in daemon.logged("video done")]
    assert len(done) == 6
    assert len({line["worker"] for line in done}) >= 2
    for worker in workers:  # each worker: rendering, then done, never two at once
        events = [line["event"] for line in worker.log_lines() if line.get("event") in ("rendering", "video done")]
        assert all(first == "rendering" and second == "video done" for first, second in zip(events[::2], events[1::2]))
        assert len(events) % 2 == 0
    assert sum(len(worker.log_lines()) for worker in workers) >= 12
    for worker in workers:  # the render report goes to the task store, never whole into the worker's log
        assert "'report': {" not in worker.log_path.read_text(errors="replace")
    daemon.wait_for(lambda: not list(daemon.work.iterdir()), "the job's work folder to be removed")


def _rendering_now(worker: Worker) -> bool:
    events = [
        line["event"] for line in worker.log_lines() if line.get("event") in ("rendering", "video done", "video failed")
    ]
    return bool(events) and events[-1] == "rendering"


def test_thirty_videos_survive_a_killed_worker_a_killed_coordinator_and_a_redis_restart(
    cluster, media, redis_server, tmp_path: Path
) -> None:
    from media_factory import make_audio

    audio = make_audio(tmp_path / "long.wav", seconds=8.0)  # a dry-run video lasts as long as the audio
    daemon, workers = cluster(3)
    names = [f"job{index}" for index in range(5)]
    for name in names:
        drop_job(daemon.inbox, name, {"voice.wav": audio, **{f"t{index}.mp4": media["video"] for index in range(6)}})

    victim = daemon.wait_for(
        lambda: next((worker for worker in workers if _rendering_now(worker)), None), "a worker in the middle of a video"
    )
    victim.process.kill()  # kill -9
    victim.process.wait(timeout=30)

    daemon.wait_for(lambda: len(daemon.logged("video done")) >= 8, "eight videos done")
    daemon.kill9()
    daemon.start()  # as systemd would restart it
    daemon.wait_for(lambda: len(daemon.logged("ready")) >= 2, "the coordinator back")

    daemon.wait_for(lambda: len(daemon.logged("video done")) >= 16, "sixteen videos done")
    redis_server.restart()

    for name in names:
        out = daemon.wait_outbox(name)
        report = json.loads((out / "job.json").read_text())
        assert report["status"] == "ok", report
        assert sorted(path.name for path in out.glob("*.mp4")) == [f"t{index}.mp4" for index in range(6)]
        for video in out.glob("*.mp4"):
            assert _duration(video) == pytest.approx(8.0, abs=0.3)
        daemon.wait_for((daemon.archive / name / "voice.wav").exists, f"{name} to be archived")  # after its outbox
    assert sorted(path.name for path in daemon.outbox.iterdir() if path.is_dir()) == names  # each job once
    history = [json.loads(line) for line in (daemon.state / "history.jsonl").read_text().splitlines() if line.strip()]
    assert sorted(entry["job"] for entry in history) == names
    daemon.wait_for(lambda: not list(daemon.work.iterdir()), "nothing left in work/")
    assert daemon.logged("render task lost; the video is enqueued again")


def _duration(path: Path) -> float:
    from heygemd.engine.probe import probe_audio, probe_video

    assert probe_video(path).frame_count > 0  # its picture decodes (playable), its sound too
    return probe_audio(path).duration


def test_a_second_coordinator_stands_by_and_takes_over_when_the_first_stops(cluster, media, tmp_path: Path, redis_server):
    first, workers = cluster(1)
    second = Daemon(tmp_path / "second")  # its own state folder, the same inbox, work area and queue
    second.root.mkdir()
    config = cluster_config(second.root, redis_server.url)
    config["paths"] = {name: str(getattr(first, name)) for name in ("inbox", "outbox", "quarantine", "work", "archive")}
    second.write_config(config)
    second.start()
    try:
        second.wait_for(lambda: second.logged("another coordinator serves this queue; standing by"), "the standby")
        assert not second.logged("coordinator of the queue")
        drop_job(first.inbox, "served by the first", {"a.wav": media["audio"], "v.mp4": media["video"]})
        first.wait_outbox("served by the first")
        assert first.stop() == 0

        second.wait_for(lambda: second.logged("coordinator of the queue"), "the standby to take over")
        drop_job(first.inbox, "served by the second", {"a.wav": media["audio"], "v.mp4": media["video"]})
        second.wait_for(lambda: (first.outbox / "served by the second" / "job.json").exists(), "the second's job")
        claims = [line["job"] for line in second.logged("job claimed")]
        assert claims == ["served by the second"]
    finally:
        if second.process is not None and second.process.poll() is None:
            second.process.kill()
            second.process.wait(timeout=30)


def test_a_cancel_reaches_the_worker_and_stops_its_render(cluster, tmp_path: Path):
    from media_factory import make_audio, make_video

    daemon, workers = cluster(1)
    long_audio = make_audio(tmp_path / "long.wav", seconds=60.0)
    template = make_video(tmp_path / "big.mp4", seconds=1.0, fps="25", size=(640, 360))
    drop_job(daemon.inbox, "too long", {"voice.wav": long_audio, "v.mp4": template})
    worker = workers[0]
    daemon.wait_for(lambda: any(line.get("event") == "rendering" for line in worker.log_lines()), "the render")
    subprocess.run(
        [sys.executable, "-m", "heygemd", "cancel", "too long", "--config", str(daemon.config_path)],
        cwd=daemon.root,
        check=True,
        capture_output=True,
        timeout=60,
    )
    error = daemon.wait_quarantine("too long")
    assert error["code"] == "cancelled"
    daemon.wait_for(
        lambda: any(line.get("event") == "render cancelled" for line in worker.log_lines()), "the worker to stop its render"
    )
    assert not any(line.get("event") == "video done" for line in worker.log_lines())
