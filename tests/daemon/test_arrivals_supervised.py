"""The thread that watches the inbox is supervised: if it dies, the service knows it and must not go on."""

from __future__ import annotations

import threading

import pytest

from heygemd.daemon.arrivals import Arrivals, WatchingStopped
from heygemd.daemon.config import Readiness, WatchConfig
from heygemd.daemon.readiness import InboxScan, ReadinessTracker


class Stop(BaseException):
    """Something no `except Exception` catches, as a thread may meet."""


def arrivals(tmp_path) -> tuple[Arrivals, threading.Event]:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    # A full rescan every 0.05 s: the thread scans again and again with nothing in the inbox.
    watch = WatchConfig(mode="polling", scan_interval_seconds=0.05, poll_interval_seconds=0.05, rescan_interval_seconds=0.05)
    tracker = ReadinessTracker(readiness=Readiness.SETTLE, marker_name="READY", settle_seconds=1, abandon_after_seconds=60)
    wake = threading.Event()
    return Arrivals(inbox, watch, tracker, wake), wake


def test_a_failing_scan_callback_does_not_stop_the_watching(tmp_path):
    watched, _ = arrivals(tmp_path)
    calls: list[InboxScan] = []
    three_scans = threading.Event()

    def failing(scan: InboxScan) -> None:
        calls.append(scan)
        if len(calls) >= 3:
            three_scans.set()
        raise ValueError("a status file that cannot be written")

    watched.on_scan = failing
    watched.start()
    try:
        assert three_scans.wait(30), "the thread scans again after a failing callback"
        assert watched.alive
        watched.check_alive()
    finally:
        watched.stop()


def test_a_dead_watching_thread_is_seen_and_wakes_the_service(tmp_path):
    watched, wake = arrivals(tmp_path)

    def dying(scan: InboxScan) -> None:
        raise Stop

    watched.on_scan = dying
    watched.start()
    try:
        assert wake.wait(30), "the service loop is woken"
        watched._thread.join(30)  # type: ignore[union-attr]
        assert not watched.alive
        with pytest.raises(WatchingStopped):
            watched.check_alive()
    finally:
        watched.stop()
