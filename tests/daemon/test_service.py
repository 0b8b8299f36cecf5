"""`heygemd run` as a real process on real folders: jobs dropped slowly, as a Samba client writes them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest
from service_harness import FAST_WATCH, Daemon, copy_slowly, drop_job, service_config

pytestmark = pytest.mark.slow


def visible(folder: Path) -> list[str]:
    return sorted(entry.name for entry in folder.iterdir()) if folder.exists() else []


def job_records(daemon: Daemon) -> list[dict]:
    folder = daemon.state / "jobs"
    records = []
    for path in folder.glob("*.json") if folder.exists() else []:
        try:
            records.append(json.loads(path.read_text()))
        except ValueError:
            pass  # being replaced (atomically): read again on the next poll
    return records


def wait_idle(daemon: Daemon) -> None:
    daemon.wait_for(lambda: visible(daemon.work) == [] and job_records(daemon) == [], "claimed jobs to finish")


def assert_clean_after(daemon: Daemon, job: str) -> None:
    assert job not in visible(daemon.inbox)
    assert visible(daemon.work) == [], "the work area must be empty after the job"
    assert job_records(daemon) == []
    assert not [name for name in visible(daemon.outbox) if name.startswith(".")], "nothing hidden left in the outbox"


def start(daemon_factory, config_overrides: dict | None = None, *, checkpoint: Path | None = None, env=None) -> Daemon:
    daemon = daemon_factory(env=env)
    daemon.write_config(service_config(daemon.root, checkpoint=checkpoint, **(config_overrides or {})))
    daemon.start()
    daemon.wait_ready()
    return daemon


# The outbox folder of a job of three_templates: per template a video, its report and its thumbnail.
THREE_TEMPLATE_RESULTS = sorted(
    [f"{stem}.{suffix}" for stem in ("Side View", "close-up", "front") for suffix in ("jpg", "json", "mp4")]
    + ["index.html", "job.json"]
)


def three_templates(media: dict[str, Path]) -> dict[str, Path]:
    return {
        "speech.wav": media["audio"],
        "front.mp4": media["video"],
        "Side View.MP4": media["video"],
        "close-up.mp4": media["video"],
    }


# ---------------------------------------------------------------------------- the normal job, real model


def test_normal_job_with_three_templates(daemon_factory, media, wav2lip_checkpoint):
    daemon = start(daemon_factory, checkpoint=wav2lip_checkpoint)
    drop_job(daemon.inbox, "campaign 1", three_templates(media))

    out = daemon.wait_outbox("campaign 1")
    assert visible(out) == THREE_TEMPLATE_RESULTS
    report = json.loads((out / "job.json").read_text())
    assert report["status"] == "ok" and report["dry_run"] is False and report["job"] == "campaign 1"
    assert [video["status"] for video in report["videos"]] == ["ok", "ok", "ok"]
    assert report["engine"]["checkpoint"]["sha256"] and report["engine"]["detector"] == "lbp" and report["host"]
    assert report["seconds"] > 0 and all(video["seconds"] > 0 for video in report["videos"])
    sidecar = json.loads((out / "front.json").read_text())
    assert sidecar["dry_run"] is False and sidecar["output"]["duration_s"] > 1.0
    wait_idle(daemon)
    assert visible(daemon.archive / "campaign 1") == sorted(three_templates(media))
    assert_clean_after(daemon, "campaign 1")

    status = subprocess.run(
        [sys.executable, "-m", "heygemd", "status", "--config", str(daemon.config_path)],
        cwd=daemon.root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert status.returncode == 0 and "running" in status.stdout and "campaign 1" in status.stdout

    about_the_job = [line for line in daemon.log_lines() if "job_id" in line or "video" in line]
    assert about_the_job and all(line.get("job") == "campaign 1" for line in about_the_job)
    assert daemon.stop() == 0


# ---------------------------------------------------------------------------- watching and readiness (dry run)


def test_polling_mode(daemon_factory, media):
    daemon = start(daemon_factory, {"watch": {"mode": "polling"}})
    assert daemon.logged("watching the inbox")[0]["mode"] == "polling"
    drop_job(daemon.inbox, "polled", {"a.wav": media["audio"], "v.mp4": media["video"]})
    report = json.loads((daemon.wait_outbox("polled") / "job.json").read_text())
    assert report["status"] == "ok" and report["dry_run"] is True
    assert daemon.stop() == 0


def test_job_dropped_before_start_up(daemon_factory, media):
    daemon = daemon_factory()
    daemon.write_config(service_config(daemon.root))
    drop_job(daemon.inbox, "early", {"a.wav": media["audio"], "v.mp4": media["video"]})
    daemon.start()
    assert json.loads((daemon.wait_outbox("early") / "job.json").read_text())["status"] == "ok"
    assert daemon.stop() == 0


def test_marker_mode(daemon_factory, media):
    daemon = start(daemon_factory, {"watch": {"readiness": "marker", "marker_name": "READY"}})
    drop_job(daemon.inbox, "marked", {"a.wav": media["audio"], "v.mp4": media["video"]})
    past_settling = time.time() + 2 * FAST_WATCH["settle_seconds"]

    def scanned_well_after_settling() -> bool:  # the service looked at it long after it would have settled
        status = json.loads((daemon.state / "status.json").read_text())
        updated = datetime.fromisoformat(status["updated_at"]).timestamp()
        return updated > past_settling and "marked" in status["arriving"]

    daemon.wait_for(scanned_well_after_settling, "a scan well past the settle time")
    assert visible(daemon.inbox / "marked") == ["a.wav", "v.mp4"] and visible(daemon.outbox) == []
    (daemon.inbox / "marked" / "READY").write_bytes(b"")
    report = json.loads((daemon.wait_outbox("marked") / "job.json").read_text())
    assert report["status"] == "ok" and report["warnings"] == []
    assert daemon.stop() == 0


def test_an_inbox_that_disappears_is_waited_for(daemon_factory, media):
    daemon = start(daemon_factory)
    os.rename(daemon.inbox, daemon.root / "unmounted")
    daemon.wait_for(
        lambda: daemon.logged("inbox is missing (share unmounted?); waiting for it, nothing is concluded meanwhile"),
        "the missing inbox to be reported",
    )
    os.rename(daemon.root / "unmounted", daemon.inbox)
    daemon.wait_for(lambda: daemon.logged("inbox is back"), "the inbox to be seen again")
    drop_job(daemon.inbox, "after remount", {"a.wav": media["audio"], "v.mp4": media["video"]})
    daemon.wait_outbox("after remount")
    assert daemon.stop() == 0


# ---------------------------------------------------------------------------- crash safety and signals (real model)


def test_kill_9_in_the_middle_of_a_render_then_restart(daemon_factory, media, wav2lip_checkpoint):
    daemon = start(daemon_factory, checkpoint=wav2lip_checkpoint)
    drop_job(daemon.inbox, "crash", three_templates(media))

    def second_video_rendering() -> bool:
        return any(sum(video["status"] == "ok" for video in record.get("videos", [])) >= 1 for record in job_records(daemon))

    daemon.wait_for(second_video_rendering, "the first video of the job to be done")
    daemon.kill9()
    assert visible(daemon.outbox) == [], "nothing half-done may be visible in the outbox"
    assert "crash" not in visible(daemon.inbox) and len(visible(daemon.work)) == 1

    daemon.start()
    out = daemon.wait_outbox("crash")
    report = json.loads((out / "job.json").read_text())
    assert report["status"] == "ok" and len(report["videos"]) == 3
    assert visible(out) == THREE_TEMPLATE_RESULTS
    wait_idle(daemon)
    assert visible(daemon.archive / "crash") == sorted(three_templates(media))
    assert daemon.logged("resuming a claimed job")
    assert_clean_after(daemon, "crash")
    assert daemon.stop() == 0


def test_sigterm_while_rendering_leaves_the_job_to_resume(daemon_factory, media, wav2lip_checkpoint, notify_socket):
    env = {"NOTIFY_SOCKET": str(notify_socket.path)}
    daemon = start(daemon_factory, {"service": {"stop_grace_seconds": 0.0}}, checkpoint=wav2lip_checkpoint, env=env)
    drop_job(daemon.inbox, "interrupted", three_templates(media))
    daemon.wait_for(lambda: daemon.logged("rendering"), "a render to start")
    daemon.send(signal.SIGTERM)
    assert daemon.process is not None and daemon.process.wait(timeout=120) == 0
    daemon.process = None
    messages = notify_socket.drain()
    assert "STOPPING=1" in messages and any(message.startswith("EXTEND_TIMEOUT_USEC=") for message in messages)
    assert visible(daemon.outbox) == []
    records = job_records(daemon)
    assert len(records) == 1 and records[0]["name"] == "interrupted" and records[0]["phase"] == "rendering"

    daemon.start()
    report = json.loads((daemon.wait_outbox("interrupted") / "job.json").read_text())
    assert report["status"] == "ok" and [video["status"] for video in report["videos"]] == ["ok"] * 3
    assert daemon.stop() == 0


# ---------------------------------------------------------------------------- systemd protocol, reload


def test_sd_notify_messages_on_a_real_socket(daemon_factory, media, notify_socket):
    env = {"NOTIFY_SOCKET": str(notify_socket.path), "WATCHDOG_USEC": "1000000"}
    daemon = start(daemon_factory, env=env)
    drop_job(daemon.inbox, "notified", {"a.wav": media["audio"], "v.mp4": media["video"]})
    daemon.wait_outbox("notified")
    pings_before = notify_socket.messages.count("WATCHDOG=1")
    daemon.wait_for(lambda: notify_socket.messages.count("WATCHDOG=1") > pings_before, "a watchdog ping while idle")
    daemon.send(signal.SIGHUP)
    daemon.wait_for(lambda: daemon.logged("configuration reloaded"), "the reload")
    assert daemon.stop() == 0
    messages = notify_socket.drain()
    ready = messages.index("READY=1")
    assert messages.index("STATUS=loading model") < ready
    statuses = [message for message in messages if message.startswith("STATUS=")]
    assert any(status.startswith("STATUS=job notified: video 1/1") for status in statuses)
    assert any(status.startswith("STATUS=idle; 0 queued") for status in statuses)
    assert messages.count("WATCHDOG=1") >= 2 and messages.index("WATCHDOG=1") > ready
    reloading = messages.index("RELOADING=1")
    assert messages[reloading + 1].startswith("MONOTONIC_USEC=") and "READY=1" in messages[reloading:]
    assert "STOPPING=1" in messages[reloading:]


def test_sighup_reloads_the_configuration(daemon_factory, media):
    daemon = start(daemon_factory)
    drop_job(daemon.inbox, "before", {"a.wav": media["audio"], "v.mp4": media["video"]})
    daemon.wait_outbox("before")
    wait_idle(daemon)
    assert not (daemon.outbox / "before.zip").exists() and (daemon.archive / "before").is_dir()

    daemon.write_config(service_config(daemon.root, outputs={"zip_bundle": True, "after_success": "delete"}))
    daemon.send(signal.SIGHUP)
    daemon.wait_for(lambda: daemon.logged("configuration reloaded"), "the reload")
    drop_job(daemon.inbox, "after", {"a.wav": media["audio"], "v.mp4": media["video"]})
    daemon.wait_outbox("after")
    daemon.wait_for((daemon.outbox / "after.zip").exists, "the zip bundle")
    wait_idle(daemon)
    assert not (daemon.archive / "after").exists()

    daemon.config_path.write_text('[watch]\nmode = "sometimes"\n')
    daemon.send(signal.SIGHUP)
    daemon.wait_for(
        lambda: daemon.logged("configuration reload failed; the running configuration stays"), "the failed reload"
    )
    drop_job(daemon.inbox, "still serving", {"a.wav": media["audio"], "v.mp4": media["video"]})
    daemon.wait_outbox("still serving")
    assert daemon.stop() == 0


# ---------------------------------------------------------------------------- bad jobs (dry run)


def test_bad_jobs_go_to_quarantine_and_the_service_keeps_serving(daemon_factory, media, tmp_path):
    daemon = start(daemon_factory)
    inbox = daemon.inbox
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.mp4"
    secret.write_bytes(media["video"].read_bytes())

    (inbox / "empty folder").mkdir()
    drop_job(inbox, "only audio", {"a.wav": media["audio"]})
    drop_job(inbox, "only videos", {"v.mp4": media["video"], "w.mp4": media["video"]})
    drop_job(inbox, "audio and script", {"a.wav": media["audio"], "b.txt": b"Hello.", "v.mp4": media["video"]})
    drop_job(inbox, "zero byte", {"a.wav": media["audio"], "v.mp4": media["video"], "w.mp4": b""})
    drop_job(inbox, "truncated", {"a.wav": media["audio"], "clip.mp4": media["truncated"]})
    drop_job(inbox, "text as video", {"a.wav": media["audio"], "clip.mp4": b"this is not a video\n" * 50})
    drop_job(inbox, "unsupported", {"a.wav": media["audio"], "clip.xyz": media["video"]})
    link_job = drop_job(inbox, "symlink", {"a.wav": media["audio"]})
    os.symlink(secret, link_job / "linked.mp4")
    drop_job(inbox, "partial", {"a.wav": media["audio"], "good.mp4": media["video"], "bad.mp4": b"not a video"})

    growing = inbox / "growing"
    growing.mkdir()
    copy_slowly(media["audio"], growing / "a.wav")
    claimed_while_growing: list[str] = []

    def grow() -> None:  # a slow upload of half a video: pauses shorter than the settle time
        data = media["truncated"].read_bytes()
        with open(growing / "clip.mp4", "wb") as handle:
            for start in range(0, len(data), max(1, len(data) // 8)):
                handle.write(data[start : start + max(1, len(data) // 8)])
                handle.flush()
                time.sleep(0.6)
                if not growing.exists():
                    claimed_while_growing.append("claimed")

    writer = threading.Thread(target=grow)
    writer.start()
    odd_name = "-rf ünïcode job 名前"
    drop_job(inbox, odd_name, {"-speech é.wav": media["audio"], "--presenter ✓.mp4": media["video"]})
    writer.join()
    assert claimed_while_growing == [], "a folder still being written was claimed"

    expected = {
        "empty folder": "job.empty",
        "only audio": "job.no_template",
        "only videos": "job.no_audio",
        "audio and script": "job.audio_and_script",
        "zero byte": "input.incomplete",
        "truncated": "input.undecodable",
        "text as video": "input.undecodable",
        "unsupported": "job.no_template",
        "symlink": "job.no_template",
        "growing": "input.undecodable",
    }
    for job, code in expected.items():
        error = daemon.wait_quarantine(job)
        assert error["code"] == code, (job, error)
        assert error["job"] == job and error["reason"] and error["what_to_do"] and error["time"]
        assert "work/" not in json.dumps(error), "a reason never names a place inside the work area"
    truncated = json.loads((daemon.quarantine / "truncated" / "error.json").read_text())["failed_videos"]
    assert [(video["template"], video["code"]) for video in truncated] == [("clip.mp4", "input.undecodable")]
    assert any("unsupported files" in detail for detail in daemon.wait_quarantine("unsupported")["details"])
    assert any("never followed" in detail for detail in daemon.wait_quarantine("symlink")["details"])
    assert (daemon.quarantine / "symlink" / "linked.mp4").is_symlink() and secret.exists()
    assert visible(daemon.quarantine / "audio and script") == ["a.wav", "b.txt", "error.json", "v.mp4"]  # moved whole

    partial = json.loads((daemon.wait_outbox("partial") / "job.json").read_text())
    assert partial["status"] == "partial" and visible(daemon.outbox / "partial") == [
        "good.jpg",
        "good.json",
        "good.mp4",
        "index.html",
        "job.json",
    ]
    failed = daemon.wait_quarantine("partial")
    assert [(item["template"], item["code"]) for item in failed["failed_videos"]] == [("bad.mp4", "input.undecodable")]
    assert [video["code"] for video in partial["videos"]] == ["input.undecodable", None]
    assert visible(daemon.quarantine / "partial") == ["a.wav", "bad.mp4", "error.json"]

    odd = json.loads((daemon.wait_outbox(odd_name) / "job.json").read_text())
    assert odd["status"] == "ok" and (daemon.outbox / odd_name / "--presenter ✓.mp4").is_file()

    drop_job(inbox, odd_name, {"-speech é.wav": media["audio"], "--presenter ✓.mp4": media["video"]})
    daemon.wait_outbox(f"{odd_name} (2)")  # same name again: never overwritten
    assert (daemon.outbox / odd_name / "job.json").exists()

    wait_idle(daemon)
    assert visible(inbox) == []
    assert daemon.stop() == 0


def test_a_job_the_service_keeps_dying_on_is_set_aside(daemon_factory, media):
    daemon = daemon_factory()
    daemon.write_config(service_config(daemon.root))
    job_dir = daemon.work / "20260101T000000Z-abcdef"
    (job_dir / "input").mkdir(parents=True)
    for name, source in {"a.wav": media["audio"], "v.mp4": media["video"]}.items():
        (job_dir / "input" / name).write_bytes(source.read_bytes())
    (daemon.state / "jobs").mkdir(parents=True)
    # The journal says the service was working on it when it died, four times already: this start is the fifth.
    record = {
        "job_id": job_dir.name,
        "name": "poison",
        "phase": "rendering",
        "crashes": 4,
        "working_since": "2026-01-01T00:00:01Z",
        "claimed_at": "2026-01-01T00:00:00Z",
        "audio": "a.wav",
        "videos": [{"template": "v.mp4", "output_stem": "v"}],
    }
    (daemon.state / "jobs" / f"{job_dir.name}.json").write_text(json.dumps(record))
    daemon.start()
    error = daemon.wait_quarantine("poison")
    assert error["code"] == "service.crashed" and "stopped unexpectedly 5 times" in error["reason"]
    assert visible(daemon.quarantine / "poison") == ["a.wav", "error.json", "v.mp4"]
    wait_idle(daemon)
    assert daemon.stop() == 0


# ---------------------------------------------------------------------------- watching never pauses


def test_folders_arriving_while_a_job_renders_are_tracked_and_taken_next(daemon_factory, media, wav2lip_checkpoint):
    daemon = start(daemon_factory, checkpoint=wav2lip_checkpoint)
    long_job = {"speech.wav": media["audio"], **{f"take {index}.mp4": media["video"] for index in range(6)}}
    drop_job(daemon.inbox, "long job", long_job)
    daemon.wait_for(lambda: daemon.logged("rendering"), "the first job to render")
    drop_job(daemon.inbox, "next job", {"a.wav": media["audio"], "v.mp4": media["video"]})

    def listed_while_rendering() -> bool:
        try:
            status = json.loads((daemon.state / "status.json").read_text())
        except (OSError, ValueError):
            return False
        current = status.get("current") or {}
        return current.get("job") == "long job" and "next job" in status["arriving"] + status["queued"]

    daemon.wait_for(listed_while_rendering, "the new folder to be listed while the first job renders")
    daemon.wait_outbox("next job")
    events = [
        (line["event"], line.get("job") or line.get("name"))
        for line in daemon.log_lines()
        if line.get("event") in ("folder ready", "job done", "job claimed")
    ]
    assert events.index(("folder ready", "next job")) < events.index(("job done", "long job")), events
    assert [job for event, job in events if event == "job claimed"] == ["long job", "next job"]
    assert daemon.stop() == 0
