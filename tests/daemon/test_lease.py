"""The lease rules that let several services share one work area: own vs other, live vs expired, one winner."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from heygemd.daemon import lease
from heygemd.daemon.claim import WorkArea
from heygemd.daemon.heartbeat import LeaseKeeper
from heygemd.daemon.journal import JobRecord, Phase, VideoRecord
from heygemd.daemon.lease import LeaseKind, LeaseObserver, Owner, Verdict
from heygemd.daemon.reports import VideoStatus
from heygemd.daemon.takeover import Takeover, gather_results, mirrored_record

LEASE_SECONDS = 10.0


def owner(tmp_path: Path, name: str, **changes) -> Owner:
    """An owner on this machine (same kernel, same pid namespace) with its own state folder."""
    return dataclasses.replace(Owner.current(tmp_path / f"state-{name}"), **changes)


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture
def job_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "work" / "20260101T000000Z-abcdef"
    (folder / "input").mkdir(parents=True)
    return folder


def test_own_lease_is_never_expired(tmp_path, job_dir):
    me = owner(tmp_path, "me")
    lease.create(job_dir, me, "job")
    observer = LeaseObserver(LEASE_SECONDS)
    held = lease.find_lease(job_dir)
    assert held is not None and held.owner_id == me.id and held.kind is LeaseKind.HELD
    assert observer.judge(held, me, now=0.0) is Verdict.MINE
    assert observer.judge(held, me, now=10 * LEASE_SECONDS) is Verdict.MINE


def test_other_lease_expires_only_after_it_stopped_changing_for_lease_seconds(tmp_path, job_dir):
    # Another machine: its pid means nothing here, only its renewals count.
    other = owner(tmp_path, "other", kernel_boot_id="another-kernel", pid=os.getpid())
    me = owner(tmp_path, "me")
    lease.create(job_dir, other, "job")
    observer = LeaseObserver(LEASE_SECONDS)

    assert observer.judge(lease.find_lease(job_dir), me, now=100.0) is Verdict.LIVE  # first sight starts the clock
    assert observer.judge(lease.find_lease(job_dir), me, now=109.0) is Verdict.LIVE
    assert lease.renew(job_dir, other, "job", beat=1) is LeaseKind.HELD  # renewed: the clock starts again
    assert observer.judge(lease.find_lease(job_dir), me, now=109.5) is Verdict.LIVE
    assert observer.judge(lease.find_lease(job_dir), me, now=119.0) is Verdict.LIVE
    assert observer.judge(lease.find_lease(job_dir), me, now=119.5) is Verdict.EXPIRED


def test_a_dead_process_on_this_kernel_is_expired_at_once_a_live_one_is_not(tmp_path, job_dir):
    me = owner(tmp_path, "me")
    observer = LeaseObserver(LEASE_SECONDS)

    alive = owner(tmp_path, "alive", pid=os.getppid())
    lease.create(job_dir, alive, "job")
    assert observer.judge(lease.find_lease(job_dir), me, now=0.0) is Verdict.LIVE
    os.unlink(lease.find_lease(job_dir).path)

    dead = owner(tmp_path, "dead", pid=dead_pid())
    lease.create(job_dir, dead, "job")
    assert observer.judge(lease.find_lease(job_dir), me, now=0.0) is Verdict.EXPIRED
    os.unlink(lease.find_lease(job_dir).path)

    # Same pid as a process gone before a reboot (another kernel boot): judged by its lease only.
    rebooted = owner(tmp_path, "rebooted", pid=dead_pid(), kernel_boot_id="before-the-reboot")
    lease.create(job_dir, rebooted, "job")
    assert observer.judge(lease.find_lease(job_dir), me, now=0.0) is Verdict.LIVE
    assert observer.judge(lease.find_lease(job_dir), me, now=LEASE_SECONDS) is Verdict.EXPIRED


def test_only_one_rename_wins_and_a_lost_lease_never_comes_back(tmp_path, job_dir):
    a, b, c = owner(tmp_path, "a"), owner(tmp_path, "b"), owner(tmp_path, "c")
    lease.create(job_dir, a, "job")
    seen_by_b = lease.find_lease(job_dir)
    seen_by_c = lease.find_lease(job_dir)

    assert lease.take(seen_by_b, b, "job") is True
    assert lease.take(seen_by_c, c, "job") is False  # the same lease, renamed a moment earlier
    assert lease.renew(job_dir, a, "job", beat=7) is None  # the old holder's heartbeat does not recreate it
    assert lease.commit(job_dir, a) is False  # nor can it publish
    assert [entry.name for entry in job_dir.iterdir() if entry.is_file()] == [lease.lease_name(LeaseKind.HELD, b.id)]
    info = lease.find_lease(job_dir).info
    assert info["owner"] == b.id and info["taken_from"] == a.id and info["job"] == "job"

    # Committing consumes the lease too: a taker that read it before the commit loses.
    seen_by_c = lease.find_lease(job_dir)
    assert lease.commit(job_dir, b) is True and lease.commit(job_dir, b) is True  # safe to repeat
    assert lease.take(seen_by_c, c, "job") is False
    assert lease.held_kind(job_dir, b) is LeaseKind.PUBLISHING
    assert lease.renew(job_dir, b, "job", beat=1) is LeaseKind.PUBLISHING


def test_heartbeat_notices_a_takeover_but_concludes_nothing_from_an_unmounted_share(tmp_path, job_dir):
    a, b = owner(tmp_path, "a"), owner(tmp_path, "b")
    lease.create(job_dir, a, "job")
    keeper = LeaseKeeper(a, LEASE_SECONDS)
    keeper.hold(job_dir, "job")
    before = lease.find_lease(job_dir).content
    keeper.renew_all()
    assert lease.find_lease(job_dir).content != before and not keeper.lost(job_dir)

    work = job_dir.parent
    work.rename(tmp_path / "unmounted")
    keeper.renew_all()
    assert not keeper.lost(job_dir)
    (tmp_path / "unmounted").rename(work)

    lease.take(lease.find_lease(job_dir), b, "job")
    keeper.renew_all()
    assert keeper.lost(job_dir)
    assert lease.find_lease(job_dir).owner_id == b.id


def test_takeover_imports_the_record_and_gathers_finished_videos(tmp_path, job_dir):
    a, b = owner(tmp_path, "a", pid=dead_pid()), owner(tmp_path, "b")
    lease.create(job_dir, a, "job")
    record = JobRecord(job_id=job_dir.name, name="job", phase=Phase.RENDERING, owner=a.id, results_dir=f"output-{a.id}",
                       videos=[VideoRecord(template="x.mp4", output_stem="x", status=VideoStatus.OK),
                               VideoRecord(template="y.mp4", output_stem="y")], revision=4)
    (job_dir / f"record-{a.id}.json").write_text(record.model_dump_json())
    results_a = job_dir / f"output-{a.id}"
    results_a.mkdir()
    for name in ("x.mp4", "x.json", "y.mp4"):  # y.mp4: a render the holder did not finish
        (results_a / name).write_bytes(b"data")

    keeper = LeaseKeeper(b, LEASE_SECONDS)
    takeover = Takeover(WorkArea(job_dir.parent), b, keeper, LEASE_SECONDS)
    [expired] = takeover.expired_leases(now=0.0)  # a dead process on this kernel
    outcome = takeover.take_over(expired)
    assert outcome.record is not None and outcome.previous == a.id
    taken = outcome.record
    assert taken.owner == b.id and taken.previous_owners == [a.id] and taken.phase is Phase.RENDERING
    assert taken.results_dir == f"output-{b.id}" and keeper.holds(job_dir)
    assert sorted(entry.name for entry in (job_dir / taken.results_dir).iterdir()) == ["x.json", "x.mp4"]
    assert sorted(entry.name for entry in results_a.iterdir()) == ["y.mp4"]
    assert takeover.expired_leases(now=100.0) == []  # its own now, and held

    keeper.release(job_dir)  # let go (a takeover that failed half-way): its own lease is taken up again
    assert [found.owner_id for found in takeover.expired_leases(now=100.0)] == [b.id]


def test_a_job_committed_to_publishing_is_taken_over_with_the_committed_results(tmp_path, job_dir):
    a, b = owner(tmp_path, "a", pid=dead_pid()), owner(tmp_path, "b")
    lease.create(job_dir, a, "job")
    assert lease.commit(job_dir, a)
    record = JobRecord(job_id=job_dir.name, name="job", phase=Phase.PUBLISHING, owner=a.id, results_dir=f"output-{a.id}",
                       videos=[VideoRecord(template="x.mp4", output_stem="x", status=VideoStatus.OK)],
                       outbox_path=tmp_path / "outbox" / "job")
    (job_dir / f"record-{a.id}.json").write_text(record.model_dump_json())
    (job_dir / f"output-{a.id}").mkdir()

    keeper = LeaseKeeper(b, LEASE_SECONDS)
    takeover = Takeover(WorkArea(job_dir.parent), b, keeper, LEASE_SECONDS)
    [expired] = takeover.expired_leases(now=0.0)
    assert expired.kind is LeaseKind.PUBLISHING
    taken = takeover.take_over(expired).record
    assert taken is not None and taken.phase is Phase.PUBLISHING
    assert taken.results_dir == f"output-{a.id}" and taken.outbox_path == tmp_path / "outbox" / "job"
    assert lease.held_kind(job_dir, b) is LeaseKind.PUBLISHING and lease.commit(job_dir, b)


def test_resume_own_takes_back_its_previous_run_but_not_another_live_service(tmp_path, job_dir):
    work = WorkArea(job_dir.parent)
    state = tmp_path / "state-mine"
    previous_run = dataclasses.replace(Owner.current(state), pid=os.getppid(), start_id="00000000")  # pid alive
    restarted = Owner.current(state)
    lease.create(job_dir, previous_run, "job")
    record = JobRecord(job_id=job_dir.name, name="job", phase=Phase.CLAIMED, owner=previous_run.id)
    outcome = Takeover(work, restarted, LeaseKeeper(restarted, LEASE_SECONDS), LEASE_SECONDS).resume_own(record)
    assert outcome.record is not None and lease.find_lease(job_dir).owner_id == restarted.id

    stranger = owner(tmp_path, "stranger")  # another service's state folder, renewing its lease
    other_job = job_dir.parent / "20260101T000000Z-123456"
    (other_job / "input").mkdir(parents=True)
    lease.create(other_job, dataclasses.replace(stranger, pid=os.getppid()), "other")
    mine_before = JobRecord(job_id=other_job.name, name="other", phase=Phase.RENDERING, owner=previous_run.id)
    outcome = Takeover(work, restarted, LeaseKeeper(restarted, LEASE_SECONDS), LEASE_SECONDS).resume_own(mine_before)
    assert outcome.record is None and "another service holds it" in outcome.reason


def test_the_holders_record_wins_over_older_ones(tmp_path, job_dir):
    newer = JobRecord(job_id=job_dir.name, name="job", phase=Phase.PUBLISHING, revision=3)
    stale = JobRecord(job_id=job_dir.name, name="job", phase=Phase.RENDERING, revision=9)
    (job_dir / "record-holder.json").write_text(newer.model_dump_json())
    (job_dir / "record-stalled.json").write_text(stale.model_dump_json())
    assert mirrored_record(job_dir, "holder").phase is Phase.PUBLISHING
    assert mirrored_record(job_dir, "died-before-its-record").revision == 9


def test_gather_results_leaves_missing_videos_to_the_render_step(tmp_path, job_dir):
    record = JobRecord(job_id=job_dir.name, name="job", phase=Phase.RENDERING,
                       videos=[VideoRecord(template="a.mp4", output_stem="a", status=VideoStatus.OK)])
    gather_results(job_dir, record, "output-me")
    assert record.results_dir == "output-me" and (job_dir / "output-me").is_dir()
    assert list((job_dir / "output-me").iterdir()) == []
