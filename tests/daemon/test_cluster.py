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
from conftest import Daemon, drop_job, service_config

pytestmark = pytest.mark.slow

HEARTBEAT_SECONDS = 2.0


class Worker:
    """`python -m heygemd worker` with the coordinator's config, logs to a file."""

    def __init__(self, root: Path, config: Path, index: int) -> None:
        self.log_path = root / f"worker{index}.log"
        env = {key: value for key, value in os.environ.items() if not key.startswith("HEYGEMD_")}
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen([sys.executable, "-m", "heygemd", "worker", "--config", str(config)],
                                        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
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
    return service_config(root, cluster={"broker_url": broker_url, "heartbeat_seconds": HEARTBEAT_SECONDS,
                                         "coordinator_lock_seconds": 3.0, "poll_seconds": 0.2},
                          log={"format": "json", "level": "info"})


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
            daemon.wait_for(lambda worker=worker: any(line.get("event") == "ready" for line in worker.log_lines()),
                            "the worker to be ready")
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
    daemon.wait_for(lambda: not list(daemon.work.iterdir()), "the job's work folder to be removed")
