"""The page and the API with names that are not UTF-8: shown escaped (\\xNN), never an error.

A real `heygemd run` and a real `heygemd web`; the job and its template are named with bytes, as a
Latin-1 client writes them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from service_harness import drop_job
from webserver import serving

pytestmark = pytest.mark.slow

ODD_JOB = os.fsdecode(b"caf\xe9")
ODD_TEMPLATE = os.fsdecode(b"face\xff.mp4")


def texts(value: Any) -> set[str]:
    """Every string in a JSON answer (keys and values)."""
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return {text for key, item in value.items() for text in texts(key) | texts(item)}
    if isinstance(value, list):
        return {text for item in value for text in texts(item)}
    return set()


@pytest.fixture
def service(daemon_factory) -> Iterator[Any]:
    with serving(daemon_factory) as running:
        yield running


def test_odd_names_are_shown_escaped_by_the_page_and_the_api(service, media):
    daemon, web = service
    drop_job(daemon.inbox, ODD_JOB, {"speech.wav": media["audio"], ODD_TEMPLATE: media["video"]})
    daemon.wait_for(lambda: (daemon.outbox / ODD_JOB / "job.json").exists(), "the odd-named job in the outbox")
    arriving = drop_job(daemon.inbox, os.fsdecode(b"arriv\xe9e"), {"speech.wav": media["audio"]})
    (arriving / os.fsdecode(b".upload-\xff.mp4.tmp")).write_bytes(b"partial")  # waits: an upload in progress
    with httpx.Client(base_url=web.url, timeout=30) as client:
        for path in ("/api/jobs", "/", f"/jobs/{ODD_JOB.encode('utf-8', 'surrogateescape').hex()}"):
            answer = client.get(path)
            assert answer.status_code in (200, 404), (path, answer.status_code, answer.text[:300])
        daemon.wait_for(lambda: "arriv\\xe9e" in texts(client.get("/api/jobs").json()), "the arriving job listed")
        status = client.get("/api/status")
        assert status.status_code == 200, status.text
        listed = client.get("/api/jobs")
        assert listed.status_code == 200, listed.text
        assert "caf\\xe9" in texts(listed.json())
        page = client.get("/")
        assert page.status_code == 200 and "caf\\xe9" in page.text, page.text[:500]
        # The gallery's and the API's links to the odd-named job's files carry its real bytes, and load.
        gallery = client.get("/api/results").json()["items"]
        links = [link for item in gallery for link in (item["video"], item["thumbnail"]) if link]
        listed_job = client.get("/api/jobs/caf%5Cxe9").json()  # the shown form, as the page links it
        links += listed_job["files"]
        assert links, (gallery, listed_job)
        for link in links:
            answer = client.get(link["url"])
            assert answer.status_code == 200, (link, answer.status_code, answer.text[:300])
    assert daemon.stop() == 0
