"""An inbox moved away or unmounted shows as "waiting for the inbox" within about a scan interval.

The native watcher gets no event when the watched folder itself goes, and the full rescan comes
only every ``rescan_interval_seconds`` (300 s by default, kept here): the arrivals thread looks at
the inbox folder itself every scan interval. The real `heygemd run`, status.json, STATUS= and the log.
"""

from __future__ import annotations

import json
import os

import pytest
from service_harness import drop_job, service_config

pytestmark = pytest.mark.slow

DEADLINE_SECONDS = 60.0  # generous, and far below the 300 s rescan that was the only way to notice before


def test_a_moved_away_inbox_is_waited_for_at_once_and_taken_up_again(daemon_factory, media, notify_socket):
    daemon = daemon_factory(env={"NOTIFY_SOCKET": str(notify_socket.path)})
    daemon.write_config(service_config(daemon.root, watch={"rescan_interval_seconds": 300.0, "mode": "native"}))
    daemon.start()
    daemon.wait_ready()
    status_file = daemon.state / "status.json"

    def state() -> str:
        try:
            return json.loads(status_file.read_text())["state"]
        except (OSError, ValueError, KeyError):
            return ""

    daemon.wait_for(lambda: state() == "idle", "the service to be idle")
    os.rename(daemon.inbox, daemon.root / "unmounted")
    daemon.wait_for(lambda: state() == "waiting for the inbox", "status: waiting for the inbox", DEADLINE_SECONDS)
    assert daemon.logged("inbox is missing (share unmounted?); waiting for it, nothing is concluded meanwhile")
    daemon.wait_for(
        lambda: any(message.startswith("STATUS=waiting for the inbox") for message in notify_socket.messages),
        "STATUS=waiting for the inbox",
        DEADLINE_SECONDS,
    )
    os.rename(daemon.root / "unmounted", daemon.inbox)
    daemon.wait_for(lambda: daemon.logged("inbox is back"), "the inbox to be seen again", DEADLINE_SECONDS)
    daemon.wait_for(lambda: state() == "idle", "status: idle again", DEADLINE_SECONDS)
    drop_job(daemon.inbox, "after", {"a.wav": media["audio"], "v.mp4": media["video"]})
    daemon.wait_outbox("after")
    assert daemon.stop() == 0
