"""Overlapping stages with threads and bounded queues.

Decoding (a pipe read), the model (torch) and encoding (a pipe write) all release the GIL, so
a thread per stage lets the slowest one set the pace. Queues are bounded, so memory stays a
few dozen frames whatever the video's length; an error in any stage reaches the caller.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
POLL_S = 0.1  # how often a blocked stage looks whether it should stop


@dataclass
class _End:
    error: BaseException | None = None


def prefetch(source: Iterable[T], depth: int, name: str = "prefetch") -> Generator[T, None, None]:
    """Iterate ``source`` in a background thread, at most ``depth`` items ahead of the caller.

    Closing the returned generator early stops the thread and closes ``source``.
    """
    items: queue.Queue[T | _End] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        iterator = iter(source)
        end = _End()
        try:
            for item in iterator:
                if not _put(items, item, stop):
                    break
        except BaseException as error:  # handed to the consumer, raised there
            end = _End(error)
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
        _put(items, end, stop)

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item
    finally:
        stop.set()
        thread.join()


def _put(items: queue.Queue, item: object, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            items.put(item, timeout=POLL_S)
            return True
        except queue.Full:
            continue
    return False


class BackgroundSink(Generic[T]):
    """Hands items to ``consume`` in a background thread, at most ``depth`` waiting."""

    def __init__(self, consume: Callable[[T], None], depth: int, name: str = "sink") -> None:
        self._consume = consume
        self._items: queue.Queue[T | _End] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, item: T) -> None:
        self._raise_if_failed()
        if not _put(self._items, item, self._stop):  # the consumer stopped: say why
            self._thread.join()
            self._raise_if_failed()

    def close(self) -> None:
        """Wait until every item was consumed; re-raise the consumer's error, if any."""
        _put(self._items, _End(), self._stop)
        self._thread.join()
        self._raise_if_failed()

    def abort(self) -> None:
        """Stop without consuming what is still queued."""
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            try:
                item = self._items.get(timeout=POLL_S)
            except queue.Empty:
                if self._stop.is_set():
                    return
                continue
            if isinstance(item, _End) or self._stop.is_set():
                return
            try:
                self._consume(item)
            except BaseException as error:
                self._error = error
                self._stop.set()
                return

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error
        if self._stop.is_set() and not self._thread.is_alive():
            raise RuntimeError("the background stage has stopped")


class GrowingList(Generic[T]):
    """A list that a background thread fills from ``source``; reading item i waits until it is in.

    Lets a consumer start on the first items while the producer is still working on later
    ones (face boxes for the write loop while detection goes on). ``close`` stops the producer.
    """

    def __init__(self, source: Iterable[T] | None, name: str = "growing-list") -> None:
        """Start filling from ``source`` (None: nothing to fill, the list is finished and empty)."""
        self._items: list[T] = []
        self._finished = source is None
        self._error: BaseException | None = None
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if source is not None:
            self._thread = threading.Thread(target=self._fill, args=(source,), name=name, daemon=True)
            self._thread.start()

    @classmethod
    def complete(cls, items: list[T]) -> GrowingList[T]:
        """A list whose items are all in already: no thread."""
        done: GrowingList[T] = cls(None)
        done._items = items
        return done

    def __getitem__(self, index: int) -> T:
        """Item ``index`` (>= 0), waiting for it; IndexError if the source ended before it."""
        with self._changed:
            self._changed.wait_for(lambda: len(self._items) > index or self._finished)
            if len(self._items) > index:
                return self._items[index]
            if self._error is not None:
                raise self._error
            raise IndexError(f"the source ended after {len(self._items)} items")

    @property
    def finished(self) -> bool:
        """True once the source is exhausted (or failed)."""
        return self._finished

    def __len__(self) -> int:
        """The number of items in so far."""
        return len(self._items)

    def wait(self, timeout: float | None = None) -> list[T]:
        """Every item, once the source is exhausted; re-raises the producer's error.

        With a ``timeout`` (seconds) it may return early: check ``finished``.
        """
        if self._thread is not None:
            self._thread.join(timeout)
        if self._error is not None:
            raise self._error
        return self._items

    def close(self) -> None:
        """Stop the producer (after its current item) and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _fill(self, source: Iterable[T]) -> None:
        iterator = iter(source)
        try:
            for item in iterator:
                with self._changed:
                    self._items.append(item)
                    self._changed.notify_all()
                if self._stop.is_set():
                    break
        except BaseException as error:  # handed to the readers, raised there
            self._error = error
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
            with self._changed:
                self._finished = True
                self._changed.notify_all()
