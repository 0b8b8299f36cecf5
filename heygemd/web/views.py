"""The read side: what the services wrote, turned into the models the page and the API show.

Nothing here writes. Every file is read fresh on each call (they are small; the service
replaces them atomically), so the page never shows a state older than the files.

A job is found by its folder name along the way it travels: the inbox, a service's journal
(claimed, rendering, waiting to retry), then its history line and its outbox or quarantine
folder. Looked up in that order, a job moving on between two looks is still found: the service
writes each next place before it leaves the previous one (the journal record before the claim's
rename, the history line before the record is removed).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import cached_property
from pathlib import Path

from pydantic import BaseModel, Field, PrivateAttr, ValidationError

from heygemd.codes import ErrorCode
from heygemd.control import ControlState, read_control
from heygemd.daemon.contract import ContractViolation, FileKind, is_ignored_name, kind_of, plan_job
from heygemd.daemon.journal import HistoryEntry, JobRecord, Journal, Phase
from heygemd.daemon.model_wait import MissingModelFile
from heygemd.daemon.reports import (
    ErrorReport,
    InputFile,
    JobReport,
    JobStatus,
    VideoResult,
    VideoStatus,
    host_name,
)
from heygemd.daemon.status import (
    IDLE,
    NO_WORKER_ONLINE,
    STOPPED,
    WORKING,
    ClusterWorker,
    ServiceStatus,
    WorkerTask,
    process_alive,
    read_status,
)
from heygemd.engine.report import RenderReport
from heygemd.metrics import Metrics, read_metrics
from heygemd.names import display_name, is_heygemd_temporary, real_name, url_quoted
from heygemd.resultfiles import ERROR_REPORT, JOB_REPORT, THUMBNAIL_SUFFIX
from heygemd.web.settings import OUTBOX, QUARANTINE, WebSettings

RESULTS_SHOWN = 20
HISTORY_READ = 200


class JobPhase(StrEnum):
    ARRIVING = "arriving"  # in the inbox, not complete yet (waiting_for says why)
    QUEUED = "queued"  # in the inbox, ready, waiting its turn
    WAITING_FOR_DISK = "waiting_for_disk"  # ready, left in the inbox: its results would not fit
    CLAIMED = "claimed"  # taken by a service, not rendering now
    RENDERING = "rendering"
    WAITING_RETRY = "waiting_retry"  # a transient failure: tried again later
    PUBLISHING = "publishing"
    DONE = "done"


ACTIVE_PHASES = frozenset(JobPhase) - {JobPhase.DONE}


class FileLink(BaseModel):
    name: str
    area: str = Field(description="outbox or quarantine")
    url: str
    size_bytes: int


class Progress(BaseModel):
    stage: str | None = None
    percent: float | None = None
    frames_done: int | None = None
    frames_total: int | None = None
    fps: float | None = None
    eta_seconds: float | None = None


class JobProgress(BaseModel):
    """The whole job: its finished videos and the current one's part, and a guess of the time left."""

    percent: float
    videos_done: int
    videos_total: int
    eta_seconds: float | None = Field(
        None, description="the current video's time left, and as long again for each one after it"
    )


class Problem(BaseModel):
    """A failure as the page shows it: the stable code, its plain summary (translated), the service's sentence."""

    code: ErrorCode
    summary: str = ""
    reason: str = ""
    fix: str = ""
    details: list[str] = Field(default_factory=list)


class Notice(BaseModel):
    """Something a person should know about a result. ``kind`` picks the sentence; the rest fills it in."""

    kind: str = Field(description="faceless, loop, vfr or text")
    video: str | None = None
    count: int | None = None
    total: int | None = None
    policy: str | None = None
    fps: float | None = None
    text: str | None = Field(None, description="the service's own words, for kind text")


@dataclass(frozen=True)
class TemplatePlace:
    """Where a rendered video's template is now: the file ``name`` of the folder ``parent/folder`` (the archive
    and the job's archived folder, or the presenter library and a presenter). Never a path from a request."""

    parent: Path
    folder: str
    name: str


class TemplateView(BaseModel):
    """A rendered video's template, for the before/after view: where to play it, or that it is gone."""

    available: bool = Field(
        description="false: removed since (archive retention, after_success = delete, presenter deleted)"
    )
    url: str | None = None
    still: bool = Field(False, description="a still image, not a video")


class VideoView(BaseModel):
    template: str
    status: str = Field(description="pending, rendering, ok or failed")
    progress: Progress | None = None
    output: FileLink | None = None
    report: FileLink | None = None
    thumbnail: FileLink | None = None
    duration_s: float | None = None
    problem: Problem | None = None
    warnings: list[Notice] = Field(default_factory=list)
    before: TemplateView | None = Field(None, description="a rendered video's template, for the before/after view")
    _template_place: TemplatePlace | None = PrivateAttr(None)

    @property
    def template_place(self) -> TemplatePlace | None:
        """Where its template is now (the template route serves it from there); not part of the API's answer."""
        return self._template_place

    def show_template(self, place: TemplatePlace | None) -> None:
        self.before = TemplateView(available=place is not None, still=kind_of(self.template) is FileKind.STILL)
        self._template_place = place


class RetryView(BaseModel):
    code: ErrorCode
    reason: str
    retry_at: datetime | None = None
    failures: int = 0
    max_failures: int = 0


class JobView(BaseModel):
    id: str = Field(description="the job's folder name: what submit returned; the job is found by it in every phase")
    job_id: str | None = Field(None, description="the service's own id, once claimed")
    phase: JobPhase
    status: JobStatus | None = Field(None, description="once done: ok, partial or failed")
    service: str | None = Field(None, description="the service holding it (its name, as in ServiceView)")
    waiting_for: str | None = Field(None, description="what an arriving folder waits for, in the service's words")
    retry: RetryView | None = None
    cancel_requested: bool = False
    cancellable: bool = False
    audio: str | None = Field(None, description="the job's audio file, once known")
    dry_run: bool = Field(False, description="made (or being made) without the model: the template fitted to the audio")
    videos: list[VideoView] = Field(default_factory=list)
    progress: JobProgress | None = Field(None, description="while a service works on it: the whole job's progress")
    problem: Problem | None = Field(None, description="why the job (or some of its videos) failed")
    warnings: list[Notice] = Field(default_factory=list)
    files: list[FileLink] = Field(default_factory=list, description="every file of its outbox and quarantine folders")
    zip_url: str | None = None
    received_at: datetime | None = None
    finished_at: datetime | None = None
    outbox_folder: str | None = None
    quarantine_folder: str | None = None
    archive_folder: str | None = Field(None, description="where its inputs were archived, while that folder is there")
    gone: bool = Field(False, description="done, but its folders are no longer there (retention, or moved away)")


class ServiceView(BaseModel):
    name: str = Field(description="the service's name: service.name, else its host's (and state folder's)")
    up: bool = Field(description="the service process is running (or runs on another host)")
    state: str = Field(description="the service's own state word (idle, working, ...), or stopped")
    paused: bool = Field(description="asked to take no new jobs (control.json)")
    device: str | None = None
    dry_run: bool = False
    host: str = ""
    pid: int | None = None
    current: JobView | None = None
    tasks: list[WorkerTask] = Field(default_factory=list, description="cluster mode: the current job's tasks on the workers")
    cluster: bool = Field(False, description="cluster mode: the videos render on `heygemd worker`s")
    workers: list[ClusterWorker] = Field(default_factory=list, description="cluster mode: the workers, online or lost")
    model_files: list[MissingModelFile] = Field(
        default_factory=list, description="waiting for the model files: which file goes where (empty once loaded)"
    )
    updated_at: datetime | None = None


class QueueItem(BaseModel):
    id: str
    phase: JobPhase
    service: str | None = None
    detail: str | None = Field(None, description="what it waits for, or why it waits")
    retry_at: datetime | None = None
    cancel_requested: bool = False


class ResultItem(BaseModel):
    id: str
    status: JobStatus
    code: ErrorCode | None = None
    finished_at: datetime
    seconds: float
    videos_ok: int
    videos_failed: int
    thumbnail: str | None = None


class Overview(BaseModel):
    services: list[ServiceView]
    queue: list[QueueItem]
    results: list[ResultItem]
    paused: bool = Field(description="every service is asked to pause")


# ---------------------------------------------------------------------------- one service's files


class ServiceFiles:
    """Everything one state folder says, read once."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.status: ServiceStatus | None = read_status(state_dir)
        self.name = (self.status.name if self.status else "") or state_dir.name or str(state_dir)
        self.control: ControlState = read_control(state_dir)
        self._journal = Journal(state_dir)

    @property
    def up(self) -> bool:
        status = self.status
        if status is None or status.state == STOPPED:
            return False
        return status.host != host_name() or process_alive(status.pid)

    @cached_property
    def _records(self) -> list[JobRecord]:
        return self._journal.records()

    @cached_property
    def _history(self) -> list[HistoryEntry]:
        return self._journal.history(HISTORY_READ)

    def records(self) -> list[JobRecord]:
        return self._records

    def history(self) -> list[HistoryEntry]:
        return self._history

    def metrics(self) -> Metrics:
        return read_metrics(self.state_dir)


def read_services(settings: WebSettings) -> list[ServiceFiles]:
    return [ServiceFiles(folder) for folder in settings.state_folders()]


# ---------------------------------------------------------------------------- safe looks into the folders


def plain_name(name: str) -> bool:
    """A name that can only mean one entry of one folder (never a path, never hidden)."""
    return bool(name) and name not in (".", "..") and "/" not in name and "\0" not in name and not name.startswith(".")


def entry(folder: Path, name: str) -> os.DirEntry | None:
    """The entry called ``name`` in ``folder``, found by listing it: the request's words never become a path."""
    if not plain_name(name):
        return None
    try:
        with os.scandir(folder) as entries:
            return next((item for item in entries if item.name == name), None)
    except OSError:
        return None


def _task_progress(status: ServiceStatus) -> dict[str, Progress]:
    """Cluster mode: the current job's videos that a worker renders now, with their progress (fps and time left
    from what the worker publishes)."""
    found = {}
    for task in status.tasks:
        if task.state != "started":
            continue
        worker = next((w for w in status.workers if w.name == task.worker and w.task and w.task.video == task.video), None)
        published = worker.task if worker is not None else None
        found[task.video] = Progress(
            stage=task.stage,
            percent=task.percent,
            frames_done=task.frames_done,
            frames_total=task.frames_total,
            fps=published.fps if published is not None else None,
            eta_seconds=published.eta_seconds if published is not None else None,
        )
    return found


def real_folder(folder: Path, name: str) -> Path | None:
    """``folder/name`` if it is a folder itself (not a link to one)."""
    found = entry(folder, name)
    return Path(found.path) if found is not None and found.is_dir(follow_symlinks=False) else None


def shown_folder(folder: Path, shown: str) -> Path | None:
    """The folder of ``folder`` that history.jsonl names ``shown``: there, a name's bytes that are not UTF-8 are
    written as ``\\xNN`` (heygemd.names.display_name), so such a name is looked for among the folder's entries."""
    found = real_folder(folder, shown)
    if found is not None or "\\x" not in shown:
        return found
    try:
        with os.scandir(folder) as entries:
            name = next((item.name for item in entries if display_name(item.name) == shown), None)
    except OSError:
        return None
    return None if name is None else real_folder(folder, name)


def regular_files(folder: Path) -> list[os.DirEntry]:
    """The plain files of a folder (no links, nothing hidden), by name."""
    try:
        with os.scandir(folder) as entries:
            found = [item for item in entries if plain_name(item.name) and item.is_file(follow_symlinks=False)]
    except OSError:
        return []
    return sorted(found, key=lambda item: item.name)


def _read_model(path: Path, model: type[BaseModel]) -> BaseModel | None:
    try:
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode):
            return None
        return model.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValidationError, ValueError):
        return None


def link_segment(name: str) -> str:
    """``name`` as one segment of a link: its shown form (``\\xNN`` for a byte that is not UTF-8), percent-encoded.

    A URL's bytes that are not UTF-8 reach the routes as U+FFFD, so links carry the shown form, which the
    finder and the file routes take back to the name on disk (``heygemd.names.real_name``)."""
    return url_quoted(display_name(name))


def file_url(job: str, area: str, name: str) -> str:
    return f"/api/jobs/{link_segment(job)}/files/{area}/{link_segment(name)}"


def job_url(job: str) -> str:
    return f"/jobs/{link_segment(job)}"


def template_url(job: str, reference: str) -> str:
    """The route of a rendered video's template (``front.mp4``, or ``anna/front.mp4`` from the library)."""
    return f"/api/jobs/{link_segment(job)}/templates/" + "/".join(link_segment(part) for part in reference.split("/"))


# ---------------------------------------------------------------------------- finding a job


class JobFinder:
    """Looks a job up by its folder name across the inbox, the services' journals, history and results."""

    def __init__(self, settings: WebSettings, services: list[ServiceFiles] | None = None) -> None:
        self.settings = settings
        self.services = services if services is not None else read_services(settings)

    def cancel_requested(self, name: str, job_id: str | None = None) -> bool:
        return any(service.control.wants_cancelled(name, job_id) is not None for service in self.services)

    def find(self, name: str) -> JobView | None:
        """The job by its folder name, else by the service's job id (the webhooks' links use it)."""
        if not plain_name(name):
            return None
        view = self._in_inbox(name) or self._claimed(name) or self._finished(name)
        view = view or self._claimed(name, by_id=True) or self._finished_by_id(name)
        if view is None and real_name(name) != name:  # a link's shown form of a name that is not UTF-8
            return self.find(real_name(name))
        return self._marked(view)

    def find_claimed(self, name: str) -> JobView | None:
        """A job in a service's hands (not a folder of the same name dropped into the inbox again meanwhile)."""
        return self._marked(self._claimed(name))

    def _marked(self, view: JobView | None) -> JobView | None:
        if view is not None:
            for video_view in view.videos:  # a page's view of a video, never the service's record
                video_view.template = self._reference(video_view.template)
                if video_view.before is not None and video_view.before.available:
                    video_view.before.url = template_url(view.id, video_view.template)
            view.cancel_requested = view.phase in ACTIVE_PHASES and self.cancel_requested(view.id, view.job_id)
            view.cancellable = view.phase in ACTIVE_PHASES and view.phase is not JobPhase.PUBLISHING
        return view

    def _reference(self, template: str) -> str:
        """A template of the presenter library as job.toml names it (``anna/front.mp4``), not by its path on disk."""
        path = Path(template)
        library = self.settings.paths.presenter_library.absolute()
        return f"{path.parent.name}/{path.name}" if path.is_absolute() and path.parent.parent == library else template

    # -- in the inbox

    def _in_inbox(self, name: str) -> JobView | None:
        folder = real_folder(self.settings.paths.inbox, name)
        if folder is None:
            return None
        view = JobView(id=name, phase=JobPhase.QUEUED)
        for service in self.services:
            status = service.status
            if status is None or not service.up:
                continue
            if name in status.arriving:
                view.phase, view.waiting_for, view.service = JobPhase.ARRIVING, status.waiting_for.get(name), service.name
            shortage = next((item for item in status.waiting_for_disk if item.job == name), None)
            if shortage is not None:
                view.phase, view.service = JobPhase.WAITING_FOR_DISK, service.name
                view.waiting_for = shortage.filesystem.describe()
        inputs = [item.name for item in regular_files(folder) if not is_ignored_name(item.name)]
        view.audio = audio_among(inputs)
        view.videos = [
            VideoView(template=name, status=VideoStatus.PENDING.value)
            for name in inputs
            if kind_of(name) in (FileKind.VIDEO, FileKind.STILL)
        ]
        view.videos += [
            VideoView(template=reference, status=VideoStatus.PENDING.value) for reference in self._from_library(folder)
        ]
        return view

    def _from_library(self, folder: Path) -> list[str]:
        """The presenter library's templates a queued job names (``anna/front.mp4``); none while it breaks the contract."""
        try:
            plan = plan_job(
                folder,
                folder.name,
                self.settings.render,
                self.settings.marker_name,
                self.settings.limits,
                self.settings.paths.presenter_library,
            )
        except ContractViolation:
            return []
        sources = [video.source for video in plan.videos if video.source.parent != folder]
        return list(dict.fromkeys(f"{source.parent.name}/{source.name}" for source in sources))

    # -- in a service's hands

    def _claimed(self, name: str, by_id: bool = False) -> JobView | None:
        for service in self.services:
            record = next((item for item in service.records() if (item.job_id if by_id else item.name) == name), None)
            if record is not None:
                return self._claimed_view(service, record)
        return None

    def _claimed_view(self, service: ServiceFiles, record: JobRecord) -> JobView:
        status = service.status
        current = (
            status.current if status is not None and status.current and status.current.job_id == record.job_id else None
        )
        waiting = next((job for job in status.waiting_jobs if job.job_id == record.job_id), None) if status else None
        phase = JobPhase.CLAIMED
        if record.phase in (Phase.PUBLISHING, Phase.DONE):
            phase = JobPhase.PUBLISHING
        elif waiting is not None:
            phase = JobPhase.WAITING_RETRY
        elif current is not None:
            phase = JobPhase.RENDERING
        view = JobView(
            id=record.name,
            job_id=record.job_id,
            phase=phase,
            service=service.name,
            received_at=record.claimed_at,
            audio=record.audio,
            dry_run=status.dry_run if status is not None else False,
            warnings=[Notice(kind="text", text=text) for text in record.warnings],
        )
        if waiting is not None:
            view.retry = RetryView(
                code=waiting.code,
                reason=waiting.reason,
                retry_at=waiting.retry_at,
                failures=waiting.failures,
                max_failures=waiting.max_failures,
            )
        on_workers = _task_progress(status) if current is not None and status is not None else {}
        for video in record.videos:
            shown = VideoView(template=video.template, status=video.status.value, duration_s=video.output_duration_s)
            if video.template in on_workers and video.status is VideoStatus.PENDING:  # cluster mode: on a worker
                shown.status, shown.progress = "rendering", on_workers[video.template]
            elif current is not None and current.video == video.template and video.status is VideoStatus.PENDING:
                shown.status = "rendering"
                shown.progress = Progress(
                    stage=current.stage,
                    percent=current.percent,
                    frames_done=current.frames_done,
                    frames_total=current.frames_total,
                    fps=current.fps,
                    eta_seconds=current.eta_seconds,
                )
            if video.failure is not None and video.status is VideoStatus.FAILED:
                shown.problem = Problem(code=video.failure.code, reason=video.failure.reason)
            view.videos.append(shown)
        if record.failure is not None:
            view.problem = Problem(code=record.failure.code, reason=record.failure.reason, details=record.failure.details)
        view.progress = job_progress(view.videos)
        return view

    # -- finished

    def _history_view(self, by_id: bool, key: str) -> JobView | None:
        entries = [
            (line, service)
            for service in self.services
            for line in service.history()
            if (line.job_id if by_id else line.job) == key
        ]
        if not entries:
            return None
        line, service = max(entries, key=lambda pair: pair[0].finished_at)
        view = JobView(
            id=line.job,
            job_id=line.job_id,
            phase=JobPhase.DONE,
            status=line.status,
            service=service.name,
            finished_at=line.finished_at,
        )
        if line.code is not None:
            view.problem = Problem(code=line.code, reason=line.reason or "")
        return self._with_results(
            view,
            line.outbox.name if line.outbox else None,
            line.quarantine.name if line.quarantine else None,
            line.archive.name if line.archive else line.job,  # a line written before history kept the archive
        )

    def _finished_by_id(self, job_id: str) -> JobView | None:
        return self._history_view(True, job_id)

    def _finished(self, name: str) -> JobView | None:
        view = self._history_view(False, name)
        if view is not None:
            return view
        # The history keeps the last lines only: an older job is still found by its folders.
        outbox = name if real_folder(self.settings.paths.outbox, name) else None
        quarantine = name if real_folder(self.settings.paths.quarantine, name) else None
        if outbox is None and quarantine is None:
            return None
        return self._with_results(JobView(id=name, phase=JobPhase.DONE), outbox, quarantine, name)

    def _with_results(self, view: JobView, outbox: str | None, quarantine: str | None, archive: str | None) -> JobView:
        outbox_dir = shown_folder(self.settings.paths.outbox, outbox) if outbox else None
        quarantine_dir = shown_folder(self.settings.paths.quarantine, quarantine) if quarantine else None
        view.outbox_folder = outbox if outbox_dir else None
        view.quarantine_folder = quarantine if quarantine_dir else None
        archive_dir = shown_folder(self.settings.paths.archive, archive) if archive else None
        view.archive_folder = archive if archive_dir else None
        view.gone = outbox_dir is None and quarantine_dir is None
        links: dict[tuple[str, str], FileLink] = {}
        for area, folder in ((OUTBOX, outbox_dir), (QUARANTINE, quarantine_dir)):
            for item in regular_files(folder) if folder else []:
                link = FileLink(
                    name=item.name,
                    area=area,
                    url=file_url(view.id, area, item.name),
                    size_bytes=item.stat(follow_symlinks=False).st_size,
                )
                links[(area, item.name)] = link
                view.files.append(link)
        if view.files:
            view.zip_url = f"/api/jobs/{link_segment(view.id)}/zip"
        report = _read_model(outbox_dir / JOB_REPORT, JobReport) if outbox_dir else None
        error = _read_model(quarantine_dir / ERROR_REPORT, ErrorReport) if quarantine_dir else None
        if isinstance(report, JobReport) and outbox_dir is not None:
            view.job_id = view.job_id or report.job_id
            view.status = view.status or report.status
            view.received_at, view.finished_at = report.received_at, view.finished_at or report.finished_at
            view.audio, view.dry_run = report.audio, report.dry_run
            view.videos = [self._result_video(video, outbox_dir, links) for video in report.videos]
            self._find_templates(view.videos, report, archive_dir)
            view.warnings += [Notice(kind="text", text=text) for text in report.warnings]
        if isinstance(error, ErrorReport):
            view.job_id = view.job_id or error.job_id
            view.problem = Problem(code=error.code, reason=error.reason, details=error.details, fix=error.what_to_do)
            failed = {video.template: video for video in error.failed_videos}
            for video in view.videos:
                if video.template in failed and video.problem is None:
                    video.problem = Problem(code=failed[video.template].code, reason=failed[video.template].reason)
            known = {video.template for video in view.videos}
            view.videos += [
                VideoView(
                    template=name, status=VideoStatus.FAILED.value, problem=Problem(code=item.code, reason=item.reason)
                )
                for name, item in failed.items()
                if name not in known
            ]
            if view.status is None:
                view.status = JobStatus.PARTIAL if error.outbox_folder else JobStatus.FAILED
        if view.audio is None:
            view.audio = audio_among([link.name for link in view.files if link.area == QUARANTINE])
        return view

    def _find_templates(self, videos: list[VideoView], report: JobReport, archived: Path | None) -> None:
        """The template of each rendered video, where it is now (see ``template_place``)."""
        inputs = {item.name: item for item in report.inputs}
        for video in videos:
            if video.output is None:
                continue
            video.show_template(template_place(self.settings.paths.presenter_library, archived, video.template, inputs))

    def _result_video(self, video: VideoResult, outbox_dir: Path, links: dict[tuple[str, str], FileLink]) -> VideoView:
        shown = VideoView(template=video.template, status=video.status.value, duration_s=video.output_duration_s)
        if video.output:
            shown.output = links.get((OUTBOX, video.output))
            shown.thumbnail = links.get((OUTBOX, Path(video.output).stem + THUMBNAIL_SUFFIX))
        if video.report:
            shown.report = links.get((OUTBOX, video.report))
            sidecar = _read_model(outbox_dir / video.report, RenderReport) if shown.report else None
            if isinstance(sidecar, RenderReport):
                shown.warnings = render_warnings(video.template, sidecar)
        if video.code is not None:
            shown.problem = Problem(code=video.code, reason=video.error or "")
        return shown


def template_place(
    library: Path, archived: Path | None, template: str, inputs: dict[str, InputFile]
) -> TemplatePlace | None:
    """Where the template a job's report names is now, if it is still there as it was rendered.

    A template of the job folder (a plain name) is in the job's archive folder; one of the presenter library (its
    absolute path in the report) is ``<library>/<presenter>/<file>``. Anything else the report could say (a path
    elsewhere, ``..``, a link) reaches nothing. A file whose size differs from the one the report recorded is another
    file now (a presenter's template replaced, another job's archive of the same name): not the template either."""
    path = Path(template)
    if plain_name(template) and archived is not None:
        place = TemplatePlace(archived.parent, archived.name, template)
    elif path.is_absolute() and path.parent.parent == library.absolute() and plain_name(path.parent.name):
        place = TemplatePlace(library.absolute(), path.parent.name, path.name)
    else:
        return None
    folder = real_folder(place.parent, place.folder)
    found = entry(folder, place.name) if folder is not None else None
    if found is None or not found.is_file(follow_symlinks=False):
        return None
    recorded = inputs.get(template)
    if recorded is not None and recorded.size_bytes != found.stat(follow_symlinks=False).st_size:
        return None
    return place


# How the engine's own warnings (heygemd/engine/engine.py) begin where the page already says the same, translated.
LOOP_WORDS = ("the audio outlasts the template",)
VFR_WORDS = ("variable frame rate input",)
FINISHED_VIDEO_STATES = frozenset({VideoStatus.OK.value, VideoStatus.FAILED.value})


def job_progress(videos: list[VideoView]) -> JobProgress | None:
    """The job's percent: its finished videos, and the part done of the one rendering, over all its videos."""
    if not videos:
        return None
    finished = sum(video.status in FINISHED_VIDEO_STATES for video in videos)
    current = next((video.progress for video in videos if video.progress is not None), None)
    part = min(max((current.percent or 0.0) / 100, 0.0), 1.0) if current is not None else 0.0
    eta = None
    if current is not None and current.eta_seconds is not None:
        whole_video = current.eta_seconds / (1.0 - part) if part < 1.0 else current.eta_seconds
        after = len(videos) - finished - 1
        eta = current.eta_seconds + max(after, 0) * whole_video
    return JobProgress(
        percent=round(100.0 * (finished + part) / len(videos), 1),
        videos_done=finished,
        videos_total=len(videos),
        eta_seconds=eta,
    )


def audio_among(names: list[str]) -> str | None:
    return next((name for name in names if kind_of(name) is FileKind.AUDIO), None)


def render_warnings(template: str, report: RenderReport) -> list[Notice]:
    """What a render's report says a person should know: sentences the page translates, then the engine's own."""
    found = []
    if report.faces.frames_without_face and not report.dry_run:
        total = report.faces.frames_with_face + report.faces.frames_without_face
        found.append(Notice(kind="faceless", video=template, count=report.faces.frames_without_face, total=total))
    if report.loop_policy_applied:
        found.append(Notice(kind="loop", video=template, policy=report.options.loop.value))
    if report.video.variable_frame_rate:
        found.append(Notice(kind="vfr", video=template, fps=round(report.output.fps, 3)))
    said = (LOOP_WORDS if report.loop_policy_applied else ()) + (VFR_WORDS if report.video.variable_frame_rate else ())
    found += [Notice(kind="text", video=template, text=text) for text in report.warnings if not text.startswith(said)]
    return found


# ---------------------------------------------------------------------------- the dashboard


def overview(settings: WebSettings) -> Overview:
    services = read_services(settings)
    finder = JobFinder(settings, services)
    return Overview(
        services=[_service_view(service, finder) for service in services],
        queue=_queue(settings, services, finder),
        results=_results(settings, services),
        paused=bool(services) and all(service.control.paused for service in services),
    )


def _service_view(service: ServiceFiles, finder: JobFinder) -> ServiceView:
    status = service.status
    up = service.up
    view = ServiceView(
        name=service.name, up=up, state=status.state if status and up else STOPPED, paused=service.control.paused
    )
    if status is not None:
        view.device = status.engine.device if status.engine is not None else None
        view.dry_run = status.dry_run
        view.host, view.pid, view.updated_at = status.host, status.pid, status.updated_at
        view.tasks = list(status.tasks) if up else []
        view.model_files = list(status.model_files) if up else []
        view.cluster, view.workers = status.cluster, list(status.workers) if up else []
        if up and status.no_worker_online and view.state in (IDLE, WORKING):
            view.state = NO_WORKER_ONLINE  # not "rendering" forever: nothing renders without a worker
        if up and status.current is not None:
            view.current = finder.find_claimed(status.current.job)
    return view


def _queue(settings: WebSettings, services: list[ServiceFiles], finder: JobFinder) -> list[QueueItem]:
    items: dict[str, QueueItem] = {}

    def add(item: QueueItem) -> None:
        items.setdefault(item.id, item)

    for service in services:
        status = service.status if service.up else None
        working = status.current.job_id if status is not None and status.current else None
        waiting = {job.job_id: job for job in status.waiting_jobs} if status else {}
        for record in service.records():
            if record.job_id == working:
                continue  # shown as the service's current job
            job = waiting.get(record.job_id)
            phase = JobPhase.WAITING_RETRY if job else JobPhase.CLAIMED
            add(
                QueueItem(
                    id=record.name,
                    phase=phase,
                    service=service.name,
                    detail=job.reason if job else None,
                    retry_at=job.retry_at if job else None,
                )
            )
        if status is None:
            continue
        for shortage in status.waiting_for_disk:
            add(
                QueueItem(
                    id=shortage.job,
                    phase=JobPhase.WAITING_FOR_DISK,
                    service=service.name,
                    detail=shortage.filesystem.describe(),
                )
            )
        for name in status.queued:
            add(QueueItem(id=name, phase=JobPhase.QUEUED, service=service.name))
        for name in status.arriving:
            add(QueueItem(id=name, phase=JobPhase.ARRIVING, service=service.name, detail=status.waiting_for.get(name)))
    # Folders no running service has listed yet (none runs, or it has not looked since).
    for folder in _inbox_folders(settings.paths.inbox):
        add(QueueItem(id=folder, phase=JobPhase.QUEUED))
    for item in items.values():
        item.cancel_requested = finder.cancel_requested(item.id)
    return list(items.values())


def _inbox_folders(inbox: Path) -> list[str]:
    try:
        with os.scandir(inbox) as entries:
            return sorted(
                item.name
                for item in entries
                if item.is_dir(follow_symlinks=False)
                and plain_name(item.name)
                and not is_ignored_name(item.name)
                and not is_heygemd_temporary(item.name)
            )
    except OSError:
        return []


def _results(settings: WebSettings, services: list[ServiceFiles]) -> list[ResultItem]:
    entries = sorted(
        (item for service in services for item in service.history() if still_there(settings, item)),
        key=lambda item: item.finished_at,
        reverse=True,
    )
    results = []
    for item in entries[:RESULTS_SHOWN]:
        results.append(
            ResultItem(
                id=item.job,
                status=item.status,
                code=item.code,
                finished_at=item.finished_at,
                seconds=item.seconds,
                videos_ok=item.videos_ok,
                videos_failed=item.videos_failed,
                thumbnail=_first_thumbnail(settings, item),
            )
        )
    return results


def still_there(settings: WebSettings, entry: HistoryEntry) -> bool:
    """Its results or its quarantine folder is there (not removed by retention, moved away or deleted)."""
    folders = [(settings.paths.outbox, entry.outbox), (settings.paths.quarantine, entry.quarantine)]
    return any(place is not None and shown_folder(area, place.name) is not None for area, place in folders)


def _first_thumbnail(settings: WebSettings, item: HistoryEntry) -> str | None:
    if item.outbox is None:
        return None
    folder = shown_folder(settings.paths.outbox, item.outbox.name)
    thumbnail = (
        next((found for found in regular_files(folder) if found.name.endswith(THUMBNAIL_SUFFIX)), None) if folder else None
    )
    return file_url(item.job, OUTBOX, thumbnail.name) if thumbnail else None
