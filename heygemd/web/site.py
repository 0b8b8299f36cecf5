"""What every route shares: the settings, the templates, the metrics registry, and how a page or a refusal is answered."""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel, Field

from heygemd.daemon.fsutil import human_size as size_text
from heygemd.names import display_name, displayable
from heygemd.web.errors import WebError
from heygemd.web.i18n import LANG_COOKIE, LANG_PARAM, LANGUAGES, MESSAGES, Translator, choose_language, normalise
from heygemd.web.metrics_export import registry_for
from heygemd.web.security import CSRF_COOKIE, csrf_cookie, new_csrf_token, signed_in
from heygemd.web.settings import WebSettings
from heygemd.web.views import Notice, job_url, link_segment

HERE = Path(__file__).parent
COOKIE_YEAR = 365 * 24 * 3600
PAGE_HEADERS = {
    # blob: for the upload page's previews of the files chosen (played from the browser's memory, never sent anywhere)
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; style-src 'self'; "
    "script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
# Files of a job may be shown but never run as this site's pages.
FILE_HEADERS = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox; default-src 'none'"}
JSON_PATHS = ("/api/", "/metrics", "/openapi.json")


class ErrorBody(BaseModel):
    kind: str = Field(description="what was refused, e.g. upload.file_too_large, auth.required, error.job_not_found")
    message: str = Field(description="the sentence, in the request's language")
    code: str | None = Field(None, description="the job error code, where one applies (limit.file_too_large...)")
    reason: str | None = Field(None, description="the service's own sentence, in English")


class ErrorAnswer(BaseModel):
    error: ErrorBody


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorAnswer} for status in (400, 401, 403, 404, 409, 413, 415, 416, 503, 507)
}


class DisplayJSONResponse(JSONResponse):
    """JSON whose every text is writable as UTF-8: a name that is not UTF-8 shows its bytes as ``\\xNN``."""

    def render(self, content: Any) -> bytes:
        return super().render(displayable(content))


class Web:
    """The application's parts that routes share: settings, templates, the metrics registry."""

    def __init__(self, settings: WebSettings) -> None:
        self.settings = settings
        self.templates = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(["html"]),
            finalize=lambda value: display_name(value) if isinstance(value, str) else value,  # names not UTF-8
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


def web_of(request: Request) -> Web:
    web: Web = request.app.state.web
    return web


def settings_of(request: Request) -> WebSettings:
    return web_of(request).settings


SiteWeb = Annotated[Web, Depends(web_of)]
Settings = Annotated[WebSettings, Depends(settings_of)]


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
    return request.url.path.startswith(JSON_PATHS) or "application/json" in request.headers.get("accept", "")


def api_job_url(job: str) -> str:
    return f"/api/jobs/{link_segment(job)}"


def human_size(size: int | None) -> str:
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
    text = warning.text or ""
    return f"{warning.video}: {text}" if warning.video else text


def version_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]
