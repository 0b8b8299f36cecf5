"""sd_notify messages to systemd (a no-op when not started by systemd, i.e. without $NOTIFY_SOCKET).

sdnotify finds and connects the socket ($NOTIFY_SOCKET, abstract namespace included). We send
through that socket ourselves rather than with ``SystemdNotifier.notify``, which encodes
latin-1 (a STATUS naming a job "名前" would be dropped silently) and blocks on a full queue:
here a notification that cannot be queued is dropped rather than stalling a render.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import sdnotify


class Notifier:
    def __init__(self) -> None:
        self._socket: socket.socket | None = sdnotify.SystemdNotifier().socket
        if self._socket is not None:
            self._socket.setblocking(False)
        self._last_status: str | None = None
        self._ready = False  # systemd watches with WatchdogSec from READY=1 on (before it: TimeoutStartSec)
        self._last_watchdog = 0.0
        self.watchdog_interval = self._watchdog_interval()

    @staticmethod
    def _watchdog_interval() -> float | None:
        """Seconds between WATCHDOG=1 pings (half of WatchdogSec), or None if systemd does not watch us."""
        usec = os.environ.get("WATCHDOG_USEC")
        pid = os.environ.get("WATCHDOG_PID")
        if not usec or (pid and pid.isdigit() and int(pid) != os.getpid()):
            return None
        try:
            return max(int(usec) / 1e6 / 2, 0.1)
        except ValueError:
            return None

    def send(self, *lines: str) -> None:
        if self._socket is None:
            return
        try:
            self._socket.send("\n".join(lines).encode("utf-8"), socket.MSG_NOSIGNAL)
        except OSError:
            pass  # systemd gone or its queue full: nothing to do about it here

    def ready(self, status: str) -> None:
        self._ready = True
        self._last_status = status
        self.send("READY=1", f"STATUS={status}")

    def status(self, text: str) -> None:
        if text != self._last_status:
            self._last_status = text
            self.send(f"STATUS={text}")

    def watchdog(self) -> None:
        """Call whenever the work loop makes progress; pings are spaced to half of WatchdogSec."""
        if self.watchdog_interval is None:
            return
        now = time.monotonic()
        if now - self._last_watchdog >= self.watchdog_interval:
            self._last_watchdog = now
            self.send("WATCHDOG=1")

    @contextmanager
    def keep_alive(self, limit_seconds: float) -> Iterator[None]:
        """Ping the watchdog from a thread while the block runs (a model build: one long call that cannot ping),
        from its start, every ``watchdog_interval``; the pings stop when the block ends, however it ends, or after
        ``limit_seconds``: a block still running then is taken as hung, and the watchdog is left to restart the
        service. Before READY=1 there is no watchdog to feed (the start-up build is bounded by TimeoutStartSec)."""
        if self.watchdog_interval is None or not self._ready:
            yield
            return
        interval = self.watchdog_interval
        done = threading.Event()

        give_up = time.monotonic() + limit_seconds

        def ping() -> None:
            while time.monotonic() < give_up:
                self._last_watchdog = time.monotonic()
                self.send("WATCHDOG=1")
                if done.wait(interval):
                    return

        pinger = threading.Thread(target=ping, name="watchdog-keep-alive", daemon=True)
        pinger.start()
        try:
            yield
        finally:
            done.set()
            pinger.join()

    def reloading(self) -> None:
        self.send("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")

    def stopping(self, status: str, extend_seconds: float | None = None) -> None:
        lines = ["STOPPING=1", f"STATUS={status}"]
        if extend_seconds is not None:
            lines.append(f"EXTEND_TIMEOUT_USEC={int(extend_seconds * 1e6)}")
        self._last_status = status
        self.send(*lines)
