"""The disk guard's estimate and decision, on real folders (a tmpfs where a second filesystem is needed)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ByteSize
from small_fs import mounted_tmpfs
from structlog.testing import capture_logs

from heygemd.daemon.config import AfterSuccess, OutputsConfig, PathsConfig
from heygemd.daemon.diskspace import (
    OUTPUT_FACTOR,
    DiskGuard,
    DiskShortage,
    FilesystemSpace,
    JobSizes,
    check_space,
    destination_needs,
    existing_ancestor,
    measure_job,
)
from heygemd.daemon.fsutil import human_size
from heygemd.daemon.logs import get_logger
from heygemd.daemon.status import WAITING_FOR_DISK, CurrentJob, ServiceStatus

NOT_ENOUGH = "not enough disk space for the job's results; it stays in the inbox until space is freed"
ENOUGH_AGAIN = "disk space available again; the job is claimed"


def write(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    return path


def paths_under(root: Path, **moved: Path) -> PathsConfig:
    folders = {name: root / name for name in ("inbox", "work", "outbox", "quarantine", "archive", "state")}
    return PathsConfig(**(folders | moved))


@pytest.fixture
def job(tmp_path) -> Path:
    folder = tmp_path / "inbox" / "campaign"
    write(folder / "voice.wav", 1_000)
    write(folder / "front.mp4", 5_000)
    write(folder / "Side.MOV", 3_000)
    write(folder / "portrait.jpg", 200)
    write(folder / "job.toml", 30)
    write(folder / ".DS_Store", 10)
    write(folder / "notes" / "draft.txt", 700)
    os.symlink("/etc/hostname", folder / "link.mp4")
    return folder


def test_the_job_is_measured_by_kind_and_links_count_for_nothing(job):
    sizes = measure_job(job)
    assert sizes == JobSizes(template_bytes=(200, 3_000, 5_000), audio_bytes=1_000, total_bytes=9_940)


def test_library_templates_named_by_job_toml_count_and_each_audio_or_script_renders_every_template(tmp_path):
    library = tmp_path / "presenters"
    write(library / "anna" / "front.mp4", 4_000)
    write(library / "anna" / "side.mp4", 2_500)
    write(library / "ben" / "wide.mp4", 9_000)  # not named: not counted
    folder = tmp_path / "inbox" / "spring"
    write(folder / "voice.wav", 1_000)
    write(folder / "script.txt", 80)
    write(folder / "own.mp4", 500)
    (folder / "job.toml").write_text('presenters = ["anna"]\n')
    sizes = measure_job(folder, library)
    assert sizes.template_bytes == (500, 2_500, 4_000) and sizes.spoken == 2 and sizes.audio_bytes == 1_000
    assert sizes.output_bytes == sum(size * OUTPUT_FACTOR * 2 + 1_000 for size in (500, 2_500, 4_000))
    (folder / "job.toml").write_text('presenters = ["nobody"]\n')  # the claim's plan refuses it, with its code
    assert measure_job(folder, library).template_bytes == (500,)


def test_the_estimate_is_each_template_times_the_factor_plus_the_audio_it_carries():
    sizes = JobSizes(template_bytes=(200, 3_000), audio_bytes=1_000, total_bytes=4_300)
    assert OUTPUT_FACTOR == 2
    assert sizes.output_bytes == (200 * 2 + 1_000) + (3_000 * 2 + 1_000)


@pytest.mark.parametrize("zip_bundle", [False, True])
def test_on_one_filesystem_only_the_results_cost_space(tmp_path, job, zip_bundle):
    sizes = measure_job(job)
    paths = paths_under(tmp_path)
    outputs = OutputsConfig(zip_bundle=zip_bundle, min_free_space=ByteSize(0))
    zip_bytes = sizes.output_bytes if zip_bundle else 0
    assert destination_needs(sizes, paths, outputs) == [
        (paths.work, sizes.output_bytes + sizes.audio_bytes),  # the rendered videos, and the audio's quarantine copy
        (paths.outbox, zip_bytes),  # publishing is a rename; the zip is a copy
        (paths.quarantine, 0),
        (paths.archive, 0),
    ]
    check = check_space(sizes, "campaign", paths, outputs)
    assert len(check.filesystems) == 1, "the destinations share one filesystem: it is checked once"
    only = check.filesystems[0]
    assert only.folders == [paths.work, paths.outbox, paths.quarantine, paths.archive]
    assert only.need_bytes == sizes.output_bytes + sizes.audio_bytes + zip_bytes
    assert check.enough


def test_destinations_on_another_filesystem_receive_copies(tmp_path, job):
    sizes = measure_job(job)
    with mounted_tmpfs(tmp_path / "other", 1 << 20) as other:
        paths = paths_under(tmp_path, outbox=other / "outbox", archive=other / "archive")  # not made yet: its parent counts
        outputs = OutputsConfig(zip_bundle=True, min_free_space=ByteSize(4096))
        check = check_space(sizes, "campaign", paths, outputs)
        local, remote = check.filesystems
        assert local.folders == [paths.work, paths.quarantine]
        assert local.need_bytes == sizes.output_bytes + sizes.audio_bytes
        assert remote.folders == [paths.outbox, paths.archive]
        assert remote.need_bytes == 2 * sizes.output_bytes + sizes.total_bytes  # the videos, the zip, the inputs
        assert remote.free_bytes == 1 << 20 and remote.reserve_bytes == 4096 and check.enough

        deleted = OutputsConfig(zip_bundle=False, after_success=AfterSuccess.DELETE, min_free_space=ByteSize(0))
        assert check_space(sizes, "campaign", paths, deleted).filesystems[1].need_bytes == sizes.output_bytes


def test_a_filesystem_is_short_when_the_job_and_the_reserve_do_not_fit(tmp_path, job):
    sizes = measure_job(job)
    with mounted_tmpfs(tmp_path / "share", 256 * 1024) as share:
        paths = paths_under(share)
        need = sizes.output_bytes + sizes.audio_bytes
        fits = OutputsConfig(min_free_space=ByteSize(256 * 1024 - need))
        assert check_space(sizes, "campaign", paths, fits).enough
        one_byte_over = OutputsConfig(min_free_space=ByteSize(256 * 1024 - need + 1))
        check = check_space(sizes, "campaign", paths, one_byte_over)
        assert not check.enough and check.short == check.filesystems
        assert check.short[0].describe() == (
            f"{human_size(need)} needed on the filesystem of {paths.work}, "
            f"{human_size(256 * 1024 - need + 1)} to be kept free, 256 KiB free"
        )


def test_a_filesystem_that_does_not_report_its_size_never_blocks():
    unknown = FilesystemSpace(folders=[Path("outbox")], need_bytes=10**15, reserve_bytes=0, free_bytes=None)
    assert unknown.enough and "an unknown amount free" in unknown.describe()


def test_existing_ancestor_walks_up_to_a_folder_that_exists(tmp_path):
    assert existing_ancestor(tmp_path / "not" / "yet") == tmp_path
    assert existing_ancestor(tmp_path) == tmp_path


def test_the_guard_logs_once_when_a_job_starts_and_stops_waiting(tmp_path, job):
    paths = paths_under(tmp_path)
    guard = DiskGuard(paths, OutputsConfig(min_free_space=ByteSize(10**18)), get_logger("test"))
    with capture_logs() as logs:
        assert not guard.admits("campaign")
        assert not guard.admits("campaign")  # the next scans: no new line
        assert [entry["event"] for entry in logs] == [NOT_ENOUGH]
        assert logs[0]["job"] == "campaign" and logs[0]["hint"] == "free space there, or lower outputs.min_free_space"
        assert [shortage.job for shortage in guard.waiting] == ["campaign"]

        guard.outputs = OutputsConfig(min_free_space=ByteSize(0))  # as if space had been freed
        assert guard.admits("campaign")
        assert guard.admits("campaign")
        assert [entry["event"] for entry in logs] == [NOT_ENOUGH, ENOUGH_AGAIN]
        assert guard.waiting == []


def test_the_guard_forgets_jobs_that_left_the_inbox_and_admits_what_it_cannot_measure(tmp_path, job):
    guard = DiskGuard(paths_under(tmp_path), OutputsConfig(min_free_space=ByteSize(10**18)), get_logger("test"))
    assert not guard.admits("campaign")
    guard.keep_only(["another"])
    assert guard.waiting == []
    assert guard.admits("vanished"), "a folder that cannot be read is left to the claim, which reports it"


def test_status_says_waiting_for_disk_space(tmp_path):
    space = FilesystemSpace(folders=[Path("work")], need_bytes=3 << 20, reserve_bytes=1 << 30, free_bytes=512 << 20)
    status = ServiceStatus(
        state=WAITING_FOR_DISK, queued=["big"], waiting_for_disk=[DiskShortage(job="big", filesystem=space)]
    )
    assert status.summary() == (
        'waiting for disk space: job "big": 3 MiB needed on the filesystem of work, 1 GiB to be kept free, 512 MiB free; 1 queued'
    )
    status.current = CurrentJob(job="small", job_id="x", index=1, total=2, percent=50.0)
    assert status.summary() == "job small: video 1/2 50%; 1 queued, 1 waiting for disk space"
    assert ServiceStatus.model_validate_json(status.model_dump_json()) == status


def test_human_sizes():
    assert [human_size(size) for size in (0, 900, 1024, 1536, 1 << 30, 7 * (1 << 29))] == [
        "0 B",
        "900 B",
        "1 KiB",
        "1.5 KiB",
        "1 GiB",
        "3.5 GiB",
    ]
