"""An upload becomes a job folder the way a share drop does, only all at once.

The request body is parsed as it arrives (python-multipart's streaming parser, no spooling to
/tmp) and each file is written straight into a hidden staging folder inside the inbox, so on the
inbox's filesystem; the name follows heygemd's temporary convention, which the watcher ignores.
Limits are checked while the bytes arrive: a file over ``limits.max_file_bytes`` or a body over
``web.max_upload_bytes`` stops the upload at once. When the body is complete the staging folder
is checked with the folder contract itself (``plan_job`` and ``check_limits``: the same names,
counts, sizes, job.toml and audio length rules as the share), each file is probed as the engine
will read it (a text file named .mp4 is refused now, with its code, not quarantined later), then the
folder is renamed into the inbox under a name no other job has: one atomic rename, so the watcher
never sees a half-uploaded job.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from heygemd.atomic import fsync_directory
from heygemd.codes import ErrorCode
from heygemd.daemon.config import toml_value
from heygemd.daemon.contract import (
    JOB_FILE,
    ContractViolation,
    FileKind,
    check_plain_name,
    is_ignored_name,
    kind_of,
    plan_job,
)
from heygemd.daemon.fsutil import human_size, remove_tree, rename_no_replace
from heygemd.daemon.limits import check_limits
from heygemd.daemon.status import process_alive
from heygemd.engine.errors import MediaError
from heygemd.engine.probe import probe_audio, probe_video
from heygemd.names import (
    NAME_MAX_BYTES,
    name_bytes,
    numbered_name,
    parse_temporary_name,
    temporary_name,
)
from heygemd.uploadmark import write_upload_mark
from heygemd.web.errors import WebError
from heygemd.web.settings import WebSettings
from heygemd.web.views import plain_name, read_services

STAGING_NAME = "web-upload"  # the final part of the staging folder's temporary name (what start-up cleans)
AUDIO_FIELD = "audio"
TEMPLATES_FIELD = "templates"
MAX_TEXT_BYTES = 64 * 1024
CSRF_FIELD = "csrf_token"
PRESENTERS_FIELD = "presenters"  # one per presenter picked (a checkbox each), or several names split by commas
SCRIPT_FIELD = "script"
SPEECH_FIELDS = ("voice", "language", "speed")
TEXT_FIELDS = frozenset(
    {"name", "output_folder", "loop", "blend", "crf", "job_toml", CSRF_FIELD, PRESENTERS_FIELD, SCRIPT_FIELD, *SPEECH_FIELDS}
)
MAX_PRESENTER_PARTS = 100
MAX_EXTRA_PARTS = len(TEXT_FIELDS) + 1 + MAX_PRESENTER_PARTS
SCRIPT_FILE = "script.txt"  # the typed script, written into the job folder as the share's scripts are
MAX_NUMBERED = 1000


class UploadRefused(WebError):
    """Why an upload was not accepted."""


@dataclass
class _Part:
    form_field: str = ""
    filename: str | None = None
    disposition: bytes = b""
    header_name: bytes = b""
    header_value: bytes = b""
    data: bytearray = field(default_factory=bytearray)
    fd: int | None = None
    size: int = 0


@dataclass
class Upload:
    staging: Path
    audio: list[str] = field(default_factory=list)
    templates: list[str] = field(default_factory=list)
    texts: dict[str, str] = field(default_factory=dict)
    presenters: list[str] = field(default_factory=list)

    @property
    def script(self) -> str:
        return self.texts.get(SCRIPT_FIELD, "").strip()


class Receiver:
    """Feeds the body to the parser and the files to the staging folder, enforcing the limits as it goes."""

    def __init__(
        self, settings: WebSettings, staging: Path, boundary: bytes, csrf_check: Callable[[str | None], None] | None = None
    ) -> None:
        self.settings = settings
        self.csrf_check = csrf_check  # called with the form's CSRF field before the first file is written
        self.upload = Upload(staging)
        self.part = _Part()
        self.pending: list[tuple[int, bytes]] = []
        self.names: set[str] = set()
        self.parts = 0
        callbacks = {
            "on_part_begin": self._begin, "on_part_data": self._data, "on_part_end": self._end,
            "on_header_field": self._header_field, "on_header_value": self._header_value,
            "on_header_end": self._header_end, "on_headers_finished": self._headers_finished,
        }  # fmt: skip
        self.parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]

    async def receive(self, chunks: AsyncIterator[bytes]) -> Upload:
        total, limit = 0, self.settings.max_upload_bytes
        try:
            async for chunk in chunks:
                total += len(chunk)
                if limit and total > limit:
                    raise too_large(limit)
                self.parser.write(chunk)
                if self.pending:
                    await anyio.to_thread.run_sync(self._flush)
            self.parser.finalize()
        except FormParserError as err:
            raise UploadRefused(400, "upload.malformed", f"The upload is not a well-formed form: {err}.") from None
        finally:
            await anyio.to_thread.run_sync(self._close)
        return self.upload

    # -- parser callbacks

    def _begin(self) -> None:
        self.parts += 1
        max_templates = self.settings.limits.max_templates
        if max_templates and self.parts > max_templates + 1 + MAX_EXTRA_PARTS:
            raise UploadRefused(400, "upload.too_many_parts", "The upload has more parts than a job may have.")
        self.part = _Part()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self.part.header_name += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self.part.header_value += data[start:end]

    def _header_end(self) -> None:
        if self.part.header_name.strip().lower() == b"content-disposition":
            self.part.disposition = self.part.header_value
        self.part.header_name, self.part.header_value = b"", b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self.part.disposition)
        self.part.form_field = options.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" not in options:
            return
        filename = options[b"filename"].decode("utf-8", "replace")
        if self.part.form_field not in (AUDIO_FIELD, TEMPLATES_FIELD):
            raise UploadRefused(
                400,
                "upload.unknown_field",
                f'The form has no file field "{self.part.form_field}".',
                field=self.part.form_field,
            )
        if not filename:
            return  # a file input left empty by the browser
        if self.csrf_check is not None:
            self.csrf_check(self.upload.texts.get(CSRF_FIELD))
            self.csrf_check = None
        self.part.filename = self._checked_name(filename)
        self.part.fd = os.open(
            self.upload.staging / self.part.filename,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o664,
        )

    def _data(self, data: bytes, start: int, end: int) -> None:
        piece = data[start:end]
        if self.part.fd is None:
            if self.part.filename is None and len(self.part.data) + len(piece) > MAX_TEXT_BYTES:
                raise UploadRefused(
                    413,
                    "upload.field_too_large",
                    f'The field "{self.part.form_field}" is too long.',
                    field=self.part.form_field,
                )
            self.part.data.extend(piece)
            return
        self.part.size += len(piece)
        limit = self.settings.limits.max_file_bytes
        if limit and self.part.size > limit:
            raise UploadRefused(
                413,
                "upload.file_too_large",
                f'"{self.part.filename}" is larger than this service accepts ({human_size(limit)}). Use a smaller file '
                "(shorter, or a lower bitrate), or ask the operator to raise limits.max_file_bytes.",
                code=ErrorCode.LIMIT_FILE_TOO_LARGE,
                name=self.part.filename,
                limit=human_size(limit),
            )
        self.pending.append((self.part.fd, bytes(piece)))

    def _end(self) -> None:
        part = self.part
        if part.filename is None:
            text = part.data.decode("utf-8", "replace")
            if part.form_field == PRESENTERS_FIELD:
                self.upload.presenters += [name.strip() for name in text.split(",") if name.strip()]
            elif part.form_field in TEXT_FIELDS:
                self.upload.texts[part.form_field] = text
            return
        self._flush()
        if part.fd is not None:
            os.fsync(part.fd)
            os.close(part.fd)
            part.fd = None
        (self.upload.audio if part.form_field == AUDIO_FIELD else self.upload.templates).append(part.filename)

    # -- files

    def _checked_name(self, filename: str) -> str:
        if not plain_name(filename) or "\\" in filename or is_ignored_name(filename):
            raise UploadRefused(
                400,
                "upload.bad_name",
                f'"{filename}" is not a plain file name (no folders, not hidden, not temporary).',
                name=filename,
            )
        if name_bytes(filename) > NAME_MAX_BYTES:
            raise UploadRefused(
                400,
                "upload.name_too_long",
                f'The file name "{filename}" is too long.',
                code=ErrorCode.NAME_TOO_LONG,
                name=filename,
            )
        wanted = (FileKind.AUDIO,) if self.part.form_field == AUDIO_FIELD else (FileKind.VIDEO, FileKind.STILL)
        if kind_of(filename) not in wanted:
            kind = "upload.not_audio" if self.part.form_field == AUDIO_FIELD else "upload.not_template"
            raise UploadRefused(
                400,
                kind,
                f'"{filename}" is not {"an audio file" if self.part.form_field == AUDIO_FIELD else "a video or image"}.',
                name=filename,
            )
        if filename.lower() in self.names:
            raise UploadRefused(400, "upload.duplicate", f'Two files are named "{filename}".', name=filename)
        self.names.add(filename.lower())
        return filename

    def _flush(self) -> None:
        for fd, data in self.pending:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        self.pending.clear()

    def _close(self) -> None:
        if self.part.fd is not None:
            os.close(self.part.fd)
            self.part.fd = None


def too_large(limit: int) -> UploadRefused:
    return UploadRefused(
        413,
        "upload.too_large",
        f"The upload is larger than this service accepts ({human_size(limit)}).",
        limit=human_size(limit),
    )


# ---------------------------------------------------------------------------- the job folder


OPTION_FIELDS = ("loop", "blend", "crf")


def speech_lines(texts: dict[str, str], presenters: list[str]) -> list[str]:
    """job.toml's top-level keys from the form: the presenters picked, and the script's voice, language and speed."""
    lines = [f"presenters = [{', '.join(toml_value(name) for name in presenters)}]"] if presenters else []
    for key in SPEECH_FIELDS:
        value = texts.get(key, "").strip()
        if not value:
            continue
        if key == "speed":
            try:
                lines.append(f"speed = {float(value)!r}")
            except ValueError:
                raise UploadRefused(
                    400,
                    "upload.bad_options",
                    f'speed "{value}" is not a number.',
                    code=ErrorCode.JOB_TOML_INVALID,
                    detail=f"speed = {value}",
                ) from None
        else:
            lines.append(f"{key} = {toml_value(value)}")
    return lines


def options_toml(texts: dict[str, str], presenters: list[str] | None = None) -> str | None:
    """job.toml from the form: the typed job.toml as it is, or one made from the options chosen (not both)."""
    typed = texts.get("job_toml", "").strip()
    chosen = {key: texts[key].strip() for key in OPTION_FIELDS if texts.get(key, "").strip()}
    output_folder = texts.get("output_folder", "").strip()
    top = speech_lines(texts, presenters or [])
    if typed:
        if chosen or output_folder or top:
            raise UploadRefused(
                400,
                "upload.options_twice",
                "Give the options either in the form or as job.toml, not both.",
                code=ErrorCode.JOB_TOML_INVALID,
            )
        return typed + "\n"
    lines = top + ([f"output_folder = {toml_value(output_folder)}"] if output_folder else [])
    if chosen:
        lines.append("[render]")
    for key, value in chosen.items():
        if key == "crf":
            if not value.isdigit():
                raise UploadRefused(
                    400,
                    "upload.bad_options",
                    f'crf "{value}" is not a whole number.',
                    code=ErrorCode.JOB_TOML_INVALID,
                    detail=f"crf = {value}",
                )
            lines.append(f"crf = {int(value)}")
        else:
            lines.append(f"{key} = {toml_value(value)}")
    return "\n".join(lines) + "\n" if lines else None


def check_job_name(name: str) -> str:
    name = name.strip()
    try:
        check_plain_name(name, "name")
    except ValueError:
        raise UploadRefused(
            400,
            "upload.bad_job_name",
            f'"{name}" cannot be a job name (a plain name: no slashes, not starting with a dot).',
            name=name,
        ) from None
    if is_ignored_name(name):
        raise UploadRefused(400, "upload.bad_job_name", f'"{name}" is a name the service ignores.', name=name)
    if name_bytes(name) > NAME_MAX_BYTES:
        raise UploadRefused(
            400, "upload.name_too_long", f'The job name "{name}" is too long.', code=ErrorCode.NAME_TOO_LONG, name=name
        )
    return name


def taken_names(settings: WebSettings) -> set[str]:
    """Names a new job must not take: in the inbox, in a service's hands, in the results or their history."""
    taken: set[str] = set()
    for folder in (settings.paths.inbox, settings.paths.outbox, settings.paths.quarantine):
        try:
            taken.update(entry.name for entry in os.scandir(folder))
        except OSError:
            pass
    for service in read_services(settings):
        taken.update(record.name for record in service.records())
        taken.update(entry.job for entry in service.history())
    return {name.lower() for name in taken}


def check_folder(settings: WebSettings, upload: Upload, name: str) -> None:
    """The staging folder, checked by the contract exactly as the service will check it."""
    if not upload.audio and not upload.script:
        raise UploadRefused(400, "upload.no_audio", "Choose an audio file or type a script.", code=ErrorCode.JOB_NO_AUDIO)
    if not upload.templates and not upload.presenters:
        raise UploadRefused(
            400,
            "upload.no_template",
            "Choose one or more template videos, or pick presenters.",
            code=ErrorCode.JOB_NO_TEMPLATE,
        )
    try:
        library = settings.paths.presenter_library
        plan = plan_job(upload.staging, name, settings.render, settings.marker_name, settings.limits, library)
        check_limits(plan, settings.limits)
    except ContractViolation as err:
        raise UploadRefused(400, "upload.contract", err.reason, code=err.code) from None


def check_media(upload: Upload) -> None:
    """Each file probed as the engine will read it: one that is not what its name says is refused (415) with its code."""
    probes = [(name, probe_audio) for name in upload.audio] + [(name, probe_video) for name in upload.templates]
    for name, probe in probes:
        try:
            probe(upload.staging / name)
        except MediaError as err:
            raise UploadRefused(415, "upload.contract", f'"{name}" {err.reason}.', code=err.code) from None


def check_script_length(settings: WebSettings, upload: Upload) -> None:
    """A typed script over limits.max_script_chars is refused now, as the service would refuse it when speaking."""
    limit = settings.limits.max_script_chars
    if limit and len(upload.script) > limit:
        raise UploadRefused(
            413,
            "upload.script_too_long",
            f"The script has {len(upload.script)} characters; this service accepts scripts of up to {limit}.",
            code=ErrorCode.LIMIT_SCRIPT_TOO_LONG,
            count=len(upload.script),
            limit=limit,
        )


def write_extras(settings: WebSettings, upload: Upload) -> None:
    check_script_length(settings, upload)
    options = options_toml(upload.texts, upload.presenters)
    if upload.script:
        (upload.staging / SCRIPT_FILE).write_text(upload.script + "\n", encoding="utf-8")
    if options is not None:
        (upload.staging / JOB_FILE).write_text(options, encoding="utf-8")
    if settings.marker_name:  # the service waits for the marker: the upload is complete, so it comes with one
        (upload.staging / settings.marker_name).write_bytes(b"")
    write_upload_mark(upload.staging)  # last: the service claims the folder at once, without a settle window


def publish(settings: WebSettings, upload: Upload, wanted: str) -> str:
    """Rename the staging folder into the inbox under ``wanted`` or the first free ``wanted (N)``; returns the name."""
    fsync_directory(upload.staging)
    taken = taken_names(settings)
    for number in range(1, MAX_NUMBERED):
        name = numbered_name(wanted, number)
        if name.lower() in taken:
            continue
        try:
            rename_no_replace(upload.staging, settings.paths.inbox / name)
        except FileExistsError:
            continue
        fsync_directory(settings.paths.inbox)
        return name
    raise UploadRefused(409, "upload.no_free_name", f'No free job name like "{wanted}" is left.', name=wanted)


def new_staging(settings: WebSettings) -> Path:
    inbox = settings.paths.inbox
    if not inbox.is_dir():
        raise UploadRefused(503, "upload.no_inbox", f"The inbox ({inbox}) is not there (share unmounted?).")
    staging = inbox / temporary_name(STAGING_NAME)
    staging.mkdir(mode=0o775)
    return staging


def discard(staging: Path) -> None:
    remove_tree(staging)


def remove_stale_staging(inbox: Path, final: str | None = STAGING_NAME) -> list[str]:
    """At start-up: staging folders that an upload of a dead `heygemd web` left in the inbox. Returns their names.

    ``final`` None: every temporary folder of a dead process (in the presenter library, where only the web writes them).
    """
    removed: list[str] = []
    try:
        entries = list(os.scandir(inbox))
    except OSError:
        return removed
    for entry in entries:
        parsed = parse_temporary_name(entry.name)
        if parsed is None or final not in (None, parsed.final) or not parsed.checkable or process_alive(parsed.pid or 0):
            continue
        remove_tree(Path(entry.path))
        removed.append(entry.name)
    return removed


def free_bytes(folder: Path) -> int | None:
    try:
        info = os.statvfs(folder)
    except OSError:
        return None
    return info.f_bavail * info.f_frsize
