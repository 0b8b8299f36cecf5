"""The service's counters, kept in ``<state>/metrics.json`` so that they survive restarts.

`heygemd run` updates them as jobs and videos end (and the gauges on every status write);
`heygemd web` turns them into Prometheus metrics on ``/metrics``; `heygemd status --json`
shows them. Counters only grow; a restart loads them back. This module imports nothing heavy.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from heygemd.atomic import write_atomic
from heygemd.clock import utc_now

METRICS_FILE = "metrics.json"
# Upper bounds (seconds) of the render wall-time histogram's buckets; +Inf is implied.
RENDER_SECONDS_BUCKETS: tuple[float, ...] = (5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)


class Histogram(BaseModel):
    """Counts per bucket, not cumulative (one per bound in RENDER_SECONDS_BUCKETS, then +Inf), sum and count."""

    bucket_counts: list[int] = Field(default_factory=lambda: [0] * (len(RENDER_SECONDS_BUCKETS) + 1))
    sum: float = 0.0
    count: int = 0

    def observe(self, value: float) -> None:
        index = next((i for i, bound in enumerate(RENDER_SECONDS_BUCKETS) if value <= bound), len(RENDER_SECONDS_BUCKETS))
        self.bucket_counts[index] += 1
        self.sum += value
        self.count += 1


class Counters(BaseModel):
    """Totals since the state folder was made; they survive restarts."""

    jobs: dict[str, int] = Field(default_factory=dict, description='finished jobs by "<status>" or "<status>/<code>"')
    videos: dict[str, int] = Field(default_factory=dict, description='finished videos by "ok" or "failed/<code>"')
    video_seconds_produced: float = 0.0
    render_seconds: Histogram = Field(default_factory=Histogram)
    face_track_cache_hits: int = 0
    face_track_cache_misses: int = 0


class Gauges(BaseModel):
    """What is true now (rewritten, not accumulated)."""

    up: bool = False
    ready: bool = False
    paused: bool = False
    queue_length: int = 0
    folders_arriving: int = 0
    last_real_time_factor: float | None = Field(None, description="seconds of video per second of wall time, last render")
    free_bytes: dict[str, int] = Field(
        default_factory=dict, description='"outbox" and "work": free bytes on their filesystems'
    )


class Metrics(BaseModel):
    counters: Counters = Field(default_factory=Counters)
    gauges: Gauges = Field(default_factory=Gauges)
    updated_at: datetime = Field(default_factory=utc_now)


def read_metrics(state_dir: Path) -> Metrics:
    try:
        return Metrics.model_validate_json((state_dir / METRICS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValidationError, ValueError):
        return Metrics()


def write_metrics(state_dir: Path, metrics: Metrics) -> None:
    metrics.updated_at = utc_now()
    write_atomic(state_dir / METRICS_FILE, metrics.model_dump_json(indent=2) + "\n", durable=False)
