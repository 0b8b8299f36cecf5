"""The ASGI application: pages, the JSON API (OpenAPI at /openapi.json, /docs), files, events, metrics.

Pages are Jinja2 templates rendered on the server; a small script (static/app.js) keeps the live
parts current from server-sent events and sends the page's actions through the JSON API. Without
the script every form still works (a POST and a redirect).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import anyio
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel, Field
from python_multipart.multipart import parse_options_header
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from heygemd import __version__
from heygemd.control import request_cancel, request_pause
from heygemd.engine.formats import AUDIO_SUFFIXES, STILL_SUFFIXES, VIDEO_SUFFIXES
from heygemd.engine.settings import BlendMode, LoopPolicy
from heygemd.web import files as served
from heygemd.web.errors import WebError
from heygemd.web.i18n import (
    LANG_COOKIE,
    LANG_PARAM,
    LANGUAGES,
    MESSAGES,
    Translator,
    choose_language,
    normalise,
)
from heygemd.web.metrics_export import registry_for
from heygemd.web.security import (
    CSRF_COOKIE,
    CSRF_FIELD,
    SESSION_COOKIE,
    WriteRefused,
    check_csrf_field,
    csrf_cookie,
    needs_csrf_token,
    new_csrf_token,
    signed_in,
    token_matches,
)
from heygemd.web.settings import AREAS, OUTBOX, QUARANTINE, WebSettings
from heygemd.web.upload import (
    Receiver,
    UploadRefused,
    check_folder,
    check_job_name,
    discard,
    free_bytes,
    new_staging,
    publish,
    too_large,
    write_extras,
)
from heygemd.web.views import (
    ACTIVE_PHASES,
    JobFinder,
    JobPhase,
    JobView,
    Notice,
    Overview,
    QueueItem,
    ResultItem,
    job_url,
    overview,
    real_folder,
    regular_files,
)

HERE = Path(__file__).parent
EVENT_POLL_SECONDS = 0.5
KEEPALIVE_SECONDS = 15.0
COOKIE_YEAR = 365 * 24 * 3600
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; media-src 'self'; style-src 'self'; "
    "script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
# Files of a job may be shown but never run as this site's pages.
FILE_HEADERS = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox; default-src 'none'"}


# ---------------------------------------------------------------------------- API models


class ErrorBody(BaseModel):
    kind: str = Field(description="what was refused, e.g. upload.file_too_large, auth.required, error.job_not_found")
    message: str = Field(description="the sentence, in the request's language")
    code: str | None = Field(None, description="the job error code, where one applies (limit.file_too_large...)")
    reason: str | None = Field(None, description="the service's own sentence, in English")


class ErrorAnswer(BaseModel):
    error: ErrorBody


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


class CancelAnswer(BaseModel):
    id: str
    cancel_requested: bool
    services: list[str]


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorAnswer} for status in (400, 401, 403, 404, 409, 413, 415, 416, 503, 507)
}
UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["audio", "templates"],
                    "properties": {
                        "audio": {"type": "string", "format": "binary", "description": "one audio file"},
                        "templates": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "one or more template videos or images",
                        },
                        "name": {
                            "type": "string",
                            "description": "the job's name (default: the audio's name); "
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


# ---------------------------------------------------------------------------- the application


class Web:
    """The application's parts that routes share: settings, templates, the metrics registry."""

    def __init__(self, settings: WebSettings) -> None:
        self.settings = settings
        self.templates = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(["html"]),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.registry = registry_for(settings)

    # -- per request

    def language(self, request: Request) -> str:
        return choose_language(
            request.query_params.get(LANG_PARAM), request.cookies.get(LANG_COOKIE), request.headers.get("accept-language")
        )

    def translator(self, request: Request) -> Translator:
        return Translator(self.language(request))

    def context(self, request: Request, csrf: str) -> dict[str, Any]:
        t = self.translator(request)
        return {
            "t": t,
            "lang": t.language,
            "languages": LANGUAGES,
            "csrf": csrf,
            "js_messages": t.js_messages(),
            "auth_enabled": self.settings.token is not None,
            "signed_in": signed_in(request, self.settings),
            "state_label": t.state,
            "status_label": t.status,
            "code_summary": t.code_summary,
            "code_fix": t.code_fix,
            "duration": t.duration,
            "size": human_size,
            "clock": clock,
            "job_url": job_url,
            "api_job_url": api_job_url,
            "warning_text": lambda warning: warning_text(t, warning),
            "colon": t("ui.colon"),
        }

    def render_fragment(self, request: Request, name: str, csrf: str, **values: Any) -> str:
        return self.templates.get_template(name).render(**self.context(request, csrf), **values)

    def page(self, request: Request, name: str, status: int = 200, **values: Any) -> HTMLResponse:
        csrf = csrf_cookie(request) or new_csrf_token()
        response = HTMLResponse(
            self.render_fragment(request, name, csrf, **values), status_code=status, headers=PAGE_HEADERS
        )
        secure = request.url.scheme == "https"
        if csrf_cookie(request) != csrf:
            response.set_cookie(CSRF_COOKIE, csrf, httponly=True, samesite="strict", secure=secure)
        chosen = normalise(request.query_params.get(LANG_PARAM))
        if chosen is not None and chosen != request.cookies.get(LANG_COOKIE):
            response.set_cookie(LANG_COOKIE, chosen, max_age=COOKIE_YEAR, samesite="lax", secure=secure)
        return response

    def error_answer(self, request: Request, error: WebError) -> Response:
        t = self.translator(request)
        message = localised(t, error)
        headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
        if wants_json(request):
            body = ErrorAnswer(
                error=ErrorBody(
                    kind=error.kind,
                    message=message,
                    code=error.code.value if error.code else None,
                    reason=error.message if error.kind == "upload.contract" else None,
                )
            )
            return JSONResponse(body.model_dump(mode="json"), status_code=error.status, headers=headers)
        title = t("error.not_found.title") if error.status == 404 else str(error.status)
        return self.page(request, "error.html", status=error.status, title=title, message=message)


def localised(t: Translator, error: WebError) -> str:
    if error.kind == "upload.contract" and error.code is not None:
        return t("upload.contract", summary=t.code_summary(error.code)) + " " + error.message
    if error.kind in MESSAGES:
        try:
            return t(error.kind, **error.params)
        except (KeyError, IndexError):
            return error.message
    return error.message


def wants_json(request: Request) -> bool:
    path = request.url.path
    return path.startswith(("/api/", "/metrics", "/openapi.json")) or "application/json" in request.headers.get("accept", "")


def api_job_url(job: str) -> str:
    return f"/api/jobs/{quote(job, safe='')}"


def human_size(size: int | None) -> str:
    from heygemd.daemon.fsutil import human_size as size_text

    return "" if size is None else size_text(size)


def clock(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def warning_text(t: Translator, warning: Notice) -> str:
    if warning.kind == "faceless":
        return t("warning.faceless", video=warning.video, count=warning.count, total=warning.total)
    if warning.kind == "loop":
        return t("warning.loop", video=warning.video, policy=t(f"loop.{warning.policy}"))
    if warning.kind == "vfr":
        return t("warning.vfr", video=warning.video, fps=warning.fps)
    return warning.text or ""


def version_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def sse(data: str, event: str | None = None) -> str:
    lines = [f"event: {event}"] if event else []
    lines += [f"data: {line}" for line in data.split("\n")]
    return "\n".join(lines) + "\n\n"


async def event_stream(request: Request, produce: Callable[[], tuple[str, bool]], known: str | None) -> AsyncIterator[str]:
    """Send what ``produce`` makes whenever it changes (polling the files), until it says it is final.

    A stream also ends when the server stops (``app.state.stopping``), so a stop never waits for open pages.
    """
    stopping: threading.Event = request.app.state.stopping
    last, quiet = known, 0.0
    yield "retry: 2000\n\n"
    while not stopping.is_set():
        text, final = await anyio.to_thread.run_sync(produce)
        version = version_of(text)
        if version != last:
            last, quiet = version, 0.0
            yield sse(text)
        elif quiet >= KEEPALIVE_SECONDS:
            quiet = 0.0
            yield ": keepalive\n\n"
        if final:
            yield sse("", event="end")
            return
        if await request.is_disconnected():
            return
        await anyio.sleep(EVENT_POLL_SECONDS)
        quiet += EVENT_POLL_SECONDS


def event_response(stream: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(
        stream, media_type="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )


def create_app(settings: WebSettings) -> FastAPI:
    web = Web(settings)
    app = FastAPI(
        title="heygemd",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # served below, signed in
        description="Lip-sync jobs: submit one audio and one or more templates, follow the job by the id submit "
        "returns (it stays findable after the job ended), fetch its results. With web.token set, send "
        "`Authorization: Bearer <token>`.",
    )
    app.state.web = web
    app.state.stopping = threading.Event()  # set by `heygemd web` when it is asked to stop

    @app.exception_handler(WebError)
    async def refused(request: Request, error: WebError) -> Response:
        return web.error_answer(request, error)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        if error.status_code == 404:
            return web.error_answer(request, WebError(404, "error.not_found", "Nothing is here."))
        detail = str(error.detail)
        return web.error_answer(
            request, WebError(error.status_code, "error.http", f"The request cannot be served ({detail}).", detail=detail)
        )

    def require_sign_in(request: Request) -> None:
        if signed_in(request, settings):
            return
        if wants_json(request) or request.method != "GET":
            raise WebError(401, "auth.required", "Sign in first (the page's password, or an Authorization: Bearer token).")
        raise SignInNeeded(request.url.path + (f"?{request.url.query}" if request.url.query else ""))

    @app.exception_handler(SignInNeeded)
    async def to_sign_in(request: Request, error: SignInNeeded) -> Response:
        return RedirectResponse(f"/login?next={quote(error.next_path, safe='')}", status_code=303)

    open_routes = APIRouter()
    pages = APIRouter(dependencies=[Depends(require_sign_in)], include_in_schema=False)
    api = APIRouter(prefix="/api", dependencies=[Depends(require_sign_in)], responses=ERRORS)

    # ---------------------------------------------------------------- sign-in

    @open_routes.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, bool]:
        return {"ok": True}

    @open_routes.get("/login", include_in_schema=False)
    def login_page(request: Request, next: str = "/") -> Response:
        return web.page(request, "login.html", next=safe_next(next))

    @open_routes.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        form = await request.form()
        check_form_write(request, settings, form.get(CSRF_FIELD))
        if settings.token is None:
            return RedirectResponse(safe_next(str(form.get("next", "/"))), status_code=303)
        if not token_matches(str(form.get("token", "")), settings):
            t = web.translator(request)
            return web.page(
                request,
                "login.html",
                status=401,
                next=safe_next(str(form.get("next", "/"))),
                notice=t("login.wrong"),
                notice_kind="error",
            )
        response = RedirectResponse(safe_next(str(form.get("next", "/"))), status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            settings.session_value() or "",
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
        )
        return response

    @open_routes.post("/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        form = await request.form()
        check_form_write(request, settings, form.get(CSRF_FIELD))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    # ---------------------------------------------------------------- pages

    @pages.get("/", response_class=HTMLResponse)
    def dashboard(request: Request) -> Response:
        return web.page(request, "dashboard.html", overview=overview(settings))

    @pages.get("/jobs/{name}", response_class=HTMLResponse)
    def job_page(request: Request, name: str) -> Response:
        finder = JobFinder(settings)
        job = find_or_404(finder, name)
        csrf = csrf_cookie(request) or ""
        paused = any(service.control.paused for service in finder.services)
        fragment = web.render_fragment(request, "_job_live.html", csrf, job=job, paused=paused)
        return web.page(request, "job.html", job=job, paused=paused, version=version_of(fragment))

    @pages.get("/upload", response_class=HTMLResponse)
    def upload_page(request: Request) -> Response:
        return web.page(request, "upload.html", **upload_values(settings))

    @pages.post("/upload")
    async def upload_form(request: Request) -> Response:
        try:
            name = await receive_job(request, settings)
        except WebError as error:
            if error.status in (401, 403):
                raise
            message = localised(web.translator(request), error)
            return web.page(request, "upload.html", status=error.status, error=message, **upload_values(settings))
        return RedirectResponse(job_url(name), status_code=303)

    @pages.post("/pause")
    async def pause_form(request: Request) -> Response:
        form = await request.form()
        check_form_write(request, settings, form.get(CSRF_FIELD))
        set_paused(settings, True, None)
        return RedirectResponse("/", status_code=303)

    @pages.post("/resume")
    async def resume_form(request: Request) -> Response:
        form = await request.form()
        check_form_write(request, settings, form.get(CSRF_FIELD))
        set_paused(settings, False, None)
        return RedirectResponse("/", status_code=303)

    @pages.post("/jobs/{name}/cancel")
    async def cancel_form(request: Request, name: str) -> Response:
        form = await request.form()
        check_form_write(request, settings, form.get(CSRF_FIELD))
        cancel_job(settings, name)
        return RedirectResponse(job_url(name), status_code=303)

    @pages.get("/events/dashboard")
    def dashboard_events(request: Request, v: str | None = None) -> StreamingResponse:
        csrf = csrf_cookie(request) or ""

        def produce() -> tuple[str, bool]:
            return web.render_fragment(request, "_dashboard_live.html", csrf, overview=overview(settings)), False

        return event_response(event_stream(request, produce, v))

    @pages.get("/events/jobs/{name}")
    def job_events(request: Request, name: str, v: str | None = None) -> StreamingResponse:
        csrf = csrf_cookie(request) or ""

        def produce() -> tuple[str, bool]:
            finder = JobFinder(settings)
            job = finder.find(name)
            if job is None:
                return "", True
            paused = any(service.control.paused for service in finder.services)
            return web.render_fragment(request, "_job_live.html", csrf, job=job, paused=paused), job.phase is JobPhase.DONE

        return event_response(event_stream(request, produce, v))

    # ---------------------------------------------------------------- the JSON API

    @api.get("/status", response_model=Overview, summary="The services, the queue and the latest results")
    def status(request: Request) -> Overview:
        return with_summaries(web.translator(request), overview(settings))

    @api.get(
        "/events",
        summary="The same as /api/status, as server-sent events whenever it changes",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    def events(request: Request) -> StreamingResponse:
        def produce() -> tuple[str, bool]:
            return overview(settings).model_dump_json(), False

        return event_response(event_stream(request, produce, None))

    @api.get("/jobs", response_model=JobList, summary="Jobs waiting or in progress, and the latest results")
    def list_jobs() -> JobList:
        seen = overview(settings)
        active = [
            QueueItem(id=service.current.id, phase=service.current.phase, service=service.name)
            for service in seen.services
            if service.current is not None
        ]
        known = {item.id for item in active}
        return JobList(active=active + [item for item in seen.queue if item.id not in known], results=seen.results)

    @api.post(
        "/jobs",
        status_code=201,
        response_model=Submitted,
        openapi_extra=UPLOAD_BODY,
        summary="Submit a job: one audio and one or more templates (multipart/form-data)",
    )
    async def submit(request: Request) -> Submitted:
        name = await receive_job(request, settings)
        return Submitted(id=name, url=job_url(name), status_url=api_job_url(name))

    @api.get("/jobs/{job}", response_model=JobView, summary="A job's phase, progress per video, results and errors")
    def job_status(request: Request, job: str) -> JobView:
        return with_problem_summaries(web.translator(request), find_or_404(JobFinder(settings), job))

    @api.get(
        "/jobs/{job}/events",
        summary="A job's status as server-sent events whenever it changes, until it is done",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    def job_status_events(request: Request, job: str) -> StreamingResponse:
        find_or_404(JobFinder(settings), job)
        t = web.translator(request)

        def produce() -> tuple[str, bool]:
            found = JobFinder(settings).find(job)
            if found is None:
                return "", True
            return with_problem_summaries(t, found).model_dump_json(), found.phase is JobPhase.DONE

        return event_response(event_stream(request, produce, None))

    @api.post(
        "/jobs/{job}/cancel",
        status_code=202,
        response_model=CancelAnswer,
        summary="Cancel a queued or rendering job: it ends in quarantine with code cancelled, its inputs untouched",
    )
    def cancel(request: Request, job: str) -> CancelAnswer:
        check_api_write(request, settings)
        return CancelAnswer(id=job, cancel_requested=True, services=cancel_job(settings, job))

    @api.post("/pause", response_model=ControlAnswer, summary="Take no new jobs (the current one finishes)")
    def pause(request: Request, service: Annotated[list[str] | None, Query()] = None) -> ControlAnswer:
        check_api_write(request, settings)
        return ControlAnswer(paused=True, services=set_paused(settings, True, service))

    @api.post("/resume", response_model=ControlAnswer, summary="Take new jobs again")
    def resume(request: Request, service: Annotated[list[str] | None, Query()] = None) -> ControlAnswer:
        check_api_write(request, settings)
        return ControlAnswer(paused=False, services=set_paused(settings, False, service))

    @api.get(
        "/jobs/{job}/files/{area}/{name}",
        summary="A file of a job's results or quarantine folder (Range "
        "requests answered with 206; ?download=1 for an attachment)",
        response_class=Response,
        responses={200: {"content": {"application/octet-stream": {}}}, 206: {"description": "the range asked for"}},
    )
    @api.head("/jobs/{job}/files/{area}/{name}", include_in_schema=False)
    def job_file(request: Request, job: str, area: str, name: str, download: bool = False) -> Response:
        found = find_or_404(JobFinder(settings), job)
        folder = area_folder_of(found, area)
        try:
            opened = served.open_job_file(settings.area_folder(area), folder, name)
        except served.NotServed:
            raise file_not_found() from None
        return file_response(request, opened, download)

    @pages.get("/jobs/{job}/files/{name}")
    @pages.head("/jobs/{job}/files/{name}")
    def job_result_file(request: Request, job: str, name: str, download: bool = False) -> Response:
        """A file by name alone (the webhooks' links): the results folder's, else the quarantine's."""
        found = find_or_404(JobFinder(settings), job)
        for area, folder in ((OUTBOX, found.outbox_folder), (QUARANTINE, found.quarantine_folder)):
            if folder is None:
                continue
            try:
                return file_response(request, served.open_job_file(settings.area_folder(area), folder, name), download)
            except served.NotServed:
                continue
        raise file_not_found()

    @pages.get("/jobs/{job}/zip")
    @api.get(
        "/jobs/{job}/zip",
        summary="Every file of a finished job as one ZIP, streamed",
        response_class=StreamingResponse,
        responses={200: {"content": {"application/zip": {}}}},
    )
    def job_zip(job: str) -> StreamingResponse:
        found = find_or_404(JobFinder(settings), job)
        members: list[served.ZipMember] = []
        for area, folder, prefix in (
            (OUTBOX, found.outbox_folder, found.id),
            (QUARANTINE, found.quarantine_folder, f"{found.id}/quarantine"),
        ):
            directory = real_folder(settings.area_folder(area), folder) if folder else None
            if folder is None or directory is None:
                continue
            members += [
                served.ZipMember(settings.area_folder(area), folder, item.name, f"{prefix}/{item.name}")
                for item in regular_files(directory)
            ]
        if not members:
            raise file_not_found()
        headers = {"Content-Disposition": served.content_disposition(f"{found.id}.zip", attachment=True), **FILE_HEADERS}
        return StreamingResponse(
            (chunk for chunk in served.zip_stream(members) if chunk), media_type="application/zip", headers=headers
        )

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(require_sign_in)])
    def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=[Depends(require_sign_in)])
    def docs() -> HTMLResponse:
        from fastapi.openapi.docs import get_swagger_ui_html

        return get_swagger_ui_html(openapi_url="/openapi.json", title="heygemd API")

    @app.get("/metrics", include_in_schema=False, dependencies=[Depends(require_sign_in)])
    def metrics() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(web.registry), media_type=CONTENT_TYPE_LATEST)

    app.include_router(open_routes)
    app.include_router(pages)
    app.include_router(api)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    return app


class SignInNeeded(Exception):
    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def safe_next(target: str) -> str:
    """Only a path of this site (never //other.site or a scheme) after signing in."""
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else "/"


def check_form_write(request: Request, settings: WebSettings, submitted: object) -> None:
    if needs_csrf_token(request, settings):
        check_csrf_field(request, submitted if isinstance(submitted, str) else None)


def check_api_write(request: Request, settings: WebSettings) -> None:
    if needs_csrf_token(request, settings):
        raise WriteRefused("csrf.missing", "Refused: the form is out of date or comes from another site; reload the page.")


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


def file_response(request: Request, opened: served.OpenedFile, download: bool) -> Response:
    media_type = opened.media_type
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": opened.etag,
        "Last-Modified": opened.last_modified,
        "Content-Disposition": served.content_disposition(opened.name, download or media_type not in served.INLINE_TYPES),
        "Cache-Control": "private, max-age=0, must-revalidate",
        **FILE_HEADERS,
    }
    if request.headers.get("if-none-match") == opened.etag:
        opened.close()
        return Response(status_code=304, headers=headers)
    try:
        span = served.parse_range(request.headers.get("range"), opened.size)
    except served.Unsatisfiable:
        size = opened.size
        opened.close()
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    if span is not None and not served.if_range_allows(request.headers.get("if-range"), opened):
        span = None
    status, start, length = 200, 0, opened.size
    if span is not None:
        status, start, length = 206, span.start, span.length
        headers["Content-Range"] = span.content_range(opened.size)
    headers["Content-Length"] = str(length)
    if request.method == "HEAD":
        opened.close()
        return Response(status_code=status, headers=headers, media_type=media_type)
    return StreamingResponse(
        served.read_span(opened, start, length), status_code=status, headers=headers, media_type=media_type
    )


# ---------------------------------------------------------------------------- actions


def set_paused(settings: WebSettings, paused: bool, names: list[str] | None) -> list[str]:
    folders = settings.state_folders()
    if names:
        chosen = [folder for folder in folders if folder.name in names]
        if len(chosen) != len(set(names)):
            raise WebError(404, "error.no_service", "No service is known by that name.")
        folders = chosen
    for folder in folders:
        request_pause(folder, paused)
    return [folder.name for folder in folders]


def cancel_job(settings: WebSettings, name: str) -> list[str]:
    """Ask the service holding the job to cancel it; a job still in the inbox, every service (any may claim it)."""
    finder = JobFinder(settings)
    job = find_or_404(finder, name)
    if job.phase not in ACTIVE_PHASES or job.phase is JobPhase.PUBLISHING:
        raise WebError(409, "error.already_finished", "The job has finished already; there is nothing to cancel.")
    targets = [
        service.state_dir
        for service in finder.services
        if job.service in (None, service.name)
        or job.phase in (JobPhase.QUEUED, JobPhase.ARRIVING, JobPhase.WAITING_FOR_DISK)
    ]
    for folder in targets:
        request_cancel(folder, name, by="web")
    return [folder.name for folder in targets]


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
        if not upload.audio:
            raise UploadRefused(400, "upload.no_audio", "Choose one audio file.", code=None)
        if not upload.templates:
            raise UploadRefused(400, "upload.no_template", "Choose one or more template videos.")
        wanted = check_job_name(upload.texts.get("name", "").strip() or Path(upload.audio[0]).stem)
        await anyio.to_thread.run_sync(write_extras, settings, upload)
        await anyio.to_thread.run_sync(check_folder, settings, upload, wanted)
        return await anyio.to_thread.run_sync(publish, settings, upload, wanted)
    except ClientDisconnect:
        raise UploadRefused(400, "upload.interrupted", "The upload was interrupted.") from None
    finally:
        await anyio.to_thread.run_sync(discard, staging)  # gone already when it was published


def upload_values(settings: WebSettings) -> dict[str, Any]:
    return {
        "max_file_bytes": settings.limits.max_file_bytes,
        "max_upload_bytes": settings.max_upload_bytes,
        "max_templates": settings.limits.max_templates,
        "audio_accept": ",".join(sorted(AUDIO_SUFFIXES)),
        "template_accept": ",".join(sorted(VIDEO_SUFFIXES | STILL_SUFFIXES)),
        "loops": [policy.value for policy in LoopPolicy],
        "blends": [mode.value for mode in BlendMode],
        "default_crf": settings.render.crf,
    }


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
