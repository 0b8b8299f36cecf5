"""sd_notify messages to systemd (a no-op when not started by systemd, i.e. without $NOTIFY_SOCKET).

Sent without blocking: a notification that cannot be queued is dropped rather than stalling a
render (systemd drains its socket; a stuck reader must not stop the work).
"""

from __future__ import annotations

import os
import socket
import time


class Notifier:
    def __init__(self) -> None:
        self.address = self._socket_address(os.environ.get("NOTIFY_SOCKET", ""))
        self._socket: socket.socket | None = None
        if self.address is not None:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._last_status: str | None = None
        self._last_watchdog = 0.0
        self.watchdog_interval = self._watchdog_interval()

    @staticmethod
    def _socket_address(value: str) -> str | None:
        if value.startswith("@"):  # abstract namespace
            return "\0" + value[1:]
        return value if value.startswith("/") else None

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
        if self._socket is None or self.address is None:
            return
        try:
            self._socket.sendto("\n".join(lines).encode(), socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL, self.address)
        except OSError:
            pass  # systemd gone or its queue full: nothing to do about it here

    def ready(self, status: str) -> None:
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

    def reloading(self) -> None:
        self.send("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")

    def stopping(self, status: str, extend_seconds: float | None = None) -> None:
        lines = ["STOPPING=1", f"STATUS={status}"]
        if extend_seconds is not None:
            lines.append(f"EXTEND_TIMEOUT_USEC={int(extend_seconds * 1e6)}")
        self._last_status = status
        self.send(*lines)

    def extend_timeout(self, seconds: float) -> None:
        self.send(f"EXTEND_TIMEOUT_USEC={int(seconds * 1e6)}")
