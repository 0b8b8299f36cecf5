"""The HTML pages, their forms (each a POST and a redirect) and their live regions (server-sent HTML)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from heygemd.web.access import check_form_write, require_sign_in
from heygemd.web.actions import (
    any_paused,
    any_running,
    cancel_job,
    delete_result,
    find_or_404,
    receive_job,
    set_paused,
    upload_form,
)
from heygemd.web.errors import WebError
from heygemd.web.gallery import results_page
from heygemd.web.rerun import rerun_job
from heygemd.web.security import CSRF_FIELD, csrf_cookie
from heygemd.web.site import Settings, SiteWeb, localised, version_of
from heygemd.web.streams import event_response
from heygemd.web.views import JobFinder, JobPhase, job_url, overview

router = APIRouter(dependencies=[Depends(require_sign_in)], include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def dashboard(request: Request, web: SiteWeb) -> Response:
    return web.page(request, "dashboard.html", overview=overview(web.settings))


@router.get("/jobs/{name}", response_class=HTMLResponse)
def job_page(request: Request, web: SiteWeb, name: str) -> Response:
    finder = JobFinder(web.settings)
    job = find_or_404(finder, name)
    state = {"paused": any_paused(finder), "running": any_running(finder)}
    fragment = web.render_fragment(request, "_job_live.html", csrf_cookie(request) or "", job=job, **state)
    return web.page(request, "job.html", job=job, version=version_of(fragment), **state)


@router.get("/upload", response_class=HTMLResponse)
def upload_page(request: Request, web: SiteWeb) -> Response:
    return web.page(request, "upload.html", **upload_form(web.settings).model_dump())


@router.post("/upload")
async def upload_sent(request: Request, web: SiteWeb) -> Response:
    try:
        name = await receive_job(request, web.settings)
    except WebError as error:
        if error.status in (401, 403):
            raise
        message = localised(web.translator(request), error)
        values = upload_form(web.settings).model_dump()
        return web.page(request, "upload.html", status=error.status, error=message, **values)
    return RedirectResponse(job_url(name), status_code=303)


@router.get("/results", response_class=HTMLResponse)
def gallery_page(request: Request, web: SiteWeb, q: str = "", page: int = 1) -> Response:
    return web.page(request, "results.html", results=results_page(web.settings, q, page))


@router.post("/jobs/{name}/delete")
async def delete_sent(request: Request, settings: Settings, name: str) -> Response:
    form = await request.form()
    check_form_write(request, settings, form.get(CSRF_FIELD))
    delete_result(settings, name)
    return RedirectResponse("/results", status_code=303)


@router.post("/jobs/{name}/rerun")
async def rerun_sent(request: Request, settings: Settings, name: str) -> Response:
    form = await request.form()
    check_form_write(request, settings, form.get(CSRF_FIELD))
    return RedirectResponse(job_url(rerun_job(settings, name)), status_code=303)


@router.post("/pause")
async def pause_sent(request: Request, settings: Settings) -> Response:
    return await paused_by_form(request, settings, True)


@router.post("/resume")
async def resume_sent(request: Request, settings: Settings) -> Response:
    return await paused_by_form(request, settings, False)


async def paused_by_form(request: Request, settings: Settings, paused: bool) -> Response:
    form = await request.form()
    check_form_write(request, settings, form.get(CSRF_FIELD))
    set_paused(settings, paused, None)
    return RedirectResponse("/", status_code=303)


@router.post("/jobs/{name}/cancel")
async def cancel_sent(request: Request, settings: Settings, name: str) -> Response:
    form = await request.form()
    check_form_write(request, settings, form.get(CSRF_FIELD))
    cancel_job(settings, name)
    return RedirectResponse(job_url(name), status_code=303)


@router.get("/events/dashboard")
def dashboard_events(request: Request, web: SiteWeb, v: str | None = None) -> StreamingResponse:
    csrf = csrf_cookie(request) or ""

    def produce() -> tuple[str, bool]:
        return web.render_fragment(request, "_dashboard_live.html", csrf, overview=overview(web.settings)), False

    return event_response(request, produce, v)


@router.get("/events/jobs/{name}")
def job_events(request: Request, web: SiteWeb, name: str, v: str | None = None) -> StreamingResponse:
    csrf = csrf_cookie(request) or ""

    def produce() -> tuple[str, bool]:
        finder = JobFinder(web.settings)
        job = finder.find(name)
        if job is None:
            return "", True
        fragment = web.render_fragment(
            request, "_job_live.html", csrf, job=job, paused=any_paused(finder), running=any_running(finder)
        )
        return fragment, job.phase is JobPhase.DONE

    return event_response(request, produce, v)
