"""The Celery application of both sides, with the broker settings cluster mode relies on."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from celery import Celery

# Redis redelivers an unacknowledged message after the visibility timeout. A render may last hours on a
# CPU, and a live worker must never get its video delivered twice, so the timeout is a week: dead workers
# are found by the per-task heartbeat (store.py), never by redelivery.
VISIBILITY_TIMEOUT_SECONDS = 7 * 24 * 3600
BROKER_HEARTBEAT_SECONDS = 10  # the worker's broker connection is checked this often
RESULT_EXPIRES_SECONDS = 24 * 3600


def redact(url: str) -> str:
    """The broker URL without its password, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    user = parts.username or ""
    return urlunsplit((parts.scheme, f"{user}:***@{host}", parts.path, parts.query, parts.fragment))


def make_app(broker_url: str, queue: str) -> Celery:
    app = Celery("heygemd", broker=broker_url, backend=broker_url)
    app.conf.update(
        task_default_queue=queue,
        task_acks_late=True,  # acknowledged when the video is rendered: a worker that dies keeps it unacked
        task_reject_on_worker_lost=True,  # ... and a pool process lost mid-task is not counted as done
        worker_prefetch_multiplier=1,  # a worker holds only the video it renders: the others go to idle workers
        worker_concurrency=1,
        broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT_SECONDS},
        result_backend_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT_SECONDS},
        broker_heartbeat=BROKER_HEARTBEAT_SECONDS,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # a Redis restart is waited out, forever
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_expires=RESULT_EXPIRES_SECONDS,
        task_track_started=False,  # our own hash tracks it (store.py)
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,  # our JSON log lines go straight to the journal
        worker_send_task_events=False,
        task_publish_retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 1},
    )
    return app
