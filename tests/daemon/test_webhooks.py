"""Webhook delivery against a real local HTTP server: signature, retries with backoff, outcomes recorded."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from webhook_receiver import WebhookReceiver

from heygemd.codes import ErrorCode, Failure
from heygemd.daemon.config import NotifyConfig
from heygemd.daemon.journal import JobRecord, Phase, VideoRecord
from heygemd.daemon.reports import JobStatus, VideoStatus
from heygemd.daemon.webhooks import (
    EVENT_HEADER,
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    WEBHOOK_LOG,
    EventType,
    WebhookEvent,
    WebhookSender,
    build_event,
    verify,
)

SECRET = "correct horse battery staple"


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver()
    yield server
    server.close()


def finished_job(tmp_path: Path, *, status: JobStatus = JobStatus.OK, failure: Failure | None = None) -> JobRecord:
    outbox = tmp_path / "outbox" / "spring 春"
    outbox.mkdir(parents=True)
    (outbox / "job.json").write_text(json.dumps({"job": "spring 春", "status": status.value}), encoding="utf-8")
    quarantine = None
    if failure is not None:
        quarantine = tmp_path / "quarantine" / "spring 春"
        quarantine.mkdir(parents=True)
        (quarantine / "error.json").write_text(json.dumps({"code": failure.code.value}), encoding="utf-8")
    return JobRecord(
        job_id="20250101T000000Z-abc123",
        name="spring 春",
        phase=Phase.DONE,
        status=status,
        failure=failure,
        outbox_path=outbox if failure is None else None,
        quarantine_path=quarantine,
        videos=[VideoRecord(template="a #1.mp4", output_stem="a #1", status=VideoStatus.OK)],
    )


def sender(tmp_path: Path, urls: list[str], **notify) -> WebhookSender:
    config = NotifyConfig(
        webhook_urls=urls, webhook_secret=SecretStr(SECRET), backoff_seconds=0.05, timeout_seconds=2, **notify
    )
    (tmp_path / "state").mkdir(exist_ok=True)
    return WebhookSender(config, "https://heygemd.example.org/", tmp_path / "state")


def deliveries(tmp_path: Path) -> list[dict]:
    path = tmp_path / "state" / WEBHOOK_LOG
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def wait_for(condition, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_signed_event_is_retried_on_500_until_delivered(tmp_path, receiver):
    receiver.answers = [500, 500]
    webhooks = sender(tmp_path, [receiver.url], attempts=5)
    webhooks.start()
    webhooks.job_finished(finished_job(tmp_path))
    outcome = wait_for(lambda: deliveries(tmp_path), "the delivery to be recorded")
    webhooks.stop()

    assert [request.answered for request in receiver.received] == [500, 500, 200]
    bodies = {request.body for request in receiver.received}
    assert len(bodies) == 1, "every try sends the same bytes (the same event id)"
    last = receiver.received[-1]
    assert verify(last.body, SECRET, last.headers[SIGNATURE_HEADER])
    assert not verify(last.body + b" ", SECRET, last.headers[SIGNATURE_HEADER])
    event = WebhookEvent.model_validate_json(last.body)
    assert last.headers[EVENT_HEADER] == "job.done" and last.headers[EVENT_ID_HEADER] == event.id
    assert (
        event.type is EventType.DONE
        and event.job == "spring 春"
        and event.job_report == {"job": "spring 春", "status": "ok"}
    )
    assert event.links is not None and event.links.page == "https://heygemd.example.org/jobs/20250101T000000Z-abc123"
    assert event.links.files["a #1.mp4"].endswith("/files/a%20%231.mp4")
    assert outcome == [outcome[0]] and outcome[0]["outcome"] == "delivered" and outcome[0]["attempts"] == 3
    assert outcome[0]["host"] == "127.0.0.1" and outcome[0]["receiver"] == 0
    assert "token" not in (tmp_path / "state" / WEBHOOK_LOG).read_text(), "a URL's query may hold a token"


def test_a_client_error_is_not_retried_and_attempts_are_bounded(tmp_path, receiver):
    receiver.answers = [404] + [503] * 10
    webhooks = sender(tmp_path, [receiver.url, receiver.url], attempts=3)
    webhooks.start()
    webhooks.job_finished(finished_job(tmp_path))
    outcomes = wait_for(lambda: len(deliveries(tmp_path)) == 2 and deliveries(tmp_path), "both deliveries")
    webhooks.stop()
    assert [(line["receiver"], line["outcome"], line["attempts"], line["status_code"]) for line in outcomes] == [
        (0, "failed", 1, 404),
        (1, "failed", 3, 503),
    ]
    assert len(receiver.received) == 4


def test_an_unreachable_receiver_fails_after_its_attempts(tmp_path):
    webhooks = sender(tmp_path, ["http://127.0.0.1:9/nothing-listens"], attempts=2)
    webhooks.start()
    webhooks.job_finished(finished_job(tmp_path))
    [outcome] = wait_for(lambda: deliveries(tmp_path), "the delivery to be recorded")
    webhooks.stop()
    assert outcome["outcome"] == "failed" and outcome["attempts"] == 2 and outcome["status_code"] is None
    assert "Connection refused" in outcome["error"]


def test_a_slow_receiver_never_blocks_the_caller(tmp_path, receiver):
    receiver.delay = 1.0
    webhooks = sender(tmp_path, [receiver.url])
    webhooks.start()
    for number in range(3):
        webhooks.job_finished(finished_job(tmp_path / str(number)))
    assert receiver.received == [], "queued and returned while the receiver still holds the first request"
    wait_for(lambda: len(deliveries(tmp_path)) == 3, "three deliveries")
    webhooks.stop()


def test_events_by_outcome(tmp_path):
    cancelled = Failure(code=ErrorCode.CANCELLED, reason="cancelled")
    event = build_event(finished_job(tmp_path / "c", status=JobStatus.FAILED, failure=cancelled), None)
    assert event.type is EventType.CANCELLED and event.error_report == {"code": "cancelled"} and event.links is None
    failed = Failure(code=ErrorCode.JOB_NO_AUDIO, reason="no audio")
    assert build_event(finished_job(tmp_path / "f", status=JobStatus.FAILED, failure=failed), None).type is EventType.FAILED
    partial = build_event(finished_job(tmp_path / "p", status=JobStatus.PARTIAL), "http://h")
    assert (
        partial.type is EventType.PARTIAL
        and partial.links
        and partial.links.zip == "http://h/jobs/20250101T000000Z-abc123/zip"
    )


def test_the_outcome_log_is_bounded(tmp_path, monkeypatch):
    import heygemd.daemon.webhooks as webhooks_module

    monkeypatch.setattr(webhooks_module, "WEBHOOK_LOG_LINES", 5)
    webhooks = sender(tmp_path, ["http://127.0.0.1:9/x"])
    for number in range(8):
        webhooks._record_all(f"job {number}", "", EventType.DONE, "dropped", error="full")
    assert [line["job"] for line in deliveries(tmp_path)] == [f"job {number}" for number in range(3, 8)]


def test_a_reloaded_configuration_takes_effect(tmp_path, receiver):
    webhooks = sender(tmp_path, [])
    webhooks.start()
    webhooks.job_finished(finished_job(tmp_path / "before"))  # no receiver yet: nothing to send
    webhooks.configure(NotifyConfig(webhook_urls=[receiver.url], backoff_seconds=0.05), None)  # SIGHUP, unsigned
    webhooks.job_finished(finished_job(tmp_path / "after"))
    wait_for(lambda: deliveries(tmp_path), "the delivery")
    webhooks.stop()
    [request] = receiver.received
    assert SIGNATURE_HEADER not in request.headers and WebhookEvent.model_validate_json(request.body).links is None
