"""Watching the inbox never pauses: a background thread scans it while the service renders.

The observer (watcher.py) wakes this thread; the thread scans the inbox with the readiness
tracker (readiness.py) and keeps the latest result, so settle windows run and `status` lists the
folders arriving while a job renders, and the next ready job is claimed as soon as the current
one ends. It wakes the service loop whenever a folder is ready or abandoned.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import structlog

from heygemd.daemon.config import WatchConfig
from heygemd.daemon.readiness import InboxScan, ReadinessTracker
from heygemd.daemon.reports import utc_now
from heygemd.daemon.watcher import InboxWatcher


class Arrivals:
    def __init__(self, inbox: Path, watch: WatchConfig, tracker: ReadinessTracker, service_wake: threading.Event) -> None:
        self.inbox = inbox
        self.watch = watch
        self.tracker = tracker
        self.service_wake = service_wake
        self.log = structlog.get_logger("heygemd.daemon")
        self._event = threading.Event()  # set by the observer and by `rescan`
        self.watcher = InboxWatcher(inbox, watch.mode, watch.poll_interval_seconds, self._event)
        self._lock = threading.Lock()
        self._latest = InboxScan()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._inbox_missing_reported = False
        self.on_scan: Callable[[InboxScan], None] | None = None

    # -------------------------------------------------------------- the service's side

    def start(self) -> None:
        self.watcher.ensure_running()
        self._thread = threading.Thread(target=self._run, name="arrivals", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._event.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.watcher.stop()

    def latest(self) -> InboxScan:
        with self._lock:
            return self._latest

    def first_seen(self, name: str) -> datetime | None:
        """When ``name`` was first seen in the inbox (since this service started), as a UTC time."""
        with self._lock:
            seen = self.tracker.first_seen(name)
        return None if seen is None else utc_now() - timedelta(seconds=max(0.0, time.monotonic() - seen))

    def claimed(self, name: str) -> None:
        """The service took ``name`` out of the inbox: no longer ready, arriving or abandoned."""
        with self._lock:
            self.tracker.forget(name)
            self._latest = self._latest.without(name)

    # -------------------------------------------------------------- the thread

    def _run(self) -> None:
        last_full = time.monotonic()
        while not self._stop.is_set():
            try:
                scan = self._scan_once()
            except Exception:  # a bug here must not stop the watching for good
                self.log.exception("scanning the inbox failed; trying again")
                scan = InboxScan()
            if self.on_scan is not None:
                self.on_scan(scan)
            if scan.ready or scan.abandoned:
                self.service_wake.set()
            if time.monotonic() - last_full >= self.watch.rescan_interval_seconds:
                last_full = time.monotonic()
                self.watcher.ensure_running()  # a safety net: an observer that died, an inbox replaced
            self._event.wait(self._wait_seconds(scan))
            if self._event.is_set() and not self._stop.is_set():
                self._event.clear()
                self._stop.wait(self.watch.scan_interval_seconds)  # events come in floods while files copy

    def _wait_seconds(self, scan: InboxScan) -> float:
        if scan.waiting:
            return self.watch.scan_interval_seconds
        if scan.inbox_missing:  # no observer can tell when the share is back
            return self.watch.poll_interval_seconds
        return self.watch.rescan_interval_seconds

    def _scan_once(self) -> InboxScan:
        scan = self.tracker.scan(self.inbox, time.monotonic())
        self._report_inbox(scan)
        before = {folder.name for folder in self._latest.ready}
        for folder in scan.ready:
            if folder.name not in before:
                self.log.info("folder ready", name=folder.name)
        with self._lock:
            self._latest = scan
        return scan

    def _report_inbox(self, scan: InboxScan) -> None:
        if scan.inbox_missing:
            if not self._inbox_missing_reported:
                self._inbox_missing_reported = True
                self.log.warning(
                    "inbox is missing (share unmounted?); waiting for it, nothing is concluded meanwhile",
                    inbox=str(self.inbox),
                )
                self.watcher.stop()
            return
        if self._inbox_missing_reported:
            self._inbox_missing_reported = False
            self.log.info("inbox is back", inbox=str(self.inbox))
            self.watcher.ensure_running()
        for name in scan.new_loose_entries:
            self.log.warning(
                "loose entry at the inbox root left alone; jobs must be folders", entry=name, inbox=str(self.inbox)
            )
        for name in scan.new_hidden_folders:
            self.log.warning(
                "folder whose name starts with a dot left alone; rename it without the dot to make it a job",
                entry=name,
                inbox=str(self.inbox),
            )
