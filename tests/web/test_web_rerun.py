"""Re-run from the page and the API, on a real `heygemd run` beside a real `heygemd web`: a quarantined job's inputs
(from quarantine) and a finished job's (from the archive) go back to the inbox as a new job with the same options;
a job whose inputs are gone is refused with a reason."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import httpx
import pytest
from service_harness import Daemon, drop_job
from webserver import WebProcess, serving

pytestmark = pytest.mark.slow

OPTIONS = '[render]\nloop = "freeze"\ncrf = 30\n'
SECOND_OPTIONS = '[render]\nloop = "pingpong"\ncrf = 28\n'


@pytest.fixture
def service(daemon_factory) -> Iterator[tuple[Daemon, WebProcess]]:
    with serving(daemon_factory) as running:
        yield running


def test_a_quarantined_and_a_finished_job_run_again_with_their_options(service, media):
    daemon, web = service
    drop_job(
        daemon.inbox, "broken", {"voice.wav": media["audio"], "front.mp4": b"not a video", "job.toml": OPTIONS.encode()}
    )
    drop_job(daemon.inbox, "fine", {"voice.wav": media["audio"], "front.mp4": media["video"], "job.toml": OPTIONS.encode()})
    daemon.wait_quarantine("broken")
    daemon.wait_outbox("fine")
    daemon.wait_for((daemon.archive / "fine" / "job.toml").exists, "the finished job's inputs to be archived")
    with httpx.Client(base_url=web.url, timeout=30) as client:
        again = client.post("/api/jobs/broken/rerun")
        assert again.status_code == 201, again.text
        assert again.json()["id"] == "broken (2)"
        daemon.wait_quarantine("broken (2)")  # the same inputs fail the same way
        for name in ("voice.wav", "front.mp4", "job.toml"):
            assert (daemon.quarantine / "broken (2)" / name).read_bytes() == (
                daemon.quarantine / "broken" / name
            ).read_bytes()

        page = client.get("/jobs/fine").text
        assert 'id="rerun"' in page
        csrf = client.cookies["heygemd_csrf"]
        moved = client.post(
            "/jobs/fine/rerun", data={"csrf_token": csrf}, headers={"Origin": web.url}, follow_redirects=False
        )
        assert moved.status_code == 303 and moved.headers["location"] == "/jobs/fine%20%282%29", moved.text
        out = daemon.wait_outbox("fine (2)")
        assert (out / "front.mp4").exists()
        archived = daemon.archive / "fine (2)" / "job.toml"
        daemon.wait_for(archived.exists, "the re-run's inputs to be archived")
        assert archived.read_text() == OPTIONS  # the same options
        assert (daemon.archive / "fine" / "voice.wav").exists()  # copied, never moved

        # "fine" dropped again is archived as "fine (3)": its re-run takes its own inputs, not the first job's
        second = {"voice.wav": media["audio"], "front.mp4": media["video"], "job.toml": SECOND_OPTIONS.encode()}
        drop_job(daemon.inbox, "fine", second)
        daemon.wait_for((daemon.archive / "fine (3)" / "job.toml").exists, "the second fine to be archived")
        third = httpx.post(f"{web.url}/api/jobs/fine/rerun", timeout=30)  # an API client: no page cookie
        assert third.status_code == 201, third.text
        rerun_toml = daemon.archive / third.json()["id"] / "job.toml"
        daemon.wait_for(rerun_toml.exists, "the second fine's re-run to be archived")
        assert rerun_toml.read_text() == SECOND_OPTIONS

        shutil.rmtree(daemon.archive / "fine (3)")  # the archive cleared: nothing left to run again
        gone = httpx.post(f"{web.url}/api/jobs/fine/rerun", timeout=30)  # an API client: no page cookie
        assert gone.status_code == 409 and "no longer there" in gone.text
        assert httpx.post(f"{web.url}/api/jobs/nothing/rerun", timeout=30).status_code == 404
