"""Two embedded `heygemd run` processes (own state folders) on one inbox: a claim is one rename, so each job is
claimed by one of them; a killed service's job waits for that service's restart (its journal), never for the
other one, and nothing is published twice. Several GPUs are cluster mode (test_cluster.py); this is the
embedded mode's crash safety when the inbox is shared anyway."""

from __future__ import annotations

import json
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from service_harness import WAIT_SECONDS, Daemon, service_config

pytestmark = pytest.mark.slow


class SharedDaemon(Daemon):
    """A service with its own state folder on the shared inbox, work, outbox, quarantine, archive."""

    def __init__(self, root: Path, shared: Path) -> None:
        super().__init__(root)
        self.shared = shared

    inbox = property(lambda self: self.shared / "inbox")
    outbox = property(lambda self: self.shared / "outbox")
    quarantine = property(lambda self: self.shared / "quarantine")
    archive = property(lambda self: self.shared / "archive")
    work = property(lambda self: self.shared / "work")

    def configure(self) -> SharedDaemon:
        paths = {name: str(self.shared / name) for name in ("inbox", "outbox", "quarantine", "archive", "work")}
        self.write_config(
            service_config(
                self.root,
                paths={**paths, "state": "state"},
                service={"stop_grace_seconds": 5.0},
                log={"format": "json", "level": "info"},
            )
        )
        return self

    def journal(self) -> list[dict[str, Any]]:
        return _read_json_files(self.state / "jobs")

    def history(self) -> list[dict[str, Any]]:
        path = self.state / "history.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


@pytest.fixture
def shared_services(tmp_path: Path) -> Iterator[Callable[[int], list[SharedDaemon]]]:
    started: list[SharedDaemon] = []

    def start(count: int) -> list[SharedDaemon]:
        services = [SharedDaemon(tmp_path / f"gpu{index}", tmp_path / "share").configure() for index in range(count)]
        for service in services:
            service.start()
            started.append(service)
        for service in services:
            service.wait_ready()
        return services

    yield start
    for service in started:
        if service.process is not None and service.process.poll() is None:
            service.process.send_signal(signal.SIGCONT)
            service.process.kill()
            service.process.wait(timeout=30)


@pytest.fixture(scope="module")
def tiny_media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from media_factory import make_audio, make_video

    folder = tmp_path_factory.mktemp("multi-media")
    return {
        "speech.wav": make_audio(folder / "speech.wav", seconds=0.4),
        "presenter.mp4": make_video(folder / "presenter.mp4", seconds=0.4, size=(96, 96)),
    }


def _read_json_files(folder: Path) -> list[dict[str, Any]]:
    records = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            records.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            pass  # being replaced atomically: read again on the next poll
    return records


def visible(folder: Path) -> list[str]:
    return sorted(entry.name for entry in folder.iterdir()) if folder.exists() else []


def drop_jobs(inbox: Path, names: list[str], media: dict[str, Path]) -> None:
    for name in names:
        staging = inbox.parent / f".staging-{name}"
        staging.mkdir()
        for file_name, source in media.items():
            shutil.copyfile(source, staging / file_name)
        staging.rename(inbox / name)  # whole, like a Syncthing folder; readiness still waits for it to settle


def wait_until(condition: Callable[[], Any], what: str, services: list[SharedDaemon]) -> Any:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.1)
    logs = "\n\n".join(f"--- {service.root.name}\n{service.tail(25)}" for service in services)
    raise AssertionError(f"timed out waiting for {what}:\n{logs}")


def stop_while_rendering(services: list[SharedDaemon]) -> tuple[SharedDaemon, dict[str, Any]]:
    """SIGSTOP a service caught with a job in the rendering phase; its journal record is then certain."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        for service in services:
            if not any(record["phase"] == "rendering" for record in service.journal()):
                continue
            service.send(signal.SIGSTOP)
            rendering = [record for record in service.journal() if record["phase"] == "rendering"]
            if rendering:
                return service, rendering[0]
            service.send(signal.SIGCONT)  # it finished in between: try again
        time.sleep(0.02)
    raise AssertionError("no service was ever seen rendering a job")


def assert_each_job_published_once(outbox: Path, names: list[str]) -> dict[str, dict[str, Any]]:
    assert visible(outbox) == sorted(names), "every job exactly once, no 'name (2)' copies, nothing hidden"
    reports = {}
    for name in names:
        assert visible(outbox / name) == ["index.html", "job.json", "presenter.jpg", "presenter.json", "presenter.mp4"]
        reports[name] = json.loads((outbox / name / "job.json").read_text())
        assert reports[name]["status"] == "ok" and reports[name]["job"] == name
    return reports


def test_a_killed_services_job_is_finished_by_its_own_restart_and_published_once(shared_services, tiny_media):
    services = shared_services(2)
    share = services[0].shared
    names = [f"job-{number:02d}" for number in range(8)]
    drop_jobs(services[0].inbox, names, tiny_media)

    victim, killed_job = stop_while_rendering(services)
    victim.kill9()
    [survivor] = [service for service in services if service is not victim]

    others = [name for name in names if name != killed_job["name"]]
    wait_until(  # published, and finished (its work folder removed after the outbox rename)
        lambda: (
            len(visible(share / "outbox")) >= len(others)
            and visible(share / "inbox") == []
            and visible(share / "work") == [killed_job["job_id"]]
        ),
        "every other job to be published and finished",
        [survivor],
    )
    assert killed_job["name"] not in visible(share / "outbox"), "nobody else touches a claimed job"
    assert [record["name"] for record in victim.journal()] == [killed_job["name"]]  # what it held when it died

    victim.start()
    victim.wait_for(
        lambda: victim.journal() == [] and visible(share / "work") == [], "the restarted service to finish its job"
    )
    reports = assert_each_job_published_once(share / "outbox", names)
    assert visible(share / "archive") == sorted(names) and visible(share / "quarantine") == []
    assert "finished_by" not in reports[killed_job["name"]] and reports[killed_job["name"]]["host"]
    assert victim.logged("the service stopped unexpectedly while working on this job")
    assert sorted(entry["job"] for service in services for entry in service.history()) == names
    assert killed_job["name"] in [entry["job"] for entry in victim.history()]
    for service in services:
        assert service.stop() == 0
