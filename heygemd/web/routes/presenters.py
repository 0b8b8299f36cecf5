"""The presenter library (page and API), the voices and the spoken preview of a script."""

from __future__ import annotations

import anyio
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from heygemd.web.access import check_api_write, check_form_write, require_sign_in
from heygemd.web.errors import WebError
from heygemd.web.library import (
    TEMPLATE_ACCEPT,
    Presenter,
    delete_presenter,
    describe,
    existing,
    presenters,
    receive_presenter,
    rename_presenter,
    template_file,
    thumbnail,
    thumbnail_tag,
)
from heygemd.web.security import CSRF_FIELD
from heygemd.web.site import ERRORS, Settings, SiteWeb, localised
from heygemd.web.speaking import PreviewRequest, VoiceList, speak_preview, voice_list

PRESENTERS_PAGE = "/presenters"
CONFIRM_FIELD = "confirm"
PRESENTER_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["name", "templates"],
                    "properties": {
                        "name": {"type": "string", "description": "the presenter's name (job.toml: presenters = [name])"},
                        "templates": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "one or more template videos or images",
                        },
                    },
                }
            }
        },
    }
}
WAV_RESPONSE: dict[int | str, dict[str, object]] = {
    200: {"content": {"audio/wav": {}}, "description": "the first sentence(s), spoken"}
}

api = APIRouter(prefix="/api", dependencies=[Depends(require_sign_in)], responses=ERRORS)
pages = APIRouter(dependencies=[Depends(require_sign_in)], include_in_schema=False)


class PresenterList(BaseModel):
    presenters: list[Presenter]


class Rename(BaseModel):
    name: str = Field(description="the presenter's new name")


class Deleted(BaseModel):
    name: str
    deleted: bool


# ---------------------------------------------------------------------------- API


@api.get("/presenters", response_model=PresenterList, summary="The presenter library: each presenter and its templates")
def list_library(settings: Settings) -> PresenterList:
    return PresenterList(presenters=presenters(settings))


@api.post(
    "/presenters",
    status_code=201,
    response_model=Presenter,
    openapi_extra=PRESENTER_BODY,
    summary="Add a presenter: a name and its templates (multipart/form-data), probed, then renamed in at once",
)
async def add_presenter(request: Request, settings: Settings) -> Presenter:
    name = await receive_presenter(request, settings)
    return describe(existing(settings, name))


@api.patch("/presenters/{name}", response_model=Presenter, summary="Rename a presenter (409 if the name is taken)")
def rename(request: Request, settings: Settings, name: str, body: Rename) -> Presenter:
    check_api_write(request, settings)
    return rename_presenter(settings, name, body.name)


@api.delete("/presenters/{name}", response_model=Deleted, summary="Delete a presenter and its templates")
def delete(request: Request, settings: Settings, name: str) -> Deleted:
    check_api_write(request, settings)
    delete_presenter(settings, name)
    return Deleted(name=name, deleted=True)


@api.get(
    "/presenters/{name}/templates/{file_name}/thumbnail",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}, "description": "a still as it is, or a video's frame as JPEG"}},
    summary="A template's thumbnail",
)
async def template_thumbnail(settings: Settings, name: str, file_name: str, request: Request) -> Response:
    path = await anyio.to_thread.run_sync(template_file, settings, name, file_name)
    headers = {"Cache-Control": "no-cache", "ETag": thumbnail_tag(path)}
    if request.headers.get("if-none-match") == headers["ETag"]:
        return Response(status_code=304, headers=headers)
    content, media_type = await anyio.to_thread.run_sync(thumbnail, path)
    return Response(content, media_type=media_type, headers=headers)


@api.get("/voices", response_model=VoiceList, summary="The voices a script can be spoken with (as heygemd doctor lists)")
async def voices(settings: Settings) -> VoiceList:
    return await anyio.to_thread.run_sync(voice_list, settings)


@api.post(
    "/speech/preview",
    response_class=Response,
    responses=WAV_RESPONSE,
    summary="Speak a script's first sentence(s) with a voice, language and speed: a WAV to listen to before submitting",
)
async def preview(request: Request, settings: Settings, body: PreviewRequest) -> Response:
    check_api_write(request, settings)
    wav = await anyio.to_thread.run_sync(speak_preview, settings, body)
    return Response(wav, media_type="audio/wav", headers={"Cache-Control": "no-store"})


# ---------------------------------------------------------------------------- the page


@pages.get(PRESENTERS_PAGE, response_class=HTMLResponse)
def presenters_page(request: Request, web: SiteWeb) -> Response:
    return web.page(request, "presenters.html", presenters=presenters(web.settings), template_accept=TEMPLATE_ACCEPT)


@pages.post(PRESENTERS_PAGE)
async def presenter_sent(request: Request, web: SiteWeb) -> Response:
    try:
        await receive_presenter(request, web.settings)
    except WebError as error:
        return refused_on_page(request, web, error)
    return RedirectResponse(PRESENTERS_PAGE, status_code=303)


@pages.post(PRESENTERS_PAGE + "/{name}/rename")
async def rename_sent(request: Request, web: SiteWeb, name: str) -> Response:
    form = await request.form()
    check_form_write(request, web.settings, form.get(CSRF_FIELD))
    try:
        rename_presenter(web.settings, name, str(form.get("name", "")))
    except WebError as error:
        return refused_on_page(request, web, error)
    return RedirectResponse(PRESENTERS_PAGE, status_code=303)


@pages.post(PRESENTERS_PAGE + "/{name}/delete")
async def delete_sent(request: Request, web: SiteWeb, name: str) -> Response:
    form = await request.form()
    check_form_write(request, web.settings, form.get(CSRF_FIELD))
    if form.get(CONFIRM_FIELD) != "yes":
        error = WebError(400, "presenter.confirm", "Tick the box to confirm the deletion.", name=name)
        return refused_on_page(request, web, error)
    try:
        delete_presenter(web.settings, name)
    except WebError as error:
        return refused_on_page(request, web, error)
    return RedirectResponse(PRESENTERS_PAGE, status_code=303)


def refused_on_page(request: Request, web: SiteWeb, error: WebError) -> Response:
    if error.status in (401, 403):
        raise error
    message = localised(web.translator(request), error)
    found = presenters(web.settings)
    return web.page(
        request, "presenters.html", status=error.status, error=message, presenters=found, template_accept=TEMPLATE_ACCEPT
    )
