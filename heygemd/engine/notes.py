"""What a render notes while it runs, from several threads: seconds per stage and warnings.

The decoder, the face detector and the encoder run in threads of their own beside the write
loop, and each adds to the same counters; ``RenderNotes`` keeps them behind one lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from heygemd.engine.report import Stage, StageTimings

T = TypeVar("T")


class RenderNotes:
    """Seconds per stage and warnings of one render; every method may be called from any thread."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._seconds: dict[Stage, float] = dict.fromkeys(Stage, 0.0)
        self._warnings: list[str] = []

    def now(self) -> float:
        return self._clock()

    def add(self, stage: Stage, since: float, *, excluding: float = 0.0) -> None:
        """Count the time from ``since`` to now, less ``excluding`` seconds, as spent in ``stage``."""
        with self._lock:  # the clock is read inside: the sum and the reading are one step
            self._seconds[stage] += self._clock() - since - excluding

    def record(self, stage: Stage, seconds: float) -> None:
        """Count ``seconds`` measured elsewhere as spent in ``stage``."""
        with self._lock:
            self._seconds[stage] += seconds

    def seconds(self, stage: Stage) -> float:
        with self._lock:
            return self._seconds[stage]

    def warn(self, warning: str) -> None:
        with self._lock:
            self._warnings.append(warning)

    @property
    def warnings(self) -> list[str]:
        with self._lock:
            return list(self._warnings)

    def timings(self, total: float) -> StageTimings:
        with self._lock:
            return StageTimings(**{stage.value: seconds for stage, seconds in self._seconds.items()}, total=total)

    def timed(self, stage: Stage, items: Iterator[T]) -> Iterator[T]:
        """Pass ``items`` through, counting the time spent producing them as ``stage``."""
        try:
            while True:
                started = self._clock()
                try:
                    item = next(items)
                except StopIteration:
                    return
                finally:
                    self.add(stage, started)
                yield item
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()  # stop the decoder now, not when the garbage collector gets to it

    def timed_call(self, stage: Stage, work: Callable[[T], None]) -> Callable[[T], None]:
        """``work`` that counts its own time as ``stage``."""

        def timed_work(item: T) -> None:
            started = self._clock()
            work(item)
            self.add(stage, started)

        return timed_work
