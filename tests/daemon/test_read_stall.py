"""Reading a job's files (hashing them) is under the stall watch: chunk by chunk is progress, a stop is a stall."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

from heygemd.daemon.supervise import StallWatch

STALL_SECONDS = 1.0


def test_a_long_read_that_keeps_reading_is_not_a_stall():
    chunks = 0

    def read(chunk) -> str:
        nonlocal chunks
        deadline = time.monotonic() + 3 * STALL_SECONDS  # longer than the stall window, a chunk every 0.1 s
        while time.monotonic() < deadline:
            time.sleep(0.1)
            chunk()
            chunks += 1
        return "digest"

    watch = StallWatch(STALL_SECONDS, grace_seconds=30.0)
    assert watch.run(lambda progress: read(lambda: progress(None)), lambda update: None, threading.Event()) == "digest"
    assert chunks > 10


STALLED_READ = """
import threading
from heygemd.daemon.supervise import RenderStalled, StallWatch

share_back = threading.Event()  # the stalled share comes back later: the read then fails

def read(chunk):
    chunk()
    share_back.wait(60)
    raise OSError(5, "Input/output error")

threading.Timer(3.0, share_back.set).start()
try:
    StallWatch(1.0, grace_seconds=30.0).run(lambda progress: read(lambda: progress(None)), lambda update: None,
                                            threading.Event())
except RenderStalled as stalled:
    print("stalled:", stalled)
"""


def test_a_read_that_stops_is_a_stall_once_it_returns():
    # In a process of its own: a stall kills the process's children (its ffmpeg), not this test session's servers.
    ran = subprocess.run([sys.executable, "-c", STALLED_READ], capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0 and ran.stdout.startswith("stalled: no progress for 1 seconds"), ran.stderr
