"""The live status: what `heygemd status` and systemd's STATUS= say in each state."""

from __future__ import annotations

from heygemd.daemon.status import IDLE, WAITING_FOR_INBOX, CurrentJob, ServiceStatus


def test_idle_while_the_inbox_is_missing_is_waiting_for_it():
    status = ServiceStatus(inbox="/srv/share/inbox")
    status.set_state(IDLE)
    assert status.state == IDLE and status.summary() == "idle; 0 queued, 0 arriving"
    status.inbox_missing = True
    status.set_state(IDLE)
    assert status.state == WAITING_FOR_INBOX
    assert status.summary() == "waiting for the inbox: /srv/share/inbox is missing (share unmounted?)"
    status.inbox_missing = False
    status.set_state(IDLE)
    assert status.state == IDLE


def test_other_states_are_kept_while_the_inbox_is_missing():
    status = ServiceStatus(inbox="inbox", inbox_missing=True)
    for state in ("loading model", "working", "stopping", "stopped"):
        status.set_state(state)
        assert status.state == state
    status.current = CurrentJob(job="campaign 1", job_id="x", index=1, total=2, percent=40.0)
    assert status.summary() == "job campaign 1: video 1/2 40%; 0 queued"  # a claimed job renders on
