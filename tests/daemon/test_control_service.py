"""The real `heygemd run` honouring pause, resume and cancel, keeping metrics, sending webhooks, writing index.html.

Requests go through the real command line (`heygemd pause`, `resume`, `cancel JOB`), which writes
control.json as the web page does. Dry-run engine unless a test needs the model mid-render.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import pytest
from service_harness import Daemon, drop_job, heygemd_cli, service_config
from test_failures import faulty_ffmpeg
from test_resultpage import parse
from webhook_receiver import WebhookReceiver

from heygemd.daemon.webhooks import SIGNATURE_HEADER, WebhookEvent, verify

pytestmark = pytest.mark.slow

SECRET = "s3cret-for-the-hooks"
CANCEL_SECONDS = 30.0  # "within seconds", with room for a loaded test machine


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver()
    yield server
    server.close()


def start(daemon_factory, env: dict[str, str] | None = None, checkpoint: Path | None = None, **sections) -> Daemon:
    daemon = daemon_factory(env=env)
    daemon.write_config(service_config(daemon.root, checkpoint=checkpoint, **sections))
    daemon.start()
    daemon.wait_ready()
    return daemon


def status(daemon: Daemon) -> dict:
    try:
        return json.loads((daemon.state / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def metrics(daemon: Daemon) -> dict:
    return json.loads((daemon.state / "metrics.json").read_text())


def control(daemon: Daemon) -> dict:
    return json.loads((daemon.state / "control.json").read_text())


def digests(folder: Path) -> dict[str, str]:
    return {entry.name: hashlib.sha256(entry.read_bytes()).hexdigest() for entry in folder.iterdir() if entry.is_file()}


def assert_cancelled_as_dropped(daemon: Daemon, job: str, dropped: dict[str, str]) -> dict:
    error = daemon.wait_quarantine(job)
    assert error["code"] == "cancelled" and f'"{job}"' in error["reason"], error
    assert digests(daemon.quarantine / job) == {**dropped, "error.json": digests(daemon.quarantine / job)["error.json"]}
    assert not (daemon.outbox / job).exists(), "nothing of a cancelled job is published"
    daemon.wait_for(lambda: control(daemon)["cancel"] == [], "the request to be removed once honoured")
    return error


# ---------------------------------------------------------------------------- pause and resume


def test_pause_stops_claims_and_resume_restarts_them(daemon_factory, media):
    daemon = start(daemon_factory)
    paused = heygemd_cli(daemon, "pause")
    assert paused.returncode == 0 and "takes no new jobs" in paused.stdout, paused
    daemon.wait_for(lambda: status(daemon).get("state") == "paused" and status(daemon)["paused"], "status: paused")
    assert "paused" in heygemd_cli(daemon, "status").stdout

    drop_job(daemon.inbox, "held", {"a.wav": media["audio"], "v.mp4": media["video"]})
    daemon.wait_for(lambda: "held" in status(daemon).get("queued", []), "the folder to be ready (and queued)")
    daemon.wait_for(
        lambda: metrics(daemon)["gauges"]["paused"] and metrics(daemon)["gauges"]["queue_length"] == 1,
        "the gauges to say paused, one queued",
    )
    assert (daemon.inbox / "held").is_dir() and not daemon.logged("job claimed"), "paused: nothing is claimed"

    assert heygemd_cli(daemon, "resume").returncode == 0
    daemon.wait_outbox("held")
    assert daemon.logged("paused: no new jobs are taken; the current one finishes")
    assert daemon.logged("resumed: new jobs are taken again")
    daemon.wait_for(lambda: status(daemon).get("state") == "idle" and not status(daemon)["paused"], "status: idle")
    assert daemon.stop() == 0


# ---------------------------------------------------------------------------- cancel


def test_cancel_of_queued_and_arriving_folders(daemon_factory, media, receiver):
    env = {"HEYGEMD_NOTIFY__WEBHOOK_SECRET": SECRET}
    daemon = start(
        daemon_factory,
        env=env,
        watch={"readiness": "marker"},
        notify={"webhook_urls": [receiver.url], "backoff_seconds": 0.1},
    )
    assert heygemd_cli(daemon, "pause").returncode == 0  # so that the ready folder waits in the queue
    daemon.wait_for(lambda: status(daemon).get("paused"), "the pause to be seen")
    drop_job(daemon.inbox, "ready one", {"a.wav": media["audio"], "v.mp4": media["video"], "READY": b""})
    drop_job(daemon.inbox, "still arriving", {"a.wav": media["audio"], "v.mp4": media["video"]})  # no marker yet
    daemon.wait_for(
        lambda: "ready one" in status(daemon).get("queued", []) and "still arriving" in status(daemon)["arriving"],
        "one folder queued, one arriving",
    )
    dropped = {name: digests(daemon.inbox / name) for name in ("ready one", "still arriving")}

    for name in dropped:
        said = heygemd_cli(daemon, "cancel", name)
        assert said.returncode == 0 and "is in the inbox" in said.stdout, said
    for name, files in dropped.items():
        assert_cancelled_as_dropped(daemon, name, files)
    events = daemon.wait_for(lambda: len(receiver.received) == 2 and receiver.received, "two webhook events")
    for request in events:
        assert verify(request.body, SECRET, request.headers[SIGNATURE_HEADER])
        event = WebhookEvent.model_validate_json(request.body)
        assert event.type.value == "job.cancelled" and event.error_report and event.error_report["code"] == "cancelled"
    assert status(daemon)["paused"], "cancels are honoured while paused; the pause stays"

    unknown = heygemd_cli(daemon, "cancel", "never dropped")
    assert unknown.returncode == 1 and "no job" in unknown.stderr and control(daemon)["cancel"] == []
    assert metrics(daemon)["counters"]["jobs"] == {"failed/cancelled": 2}
    assert daemon.stop() == 0


def test_cancel_of_a_job_waiting_to_retry(daemon_factory, media, tmp_path):
    env = faulty_ffmpeg(tmp_path / "fault", "encode", "kill", times=1000)  # every encoder is killed: a transient error
    daemon = start(daemon_factory, env=env, service={"retry_first_delay_seconds": 3600.0})
    drop_job(daemon.inbox, "flaky", {"a.wav": media["audio"], "v.mp4": media["video"]})
    daemon.wait_for(
        lambda: [job for job in status(daemon).get("waiting_jobs", []) if job["job"] == "flaky"],
        "the job to wait for its retry (in an hour)",
    )
    dropped = digests(next(job / "input" for job in daemon.work.iterdir()))

    said = heygemd_cli(daemon, "cancel", "flaky")
    assert said.returncode == 0 and "is claimed" in said.stdout, said
    assert_cancelled_as_dropped(daemon, "flaky", dropped)
    daemon.wait_for(lambda: status(daemon).get("waiting_jobs") == [], "the job no longer waiting")
    assert daemon.stop() == 0


def test_cancel_of_a_job_whose_decoder_is_stalled(daemon_factory, media, tmp_path):
    env = faulty_ffmpeg(tmp_path / "fault", "decode", "stop", times=1)  # the first decoder stops for good
    daemon = start(daemon_factory, env=env, service={"stall_seconds": 600.0})  # only the cancel can end it
    drop_job(daemon.inbox, "stuck", {"a.wav": media["audio"], "v.mp4": media["video"]})
    dropped = daemon.wait_for(
        lambda: (
            daemon.work.is_dir() and [digests(job / "input") for job in daemon.work.iterdir() if (job / "input").is_dir()]
        ),
        "the job to be claimed",
    )[0]
    daemon.wait_for(lambda: (status(daemon).get("current") or {}).get("video") == "v.mp4", "the video to be rendering")
    daemon.wait_for(lambda: (tmp_path / "fault" / "count").exists(), "the decoder to be stopped")

    said = heygemd_cli(daemon, "cancel", "stuck")
    assert said.returncode == 0 and "is rendering" in said.stdout, said
    daemon.wait_for(lambda: (daemon.quarantine / "stuck" / "error.json").exists(), "the cancel", timeout=CANCEL_SECONDS)
    assert_cancelled_as_dropped(daemon, "stuck", dropped)
    assert not daemon.logged("video hit a transient error; tried again later"), "a cancel is not a failure to retry"
    assert children(daemon) == [], "the stopped ffmpeg was killed and reaped"

    drop_job(daemon.inbox, "next", {"a.wav": media["audio"], "v.mp4": media["video"]})
    daemon.wait_outbox("next")  # the service goes on
    daemon.wait_for(lambda: metrics(daemon)["counters"]["jobs"] == {"failed/cancelled": 1, "ok": 1}, "the counts")
    assert daemon.stop() == 0


def test_cancel_in_the_middle_of_a_render_with_the_model(daemon_factory, wav2lip_checkpoint, tmp_path):
    from media_factory import make_audio, make_video
    from service_harness import TEMPLATE_SIZE

    # Long enough that no video can finish before the cancel; the render stops at once, so it costs nothing.
    audio = make_audio(tmp_path / "speech.wav", seconds=8.0)
    video = make_video(tmp_path / "presenter.mp4", seconds=8.0, fps="25", size=TEMPLATE_SIZE)
    daemon = start(daemon_factory, checkpoint=wav2lip_checkpoint)
    files = {"speech.wav": audio, "front.mp4": video, "side.mp4": video, "close.mp4": video}
    dropped = {name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in files.items()}
    drop_job(daemon.inbox, "long job", files)
    daemon.wait_for(lambda: (status(daemon).get("current") or {}).get("percent") is not None, "the first video to progress")

    assert heygemd_cli(daemon, "cancel", "long job").returncode == 0
    daemon.wait_for(lambda: (daemon.quarantine / "long job" / "error.json").exists(), "the cancel", timeout=CANCEL_SECONDS)
    error = assert_cancelled_as_dropped(daemon, "long job", dropped)
    assert error["failed_videos"] == [] and not daemon.logged("video done"), "stopped in the middle of the first video"
    assert daemon.logged("job cancelled; it goes to quarantine as it was dropped")
    daemon.wait_for(
        lambda: not list(daemon.work.iterdir()) and not list((daemon.state / "jobs").glob("*.json")),
        "nothing of the job left in the work area and the journal",
    )
    assert daemon.stop() == 0


def children(daemon: Daemon) -> list[int]:
    assert daemon.process is not None
    found = []
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[1] == str(daemon.process.pid):
            found.append(int(entry.name))
    return found


# ---------------------------------------------------------------------------- metrics, webhooks, index.html


def test_metrics_survive_a_restart(daemon_factory, media):
    daemon = start(daemon_factory)
    drop_job(daemon.inbox, "one", {"a.wav": media["audio"], "v.mp4": media["video"]})
    drop_job(daemon.inbox, "no audio", {"v.mp4": media["video"]})
    daemon.wait_outbox("one")
    daemon.wait_quarantine("no audio")
    daemon.wait_for(lambda: sum(metrics(daemon)["counters"]["jobs"].values()) == 2, "both jobs counted")
    assert daemon.stop() == 0
    assert not metrics(daemon)["gauges"]["up"]

    daemon.start()
    daemon.wait_for(lambda: metrics(daemon)["gauges"]["ready"], "the restarted service to be ready")
    drop_job(daemon.inbox, "two", {"a.wav": media["audio"], "v.mp4": media["video"]})
    daemon.wait_outbox("two")
    daemon.wait_for(lambda: sum(metrics(daemon)["counters"]["jobs"].values()) == 3, "the third job counted")
    counters = metrics(daemon)["counters"]
    assert counters["jobs"] == {"ok": 2, "failed/job.no_audio": 1} and counters["videos"] == {"ok": 2}
    assert counters["render_seconds"]["count"] == 2 and sum(counters["render_seconds"]["bucket_counts"]) == 2
    assert counters["video_seconds_produced"] > 2.0
    shown = json.loads(heygemd_cli(daemon, "status", "--json").stdout)["metrics"]
    assert shown["counters"] == counters and shown["gauges"]["ready"] and shown["gauges"]["free_bytes"]["outbox"] > 0
    assert "3 jobs (1 failed, 2 ok)" in heygemd_cli(daemon, "status").stdout
    assert daemon.stop() == 0


def test_a_published_job_is_announced_signed_and_has_its_page(daemon_factory, media, receiver):
    receiver.answers = [500, 500]  # then 200
    env = {"HEYGEMD_NOTIFY__WEBHOOK_SECRET": SECRET}
    daemon = start(
        daemon_factory,
        env=env,
        web={"public_url": "https://heygemd.example.org"},
        notify={"webhook_urls": [receiver.url], "backoff_seconds": 0.1},
    )
    job = "春 campaign <1> & #2"
    drop_job(daemon.inbox, job, {"voice.wav": media["audio"], "Front view #1.mp4": media["video"], "横.mp4": media["video"]})
    out = daemon.wait_outbox(job)

    events = daemon.wait_for(lambda: [r for r in receiver.received if r.answered == 200], "a delivered event")
    assert [request.answered for request in receiver.received] == [500, 500, 200]
    delivered = events[0]
    assert verify(delivered.body, SECRET, delivered.headers[SIGNATURE_HEADER])
    event = WebhookEvent.model_validate_json(delivered.body)
    assert event.type.value == "job.done" and event.job == job
    assert event.job_report == json.loads((out / "job.json").read_text())
    assert event.links is not None and event.links.page.startswith("https://heygemd.example.org/jobs/")
    assert set(event.links.files) == {"Front view #1.mp4", "Front view #1.json", "横.mp4", "横.json"}
    log = daemon.wait_for(
        lambda: (daemon.state / "webhooks.jsonl").exists() and (daemon.state / "webhooks.jsonl").read_text(),
        "the delivery to be recorded",
    )
    assert json.loads(log.splitlines()[-1])["outcome"] == "delivered" and json.loads(log.splitlines()[-1])["attempts"] == 3
    assert SECRET not in daemon.log_path.read_text(), "the secret is never logged"

    page = parse(out / "index.html")
    files = {entry.name for entry in out.iterdir()}
    local = [unquote(link) for link in page.links if not link.startswith("#")]
    assert set(local) <= files and {"Front view #1.mp4", "Front view #1.jpg", "横.mp4", "横.jpg"} <= set(local)
    assert job in "".join(page.text)
    assert daemon.stop() == 0
