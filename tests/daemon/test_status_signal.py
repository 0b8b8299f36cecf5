"""A stop signal that lands in the middle of a status write never deadlocks the service.

The service writes status.json from its stop-signal handler, which runs in the main thread between
two bytecodes, possibly inside a status write that holds the file's lock. A real process writes the
status in a loop while a timer sends it SIGALRM every 2 ms, and its handler writes too,
as the service's stop handler does. Before the fix this hung on the lock (found by a whole-suite run:
a service that never answered SIGTERM).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

WRITER = textwrap.dedent(
    """
    import signal, sys
    from pathlib import Path
    from heygemd.daemon.status import ServiceStatus, StatusFile

    status_file = StatusFile(Path(sys.argv[1]))
    status = ServiceStatus(inbox="inbox")
    handled = 0

    def on_signal(signum, frame):
        global handled
        handled += 1
        status.state = "stopping"
        status_file.write(status, blocking=False)  # what Service._on_stop_signal does

    signal.signal(signal.SIGALRM, on_signal)
    signal.setitimer(signal.ITIMER_REAL, 0.002, 0.002)
    for _ in range(2000):
        status_file.write(status)
    signal.setitimer(signal.ITIMER_REAL, 0, 0)
    print(handled)
    """
)


def test_a_stop_signal_inside_a_status_write_does_not_deadlock(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", WRITER, str(tmp_path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip()) > 0, "the signal was never handled: the test proves nothing"
    assert (tmp_path / "status.json").exists()
