"""The service keeps ``<state>/metrics.json`` (heygemd.metrics) up to date.

Counters are loaded at start-up and only grow: a job and its videos are counted when the job's
history line is written (once, also across a crash), a render when its video is finished.
Gauges say what is true now; they are written with the status, at most every
``GAUGE_WRITE_SECONDS`` unless up, ready or paused changed. A write that fails (a full state disk)
is skipped: metrics never stop the work.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from heygemd.daemon.config import PathsConfig
from heygemd.daemon.journal import JobRecord
from heygemd.daemon.reports import JobStatus, VideoStatus
from heygemd.engine import RenderReport
from heygemd.metrics import Gauges, Metrics, read_metrics, write_metrics

GAUGE_WRITE_SECONDS = 2.0
VIDEO_OK = "ok"
UNCACHED_DETECTORS = ("fixed_box",)  # a fixed box needs no face track: neither a hit nor a miss


def job_key(record: JobRecord) -> str:
    """``"ok"``, ``"partial"`` or ``"failed/<code>"`` (a cancelled job is ``"failed/cancelled"``)."""
    status = (record.status or JobStatus.FAILED).value
    return f"{status}/{record.failure.code.value}" if record.failure is not None else status


def free_bytes(path: Path) -> int | None:
    try:
        found = os.statvfs(path)
    except OSError:
        return None  # not there (yet), or the share is gone: no number rather than a wrong one
    return found.f_bavail * found.f_frsize


class MetricsRecorder:
    def __init__(self, state_dir: Path, paths: PathsConfig) -> None:
        self.state_dir = state_dir
        self.paths = paths
        self.metrics: Metrics = read_metrics(state_dir)
        self.metrics.gauges = Gauges(up=True, last_real_time_factor=self.metrics.gauges.last_real_time_factor)
        self._gauges_written = float("-inf")
        self._write()

    # -------------------------------------------------------------- counters

    def rendered(self, report: RenderReport, wall_seconds: float) -> None:
        """A video was rendered (not yet published): its wall time, its speed, the face-track cache."""
        counters = self.metrics.counters
        counters.render_seconds.observe(wall_seconds)
        counters.video_seconds_produced += report.output.duration_s
        if wall_seconds > 0:
            self.metrics.gauges.last_real_time_factor = round(report.output.duration_s / wall_seconds, 4)
        if not report.dry_run and report.faces.detector not in UNCACHED_DETECTORS:
            if report.faces.cache_hit:
                counters.face_track_cache_hits += 1
            else:
                counters.face_track_cache_misses += 1
        self._write()

    def job_finished(self, record: JobRecord) -> None:
        """The job was published or quarantined; call once per job (when its history line is written)."""
        counters = self.metrics.counters
        key = job_key(record)
        counters.jobs[key] = counters.jobs.get(key, 0) + 1
        for video in record.videos:
            if video.status is VideoStatus.OK:
                counters.videos[VIDEO_OK] = counters.videos.get(VIDEO_OK, 0) + 1
            elif video.status is VideoStatus.FAILED and video.failure is not None:
                failed = f"{VideoStatus.FAILED.value}/{video.failure.code.value}"
                counters.videos[failed] = counters.videos.get(failed, 0) + 1
        self._write()

    # -------------------------------------------------------------- gauges

    def gauges(self, *, up: bool, ready: bool, paused: bool, queue_length: int, folders_arriving: int) -> None:
        gauges = self.metrics.gauges
        flags_changed = (gauges.up, gauges.ready, gauges.paused) != (up, ready, paused)
        gauges.up, gauges.ready, gauges.paused = up, ready, paused
        gauges.queue_length, gauges.folders_arriving = queue_length, folders_arriving
        if flags_changed or time.monotonic() - self._gauges_written >= GAUGE_WRITE_SECONDS:
            self._write()

    def _write(self) -> None:
        gauges = self.metrics.gauges
        for name, folder in (("outbox", self.paths.outbox), ("work", self.paths.work)):
            found = free_bytes(folder)
            if found is None:
                gauges.free_bytes.pop(name, None)
            else:
                gauges.free_bytes[name] = found
        self._gauges_written = time.monotonic()
        with contextlib.suppress(OSError):  # a full or read-only state disk must not stop the work
            write_metrics(self.state_dir, self.metrics)
