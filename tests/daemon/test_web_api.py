"""The JSON API end to end with a plain HTTP client: a real `heygemd web` beside a real `heygemd run`."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import Daemon, service_config
from prometheus_client.parser import text_string_to_metric_families
from webserver import WebProcess

pytestmark = pytest.mark.slow


@pytest.fixture
def service(daemon_factory) -> Iterator[tuple[Daemon, WebProcess]]:
    daemon = daemon_factory()
    daemon.write_config(service_config(daemon.root))
    daemon.start()
    daemon.wait_ready()
    web = WebProcess(daemon.root, daemon.config_path).start()
    try:
        yield daemon, web
    finally:
        web.stop()


def job_files(media: dict[str, Path], *templates: str) -> list[tuple[str, tuple[str, bytes, str]]]:
    files = [("audio", ("speech.wav", media["audio"].read_bytes(), "audio/wav"))]
    files += [("templates", (name, media["video"].read_bytes(), "video/mp4")) for name in templates]
    return files


def test_a_job_submitted_through_the_api_is_found_by_its_id_until_and_after_it_ends(service, media):
    daemon, web = service
    with httpx.Client(base_url=web.url, timeout=30) as client:
        answer = client.post("/api/jobs", files=job_files(media, "front.mp4", "side.mp4"), data={"name": "api job"})
        assert answer.status_code == 201, answer.text
        submitted = answer.json()
        assert submitted["id"] == "api job" and submitted["status_url"] == "/api/jobs/api%20job"
        assert (daemon.inbox / "api job" / "front.mp4").is_file()  # one folder in the inbox, as a share drop

        phases: list[str] = []

        def finished() -> dict | None:
            status = client.get(submitted["status_url"])
            assert status.status_code == 200, f"lost after {phases}: {status.text}"  # never lost between queries
            job = status.json()
            phases.append(job["phase"])
            return job if job["phase"] == "done" else None

        job = daemon.wait_for(finished, "the job to be done")
        assert job["status"] == "ok" and [video["status"] for video in job["videos"]] == ["ok", "ok"]
        assert phases[0] in ("queued", "arriving", "claimed", "rendering")
        video = job["videos"][0]
        assert video["template"] == "front.mp4" and video["output"]["name"] == "front.mp4"

        whole = client.get(video["output"]["url"])
        assert whole.status_code == 200 and whole.headers["content-type"] == "video/mp4"
        assert whole.content == (daemon.outbox / "api job" / "front.mp4").read_bytes()
        part = client.get(video["output"]["url"], headers={"Range": "bytes=10-19"})
        assert part.status_code == 206 and part.content == whole.content[10:20]
        assert part.headers["content-range"] == f"bytes 10-19/{len(whole.content)}"
        report = client.get(video["report"]["url"]).json()
        assert report["output"]["frame_count"] > 0

        archive = zipfile.ZipFile(io.BytesIO(client.get(job["zip_url"]).content))
        assert {"api job/front.mp4", "api job/side.mp4", "api job/front.json", "api job/job.json"} <= set(archive.namelist())
        assert archive.read("api job/front.mp4") == whole.content and archive.testzip() is None

        listed = client.get("/api/jobs").json()
        assert [item["id"] for item in listed["results"]] == ["api job"] and listed["active"] == []

        again = client.post("/api/jobs", files=job_files(media, "front.mp4"), data={"name": "api job"})
        assert again.status_code == 201 and again.json()["id"] == "api job (2)"  # a name is never shared
        assert client.get("/api/jobs/api%20job").json()["status"] == "ok"  # the first one is still the first one


def test_metrics_are_scraped_and_parsed(service, media):
    daemon, web = service
    with httpx.Client(base_url=web.url, timeout=30) as client:
        text = client.get("/metrics").text
    families = {family.name: family for family in text_string_to_metric_families(text)}
    up = families["heygemd_up"].samples
    assert [(sample.labels["service"], sample.value) for sample in up] == [("state", 1.0)]
    assert "heygemd_render_seconds" in families and families["heygemd_render_seconds"].type == "histogram"
    assert {"heygemd_jobs_finished", "heygemd_queue_length", "heygemd_paused", "heygemd_ready"} <= set(families)
