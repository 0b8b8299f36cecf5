"""What the routes do beyond reading: find a job or refuse, pause, cancel, receive an upload."""

from __future__ import annotations

from pathlib import Path

import anyio
from fastapi import Request
from pydantic import BaseModel
from python_multipart.multipart import parse_options_header
from starlette.requests import ClientDisconnect

from heygemd.control import request_cancel, request_pause
from heygemd.daemon.fsutil import remove_tree, rename_no_replace
from heygemd.daemon.presenters import list_presenters
from heygemd.engine.formats import AUDIO_SUFFIXES, STILL_SUFFIXES, VIDEO_SUFFIXES
from heygemd.engine.settings import BlendMode, LoopPolicy
from heygemd.names import temporary_name
from heygemd.speech.choice import AUTO_VOICE, ENGINES, MAX_SPEED, MIN_SPEED
from heygemd.web.errors import WebError
from heygemd.web.i18n import Translator
from heygemd.web.security import CSRF_FIELD, check_csrf_field, needs_csrf_token
from heygemd.web.settings import AREAS, OUTBOX, QUARANTINE, WebSettings
from heygemd.web.upload import (
    SCRIPT_FILE,
    Receiver,
    UploadRefused,
    check_folder,
    check_job_name,
    check_media,
    discard,
    free_bytes,
    new_staging,
    publish,
    too_large,
    write_extras,
)
from heygemd.web.views import ACTIVE_PHASES, JobFinder, JobPhase, JobView, Overview, read_services, real_folder


class UploadForm(BaseModel):
    """What the upload page needs to say and check before anything is sent."""

    max_file_bytes: int
    max_upload_bytes: int
    max_templates: int
    max_audio_seconds: float
    audio_accept: str
    template_accept: str
    loops: list[str]
    blends: list[str]
    default_crf: int
    presenters: list[str]
    voices: list[str]  # every engine; the page's script keeps the usable ones (/api/voices loads the engines)
    default_voice: str
    default_language: str
    min_speed: float
    max_speed: float
    max_script_chars: int


# ---------------------------------------------------------------------------- finding


def find_or_404(finder: JobFinder, name: str) -> JobView:
    job = finder.find(name)
    if job is None:
        raise WebError(
            404,
            "error.job_not_found",
            f'No job "{name}" is known: not in the inbox, not being rendered, not among the results.',
            name=name,
        )
    return job


def file_not_found() -> WebError:
    return WebError(404, "error.file_not_found", "This job has no such file (or it is not a plain file).")


def area_folder_of(job: JobView, area: str) -> str:
    folder = {OUTBOX: job.outbox_folder, QUARANTINE: job.quarantine_folder}.get(area) if area in AREAS else None
    if folder is None:
        raise file_not_found()
    return folder


def any_paused(finder: JobFinder) -> bool:
    return any(service.control.paused for service in finder.services)


def any_running(finder: JobFinder) -> bool:
    return any(service.up for service in finder.services)


# ---------------------------------------------------------------------------- controls


def set_paused(settings: WebSettings, paused: bool, names: list[str] | None) -> list[str]:
    """Pause or resume every service, or the ones named as the page names them (``ServiceView.name``: service.name,
    else the host's); a state folder's name is still understood where no service shows that name. Returns the names."""
    services = read_services(settings)
    if names:
        wanted = set(names)
        shown = [service for service in services if service.name in wanted]
        unknown = wanted - {service.name for service in shown}
        by_folder = [service for service in services if service.state_dir.name in unknown and service not in shown]
        if unknown - {service.state_dir.name for service in by_folder}:
            raise WebError(404, "error.no_service", "No service is known by that name.")
        services = shown + by_folder
    for service in services:
        request_pause(service.state_dir, paused)
    return [service.name for service in services]


def cancel_job(settings: WebSettings, name: str) -> list[str]:
    """Ask the service holding the job to cancel it; a job still in the inbox, every service (any may claim it)."""
    finder = JobFinder(settings)
    job = find_or_404(finder, name)
    if job.phase not in ACTIVE_PHASES or job.phase is JobPhase.PUBLISHING:
        raise WebError(409, "error.already_finished", "The job has finished already; there is nothing to cancel.")
    targets = [
        service
        for service in finder.services
        if job.service in (None, service.name)
        or job.phase in (JobPhase.QUEUED, JobPhase.ARRIVING, JobPhase.WAITING_FOR_DISK)
    ]
    for service in targets:
        request_cancel(service.state_dir, name, by="web")
    return [service.name for service in targets]


def delete_result(settings: WebSettings, name: str) -> list[str]:
    """Remove a finished job's results and quarantine folders; returns the areas a folder was removed from.

    Each folder is first renamed to a hidden temporary name (one atomic step: the job is gone from the
    page at once, and a removal cut short leaves a name that start-up cleans, never half a result).
    """
    job = find_or_404(JobFinder(settings), name)
    if job.phase is not JobPhase.DONE:
        raise WebError(409, "error.not_finished", "The job has not finished: cancel it first.")
    removed = []
    for area, folder_name in ((OUTBOX, job.outbox_folder), (QUARANTINE, job.quarantine_folder)):
        area_dir = settings.area_folder(area)
        folder = real_folder(area_dir, folder_name) if folder_name else None
        if folder is None:
            continue
        doomed = area_dir / temporary_name(folder.name)
        rename_no_replace(folder, doomed)
        remove_tree(doomed)
        removed.append(area)
    if not removed:
        raise file_not_found()
    return removed


# ---------------------------------------------------------------------------- uploads


async def receive_job(request: Request, settings: WebSettings) -> str:
    """Stream the upload into a staging folder in the inbox, check it as the service will, rename it in."""
    content_type = request.headers.get("content-type", "")
    kind, options = parse_options_header(content_type)
    if kind != b"multipart/form-data" or b"boundary" not in options:
        raise UploadRefused(415, "upload.not_multipart", "Send the files as multipart/form-data.")
    limit = settings.max_upload_bytes
    length = int(request.headers.get("content-length", "0") or 0)
    if limit and length > limit:
        raise too_large(limit)
    csrf_needed = needs_csrf_token(request, settings)
    room = free_bytes(settings.paths.inbox)
    if room is not None and length > room:
        raise UploadRefused(507, "upload.no_space", "There is not enough free space in the inbox for this upload.")
    staging = await anyio.to_thread.run_sync(new_staging, settings)
    try:
        csrf_check = (lambda token: check_csrf_field(request, token)) if csrf_needed else None
        receiver = Receiver(settings, staging, options[b"boundary"], csrf_check)
        upload = await receiver.receive(request.stream())
        if receiver.csrf_check is not None:  # a form without files: its token is checked now
            receiver.csrf_check(upload.texts.get(CSRF_FIELD))
        if not upload.audio and not upload.script:
            raise UploadRefused(400, "upload.no_audio", "Choose an audio file or type a script.", code=None)
        if not upload.templates and not upload.presenters:
            raise UploadRefused(400, "upload.no_template", "Choose one or more template videos, or pick presenters.")
        default_name = Path(upload.audio[0]).stem if upload.audio else Path(SCRIPT_FILE).stem
        wanted = check_job_name(upload.texts.get("name", "").strip() or default_name)
        await anyio.to_thread.run_sync(write_extras, settings, upload)
        await anyio.to_thread.run_sync(check_folder, settings, upload, wanted)
        await anyio.to_thread.run_sync(check_media, upload)
        return await anyio.to_thread.run_sync(publish, settings, upload, wanted)
    except ClientDisconnect:
        raise UploadRefused(400, "upload.interrupted", "The upload was interrupted.") from None
    finally:
        await anyio.to_thread.run_sync(discard, staging)  # gone already when it was published


def upload_form(settings: WebSettings) -> UploadForm:
    return UploadForm(
        max_file_bytes=settings.limits.max_file_bytes,
        max_upload_bytes=settings.max_upload_bytes,
        max_templates=settings.limits.max_templates,
        max_audio_seconds=settings.limits.max_audio_seconds,
        audio_accept=",".join(sorted(AUDIO_SUFFIXES)),
        template_accept=",".join(sorted(VIDEO_SUFFIXES | STILL_SUFFIXES)),
        loops=[policy.value for policy in LoopPolicy],
        blends=[mode.value for mode in BlendMode],
        default_crf=settings.render.crf,
        presenters=list_presenters(settings.paths.presenter_library),
        voices=[engine for engine in ENGINES if engine != AUTO_VOICE],
        default_voice=settings.speech.voice,
        default_language=settings.speech.language,
        min_speed=MIN_SPEED,
        max_speed=MAX_SPEED,
        max_script_chars=settings.limits.max_script_chars,
    )


# ---------------------------------------------------------------------------- the API's words


def with_problem_summaries(t: Translator, job: JobView) -> JobView:
    """The API's jobs carry each code's plain summary and fix, in the request's language."""
    problems = [job.problem] + [video.problem for video in job.videos]
    for problem in problems:
        if problem is not None:
            problem.summary = t.code_summary(problem.code)
            problem.fix = problem.fix or t.code_fix(problem.code)
    return job


def with_summaries(t: Translator, seen: Overview) -> Overview:
    for service in seen.services:
        if service.current is not None:
            with_problem_summaries(t, service.current)
    return seen
