"""RenderNotes: the seconds per stage and the warnings that a render's threads add to at once."""

from __future__ import annotations

import threading
import time

from heygemd.engine.notes import RenderNotes
from heygemd.engine.report import Stage

THREADS = 4
ADDS = 50


def run_together(work, threads: int = THREADS) -> None:
    start = threading.Barrier(threads)

    def worker() -> None:
        start.wait()
        work()

    running = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join()


def test_no_addition_is_lost_when_threads_add_at_once():
    """Each add reads the clock between reading and writing the sum; a clock that lets other threads
    run right there (as a real one may) loses additions unless the sum is guarded."""

    def yielding_clock() -> float:
        time.sleep(0.0005)  # another thread runs now
        return 1.0

    notes = RenderNotes(clock=yielding_clock)

    def add_seconds() -> None:
        for _ in range(ADDS):
            notes.add(Stage.DECODE, since=0.0)  # one second each

    run_together(add_seconds)
    assert notes.seconds(Stage.DECODE) == THREADS * ADDS


def test_warnings_from_several_threads_are_all_kept_in_each_threads_order():
    notes = RenderNotes()

    def warn() -> None:
        name = threading.get_ident()
        for number in range(ADDS):
            notes.warn(f"{name} {number}")

    run_together(warn)
    warnings = notes.warnings
    assert len(warnings) == THREADS * ADDS
    for name in {warning.split()[0] for warning in warnings}:
        assert [int(w.split()[1]) for w in warnings if w.split()[0] == name] == list(range(ADDS))


def test_timings_name_every_stage_and_the_total():
    ticks = iter([10.0, 12.5, 20.0])
    notes = RenderNotes(clock=lambda: next(ticks))
    started = notes.now()  # 10.0
    notes.add(Stage.MODEL, started)  # 12.5 - 10
    notes.add(Stage.DETECT, started, excluding=3.0)  # 20 - 10 - 3
    notes.record(Stage.AUDIO, 0.25)
    timings = notes.timings(total=30.0)
    assert timings.model_dump() == {
        "probe": 0.0,
        "audio": 0.25,
        "decode": 0.0,
        "detect": 7.0,
        "model": 2.5,
        "blend": 0.0,
        "restore": 0.0,
        "encode": 0.0,
        "total": 30.0,
    }
    assert set(timings.model_dump()) == {stage.value for stage in Stage} | {"total"}


def test_timed_counts_the_time_spent_producing_items_and_closes_its_source():
    ticks = iter(range(100))
    notes = RenderNotes(clock=lambda: float(next(ticks)))
    closed = threading.Event()

    def source():
        try:
            yield from ("a", "b", "c")
        finally:
            closed.set()

    stream = notes.timed(Stage.ENCODE, source())
    assert next(stream) == "a" and next(stream) == "b"
    stream.close()
    assert closed.is_set() and notes.seconds(Stage.ENCODE) == 2.0  # one tick per item produced
