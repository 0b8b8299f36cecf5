"""Seeing changes in the inbox: watchdog's native observer, or its polling observer on network filesystems.

Events only wake the main loop, which then scans the inbox itself; a periodic full rescan
covers anything an observer misses. If the inbox disappears (unmounted share) the observer
is stopped and started again, on the new directory, once it is back.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from heygemd.daemon.config import WatchMode
from heygemd.daemon.fsutil import filesystem_type, is_network_filesystem


@dataclass(frozen=True)
class WatchPlan:
    mode: WatchMode  # NATIVE or POLLING
    filesystem: str
    reason: str


def choose_watch_mode(inbox: Path, configured: WatchMode) -> WatchPlan:
    fs_type = filesystem_type(inbox) if inbox.exists() else filesystem_type(inbox.parent)
    if configured is WatchMode.POLLING:
        return WatchPlan(WatchMode.POLLING, fs_type, "configured")
    if configured is WatchMode.NATIVE:
        return WatchPlan(WatchMode.NATIVE, fs_type, "configured")
    if is_network_filesystem(fs_type):
        return WatchPlan(
            WatchMode.POLLING, fs_type, f"{fs_type} is a network filesystem: other machines' writes raise no events"
        )
    return WatchPlan(WatchMode.NATIVE, fs_type, f"{fs_type} is local")


class _WakeOnEvent(FileSystemEventHandler):
    def __init__(self, wake: threading.Event) -> None:
        self.wake = wake

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in ("opened", "closed_no_write"):
            self.wake.set()


class InboxWatcher:
    def __init__(self, inbox: Path, mode: WatchMode, poll_interval: float, wake: threading.Event) -> None:
        self.inbox = inbox
        self.plan = choose_watch_mode(inbox, mode)
        self.poll_interval = poll_interval
        self.wake = wake
        self._observer: BaseObserver | None = None
        self._watched_identity: tuple[int, int] | None = None

    @property
    def running(self) -> bool:
        return self._observer is not None and self._observer.is_alive()

    def _identity(self) -> tuple[int, int] | None:
        try:
            info = os.stat(self.inbox)
        except OSError:
            return None
        return (info.st_dev, info.st_ino)

    def ensure_running(self) -> None:
        """Start the observer if the inbox is there; restart it if the inbox was replaced or the observer died."""
        identity = self._identity()
        if identity is None:
            self.stop()
            return
        if self.running and identity == self._watched_identity:
            return
        self.stop()
        if self.plan.mode is WatchMode.POLLING:
            observer: BaseObserver = PollingObserver(timeout=self.poll_interval)
        else:
            observer = Observer()
        observer.schedule(_WakeOnEvent(self.wake), str(self.inbox), recursive=True)
        observer.daemon = True
        try:
            observer.start()
        except OSError:  # e.g. inotify watch limit reached: the periodic scans still find everything
            return
        self._observer = observer
        self._watched_identity = identity

    def stop(self) -> None:
        if self._observer is not None:
            try:
                self._observer.stop()
                self._observer.join(timeout=5)
            except (RuntimeError, OSError):
                pass
        self._observer = None
        self._watched_identity = None
