"""The presenter library as the page manages it: list, upload once, rename, delete, thumbnails.

A presenter is a folder ``<paths.presenters>/<name>/`` of template videos or stills (daemon/presenters.py).
An upload is streamed into a hidden staging folder inside the library (the same parser and limits as a
job's upload), each file probed as the engine will read it, then the folder is renamed to its name: one
rename, so a job never sees half a presenter. Names follow the daemon's own presenter rules.
"""

from __future__ import annotations

import mimetypes
import tempfile
from pathlib import Path
from urllib.parse import quote

import anyio
from fastapi import Request
from pydantic import BaseModel, Field
from python_multipart.multipart import parse_options_header
from starlette.requests import ClientDisconnect

from heygemd.codes import ErrorCode
from heygemd.daemon.contract import FileKind, kind_of
from heygemd.daemon.fsutil import remove_tree, rename_no_replace
from heygemd.daemon.presenters import (
    TEMPLATE_SUFFIXES,
    PresenterError,
    check_reference,
    list_presenters,
    presenter_templates,
)
from heygemd.daemon.resultpage import make_thumbnail
from heygemd.names import NAME_MAX_BYTES, name_bytes, temporary_name
from heygemd.web.errors import WebError
from heygemd.web.security import CSRF_FIELD, check_csrf_field, needs_csrf_token
from heygemd.web.settings import WebSettings
from heygemd.web.upload import Receiver, UploadRefused, check_media, discard, too_large

PRESENTER_STAGING = "web-presenter"  # the final part of a presenter upload's staging folder's temporary name
PRESENTER_NAME_FIELD = "name"
TEMPLATE_ACCEPT = ",".join(sorted(TEMPLATE_SUFFIXES))


class PresenterFile(BaseModel):
    name: str = Field(description="the template's file name, as job.toml names it after the presenter: anna/front.mp4")
    kind: str = Field(description="video or still")
    size: int
    thumbnail_url: str


class Presenter(BaseModel):
    name: str = Field(description='as job.toml names it: presenters = ["anna"]')
    templates: list[PresenterFile]


def thumbnail_url(presenter: str, file_name: str) -> str:
    return f"/api/presenters/{quote(presenter, safe='')}/templates/{quote(file_name, safe='')}/thumbnail"


def library_of(settings: WebSettings) -> Path:
    return settings.paths.presenter_library


def presenters(settings: WebSettings) -> list[Presenter]:
    """Every presenter of the library with its templates, by name."""
    library = library_of(settings)
    return [describe(library / name) for name in list_presenters(library)]


def describe(folder: Path) -> Presenter:
    files = [
        PresenterFile(
            name=path.name,
            kind="still" if kind_of(path.name) is FileKind.STILL else "video",
            size=path.stat().st_size,
            thumbnail_url=thumbnail_url(folder.name, path.name),
        )
        for path in presenter_templates(folder)
    ]
    return Presenter(name=folder.name, templates=files)


def checked_name(name: str) -> str:
    """A presenter's name by the daemon's rules (one plain part, no slash). Raises WebError presenter.bad_name."""
    name = name.strip()
    try:
        _, file_name = check_reference(name)
    except PresenterError as err:
        raise WebError(400, "presenter.bad_name", err.reason, code=err.code, name=name) from None
    if file_name is not None or name_bytes(name) > NAME_MAX_BYTES:
        raise WebError(
            400,
            "presenter.bad_name",
            f'"{name}" cannot be a presenter\'s name (one plain name, no "/").',
            code=ErrorCode.PRESENTER_BAD_NAME,
            name=name,
        )
    return name


def existing(settings: WebSettings, name: str) -> Path:
    """The presenter's folder. Raises WebError 404 presenter.unknown."""
    folder = library_of(settings) / checked_name(name)
    if folder.is_symlink() or not folder.is_dir():
        raise WebError(
            404,
            "presenter.unknown",
            f'The presenter "{name}" is not in the library.',
            code=ErrorCode.PRESENTER_UNKNOWN,
            name=name,
        )
    return folder


def taken(name: str) -> WebError:
    return WebError(409, "presenter.exists", f'A presenter named "{name}" is in the library already.', name=name)


# ---------------------------------------------------------------------------- changes


async def receive_presenter(request: Request, settings: WebSettings) -> str:
    """Stream the templates into a staging folder in the library, probe them, rename it to the presenter's name."""
    kind, options = parse_options_header(request.headers.get("content-type", ""))
    if kind != b"multipart/form-data" or b"boundary" not in options:
        raise UploadRefused(415, "upload.not_multipart", "Send the files as multipart/form-data.")
    limit = settings.max_upload_bytes
    if limit and int(request.headers.get("content-length", "0") or 0) > limit:
        raise too_large(limit)
    csrf_needed = needs_csrf_token(request, settings)
    staging = await anyio.to_thread.run_sync(new_presenter_staging, settings)
    try:
        csrf_check = (lambda token: check_csrf_field(request, token)) if csrf_needed else None
        receiver = Receiver(settings, staging, options[b"boundary"], csrf_check)
        upload = await receiver.receive(request.stream())
        if receiver.csrf_check is not None:
            receiver.csrf_check(upload.texts.get(CSRF_FIELD))
        name = checked_name(upload.texts.get(PRESENTER_NAME_FIELD, ""))
        if upload.audio or not upload.templates:
            raise UploadRefused(400, "presenter.no_template", "Choose one or more template videos or images, no audio.")
        await anyio.to_thread.run_sync(check_media, upload)
        await anyio.to_thread.run_sync(publish_presenter, settings, staging, name)
        return name
    except ClientDisconnect:
        raise UploadRefused(400, "upload.interrupted", "The upload was interrupted.") from None
    finally:
        await anyio.to_thread.run_sync(discard, staging)


def new_presenter_staging(settings: WebSettings) -> Path:
    library = library_of(settings)
    library.mkdir(parents=True, exist_ok=True)
    staging = library / temporary_name(PRESENTER_STAGING)
    staging.mkdir(mode=0o775)
    return staging


def publish_presenter(settings: WebSettings, staging: Path, name: str) -> None:
    try:
        rename_no_replace(staging, library_of(settings) / name)
    except FileExistsError:
        raise taken(name) from None


def rename_presenter(settings: WebSettings, name: str, new_name: str) -> Presenter:
    folder = existing(settings, name)
    target = folder.parent / checked_name(new_name)
    try:
        rename_no_replace(folder, target)
    except FileExistsError:
        raise taken(new_name) from None
    return describe(target)


def delete_presenter(settings: WebSettings, name: str) -> None:
    """Renamed to a hidden temporary name first (gone from the library at once), then removed."""
    folder = existing(settings, name)
    doomed = folder.parent / temporary_name(folder.name)
    rename_no_replace(folder, doomed)
    remove_tree(doomed)


def template_file(settings: WebSettings, name: str, file_name: str) -> Path:
    """The presenter's template ``file_name``. Raises WebError 404."""
    folder = existing(settings, name)
    found = [path for path in presenter_templates(folder) if path.name == file_name]
    if not found:
        raise WebError(404, "error.file_not_found", "This presenter has no such template.")
    return found[0]


def thumbnail_tag(path: Path) -> str:
    """The thumbnail's HTTP entity tag: the template's size, change time and inode, so a replaced file gets a new one
    and a browser that has the picture asks again without an ffmpeg run (304)."""
    info = path.stat()
    return f'"{info.st_size:x}-{info.st_mtime_ns:x}-{info.st_ino:x}"'


def thumbnail(path: Path) -> tuple[bytes, str]:
    """(bytes, media type) of a template found by ``template_file``: a still as it is, a video's frame as JPEG.
    Raises WebError 404."""
    if kind_of(path.name) is FileKind.STILL:
        return path.read_bytes(), mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    with tempfile.TemporaryDirectory() as scratch:
        target = Path(scratch) / "thumbnail.jpg"
        if not make_thumbnail(path, target, None) or not target.is_file():
            raise WebError(404, "error.file_not_found", "No frame could be read from this template.")
        return target.read_bytes(), "image/jpeg"
