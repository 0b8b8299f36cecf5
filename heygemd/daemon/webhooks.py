"""Webhooks: after a job is published or quarantined, a signed JSON event is POSTed to ``notify.webhook_urls``.

Events are queued (bounded) and sent by one background thread, so a slow or dead receiver
never delays a render. Each URL gets ``notify.attempts`` tries with doubling waits; a 2xx answer
is a delivery, a 408, 429, 5xx, a timeout or no connection is tried again, any other answer is
final. Each delivery's outcome is a line of ``<state>/webhooks.jsonl`` (the newest
``WEBHOOK_LOG_LINES``). The secret is never logged, and neither is a URL's path or query (they
often hold a token): deliveries name the receiver by its position in the list and its host.

Sent with the standard library (urllib): one POST with a timeout needs nothing more, and the
service stays free of an HTTP client dependency.

A receiver checks ``X-Heygemd-Signature: sha256=<hex>``: the HMAC-SHA256 of the raw body with the
shared secret. The body carries the event's id (the same on every try: deduplicate on it) and time.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import json
import queue
import threading
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import structlog
from pydantic import BaseModel, Field

from heygemd import __version__
from heygemd.atomic import write_atomic
from heygemd.codes import ErrorCode
from heygemd.daemon.config import NotifyConfig
from heygemd.daemon.journal import JobRecord
from heygemd.daemon.reports import JobStatus, VideoStatus, host_name, utc_now
from heygemd.resultfiles import ERROR_REPORT, JOB_REPORT

WEBHOOK_LOG = "webhooks.jsonl"
WEBHOOK_LOG_LINES = 500
QUEUE_SIZE = 200  # events waiting to be sent; beyond, an event is dropped (and its drop recorded)
STOP_DRAIN_SECONDS = 5.0  # at stop, events still queued get this long, then are recorded as not sent
RETRY_STATUSES = frozenset({408, 425, 429})

SIGNATURE_HEADER = "X-Heygemd-Signature"
EVENT_HEADER = "X-Heygemd-Event"
EVENT_ID_HEADER = "X-Heygemd-Event-Id"
TIMESTAMP_HEADER = "X-Heygemd-Timestamp"
SIGNATURE_PREFIX = "sha256="


class EventType(StrEnum):
    DONE = "job.done"  # every template rendered; the results are in the outbox
    PARTIAL = "job.partial"  # some rendered (outbox), the others failed (quarantine)
    FAILED = "job.failed"  # nothing rendered; the job is in quarantine
    CANCELLED = "job.cancelled"  # cancelled; the job is in quarantine, as dropped


class JobLinks(BaseModel):
    """Addresses on `heygemd web` (``web.public_url``), by job id."""

    page: str
    api: str
    zip: str | None = None
    files: dict[str, str] = Field(default_factory=dict, description="each result file by name")


class WebhookEvent(BaseModel):
    id: str = Field(default_factory=lambda: uuid.uuid4().hex, description="the same on every try: deduplicate on it")
    type: EventType
    time: datetime = Field(default_factory=utc_now)
    job: str = Field(description="the job folder's name as dropped")
    job_id: str
    status: JobStatus
    code: ErrorCode | None = Field(None, description="why the job failed (failed, cancelled)")
    reason: str | None = None
    outbox_folder: str | None = Field(None, description="name of the job's folder in the outbox")
    quarantine_folder: str | None = Field(None, description="name of the job's folder in quarantine")
    job_report: dict[str, Any] | None = Field(None, description="outbox/<job>/job.json (done, partial)")
    error_report: dict[str, Any] | None = Field(None, description="quarantine/<job>/error.json (partial, failed, cancelled)")
    links: JobLinks | None = Field(None, description="set when web.public_url is")
    host: str = Field(default_factory=host_name)
    heygemd_version: str = __version__


class Delivery(BaseModel):
    """One line of webhooks.jsonl: how one event went to one receiver."""

    time: datetime = Field(default_factory=utc_now)
    event_id: str
    type: EventType
    job: str
    receiver: int = Field(description="position of the URL in notify.webhook_urls (0 is the first)")
    host: str = Field(description="the URL's host (its path and query may hold a token: never written)")
    outcome: str = Field(description='"delivered", "failed", "dropped" (queue full) or "not sent" (the service stopped)')
    attempts: int = 0
    status_code: int | None = None
    error: str | None = None
    seconds: float = 0.0


def event_type(record: JobRecord) -> EventType:
    if record.failure is not None and record.failure.code is ErrorCode.CANCELLED:
        return EventType.CANCELLED
    if record.status is JobStatus.OK:
        return EventType.DONE
    return EventType.PARTIAL if record.status is JobStatus.PARTIAL else EventType.FAILED


def job_links(public_url: str, record: JobRecord) -> JobLinks:
    base = public_url.rstrip("/")
    job = f"{base}/jobs/{quote(record.job_id, safe='')}"
    outputs = [
        name
        for video in record.videos
        if video.status is VideoStatus.OK
        for name in (f"{video.output_stem}.mp4", f"{video.output_stem}.json")
    ]
    published = record.outbox_path is not None
    return JobLinks(
        page=job,
        api=f"{base}/api/jobs/{quote(record.job_id, safe='')}",
        zip=f"{job}/zip" if published else None,
        files={name: f"{job}/files/{quote(name, safe='')}" for name in outputs} if published else {},
    )


def build_event(record: JobRecord, public_url: str | None) -> WebhookEvent:
    """The event of a finished job, with its reports as written (read from the outbox and quarantine)."""
    return WebhookEvent(
        type=event_type(record),
        job=record.name,
        job_id=record.job_id,
        status=record.status or JobStatus.FAILED,
        code=record.failure.code if record.failure else None,
        reason=record.failure.reason if record.failure else None,
        outbox_folder=record.outbox_path.name if record.outbox_path else None,
        quarantine_folder=record.quarantine_path.name if record.quarantine_path else None,
        job_report=_read_report(record.outbox_path, JOB_REPORT),
        error_report=_read_report(record.quarantine_path, ERROR_REPORT),
        links=job_links(public_url, record) if public_url else None,
    )


def _read_report(folder: Path | None, name: str) -> dict[str, Any] | None:
    if folder is None:
        return None
    try:
        return json.loads((folder / name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # removed meanwhile (retention, a person): the event says what it can


def sign(body: bytes, secret: str) -> str:
    return SIGNATURE_PREFIX + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify(body: bytes, secret: str, header: str) -> bool:
    """What a receiver does (also used by the tests)."""
    return hmac.compare_digest(sign(body, secret), header)


class _Answer(BaseModel):
    status_code: int | None = None
    error: str | None = None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def worth_retrying(self) -> bool:
        code = self.status_code
        return code is None or code >= 500 or code in RETRY_STATUSES


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> _Answer:
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return _Answer(status_code=response.status)
    except urllib.error.HTTPError as err:
        return _Answer(status_code=err.code, error=f"HTTP {err.code} {err.reason}")
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as err:  # refused, timed out, TLS
        reason = getattr(err, "reason", None) or err
        return _Answer(error=f"{type(err).__name__}: {reason}")


class WebhookSender:
    """``job_finished`` queues an event and returns at once; a background thread delivers it.

    ``configure`` takes a reloaded configuration: the events still queued go to the new receivers.
    """

    def __init__(self, config: NotifyConfig, public_url: str | None, state_dir: Path) -> None:
        self.config = config
        self.public_url = public_url
        self.log_file = state_dir / WEBHOOK_LOG
        self.log = structlog.get_logger("heygemd.daemon")
        self._queue: queue.Queue[JobRecord] = queue.Queue(maxsize=QUEUE_SIZE)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._log_lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return bool(self.config.webhook_urls)

    def start(self) -> None:
        self._describe()
        self._thread = threading.Thread(target=self._run, name="webhooks", daemon=True)
        self._thread.start()

    def configure(self, config: NotifyConfig, public_url: str | None) -> None:
        changed = config != self.config
        self.config, self.public_url = config, public_url
        if changed and self._thread is not None:
            self._describe()

    def _describe(self) -> None:
        if self.enabled and self.config.webhook_secret is None:
            self.log.warning("webhooks are sent unsigned: set notify.webhook_secret (or HEYGEMD_NOTIFY__WEBHOOK_SECRET)")

    def job_finished(self, record: JobRecord) -> None:
        if self._thread is None or not self.enabled:
            return
        try:
            self._queue.put_nowait(record.model_copy(deep=True))
        except queue.Full:
            self.log.warning("webhook queue full; event dropped", job=record.name, queued=QUEUE_SIZE)
            self._record_all(record.name, "", event_type(record), "dropped", error="the queue of events to send was full")

    def stop(self) -> None:
        """Give queued events a moment, then record the rest as not sent."""
        if self._thread is None:
            return
        deadline = time.monotonic() + STOP_DRAIN_SECONDS
        while not self._queue.empty() and time.monotonic() < deadline:
            time.sleep(0.05)
        self._stop.set()
        self._thread.join(timeout=self.config.timeout_seconds + 1)
        self._thread = None

    # -------------------------------------------------------------- the thread

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                record = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                self._send(build_event(record, self.public_url))
            except Exception:  # a defect here must not end the notifications for good
                self.log.exception("webhook event could not be sent", job=record.name)
        while True:
            try:
                record = self._queue.get_nowait()
            except queue.Empty:
                return
            self._record_all(record.name, "", event_type(record), "not sent", error="the service stopped first")

    def _send(self, event: WebhookEvent) -> None:
        body = event.model_dump_json().encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"heygemd/{__version__}",
            EVENT_HEADER: event.type.value,
            EVENT_ID_HEADER: event.id,
            TIMESTAMP_HEADER: str(int(event.time.timestamp())),
        }
        if self.config.webhook_secret is not None:
            headers[SIGNATURE_HEADER] = sign(body, self.config.webhook_secret.get_secret_value())
        for receiver, url in enumerate(self.config.webhook_urls):
            self._deliver(receiver, url, body, headers, event)

    def _deliver(self, receiver: int, url: str, body: bytes, headers: dict[str, str], event: WebhookEvent) -> None:
        started = time.monotonic()
        answer, attempt = _Answer(), 0
        for attempt in range(1, self.config.attempts + 1):
            answer = post(url, body, headers, self.config.timeout_seconds)
            if answer.delivered or not answer.worth_retrying or attempt == self.config.attempts:
                break
            if self._stop.wait(self.config.backoff_seconds * 2 ** (attempt - 1)):
                break
        outcome = "delivered" if answer.delivered else "failed"
        delivery = Delivery(
            event_id=event.id,
            type=event.type,
            job=event.job,
            receiver=receiver,
            host=_host(url),
            outcome=outcome,
            attempts=attempt,
            status_code=answer.status_code,
            error=None if answer.delivered else answer.error,
            seconds=round(time.monotonic() - started, 3),
        )
        report = self.log.info if answer.delivered else self.log.warning
        report(
            "webhook " + outcome,
            job=event.job,
            kind=event.type.value,
            receiver=receiver,
            host=delivery.host,
            attempts=attempt,
            status_code=answer.status_code,
            error=delivery.error,
        )
        self._record(delivery)

    # -------------------------------------------------------------- webhooks.jsonl

    def _record_all(self, job: str, event_id: str, kind: EventType, outcome: str, error: str) -> None:
        for receiver, url in enumerate(self.config.webhook_urls):
            self._record(
                Delivery(
                    event_id=event_id, type=kind, job=job, receiver=receiver, host=_host(url), outcome=outcome, error=error
                )
            )

    def _record(self, delivery: Delivery) -> None:
        with self._log_lock:
            try:
                lines = self.log_file.read_text(encoding="utf-8").splitlines()
            except FileNotFoundError:
                lines = []
            except OSError:
                return
            lines = [*lines[-(WEBHOOK_LOG_LINES - 1) :], delivery.model_dump_json()]
            with contextlib.suppress(OSError):  # a full state disk: the log line says it all the same
                write_atomic(self.log_file, "\n".join(lines) + "\n", durable=False)


def _host(url: str) -> str:
    return urlsplit(url).hostname or ""
