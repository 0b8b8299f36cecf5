"""Cluster visibility with real processes: workers publish themselves in a real redis-server, the coordinator
(`heygemd run`, without any model files) shows them in status.json and `heygemd status`, and job.json names
the worker that rendered each video. A job.toml's model is checked against the online workers' models, and its
tasks go only to a worker running it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from service_harness import Daemon, drop_job, toml_text
from test_cluster import Worker, cluster_config
from webserver import SLOW_RENDER, WebProcess, make_long_job

pytestmark = pytest.mark.slow


def _status(daemon: Daemon) -> dict[str, Any]:
    try:
        return json.loads((daemon.state / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def _status_text(daemon: Daemon) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "heygemd", "status", "--config", str(daemon.config_path)],
        cwd=daemon.root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.stdout + done.stderr


def _online(daemon: Daemon) -> list[dict[str, Any]]:
    return [worker for worker in _status(daemon).get("workers", []) if worker["online"]]


def test_a_coordinator_without_model_files_shows_its_workers_and_names_them_in_the_report(
    tmp_path: Path, media, redis_server
) -> None:
    redis_server.flush()
    daemon = Daemon(tmp_path / "service")
    daemon.root.mkdir(parents=True)
    coordinator = cluster_config(daemon.root, redis_server.url)
    coordinator["engine"] = {"dry_run": False, "device": "cpu", "checkpoint": str(tmp_path / "absent.pth")}
    daemon.write_config(coordinator)
    worker_config = daemon.root / "worker.toml"
    worker_config.write_text(toml_text(cluster_config(daemon.root, redis_server.url)))  # dry run: no model either
    muse_config = daemon.root / "muse-worker.toml"  # a dry-run worker that names MuseTalk (the coordinator: Wav2Lip)
    muse = cluster_config(daemon.root, redis_server.url)
    muse["engine"]["model"] = "musetalk"
    muse_config.write_text(toml_text(muse))
    workers: list[Worker] = []
    web: WebProcess | None = None
    try:
        daemon.start()
        daemon.wait_ready()  # no weights, yet it runs: it loads no model in cluster mode
        assert daemon.process is not None and daemon.process.poll() is None
        assert _status(daemon)["cluster"] is True and _status(daemon)["workers"] == []
        assert "no worker online" in _status_text(daemon)
        web = WebProcess(daemon.root, daemon.config_path).start()
        page = httpx.get(f"{web.url}/", timeout=30).text
        assert "state-no-worker-online" in page and 'data-workers="0"' in page and "No worker online" in page

        # Asks for MuseTalk while no worker is online: accepted, to wait for one (nothing to check it against).
        drop_job(
            daemon.inbox,
            "front",
            {"voice.wav": media["audio"], "front.mp4": media["video"], "job.toml": b'model = "musetalk"\n'},
        )
        daemon.wait_for(lambda: _status(daemon).get("current"), "the job to be taken")
        summary = _status_text(daemon)
        assert "no worker online" in summary and "on queued" not in summary, summary
        service = httpx.get(f"{web.url}/api/status", timeout=30).json()["services"][0]
        assert service["state"] == "no worker online" and service["workers"] == []

        # Wav2Lip's worker first: the report must name the engine of the worker that rendered, not the first listed.
        workers = [Worker(daemon.root, worker_config, 0), Worker(daemon.root, muse_config, 1)]
        daemon.wait_for(lambda: len(_online(daemon)) == 2, "two workers online in status.json")
        for worker in _online(daemon):
            assert worker["gpu"] == "CPU" and worker["model"] == "dry run (no model)" and worker["host"]
            assert worker["last_heartbeat"]

        out = daemon.wait_outbox("front")
        report = json.loads((out / "job.json").read_text())
        assert report["status"] == "ok", report
        rendered_by = report["videos"][0]["worker"]
        assert rendered_by["gpu"] == "CPU" and rendered_by["host"]
        assert rendered_by["name"] in {worker["name"] for worker in _status(daemon)["workers"]}
        assert report["engine"]["dry_run"] is True  # the workers' engine, as they published it
        assert report["engine"]["model"] == "musetalk"
        muse_worker = next(w["name"] for w in _status(daemon)["workers"] if w["engine"]["model"] == "musetalk")
        templates = {name: media["video"] for name in ("front.mp4", "side.mp4", "back.mp4")}
        drop_job(daemon.inbox, "muse", {"voice.wav": media["audio"], **templates, "job.toml": b'model = "musetalk"\n'})
        muse = json.loads((daemon.wait_outbox("muse") / "job.json").read_text())  # both workers idle: one may take them
        assert [video["worker"]["name"] for video in muse["videos"]] == [muse_worker] * 3, "only MuseTalk's queue"

        daemon.wait_for(lambda: not _status(daemon).get("current"), "the job to end")
        text = daemon.wait_for(
            lambda: (lambda t: t if t.count("worker     ") == 2 and "idle" in t else None)(_status_text(daemon)),
            "`heygemd status` to list both idle workers",
        )
        assert "no worker online" not in text
        page = httpx.get(f"{web.url}/", timeout=30).text
        assert page.count('<tr data-worker="') == 2 and 'data-workers="2"' in page and "No worker online" not in page
        assert "state-idle" in page and page.count("dry run (no model)</td>") == 2
        chinese = httpx.get(f"{web.url}/?lang=zh-CN", timeout=30).text
        assert "渲染节点" in chinese and chinese.count(">在线<") == 2

        workers[1].process.kill()  # the MuseTalk worker
        workers[1].process.wait(timeout=30)
        daemon.wait_for(lambda: len(_online(daemon)) == 1, "the killed worker to show as lost")
        assert [worker["online"] for worker in _status(daemon)["workers"]] == [True, False]
        assert "LOST" in _status_text(daemon)
        drop_job(
            daemon.inbox,
            "wants muse",
            {"voice.wav": media["audio"], "front.mp4": media["video"], "job.toml": b'model = "musetalk"\n'},
        )
        error = daemon.wait_quarantine("wants muse")  # the MuseTalk worker is lost: no online worker runs it
        assert error["code"] == "job.model_unavailable"
        assert 'no online worker runs it: the online workers run "wav2lip"' in error["reason"], error
        page = httpx.get(f"{web.url}/", timeout=30).text
        assert 'data-workers="1"' in page and 'class="lost"' in page

        (tmp_path / "long-media").mkdir()
        audio, template = make_long_job(tmp_path / "long-media")
        drop_job(daemon.inbox, "long", {"voice.wav": audio, "presenter.mp4": template, "job.toml": SLOW_RENDER.encode()})
        busy = daemon.wait_for(
            lambda: next((w for w in _online(daemon) if w["task"] and w["task"]["fps"] and w["task"]["frames_done"]), None),
            "the remaining worker to publish its task's frames, fps and time left",
        )
        assert busy["task"]["job"] == "long" and busy["task"]["video"] == "presenter.mp4"
        assert busy["task"]["frames_total"] >= busy["task"]["frames_done"] and busy["task"]["eta_seconds"] is not None
        assert "long: presenter.mp4" in _status_text(daemon)
        page = httpx.get(f"{web.url}/", timeout=30).text
        assert " frames" in page and " fps" in page and " left" in page
        video = daemon.wait_for(
            lambda: (lambda v: v if v["status"] == "rendering" else None)(
                httpx.get(f"{web.url}/api/jobs/long", timeout=30).json()["videos"][0]
            ),
            "the job's video list to say rendering, as the task table does",
        )
        assert video["progress"]["frames_total"] and video["progress"]["percent"] is not None
        subprocess.run(
            [sys.executable, "-m", "heygemd", "cancel", "long", "--config", str(daemon.config_path)],
            cwd=daemon.root,
            check=True,
            timeout=120,
        )
        daemon.wait_quarantine("long")
        daemon.wait_for(lambda: _online(daemon) and _online(daemon)[0]["task"] is None, "the worker to be idle again")
    finally:
        if web is not None:
            web.stop()
        for worker in workers:
            worker.stop()
        if daemon.process is not None and daemon.process.poll() is None:
            daemon.process.kill()
            daemon.process.wait(timeout=30)
