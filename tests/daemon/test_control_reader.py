"""The service's reading of control.json, where a cancel request's job is, and what `heygemd cancel` says."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from heygemd.control import (
    CancelRequest,
    cancel_honoured,
    request_cancel,
    request_pause,
)
from heygemd.daemon.control_reader import (
    CancelSorter,
    ClaimedJob,
    ControlReader,
    cancel_outlook,
    cancelled_failure,
)
from heygemd.daemon.journal import HistoryEntry, JobRecord, Phase
from heygemd.daemon.reports import JobStatus, utc_now
from heygemd.daemon.status import CurrentJob, ServiceStatus


def test_the_reader_sees_every_change_and_reads_only_changes(tmp_path):
    reader = ControlReader(tmp_path)
    assert not reader.current().paused and not reader.changed()  # no file: nothing asked
    request_pause(tmp_path, True)
    assert reader.changed()
    assert reader.current().paused and not reader.changed()
    request_cancel(tmp_path, "job 1", by="web")
    request_pause(tmp_path, False)  # two writes in a row: the last one counts
    control = reader.current()
    assert not control.paused and [request.job for request in control.cancel] == ["job 1"]
    cancel_honoured(tmp_path, "job 1")
    assert reader.current().cancel == []
    (tmp_path / "control.json").write_text("{ broken")
    assert reader.current().cancel == [] and not reader.current().paused  # a broken file never stops the work


def test_requests_are_sorted_by_where_their_job_is():
    sorter = CancelSorter(forget_after=60)
    now = utc_now()
    requests = [CancelRequest(job=name, requested_at=now) for name in ("queued", "JOB-ID", "publishing", "nowhere")]
    claimed = [ClaimedJob("waits", "JOB-ID", True), ClaimedJob("publishing", "P-ID", False)]
    plan = sorter.sort(requests, claimed, ["queued", "other"], now=1000.0)
    assert plan.claimed == ["JOB-ID"] and plan.inbox == ["queued"] and plan.stale == []
    assert sorter.sort(requests, claimed, [], now=1059.0).stale == []  # "queued" left the inbox: unmatched since 1059
    assert [request.job for request in sorter.sort(requests, claimed, [], now=1060.0).stale] == ["nowhere"]
    assert [request.job for request in sorter.sort(requests[:1], claimed, [], now=1119.0).stale] == ["queued"]


def test_a_request_that_matches_again_starts_its_clock_again():
    sorter = CancelSorter(forget_after=60)
    request = CancelRequest(job="late")
    assert sorter.sort([request], [], [], now=0.0).stale == []
    assert sorter.sort([request], [], ["late"], now=50.0).inbox == ["late"]
    assert sorter.sort([request], [], [], now=100.0).stale == []  # unmatched since 100, not since 0


def test_the_cancelled_failure_names_the_job_and_who_asked():
    failure = cancelled_failure("spring", CancelRequest(job="spring", by="ann (command line)"))
    assert failure.code.value == "cancelled" and '"spring"' in failure.reason and "ann (command line)" in failure.reason


def test_what_cancel_says_for_each_place(tmp_path):
    inbox = tmp_path / "inbox"
    (inbox / "dropped").mkdir(parents=True)
    status = ServiceStatus(current=CurrentJob(job="rendering", job_id="R-ID"))
    claimed = [
        JobRecord(job_id="C-ID", name="claimed", phase=Phase.RENDERING),
        JobRecord(job_id="P-ID", name="publishing", phase=Phase.PUBLISHING),
    ]
    recent = [
        HistoryEntry(
            job="done",
            job_id="D-ID",
            status=JobStatus.OK,
            finished_at=utc_now() - timedelta(minutes=1),
            seconds=3,
            videos_ok=1,
            videos_failed=0,
            outbox=Path("/srv/outbox/done"),
        )
    ]

    def outlook(job: str, running: bool = True):
        return cancel_outlook(job, running=running, status=status, claimed=claimed, inbox=inbox, recent=recent)

    assert outlook("R-ID").request and "rendering" in outlook("R-ID").message
    assert outlook("claimed").request and "claimed (rendering)" in outlook("C-ID").message
    assert not outlook("publishing").request and "too late" in outlook("publishing").message
    assert outlook("dropped").request and "as soon as the current job ends" in outlook("dropped").message
    assert "when the service starts" in outlook("dropped", running=False).message
    assert not outlook("done").request and "already finished (ok, /srv/outbox/done)" in outlook("done").message
    assert not outlook("unknown").request and not outlook("../inbox").request
