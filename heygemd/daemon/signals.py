"""Signals as flags for the main loop: SIGTERM/SIGINT ask it to stop, SIGHUP to reload the configuration."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable


class ServiceSignals:
    def __init__(self, wake: threading.Event) -> None:
        self.wake = wake
        self.stop_requested = threading.Event()
        self.reload_requested = threading.Event()
        self.stop_count = 0
        self.on_stop: Callable[[int], None] | None = None  # called with 1 on the first stop signal, 2+ after

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        signal.signal(signal.SIGHUP, self._reload)

    def _stop(self, signum: int, frame: object) -> None:
        self.stop_count += 1
        self.stop_requested.set()
        self.wake.set()
        if self.on_stop is not None:
            self.on_stop(self.stop_count)

    def _reload(self, signum: int, frame: object) -> None:
        self.reload_requested.set()
        self.wake.set()
