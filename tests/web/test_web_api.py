"""The JSON API end to end with a plain HTTP client: a real `heygemd web` beside a real `heygemd run`."""

from __future__ import annotations

import io
import socket
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from service_harness import Daemon
from webserver import SLOW_RENDER, WebProcess, make_long_job, serving

pytestmark = pytest.mark.slow


@pytest.fixture
def service(daemon_factory) -> Iterator[tuple[Daemon, WebProcess]]:
    with serving(daemon_factory) as running:
        yield running


def job_files(media: dict[str, Path], *templates: str) -> list[tuple[str, tuple[str, bytes, str]]]:
    files = [("audio", ("speech.wav", media["audio"].read_bytes(), "audio/wav"))]
    files += [("templates", (name, media["video"].read_bytes(), "video/mp4")) for name in templates]
    return files


@pytest.fixture(scope="module")
def long_job(tmp_path_factory) -> tuple[Path, Path]:
    return make_long_job(tmp_path_factory.mktemp("web-api-media"))


def test_the_api_submits_follows_cancels_and_serves_jobs_by_the_id_it_returned(service, media, long_job):
    daemon, web = service
    with httpx.Client(base_url=web.url, timeout=30) as client:
        # a job cancelled while it renders ends in quarantine with code cancelled, its inputs untouched
        audio, template = long_job
        files = [
            ("audio", ("speech.wav", audio.read_bytes(), "audio/wav")),
            ("templates", ("presenter.mp4", template.read_bytes(), "video/mp4")),
        ]
        long = client.post("/api/jobs", files=files, data={"name": "long", "job_toml": SLOW_RENDER}).json()
        daemon.wait_for(lambda: client.get(long["status_url"]).json()["phase"] == "rendering", "the long job to render")
        assert client.post(f"{long['status_url']}/cancel").status_code == 202
        cancelled = daemon.wait_for(
            lambda: (job := client.get(long["status_url"]).json())["phase"] == "done" and job, "the cancelled job to end"
        )
        assert cancelled["status"] == "failed" and cancelled["problem"]["code"] == "cancelled"
        assert cancelled["problem"]["summary"] == "The job was cancelled."
        assert (daemon.quarantine / "long" / "speech.wav").read_bytes() == audio.read_bytes()
        assert (daemon.quarantine / "long" / "presenter.mp4").read_bytes() == template.read_bytes()

        # a job followed from submit to its results, never lost between two queries
        answer = client.post("/api/jobs", files=job_files(media, "front.mp4", "side.mp4"), data={"name": "api job"})
        assert answer.status_code == 201, answer.text
        submitted = answer.json()
        assert submitted["id"] == "api job" and submitted["status_url"] == "/api/jobs/api%20job"

        phases: list[str] = []

        def finished() -> dict | None:
            status = client.get(submitted["status_url"])
            assert status.status_code == 200, f"lost after {phases}: {status.text}"
            job = status.json()
            phases.append(job["phase"])
            return job if job["phase"] == "done" else None

        job = daemon.wait_for(finished, "the job to be done")
        assert job["status"] == "ok" and [video["status"] for video in job["videos"]] == ["ok", "ok"]
        assert phases[0] in ("queued", "arriving", "claimed", "rendering")
        video = job["videos"][0]
        assert video["template"] == "front.mp4" and video["output"]["name"] == "front.mp4"
        assert video["thumbnail"]["name"] == "front.jpg"

        whole = client.get(video["output"]["url"])
        assert whole.status_code == 200 and whole.headers["content-type"] == "video/mp4"
        assert whole.content == (daemon.outbox / "api job" / "front.mp4").read_bytes()
        part = client.get(video["output"]["url"], headers={"Range": "bytes=10-19"})
        assert part.status_code == 206 and part.content == whole.content[10:20]
        assert part.headers["content-range"] == f"bytes 10-19/{len(whole.content)}"
        report = client.get(video["report"]["url"]).json()
        assert report["output"]["frame_count"] > 0

        archive = zipfile.ZipFile(io.BytesIO(client.get(job["zip_url"]).content))
        assert {
            "api job/front.mp4",
            "api job/side.mp4",
            "api job/front.json",
            "api job/job.json",
            "api job/index.html",
        } <= set(archive.namelist())
        assert archive.read("api job/front.mp4") == whole.content and archive.testzip() is None

        listed = client.get("/api/jobs").json()
        assert [item["id"] for item in listed["results"]] == ["api job", "long"] and listed["active"] == []

        again = client.post("/api/jobs", files=job_files(media, "front.mp4"), data={"name": "api job"})
        assert again.status_code == 201 and again.json()["id"] == "api job (2)"  # a name is never shared
        assert client.get("/api/jobs/api%20job").json()["status"] == "ok"  # the first one is still the first one

        # the service's counters, scraped and parsed
        daemon.wait_for(lambda: client.get("/api/jobs/api%20job%20(2)").json()["phase"] == "done", "the third job")
        families = {family.name: family for family in text_string_to_metric_families(client.get("/metrics").text)}
    jobs = {
        (sample.labels["status"], sample.labels["code"]): sample.value
        for sample in families["heygemd_jobs_finished"].samples
    }
    assert jobs == {("ok", ""): 2, ("failed", "cancelled"): 1}
    # the service's name (service.name, else the host's), never its state folder's ("state")
    assert [(sample.labels["service"], sample.value) for sample in families["heygemd_up"].samples] == [
        (socket.gethostname(), 1.0)
    ]
    produced = families["heygemd_video_seconds_produced"].samples[0].value
    assert produced == pytest.approx(3 * 1.2, abs=0.2)
    render = {
        sample.name: sample.value for sample in families["heygemd_render_seconds"].samples if not sample.labels.get("le")
    }
    assert render["heygemd_render_seconds_count"] == 3
