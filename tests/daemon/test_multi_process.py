"""Several `heygemd run` processes on one inbox (one per GPU): every job is claimed by one process, a killed
or stalled holder's job is finished by another once its lease expires, and nothing is published twice."""

from __future__ import annotations

import json
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import WAIT_SECONDS, Daemon, service_config

pytestmark = pytest.mark.slow

LEASE_SECONDS = 3.0


class SharedDaemon(Daemon):
    """A service with its own state folder (like heygemd@N) on the shared inbox, work, outbox, quarantine, archive."""

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
        self.write_config(service_config(
            self.root, paths={**paths, "state": "state"},
            service={"lease_seconds": LEASE_SECONDS, "stop_grace_seconds": 5.0},
            log={"format": "json", "level": "info"},
        ))
        return self

    @property
    def owner(self) -> str:
        return self.logged("heygemd starting")[-1]["owner"]

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
    return {"speech.wav": make_audio(folder / "speech.wav", seconds=0.4),
            "presenter.mp4": make_video(folder / "presenter.mp4", seconds=0.4, size=(96, 96))}


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


def test_three_services_share_one_inbox_and_finish_a_killed_services_job(shared_services, tiny_media):
    services = shared_services(3)
    share = services[0].shared
    names = [f"job-{number:02d}" for number in range(30)]
    drop_jobs(services[0].inbox, names, tiny_media)

    victim, killed_job = stop_while_rendering(services)
    victim_owner = victim.owner
    victim.kill9()
    survivors = [service for service in services if service is not victim]

    wait_until(lambda: len(visible(share / "outbox")) >= len(names) and visible(share / "work") == []
               and visible(share / "inbox") == [], "all jobs to be published and the work area emptied", survivors)
    reports = assert_each_job_published_once(share / "outbox", names)
    assert visible(share / "archive") == sorted(names) and visible(share / "quarantine") == []

    # The killed service's job was finished by another, which says so in job.json and in its log.
    report = reports[killed_job["name"]]
    assert report["taken_over_from"] == [victim_owner]
    assert report["finished_by"] in {service.owner for service in survivors}
    taken = [line for service in survivors
             for line in service.logged("job taken over from a service that stopped renewing its lease")]
    assert any(line["job"] == killed_job["name"] and line["previous_owner"] == victim_owner for line in taken)

    # Every job is in exactly one service's history; the killed one only in its finisher's.
    finished = [(service, entry["job"]) for service in services for entry in service.history()]
    assert sorted(job for _, job in finished) == names
    assert killed_job["name"] not in [entry["job"] for entry in victim.history()]
    assert all(service.journal() == [] for service in survivors)
    assert [record["name"] for record in victim.journal()] == [killed_job["name"]]  # what it held when it died

    # The killed service comes back: it sees its job was finished elsewhere and forgets it.
    victim.start()
    victim.wait_for(lambda: victim.journal() == [] and victim.logged("claimed job not resumed here"),
                    "the restarted service to drop the job finished elsewhere")
    assert_each_job_published_once(share / "outbox", names)
    for service in services:
        assert service.stop() == 0


def test_a_stalled_holder_that_comes_back_drops_the_job_it_lost(shared_services, tiny_media):
    services = shared_services(2)
    share = services[0].shared
    names = [f"clip-{number}" for number in range(4)]
    drop_jobs(services[0].inbox, names, tiny_media)

    stalled, lost_job = stop_while_rendering(services)
    other = next(service for service in services if service is not stalled)
    # Frozen past its lease (a hung NFS call, a swap storm): the other service takes the job over. The stalled
    # one wakes up while the job is being finished: both are at work on it, one must give way.
    other.wait_for(lambda: [line for line in other.logged("job taken over from a service that stopped renewing its lease")
                            if line["job"] == lost_job["name"]], "the stalled job to be taken over")
    stalled.send(signal.SIGCONT)
    stalled.wait_for(lambda: stalled.logged("job lost to another service; dropped here"), "the stalled holder to notice")
    assert lost_job["name"] in [line["job"] for line in stalled.logged("job lost to another service; dropped here")]

    more = ["after-1", "after-2"]  # both go on serving
    drop_jobs(share / "inbox", more, tiny_media)
    wait_until(lambda: len(visible(share / "outbox")) >= len(names + more) and visible(share / "work") == []
               and visible(share / "inbox") == [], "all jobs to be published", services)
    reports = assert_each_job_published_once(share / "outbox", names + more)
    assert reports[lost_job["name"]]["finished_by"] == other.owner
    assert reports[lost_job["name"]]["taken_over_from"] == [stalled.owner]
    assert sorted(entry["job"] for service in services for entry in service.history()) == sorted(names + more)
    assert all(service.journal() == [] for service in services)
    for service in services:
        assert service.stop() == 0
