"""The journal's finishing steps: a job finished just before a kill -9 has exactly one history line."""

from __future__ import annotations

from datetime import timedelta

from heygemd.daemon.journal import JobRecord, Journal, Phase, VideoRecord, history_entry
from heygemd.daemon.reports import JobStatus, VideoStatus, utc_now


def publishing_record(job_id: str = "20260101T000000Z-abcdef") -> JobRecord:
    claimed = utc_now() - timedelta(seconds=30)
    return JobRecord(
        job_id=job_id,
        name="campaign 1",
        phase=Phase.PUBLISHING,
        claimed_at=claimed,
        status=JobStatus.PARTIAL,
        finished_at=claimed + timedelta(seconds=12),
        videos=[
            VideoRecord(template="a.mp4", output_stem="a", status=VideoStatus.OK),
            VideoRecord(template="b.mp4", output_stem="b", status=VideoStatus.FAILED, error="no face"),
        ],
    )


def lines_of(journal: Journal, job_id: str) -> int:
    return sum(entry.job_id == job_id for entry in journal.history(1000))


def test_the_normal_finish_writes_one_line_from_the_record(tmp_path):
    journal = Journal(tmp_path)
    record = publishing_record()
    journal.save(record)
    journal.mark_done(record)
    journal.remove(record.job_id)
    [entry] = journal.history(10)
    assert entry == history_entry(record)
    assert (entry.status, entry.videos_ok, entry.videos_failed, entry.seconds) == (JobStatus.PARTIAL, 1, 1, 12.0)
    assert journal.records() == []


def test_killed_after_done_was_saved_the_line_is_written_at_the_next_start(tmp_path):
    record = publishing_record()
    record.phase = Phase.DONE
    Journal(tmp_path).save(record)  # the kill came before the history line

    restarted = Journal(tmp_path)
    recovered = restarted.recover_finished()
    assert [done.job_id for done in recovered] == [record.job_id]
    assert restarted.history(10) == [history_entry(record)]
    assert restarted.recover_finished() == [] and lines_of(restarted, record.job_id) == 1  # a second kill: still one


def test_killed_after_the_history_line_no_second_line(tmp_path):
    journal = Journal(tmp_path)
    record = publishing_record()
    journal.save(record)
    journal.mark_done(record)  # the kill came before the record was removed

    restarted = Journal(tmp_path)
    assert restarted.recover_finished() == []  # nothing was missing
    assert lines_of(restarted, record.job_id) == 1 and len(restarted.records()) == 1


def test_a_done_record_without_a_finish_time_gets_one_that_stays(tmp_path):
    journal = Journal(tmp_path)
    record = publishing_record()
    record.finished_at = None
    journal.save(record)
    journal.mark_done(record)
    [saved] = Journal(tmp_path).records()
    assert saved.finished_at == record.finished_at == journal.history(10)[0].finished_at


def test_recovery_leaves_unfinished_jobs_alone(tmp_path):
    journal = Journal(tmp_path)
    for phase, job_id in ((Phase.CLAIMED, "a"), (Phase.RENDERING, "b"), (Phase.PUBLISHING, "c")):
        record = publishing_record(job_id)
        record.phase = phase
        journal.save(record)
    assert journal.recover_finished() == []
    assert journal.history(10) == [] and len(journal.records()) == 3


def test_once_is_judged_by_job_id_not_by_name(tmp_path):
    journal = Journal(tmp_path, history_size=2)
    first, again = publishing_record("id-1"), publishing_record("id-2")  # the same folder dropped twice
    for record in (first, again):
        journal.mark_done(record)
    assert [entry.job_id for entry in journal.history(10)] == ["id-1", "id-2"]
    assert not journal.append_history_once(history_entry(first))
