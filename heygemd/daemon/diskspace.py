"""The disk guard: a ready job is claimed only if its results fit on the filesystems that receive them.

Claiming is a rename, so the inputs cost nothing where they are; what a job adds is:

- on the work area's filesystem: the rendered videos, and (when some templates fail) a copy of
  the audio gathered for quarantine;
- on the outbox's filesystem: the zip bundle (``outputs.zip_bundle``), and the rendered videos
  again when the outbox is on another filesystem than the work area (a copy, not a rename);
- on the quarantine's and the archive's filesystems: the job's inputs, only when they are on
  another filesystem than the work area.

The estimate works from sizes alone (no probing, it runs on every scan of a waiting job): a
rendered video is taken as ``OUTPUT_FACTOR`` times its template plus the audio muxed into it (the
templates: the folder's and the presenter library's that job.toml names, once per audio or script).
A re-encode at the default quality is usually smaller than the template, so the factor leaves
room for a template shorter than the audio (it is looped) and for a still image (its video is
as long as the audio). ``outputs.min_free_space`` must stay free on each filesystem on top of
the estimate; it absorbs what the estimate misses, and a disk that fills anyway during a render
is a transient ``disk.full`` error of that video.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import structlog
from pydantic import BaseModel, Field

from heygemd.daemon.config import AfterSuccess, OutputsConfig, PathsConfig
from heygemd.daemon.contract import ContractViolation, FileKind, kind_of, read_job_file
from heygemd.daemon.fsutil import human_size
from heygemd.daemon.presenters import PresenterError, resolve_presenters

OUTPUT_FACTOR = 2  # rendered video bytes per template byte, before the audio muxed into it


@dataclass(frozen=True)
class JobSizes:
    """What a job folder holds, by size. Links are not followed and count for nothing."""

    template_bytes: tuple[int, ...]  # the folder's templates and those job.toml takes from the presenter library
    audio_bytes: int
    total_bytes: int  # everything in the folder, sub-folders included: what a copy to another filesystem moves
    spoken: int = 1  # audio files and scripts: each is rendered with every template

    @property
    def output_bytes(self) -> int:
        """The estimated size of all rendered videos of the job (every audio's sound muxed into each template once)."""
        return sum(size * OUTPUT_FACTOR * self.spoken + self.audio_bytes for size in self.template_bytes)


def measure_job(folder: Path, library: Path | None = None) -> JobSizes:
    """Sizes of a job folder's templates (with the presenter ``library``'s that its job.toml names), audio and whole
    content. Raises OSError if the folder cannot be read."""
    templates: list[int] = []
    audio = 0
    spoken = 0
    job_file = False
    with os.scandir(folder) as entries:
        for entry in entries:
            if not entry.is_file(follow_symlinks=False):
                continue
            kind = kind_of(entry.name)
            size = entry.stat(follow_symlinks=False).st_size
            if kind in (FileKind.VIDEO, FileKind.STILL):
                templates.append(size)
            elif kind is FileKind.AUDIO:
                audio += size
                spoken += 1
            elif kind is FileKind.SCRIPT:
                spoken += 1
            job_file = job_file or kind is FileKind.JOB_FILE
    if job_file and library is not None:
        templates += _library_template_bytes(folder, library)
    return JobSizes(
        template_bytes=tuple(sorted(templates)), audio_bytes=audio, total_bytes=_tree_bytes(folder), spoken=max(1, spoken)
    )


def _library_template_bytes(folder: Path, library: Path) -> list[int]:
    """The sizes of the library templates job.toml names; none when it cannot tell (the claim's plan says why)."""
    try:
        named = read_job_file(folder).presenters
        return [template.path.stat().st_size for template in resolve_presenters(library, named)] if named else []
    except (ContractViolation, PresenterError, OSError):
        return []


def _tree_bytes(folder: Path) -> int:
    total = 0
    for directory, _, files in os.walk(folder):  # does not follow links to folders
        for name in files:
            try:
                info = os.lstat(os.path.join(directory, name))
            except FileNotFoundError:
                continue
            if stat.S_ISREG(info.st_mode):
                total += info.st_size
    return total


# ---------------------------------------------------------------------------- filesystems


class FilesystemSpace(BaseModel):
    """One filesystem that receives part of a job's results, and whether that part fits."""

    folders: list[Path] = Field(description="the destinations on this filesystem (work, outbox, ...)")
    need_bytes: int = Field(description="estimated bytes the job writes here")
    reserve_bytes: int = Field(description="outputs.min_free_space: kept free on top of the job")
    free_bytes: int | None = Field(description="free for the service now; None when the filesystem does not say")

    @property
    def enough(self) -> bool:
        return self.free_bytes is None or self.free_bytes >= self.need_bytes + self.reserve_bytes

    def describe(self) -> str:
        free = "an unknown amount" if self.free_bytes is None else human_size(self.free_bytes)
        return (
            f"{human_size(self.need_bytes)} needed on the filesystem of {self.folders[0]}, "
            f"{human_size(self.reserve_bytes)} to be kept free, {free} free"
        )


class SpaceCheck(BaseModel):
    """The answer for one job: the filesystems its results land on, each with need and free space."""

    job: str
    filesystems: list[FilesystemSpace]

    @property
    def enough(self) -> bool:
        return all(filesystem.enough for filesystem in self.filesystems)

    @property
    def short(self) -> list[FilesystemSpace]:
        return [filesystem for filesystem in self.filesystems if not filesystem.enough]


def existing_ancestor(path: Path) -> Path:
    """``path`` or its nearest existing parent: a destination not made yet lands on its parent's filesystem."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def free_bytes(path: Path) -> int | None:
    """Bytes the service may still write on ``path``'s filesystem (not counting root's reserve); None if unknown."""
    stats = os.statvfs(path)
    if stats.f_blocks == 0:  # some FUSE and network filesystems report no size at all
        return None
    return stats.f_bavail * stats.f_frsize


def destination_needs(sizes: JobSizes, paths: PathsConfig, outputs: OutputsConfig) -> list[tuple[Path, int]]:
    """(folder, bytes the job writes there) for each destination; a rename within one filesystem writes nothing."""
    work_device = os.stat(existing_ancestor(paths.work)).st_dev

    def copied_unless_beside_work(folder: Path, size: int) -> int:
        return 0 if os.stat(existing_ancestor(folder)).st_dev == work_device else size

    outbox = copied_unless_beside_work(paths.outbox, sizes.output_bytes)
    if outputs.zip_bundle:
        outbox += sizes.output_bytes
    archive = (
        copied_unless_beside_work(paths.archive, sizes.total_bytes) if outputs.after_success is AfterSuccess.ARCHIVE else 0
    )
    return [
        (paths.work, sizes.output_bytes + sizes.audio_bytes),  # the audio: its copy for quarantine when a video fails
        (paths.outbox, outbox),
        (paths.quarantine, copied_unless_beside_work(paths.quarantine, sizes.total_bytes)),
        (paths.archive, archive),
    ]


def check_space(sizes: JobSizes, job: str, paths: PathsConfig, outputs: OutputsConfig) -> SpaceCheck:
    """Group the destinations by filesystem (st_dev), add up what lands on each, and compare with its free space."""
    by_device: dict[int, FilesystemSpace] = {}
    for folder, need in destination_needs(sizes, paths, outputs):
        where = existing_ancestor(folder)
        device = os.stat(where).st_dev
        known = by_device.get(device)
        if known is None:
            by_device[device] = FilesystemSpace(
                folders=[folder], need_bytes=need, reserve_bytes=outputs.min_free_space, free_bytes=free_bytes(where)
            )
        else:
            known.folders.append(folder)
            known.need_bytes += need
    return SpaceCheck(job=job, filesystems=list(by_device.values()))


# ---------------------------------------------------------------------------- the guard the service asks


class DiskShortage(BaseModel):
    """A ready job left in the inbox because its results would not fit (shown by `heygemd status`)."""

    job: str
    filesystem: FilesystemSpace

    def describe(self) -> str:
        return f'job "{self.job}": {self.filesystem.describe()}'


class DiskGuard:
    """Asked before each claim. Logs a job once when it starts waiting for space and once when it fits again."""

    def __init__(
        self, paths: PathsConfig, outputs: OutputsConfig, log: structlog.stdlib.BoundLogger, max_file_bytes: int = 0
    ) -> None:
        """``max_file_bytes``: limits.max_file_bytes (0: none); a job with a larger file is let through to be refused."""
        self.paths = paths
        self.outputs = outputs
        self.log = log
        self.max_file_bytes = max_file_bytes
        self._waiting: dict[str, DiskShortage] = {}

    def admits(self, name: str) -> bool:
        """True if inbox/``name`` may be claimed now. A folder that cannot be measured is admitted: the claim reports it."""
        try:
            sizes = measure_job(self.paths.inbox / name, self.paths.presenter_library)
        except OSError:
            return True
        if self.max_file_bytes and max((*sizes.template_bytes, sizes.audio_bytes)) > self.max_file_bytes:
            self._waiting.pop(name, None)
            return True  # refused at once by the claim's plan (limit.file_too_large): no space will ever be enough
        check = check_space(sizes, name, self.paths, self.outputs)
        if check.enough:
            if self._waiting.pop(name, None) is not None:
                self.log.info("disk space available again; the job is claimed", job=name)
            return True
        shortage = DiskShortage(job=name, filesystem=check.short[0])
        if name not in self._waiting:
            space = shortage.filesystem
            self.log.warning(
                "not enough disk space for the job's results; it stays in the inbox until space is freed",
                job=name,
                filesystem=str(space.folders[0]),
                need=human_size(space.need_bytes),
                keep_free=human_size(space.reserve_bytes),
                free=human_size(space.free_bytes or 0),
                hint="free space there, or lower outputs.min_free_space",
            )
        self._waiting[name] = shortage
        return False

    def keep_only(self, names: Iterable[str]) -> None:
        """Forget jobs no longer ready in the inbox (claimed elsewhere, removed, renamed)."""
        present = set(names)
        for name in [name for name in self._waiting if name not in present]:
            del self._waiting[name]

    @property
    def waiting(self) -> list[DiskShortage]:
        return list(self._waiting.values())
