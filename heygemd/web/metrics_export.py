"""``/metrics``: the services' counters (``<state>/metrics.json``) as Prometheus metrics, through the official client.

A custom collector reads the files at each scrape, so the numbers are the services' own and
survive restarts of either process. Every metric has a ``service`` label: the service's name (service.name, else its host's).
Whether a service is up is this page's judgement (its process is alive), not the file's word:
a service killed with -9 leaves ``up: true`` behind.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from heygemd.metrics import RENDER_SECONDS_BUCKETS
from heygemd.web.settings import WebSettings
from heygemd.web.views import read_services

PREFIX = "heygemd"
NO_CODE = ""


def _status_and_code(key: str) -> tuple[str, str]:
    status, _, code = key.partition("/")
    return status, code or NO_CODE


class ServicesCollector(Collector):
    def __init__(self, settings: WebSettings) -> None:
        self.settings = settings

    def collect(self) -> Iterator[Metric]:
        labels = ["service"]
        jobs = CounterMetricFamily(
            f"{PREFIX}_jobs_finished",
            "Jobs finished, by status (ok, partial, failed) and error code.",
            labels=[*labels, "status", "code"],
        )
        videos = CounterMetricFamily(
            f"{PREFIX}_videos_finished",
            "Videos finished, by status (ok, failed) and error code.",
            labels=[*labels, "status", "code"],
        )
        produced = CounterMetricFamily(f"{PREFIX}_video_seconds_produced", "Seconds of video produced.", labels=labels)
        render = HistogramMetricFamily(f"{PREFIX}_render_seconds", "Wall time of each video's render.", labels=labels)
        rtf = GaugeMetricFamily(
            f"{PREFIX}_last_real_time_factor", "Seconds of video per second of wall time, of the last render.", labels=labels
        )
        queue = GaugeMetricFamily(f"{PREFIX}_queue_length", "Ready jobs waiting their turn.", labels=labels)
        arriving = GaugeMetricFamily(f"{PREFIX}_folders_arriving", "Folders in the inbox not complete yet.", labels=labels)
        hits = CounterMetricFamily(
            f"{PREFIX}_face_track_cache_hits", "Renders whose face track came from the cache.", labels=labels
        )
        misses = CounterMetricFamily(
            f"{PREFIX}_face_track_cache_misses", "Renders that had to detect the faces.", labels=labels
        )
        free = GaugeMetricFamily(
            f"{PREFIX}_free_bytes",
            "Free bytes on the filesystems of the outbox and the work folder.",
            labels=[*labels, "filesystem"],
        )
        up = GaugeMetricFamily(f"{PREFIX}_up", "1 if the service's process runs.", labels=labels)
        ready = GaugeMetricFamily(f"{PREFIX}_ready", "1 if the service has its model loaded and takes jobs.", labels=labels)
        paused = GaugeMetricFamily(f"{PREFIX}_paused", "1 if the service is asked to take no new jobs.", labels=labels)
        for service in read_services(self.settings):
            name = service.name
            metrics = service.metrics()
            counters, gauges = metrics.counters, metrics.gauges
            alive = service.up
            for key, count in sorted(counters.jobs.items()):
                jobs.add_metric([name, *_status_and_code(key)], count)
            for key, count in sorted(counters.videos.items()):
                videos.add_metric([name, *_status_and_code(key)], count)
            produced.add_metric([name], counters.video_seconds_produced)
            histogram = counters.render_seconds
            cumulative, buckets = 0, []
            for bound, count in zip(
                [*map(str, map(float, RENDER_SECONDS_BUCKETS)), "+Inf"], histogram.bucket_counts, strict=False
            ):
                cumulative += count
                buckets.append((bound, cumulative))
            render.add_metric([name], buckets, sum_value=histogram.sum)
            if gauges.last_real_time_factor is not None:
                rtf.add_metric([name], gauges.last_real_time_factor)
            queue.add_metric([name], gauges.queue_length if alive else 0)
            arriving.add_metric([name], gauges.folders_arriving if alive else 0)
            hits.add_metric([name], counters.face_track_cache_hits)
            misses.add_metric([name], counters.face_track_cache_misses)
            for filesystem, value in sorted(gauges.free_bytes.items()):
                free.add_metric([name, filesystem], value)
            up.add_metric([name], 1 if alive else 0)
            ready.add_metric([name], 1 if alive and gauges.ready else 0)
            paused.add_metric([name], 1 if service.control.paused or gauges.paused else 0)
        yield from (jobs, videos, produced, render, rtf, queue, arriving, hits, misses, free, up, ready, paused)


def registry_for(settings: WebSettings) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServicesCollector(settings))
    return registry
