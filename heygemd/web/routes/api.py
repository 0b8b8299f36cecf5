"""The JSON API under /api: status, jobs (submit, follow, cancel), pause and resume. A job's files: routes/downloads."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from heygemd.engine.settings import BlendMode, LoopPolicy
from heygemd.names import display_json
from heygemd.speech.choice import MAX_SPEED, MIN_SPEED
from heygemd.web.access import check_api_write, require_sign_in
from heygemd.web.actions import (
    cancel_job,
    delete_result,
    find_or_404,
    receive_job,
    set_paused,
    with_problem_summaries,
    with_summaries,
)
from heygemd.web.gallery import ResultsPage, results_page
from heygemd.web.rerun import rerun_job
from heygemd.web.site import ERRORS, Settings, SiteWeb, api_job_url
from heygemd.web.streams import STREAM_RESPONSES, event_response
from heygemd.web.views import JobFinder, JobPhase, JobView, Overview, QueueItem, ResultItem, job_url, overview

UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "audio": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "one or more audio files (each rendered with every template), or a script",
                        },
                        "templates": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "one or more template videos or images",
                        },
                        "presenters": {
                            "type": "array",
                            "items": {"type": "string"},
                            "description": 'presenters of the library, as well as or instead of templates: "anna" (all '
                            'her templates) or "ben/front.mp4" (one); a field each, or names split by commas',
                        },
                        "script": {"type": "string", "description": "a script to speak instead of audio (script.txt)"},
                        "voice": {"type": "string", "description": "the script's voice: auto, espeak-ng, kokoro[:speaker]"},
                        "language": {"type": "string", "description": "the script's language: en, zh, ... or auto"},
                        "speed": {
                            "type": "number",
                            "minimum": MIN_SPEED,
                            "maximum": MAX_SPEED,
                            "description": "1.0: natural",
                        },
                        "name": {
                            "type": "string",
                            "description": "the job's name (default: the audio's name, or script for a script); "
                            "a free 'name (2)' is taken if it is in use",
                        },
                        "loop": {"type": "string", "enum": [policy.value for policy in LoopPolicy]},
                        "blend": {"type": "string", "enum": [mode.value for mode in BlendMode]},
                        "crf": {"type": "integer", "minimum": 0, "maximum": 51},
                        "output_folder": {"type": "string", "description": "name of the results folder"},
                        "job_toml": {"type": "string", "description": "a whole job.toml instead of the options above"},
                    },
                }
            }
        },
    }
}

router = APIRouter(prefix="/api", dependencies=[Depends(require_sign_in)], responses=ERRORS)
ServiceNames = Annotated[list[str] | None, Query()]


class Submitted(BaseModel):
    id: str = Field(description="the job's folder name in the inbox: ask for its status with it, now and after it ended")
    url: str = Field(description="the job's page")
    status_url: str = Field(description="the job's status in the API")


class JobList(BaseModel):
    active: list[QueueItem] = Field(description="jobs in the inbox or in a service's hands (the rendering ones included)")
    results: list[ResultItem] = Field(description="the latest finished jobs, newest first")


class ControlAnswer(BaseModel):
    paused: bool
    services: list[str] = Field(description="the services the request was written for")


class DeleteAnswer(BaseModel):
    id: str
    removed: list[str] = Field(description="the areas its folder was removed from: outbox, quarantine")


class CancelAnswer(BaseModel):
    id: str
    cancel_requested: bool
    services: list[str]


@router.get("/status", response_model=Overview, summary="The services, the queue and the latest results")
def status(request: Request, web: SiteWeb) -> Overview:
    return with_summaries(web.translator(request), overview(web.settings))


@router.get(
    "/events",
    summary="The same as /api/status, as server-sent events whenever it changes",
    response_class=StreamingResponse,
    responses=STREAM_RESPONSES,
)
def events(request: Request, settings: Settings) -> StreamingResponse:
    def produce() -> tuple[str, bool]:
        return display_json(overview(settings), indent=None), False

    return event_response(request, produce)


@router.get("/jobs", response_model=JobList, summary="Jobs waiting or in progress, and the latest results")
def list_jobs(settings: Settings) -> JobList:
    seen = overview(settings)
    active = [
        QueueItem(id=service.current.id, phase=service.current.phase, service=service.name)
        for service in seen.services
        if service.current is not None
    ]
    known = {item.id for item in active}
    return JobList(active=active + [item for item in seen.queue if item.id not in known], results=seen.results)


@router.post(
    "/jobs",
    status_code=201,
    response_model=Submitted,
    openapi_extra=UPLOAD_BODY,
    summary="Submit a job: audio files or a script, and templates or presenters (multipart/form-data)",
)
async def submit(request: Request, settings: Settings) -> Submitted:
    name = await receive_job(request, settings)
    return Submitted(id=name, url=job_url(name), status_url=api_job_url(name))


@router.get("/jobs/{job}", response_model=JobView, summary="A job's phase, progress per video, results and errors")
def job_status(request: Request, web: SiteWeb, job: str) -> JobView:
    return with_problem_summaries(web.translator(request), find_or_404(JobFinder(web.settings), job))


@router.get(
    "/jobs/{job}/events",
    summary="A job's status as server-sent events whenever it changes, until it is done",
    response_class=StreamingResponse,
    responses=STREAM_RESPONSES,
)
def job_status_events(request: Request, web: SiteWeb, job: str) -> StreamingResponse:
    find_or_404(JobFinder(web.settings), job)
    t = web.translator(request)

    def produce() -> tuple[str, bool]:
        found = JobFinder(web.settings).find(job)
        if found is None:
            return "", True
        return display_json(with_problem_summaries(t, found), indent=None), found.phase is JobPhase.DONE

    return event_response(request, produce)


@router.post(
    "/jobs/{job}/cancel",
    status_code=202,
    response_model=CancelAnswer,
    summary="Cancel a queued or rendering job: it ends in quarantine with code cancelled, its inputs untouched",
)
def cancel(request: Request, settings: Settings, job: str) -> CancelAnswer:
    check_api_write(request, settings)
    return CancelAnswer(id=job, cancel_requested=True, services=cancel_job(settings, job))


@router.delete(
    "/jobs/{job}",
    response_model=DeleteAnswer,
    summary="Delete a finished job's results and quarantine folders (409 while it is not finished)",
)
def delete(request: Request, settings: Settings, job: str) -> DeleteAnswer:
    check_api_write(request, settings)
    return DeleteAnswer(id=job, removed=delete_result(settings, job))


@router.post(
    "/jobs/{job}/rerun",
    status_code=201,
    response_model=Submitted,
    summary="Re-run a finished job: its inputs (from quarantine or the archive) again, with the same options, as a new job",
)
def rerun(request: Request, settings: Settings, job: str) -> Submitted:
    check_api_write(request, settings)
    name = rerun_job(settings, job)
    return Submitted(id=name, url=job_url(name), status_url=api_job_url(name))


@router.get("/results", response_model=ResultsPage, summary="The finished jobs still there, newest first: search, pages")
def results(settings: Settings, q: str = "", page: int = 1) -> ResultsPage:
    return results_page(settings, q, page)


@router.post("/pause", response_model=ControlAnswer, summary="Take no new jobs (the current one finishes)")
def pause(request: Request, settings: Settings, service: ServiceNames = None) -> ControlAnswer:
    check_api_write(request, settings)
    return ControlAnswer(paused=True, services=set_paused(settings, True, service))


@router.post("/resume", response_model=ControlAnswer, summary="Take new jobs again")
def resume(request: Request, settings: Settings, service: ServiceNames = None) -> ControlAnswer:
    check_api_write(request, settings)
    return ControlAnswer(paused=False, services=set_paused(settings, False, service))
