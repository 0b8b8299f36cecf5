"""The ASGI application: pages, the JSON API (OpenAPI at /openapi.json, /docs), files, events, metrics.

Pages are Jinja2 templates rendered on the server; a small script (static/app.js) keeps the live
parts current from server-sent events and sends the page's actions through the JSON API. Without
the script every form still works (a POST and a redirect). The routes live in heygemd/web/routes,
one module per group; this module only assembles them.
"""

from __future__ import annotations

import threading

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from heygemd import __version__
from heygemd.web.access import SignInNeeded, to_sign_in
from heygemd.web.errors import WebError
from heygemd.web.routes import api, apidocs, downloads, pages, presenters, scrape, signin
from heygemd.web.settings import WebSettings
from heygemd.web.site import HERE, DisplayJSONResponse, Web, web_of

DESCRIPTION = (
    "Lip-sync jobs: submit audio files or a script, and templates or presenters of the library, follow the job by the "
    "id submit returns (it stays findable after the job ended), fetch its results. Manage the presenter library, list "
    "the voices, listen to a script's start. With web.token set, send "
    "`Authorization: Bearer <token>`."
)


def create_app(settings: WebSettings) -> FastAPI:
    app = FastAPI(
        default_response_class=DisplayJSONResponse,
        title="heygemd",
        version=__version__,
        docs_url=None,  # routes/apidocs.py serves both, signed in
        redoc_url=None,
        openapi_url=None,
        description=DESCRIPTION,
    )
    app.state.web = Web(settings)
    app.state.stopping = threading.Event()  # set by `heygemd web` when it is asked to stop
    app.add_exception_handler(WebError, refused)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(SignInNeeded, to_sign_in)
    routers = (signin.router, pages.router, downloads.pages, presenters.pages, api.router, downloads.api, presenters.api)
    for router in (*routers, apidocs.router, scrape.router):
        app.include_router(router)
    app.mount(apidocs.ASSETS_URL, apidocs.swagger_assets(), name="swagger-ui")
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    return app


async def refused(request: Request, error: Exception) -> Response:
    if not isinstance(error, WebError):
        raise error
    return web_of(request).error_answer(request, error)


async def http_error(request: Request, error: Exception) -> Response:
    if not isinstance(error, StarletteHTTPException):
        raise error
    web = web_of(request)
    if error.status_code == 404:
        return web.error_answer(request, WebError(404, "error.not_found", "Nothing is here."))
    detail = str(error.detail)
    return web.error_answer(
        request, WebError(error.status_code, "error.http", f"The request cannot be served ({detail}).", detail=detail)
    )
