"""A render that makes no progress is noticed: it runs in its own thread, watched by the service's.

A decoder blocked on a stalled share or a hung GPU call stops the progress callbacks. After
``stall_seconds`` without one, the render is cancelled: the cancel event is set (the engine stops at
its next check and removes the partial output) and this process's ffmpeg children are killed (a
render waiting on a blocked decoder would never reach that check). The video then counts as a
transient ``render.stalled`` failure. A render that does not even return within ``grace_seconds``
of the cancel is stuck in a call no thread can interrupt: the service must restart (RenderHung),
so that systemd's watchdog is not what ends it.

The same watch stops a render the caller abandons (``abandon``: a person cancelled the job): the
cancel event is set at once, and the ffmpeg children are killed if the render has not returned
``ABANDON_KILL_SECONDS`` later (a decoder blocked on a stalled share never lets it reach its check).
The render then ends with ``RenderCancelled``.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

from heygemd.engine import RenderCancelled, RenderProgress

T = TypeVar("T")
POLL_SECONDS = 0.5
ABANDON_KILL_SECONDS = 2.0
MIN_GRACE_SECONDS = 30.0


class RenderStalled(Exception):
    """No progress for too long; the render was cancelled and has returned."""

    def __init__(self, seconds: float, stage: str | None) -> None:
        super().__init__(f"no progress for {seconds:.0f} seconds" + (f" (stage: {stage})" if stage else ""))
        self.stage = stage


class RenderHung(Exception):
    """No progress, and the render did not return after it was cancelled: only a restart frees it."""


class _Outcome(Generic[T]):
    def __init__(self) -> None:
        self.value: T | None = None
        self.error: BaseException | None = None


class StallWatch:
    def __init__(self, stall_seconds: float, grace_seconds: float) -> None:
        self.stall_seconds = stall_seconds
        self.grace_seconds = grace_seconds

    @classmethod
    def for_stall(cls, stall_seconds: float) -> StallWatch:
        """The watch of a render (service or worker): a stalled render gets half its stall time, at least
        MIN_GRACE_SECONDS, to return once cancelled."""
        return cls(stall_seconds, grace_seconds=max(MIN_GRACE_SECONDS, stall_seconds / 2))

    def run(
        self,
        render: Callable[[Callable[[RenderProgress], None]], T],
        on_progress: Callable[[RenderProgress], None],
        cancel: threading.Event,
        abandon: Callable[[], bool] | None = None,
    ) -> T:
        """Call ``render(progress)`` in a thread and wait for it; ``cancel`` is the event the render honours.

        ``abandon`` is asked every POLL_SECONDS (in this thread) whether the render must stop.
        """
        last_progress = time.monotonic()
        last_stage: str | None = None

        def progress(update: RenderProgress) -> None:
            nonlocal last_progress, last_stage
            last_progress, last_stage = time.monotonic(), update.stage
            on_progress(update)

        outcome: _Outcome[T] = _Outcome()

        def target() -> None:
            try:
                outcome.value = render(progress)
            except BaseException as err:  # handed to the waiting thread
                outcome.error = err

        thread = threading.Thread(target=target, name="render", daemon=True)
        thread.start()
        stalled_at: float | None = None
        abandoned_at: float | None = None
        killed = False
        while thread.is_alive():
            thread.join(POLL_SECONDS)
            now = time.monotonic()
            if abandoned_at is None and stalled_at is None and abandon is not None and abandon():
                abandoned_at = now
                cancel.set()
            elif abandoned_at is not None and not killed and now - abandoned_at >= ABANDON_KILL_SECONDS:
                kill_children()
                killed = True
            stopping_since = stalled_at or abandoned_at
            if stopping_since is None and now - last_progress >= self.stall_seconds:
                stalled_at = now
                cancel.set()
                kill_children()
            elif stopping_since is not None and now - stopping_since >= self.grace_seconds and thread.is_alive():
                raise RenderHung(
                    f"the render made no progress for {now - last_progress:.0f} seconds"
                    + (f" (stage: {last_stage})" if last_stage else "")
                    + " and did not stop when cancelled"
                )
        if outcome.error is not None:
            if abandoned_at is not None:  # cancelled, or its killed decoder's error: either way, abandoned
                raise RenderCancelled("the render was stopped before it finished; nothing was kept") from outcome.error
            if stalled_at is not None:  # cancelled, or its killed decoder's error: either way, the stall
                raise RenderStalled(stalled_at - last_progress, last_stage)
            raise outcome.error
        return outcome.value  # type: ignore[return-value]  # (a render that finished just as it was cancelled)


def kill_children(proc: Path = Path("/proc")) -> list[int]:
    """SIGKILL every direct child process of this one (the service's only children are ffmpeg and ffprobe)."""
    me = os.getpid()
    killed = []
    for entry in proc.iterdir() if proc.is_dir() else []:
        if not entry.name.isdigit():
            continue
        try:
            # /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces and parentheses.
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == me:
            try:
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
            except ProcessLookupError:
                pass
    return killed
