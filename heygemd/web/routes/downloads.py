"""A job's files: one file (ranges, validators, inline or attachment) and the whole job as one ZIP, streamed."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse

from heygemd.names import display_name
from heygemd.web import files as served
from heygemd.web.access import require_sign_in
from heygemd.web.actions import area_folder_of, file_not_found, find_or_404
from heygemd.web.settings import OUTBOX, QUARANTINE, WebSettings
from heygemd.web.site import ERRORS, FILE_HEADERS, Settings
from heygemd.web.views import JobFinder, JobView, real_folder, regular_files

pages = APIRouter(dependencies=[Depends(require_sign_in)], include_in_schema=False)
api = APIRouter(prefix="/api", dependencies=[Depends(require_sign_in)], responses=ERRORS)
FILE_SUMMARY = (
    "A file of a job's results or quarantine folder (Range requests answered with 206; ?download=1 for an attachment)"
)


@api.get(
    "/jobs/{job}/files/{area}/{name}",
    summary=FILE_SUMMARY,
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}, 206: {"description": "the range asked for"}},
)
@api.head("/jobs/{job}/files/{area}/{name}", include_in_schema=False)
def job_file(request: Request, settings: Settings, job: str, area: str, name: str, download: bool = False) -> Response:
    found = find_or_404(JobFinder(settings), job)
    folder = area_folder_of(found, area)
    try:
        opened = served.open_job_file(settings.area_folder(area), folder, name)
    except served.NotServed:
        raise file_not_found() from None
    return file_response(request, opened, download)


@api.get(
    "/jobs/{job}/templates/{template:path}",
    summary="The template a finished job's video was rendered from (before/after), from the archive or the library",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}, 206: {"description": "the range asked for"}},
)
@api.head("/jobs/{job}/templates/{template:path}", include_in_schema=False)
def job_template(request: Request, settings: Settings, job: str, template: str, download: bool = False) -> Response:
    """Only a template that the job's report names for one of its results: from the job's archive folder or the
    presenter library, opened without following links; 404 once it is gone."""
    found = find_or_404(JobFinder(settings), job)
    video = next((item for item in found.videos if template in (item.template, display_name(item.template))), None)
    place = video.template_place if video is not None else None
    if place is None:
        raise file_not_found()
    try:
        opened = served.open_job_file(place.parent, place.folder, place.name)
    except served.NotServed:
        raise file_not_found() from None
    return file_response(request, opened, download)


@pages.get("/jobs/{job}/files/{name}")
@pages.head("/jobs/{job}/files/{name}")
def job_result_file(request: Request, settings: Settings, job: str, name: str, download: bool = False) -> Response:
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
def job_zip(settings: Settings, job: str) -> StreamingResponse:
    found = find_or_404(JobFinder(settings), job)
    members = zip_members(settings, found)
    if not members:
        raise file_not_found()
    headers = {"Content-Disposition": served.content_disposition(f"{found.id}.zip", attachment=True), **FILE_HEADERS}
    return StreamingResponse(
        (chunk for chunk in served.zip_stream(members) if chunk), media_type="application/zip", headers=headers
    )


def zip_members(settings: WebSettings, job: JobView) -> list[served.ZipMember]:
    """Every plain file of the job's results folder, then of its quarantine folder (under quarantine/)."""
    members: list[served.ZipMember] = []
    for area, folder, prefix in (
        (OUTBOX, job.outbox_folder, job.id),
        (QUARANTINE, job.quarantine_folder, f"{job.id}/quarantine"),
    ):
        directory = real_folder(settings.area_folder(area), folder) if folder else None
        if folder is None or directory is None:
            continue
        members += [
            served.ZipMember(settings.area_folder(area), folder, item.name, f"{prefix}/{item.name}")
            for item in regular_files(directory)
        ]
    return members


def file_response(request: Request, opened: served.OpenedFile, download: bool) -> Response:
    """200 or 206 (a Range), 304 (the ETag matches), 416 (a range past the end); HEAD sends the headers alone."""
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
