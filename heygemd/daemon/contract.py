"""The folder contract: what a job folder may hold, when it is complete, and what it asks for.

A job is a direct subfolder of the inbox with exactly one audio file, one or more template
videos (or stills), and optionally a ``job.toml``. Names of temporary and system files of
Samba, macOS, Windows, Syncthing and browsers are ignored; the temporary ones (an upload in
progress) also keep the folder from being ready. Links are never followed.
"""

from __future__ import annotations

import fnmatch
import os
import stat
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from heygemd.codes import CodedError, ErrorCode
from heygemd.daemon.config import Language, LimitsConfig
from heygemd.daemon.fsutil import human_size
from heygemd.daemon.presenters import PresenterError, PresenterTemplate, resolve_presenters
from heygemd.engine.files import NotAFile, open_regular
from heygemd.engine.formats import AUDIO_SUFFIXES, STILL_SUFFIXES, VIDEO_SUFFIXES
from heygemd.engine.settings import ModelKind, RenderOptions
from heygemd.names import NAME_MAX_BYTES, fit_name, is_heygemd_temporary, name_bytes
from heygemd.resultfiles import REPORT_NAMES
from heygemd.speech.choice import MAX_SPEED, MIN_SPEED

JOB_FILE = "job.toml"
SCRIPT_SUFFIX = ".txt"  # a script: UTF-8 text spoken by a voice instead of an audio file
# Written by heygemd into folders that may come back to the inbox after a person fixed them.
RESULT_SUFFIXES = (".mp4", ".json")  # each template's results: <stem>.mp4 and <stem>.json
OUTPUT_STEM_MAX_BYTES = NAME_MAX_BYTES - max(name_bytes(suffix) for suffix in RESULT_SUFFIXES)

# An upload still in progress: the folder is not ready while one of these is present.
TEMPORARY_PATTERNS: tuple[str, ...] = (
    ".syncthing.*", "~syncthing~*", "*.tmp", "*.part", "*.partial", "*.crdownload", "*.download",
    ".~lock.*#",
)  # fmt: skip
# System clutter: ignored, never blocks readiness, travels with the job.
IGNORED_PATTERNS: tuple[str, ...] = (".*", "._*", "Thumbs.db", "desktop.ini", "~$*")
IGNORED_FOLDERS = frozenset({
    "@eadir", ".stfolder", ".stversions", ".spotlight-v100", ".trashes", "__macosx",
    ".trash", ".recycle", ".snapshot", ".zfs", ".appledouble", ".appledb", ".appledesktop", ".temporaryitems",
    ".fseventsd", ".documentrevisions-v100",
})  # fmt: skip
SYSTEM_FOLDER_PREFIXES = (".trash-",)  # .Trash-1000: a desktop's trash on a removable disk
MAX_SCAN_DEPTH = 4
DEFAULT_LIMITS = LimitsConfig()


def _matches(name: str, patterns: Iterable[str]) -> bool:
    lowered = name.lower()
    return any(fnmatch.fnmatchcase(lowered, pattern.lower()) for pattern in patterns)


def is_temporary_name(name: str) -> bool:
    return _matches(name, TEMPORARY_PATTERNS)


def is_ignored_name(name: str) -> bool:
    """True for names the service never treats as job content (temporary ones included)."""
    return is_temporary_name(name) or _matches(name, IGNORED_PATTERNS) or name.lower() in IGNORED_FOLDERS


def is_hidden_job_folder(name: str) -> bool:
    """A folder someone may have meant as a job but whose name starts with a dot: ignored, worth a warning.

    System folders (trash, snapshots, sync tools' markers) and temporary ones are ignored silently.
    """
    lowered = name.lower()
    return (
        name.startswith(".")
        and lowered not in IGNORED_FOLDERS
        and not lowered.startswith(SYSTEM_FOLDER_PREFIXES)
        and not is_temporary_name(name)
        and not is_heygemd_temporary(name)
    )


class FileKind(StrEnum):
    AUDIO = "audio"
    VIDEO = "video"
    STILL = "still"
    SCRIPT = "script"  # text to be spoken (heygemd.daemon.scripts)
    JOB_FILE = "job_file"
    REPORT = "report"
    OTHER = "other"


def kind_of(name: str) -> FileKind:
    lowered = name.lower()
    if lowered == JOB_FILE:
        return FileKind.JOB_FILE
    if lowered in REPORT_NAMES:
        return FileKind.REPORT
    suffix = Path(lowered).suffix
    if suffix in AUDIO_SUFFIXES:
        return FileKind.AUDIO
    if suffix in VIDEO_SUFFIXES:
        return FileKind.VIDEO
    if suffix in STILL_SUFFIXES:
        return FileKind.STILL
    if suffix == SCRIPT_SUFFIX:
        return FileKind.SCRIPT
    return FileKind.OTHER


# ---------------------------------------------------------------------------- snapshots


@dataclass(frozen=True)
class EntryState:
    """One entry of a job folder as seen by lstat (links are not followed)."""

    relative: str
    is_dir: bool
    is_link: bool
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class FolderSnapshot:
    """Everything under a job folder that could still be changing."""

    entries: tuple[EntryState, ...]
    unreadable: tuple[str, ...] = ()  # sub-folders the service may not list (permission denied)

    @property
    def fingerprint(self) -> tuple[EntryState, ...]:
        return self.entries

    def top_level(self) -> list[EntryState]:
        return [entry for entry in self.entries if "/" not in entry.relative]

    @property
    def blocking_names(self) -> list[str]:
        """Files that say an upload is not finished: temporary names and empty media files."""
        blocking = []
        for entry in self.entries:
            name = entry.relative.rsplit("/", 1)[-1]
            if entry.is_dir or entry.is_link:
                continue
            if is_temporary_name(name) or entry.size == 0 and not is_ignored_name(name) and "/" not in entry.relative:
                blocking.append(entry.relative)
        return blocking

    @property
    def is_empty(self) -> bool:
        return not any(not is_ignored_name(entry.relative.rsplit("/", 1)[-1]) for entry in self.entries)


def snapshot_folder(folder: Path) -> FolderSnapshot:
    """lstat every entry under ``folder`` (a few levels deep, skipping ignored folders).

    A sub-folder that cannot be listed is named in ``unreadable``; ``folder`` itself raises PermissionError.
    """
    entries: list[EntryState] = []
    unreadable: list[str] = []

    def walk(directory: Path, prefix: str, depth: int) -> None:
        try:
            iterator = os.scandir(directory)
        except PermissionError:
            if not prefix:
                raise
            unreadable.append(prefix.rstrip("/"))
            return
        with iterator:
            for item in iterator:
                info = item.stat(follow_symlinks=False)
                is_dir = stat.S_ISDIR(info.st_mode)
                relative = f"{prefix}{item.name}"
                entries.append(
                    EntryState(
                        relative, is_dir, stat.S_ISLNK(info.st_mode), info.st_size if not is_dir else 0, info.st_mtime_ns
                    )
                )
                if is_dir and depth < MAX_SCAN_DEPTH and item.name.lower() not in IGNORED_FOLDERS:
                    walk(Path(item.path), relative + "/", depth + 1)

    walk(folder, "", 0)
    return FolderSnapshot(tuple(sorted(entries, key=lambda entry: entry.relative)), tuple(sorted(unreadable)))


# ---------------------------------------------------------------------------- job.toml


class VideoOverride(RenderOptions):
    """``[videos."<template file name>"]`` in job.toml: render options for one template, and its output name."""

    output_name: str | None = Field(None, description="file name (without .mp4) of this template's result")

    @field_validator("output_name")
    @classmethod
    def _plain_name(cls, name: str | None) -> str | None:
        if name is not None:
            check_plain_name(name, "output_name")
        return name


class JobFile(BaseModel):
    """What a job.toml may say. Every key is optional."""

    model_config = ConfigDict(extra="forbid")

    output_folder: str | None = Field(None, description="name of the job's folder in the outbox (default: the job's)")
    model: ModelKind | None = Field(
        None, description="the lip-sync model the job needs (wav2lip or musetalk): refused by a service running another"
    )
    render: dict[str, object] = Field(default_factory=dict, description="render options for every template")
    videos: dict[str, dict[str, object]] = Field(default_factory=dict, description="per-template options")
    presenters: list[str] = Field(
        default_factory=list, description='templates from the presenter library: "anna" (all hers) or "ben/front.mp4"'
    )
    voice: str | None = Field(None, description="a script's voice: auto, espeak-ng, kokoro or kokoro:<speaker>")
    language: str | None = Field(
        None,
        description="the job's language: a script's (en, zh, ... or auto), and its results page's when that is en or zh "
        "(default: [speech] language, outputs.language)",
    )
    speed: float | None = Field(None, ge=MIN_SPEED, le=MAX_SPEED, description="a script's speaking rate (1.0: natural)")

    @field_validator("output_folder")
    @classmethod
    def _plain_folder(cls, name: str | None) -> str | None:
        if name is not None:
            check_plain_name(name, "output_folder")
        return name


def check_plain_name(name: str, key: str) -> None:
    if not name.strip() or "/" in name or "\\" in name or name.startswith(".") or "\0" in name:
        raise ValueError(f"{key} {name!r} must be a plain name: not empty, no slashes, not starting with a dot")


# ---------------------------------------------------------------------------- the plan


class ContractViolation(CodedError):
    """The folder can never be a job as it is. ``reason`` is for the person who dropped it; ``code`` says why."""


class ModelSource(StrEnum):
    """Who renders a service's jobs, and so whose lip-sync models a job.toml's ``model`` is checked against."""

    SERVICE = "service"  # this process's own warm engine (engine.model)
    WORKERS = "workers"  # the cluster's online workers (each its own engine.model)


@dataclass(frozen=True)
class ModelsOnOffer:
    """The lip-sync models a service can render a job with now (the renderer's answer, daemon/render_port.py)."""

    source: ModelSource
    models: frozenset[ModelKind]

    def refusal(self, wanted: ModelKind) -> str | None:
        """Why a job asking for ``wanted`` cannot be rendered here, or None when it can."""
        if wanted in self.models:
            return None
        offered = _list_names(model.value for model in self.models)
        if self.source is ModelSource.SERVICE:
            return (
                f'job.toml asks for the lip-sync model "{wanted.value}", but this service runs {offered} (engine.model). '
                f'Remove the model key, or drop the job on a service that runs "{wanted.value}".'
            )
        return (
            f'job.toml asks for the lip-sync model "{wanted.value}", but no online worker runs it: the online workers '
            f"run {offered} (engine.model of each worker). Remove the model key, or start a worker with "
            f'engine.model = "{wanted.value}" and drop the job again.'
        )


@dataclass(frozen=True)
class PlannedVideo:
    source: Path
    output_stem: str  # "<template>", or "<audio or script>/<template>" in a job with several
    options: RenderOptions
    audio: Path | None = None  # the audio (or script) it is rendered with, in a job with several


@dataclass(frozen=True)
class SpokenScript:
    """A script to speak before rendering: the job's voice, language and speed (None: the [speech] defaults)."""

    voice: str | None
    language: str | None
    speed: float | None


@dataclass(frozen=True)
class JobPlan:
    audio: Path  # the audio file, or the script when ``speech`` is set
    videos: tuple[PlannedVideo, ...]
    output_folder: str
    warnings: tuple[str, ...] = field(default=())
    language: Language | None = None  # job.toml's, when the results page speaks it; None: outputs.language
    speech: SpokenScript | None = None
    sources: tuple[Path, ...] = ()  # every audio (or script) of a job with several: each rendered with every template
    results_subfolder: str = ""  # where one source's results go in a job with several
    model: ModelKind | None = None  # job.toml's model: only a renderer running it may render the job's videos

    def template_key(self, video: PlannedVideo) -> str:
        """How the journal names a template: its name in the job folder, or its path in the presenter library."""
        return video.source.name if video.source.parent == self.audio.parent else str(video.source)

    def per_source(self) -> list[JobPlan]:
        """One plan per audio (or script), each with its own videos and results subfolder; ``[self]`` for one."""
        if len(self.sources) <= 1:
            return [self]
        plans = []
        for source in self.sources:
            videos = tuple(video for video in self.videos if video.audio == source)
            subfolder = videos[0].output_stem.split("/")[0]
            plans.append(replace(self, audio=source, videos=videos, sources=(source,), results_subfolder=subfolder))
        return plans


def _page_language(language: str | None) -> Language | None:
    """job.toml's language, when the results page speaks it (en, zh); None (outputs.language) for the others."""
    try:
        return Language(language.strip().lower()) if language else None
    except ValueError:
        return None  # a script's language the page does not speak (fr, auto...)


def _list_names(names: Iterable[str]) -> str:
    return ", ".join(f'"{name}"' for name in sorted(names))


def plan_job(
    folder: Path,
    job_name: str,
    defaults: RenderOptions,
    marker_name: str | None = None,
    limits: LimitsConfig = DEFAULT_LIMITS,
    presenter_library: Path | None = None,
    models: ModelsOnOffer | None = None,
) -> JobPlan:
    """Check the folder against the contract and the operator's limits, and say what to render.

    ``models``: the models this service can render with now; a job.toml asking for another is refused
    (None: not checked, as when no cluster worker is online: the job waits for one).

    Raises ContractViolation. The audio's length needs a probe: limits.check_limits, right after.
    """
    audio: list[str] = []
    scripts: list[str] = []
    videos: list[str] = []
    links: list[str] = []
    unsupported: list[str] = []
    subfolders: list[str] = []
    empty: list[str] = []
    sizes: dict[str, int] = {}
    has_job_file = False
    for item in sorted(os.scandir(folder), key=lambda entry: entry.name):
        name = item.name
        if marker_name is not None and name.lower() == marker_name.lower():
            continue
        if is_ignored_name(name):
            continue
        if item.is_symlink():
            links.append(name)
            continue
        if item.is_dir(follow_symlinks=False):
            subfolders.append(name)
            continue
        if not item.is_file(follow_symlinks=False):
            unsupported.append(name)
            continue
        kind = kind_of(name)
        if kind in (FileKind.AUDIO, FileKind.VIDEO, FileKind.STILL, FileKind.SCRIPT):
            sizes[name] = item.stat(follow_symlinks=False).st_size
        if sizes.get(name) == 0:
            empty.append(name)
        elif kind is FileKind.AUDIO:
            audio.append(name)
        elif kind in (FileKind.VIDEO, FileKind.STILL):
            videos.append(name)
        elif kind is FileKind.SCRIPT:
            scripts.append(name)
        elif kind is FileKind.JOB_FILE:
            has_job_file = True
        elif kind is FileKind.OTHER:
            unsupported.append(name)

    details: list[str] = []
    if links:
        details.append(f"links are never followed, so these were not used: {_list_names(links)}; copy the files themselves")
    if empty:
        details.append(f"empty (0 bytes) files: {_list_names(empty)}")
    if unsupported:
        details.append(
            f"unsupported files: {_list_names(unsupported)} (audio: {', '.join(sorted(AUDIO_SUFFIXES))}; "
            f"video: {', '.join(sorted(VIDEO_SUFFIXES | STILL_SUFFIXES))})"
        )
    if subfolders:
        details.append(f"folders inside the job are not used: {_list_names(subfolders)}")

    if not audio and not scripts and not videos:
        if subfolders and not (links or empty or unsupported):
            raise ContractViolation(
                "The folder holds only folders. Each job must be its own folder directly in the inbox: "
                f"drop {_list_names(subfolders)} into the inbox themselves.",
                details,
                code=ErrorCode.JOB_ONLY_FOLDERS,
            )
        if not (links or empty or unsupported or has_job_file):
            raise ContractViolation(
                "The folder is empty. A job needs one audio file and at least one template video.", code=ErrorCode.JOB_EMPTY
            )
        raise ContractViolation(
            "The folder has no usable audio file and no usable template video.", details, code=ErrorCode.JOB_EMPTY
        )
    if empty:
        raise ContractViolation(
            f"Some files are empty (0 bytes): {_list_names(empty)}. Copy them again.", details, code=ErrorCode.INPUT_EMPTY
        )
    if audio and scripts:
        raise ContractViolation(
            f"The folder holds audio ({_list_names(audio)}) and a script ({_list_names(scripts)}); a job is spoken from "
            "one or the other. Remove one of them, or put them in separate folders.",
            details,
            code=ErrorCode.JOB_AUDIO_AND_SCRIPT,
        )
    if not audio and not scripts:
        raise ContractViolation(
            f"The folder has no audio file and no script (found only {_list_names(videos)}). Add exactly one audio file "
            f"({', '.join(sorted(AUDIO_SUFFIXES))}) or one script ({SCRIPT_SUFFIX}, UTF-8 text).",
            details,
            code=ErrorCode.JOB_NO_AUDIO,
        )

    job_file = read_job_file(folder) if has_job_file else JobFile()
    library = _library_templates(presenter_library, job_file.presenters)
    if not videos and not library:
        raise ContractViolation(
            f"The folder has no template video (found only {_list_names(audio + scripts)}) and job.toml names no "
            f"presenter. Add one or more videos ({', '.join(sorted(VIDEO_SUFFIXES | STILL_SUFFIXES))}), or name "
            'presenters of the library in job.toml (presenters = ["anna"]).',
            details,
            code=ErrorCode.JOB_NO_TEMPLATE,
        )

    library_sizes = {template.reference: template.path.stat().st_size for template in library}
    _check_count_and_sizes(
        videos + list(library_sizes), {name: sizes[name] for name in audio + videos} | library_sizes, limits
    )

    _check_model(job_file, models)
    unknown = sorted(set(job_file.videos) - set(videos) - set(library_sizes))
    if unknown:
        raise ContractViolation(
            f"job.toml names templates that are not in the folder: {_list_names(unknown)} "
            f"(templates: {_list_names(videos + list(library_sizes))}).",
            code=ErrorCode.JOB_TOML_INVALID,
        )
    try:
        job_defaults = RenderOptions.model_validate({**defaults.model_dump(), **job_file.render})
    except ValidationError as err:
        raise ContractViolation(
            f"job.toml [render] is not valid: {_short_validation(err)}", code=ErrorCode.JOB_TOML_INVALID
        ) from None

    templates: list[PlannedVideo] = []
    stems_taken: set[str] = set()
    sources = [(name, folder / name, Path(name).stem) for name in videos]
    sources += [(t.reference, t.path, f"{t.presenter}-{t.path.stem}") for t in library]
    for name, source, wanted_stem in sources:
        override = job_file.videos.get(name, {})
        try:
            merged = VideoOverride.model_validate({**job_defaults.model_dump(), **override})
        except ValidationError as err:
            raise ContractViolation(
                f'job.toml [videos."{name}"] is not valid: {_short_validation(err)}', code=ErrorCode.JOB_TOML_INVALID
            ) from None
        stem = _output_stem(merged.output_name or wanted_stem, source.name, stems_taken)
        stems_taken.add(stem.lower())
        options = RenderOptions.model_validate(merged.model_dump(exclude={"output_name"}))
        templates.append(PlannedVideo(source=source, output_stem=stem, options=options))

    spoken = audio or scripts
    speech = SpokenScript(job_file.voice, job_file.language, job_file.speed) if scripts else None
    return JobPlan(
        audio=folder / spoken[0],
        videos=tuple(_each_with_every_template(folder, spoken, templates)),
        output_folder=job_file.output_folder or job_name,
        warnings=tuple(details),
        speech=speech,
        sources=tuple(folder / name for name in spoken) if len(spoken) > 1 else (),
        language=_page_language(job_file.language),
        model=job_file.model,
    )


def _check_model(job_file: JobFile, models: ModelsOnOffer | None) -> None:
    if job_file.model is None or models is None:
        return
    refusal = models.refusal(job_file.model)
    if refusal is not None:
        raise ContractViolation(refusal, code=ErrorCode.JOB_MODEL_UNAVAILABLE)


def _each_with_every_template(folder: Path, spoken: list[str], templates: list[PlannedVideo]) -> list[PlannedVideo]:
    """With several audio files (or scripts), every template once per audio, in ``<audio stem>/`` subfolders."""
    if len(spoken) == 1:
        return templates
    videos: list[PlannedVideo] = []
    subfolders_taken: set[str] = set()
    for name in spoken:
        subfolder = _output_stem(Path(name).stem, name, subfolders_taken)
        subfolders_taken.add(subfolder.lower())
        for template in templates:
            videos.append(replace(template, output_stem=f"{subfolder}/{template.output_stem}", audio=folder / name))
    return videos


def _library_templates(library: Path | None, references: list[str]) -> list[PresenterTemplate]:
    if not references:
        return []
    if library is None:
        raise ContractViolation(
            "job.toml names presenters, but this service has no presenter library.", code=ErrorCode.PRESENTER_UNKNOWN
        )
    try:
        return resolve_presenters(library.absolute(), references)  # relative to the working directory, as every path
    except PresenterError as err:
        raise ContractViolation(err.reason, err.details, code=err.code) from None


def _output_stem(wanted: str, template: str, taken: set[str]) -> str:
    """``wanted``, shortened so that its results' names fit, made unique (case-insensitively) among ``taken``."""
    stem = fit_name(wanted, OUTPUT_STEM_MAX_BYTES, keep_suffix="")
    if stem.lower() in taken or stem.lower() in REPORT_NAMES or stem.lower() == "job":
        tag = f"_{Path(template).suffix.lstrip('.').lower()}"
        stem = fit_name(f"{stem}{tag}", OUTPUT_STEM_MAX_BYTES, keep_suffix=tag)
    base, extra = stem, ""
    while stem.lower() in taken:
        extra += "_"
        stem = fit_name(f"{base}{extra}", OUTPUT_STEM_MAX_BYTES, keep_suffix=extra)
    return stem


# ---------------------------------------------------------------------------- the operator's limits


def _check_count_and_sizes(templates: list[str], sizes: dict[str, int], limits: LimitsConfig) -> None:
    if limits.max_templates and len(templates) > limits.max_templates:
        raise ContractViolation(
            f"The folder has {len(templates)} template videos; this service accepts at most {limits.max_templates} "
            f"in one job. Split it into folders of at most {limits.max_templates} templates each, or ask the operator "
            "to raise limits.max_templates.",
            [f"{len(templates)} templates (limits.max_templates = {limits.max_templates}): {_list_names(templates)}"],
            code=ErrorCode.LIMIT_TOO_MANY_TEMPLATES,
        )
    limit = limits.max_file_bytes
    too_large = sorted((name for name, size in sizes.items() if limit and size > limit), key=lambda name: -sizes[name])
    if too_large:
        listed = ", ".join(f'"{name}" is {_size_beside(sizes[name], limit)}' for name in too_large)
        raise ContractViolation(
            f"{listed}; this service accepts files of up to {human_size(limit)}. Use a smaller file (shorter, or a "
            "lower bitrate), or ask the operator to raise limits.max_file_bytes.",
            [f"{name}: {sizes[name]} bytes (limits.max_file_bytes = {limit})" for name in too_large],
            code=ErrorCode.LIMIT_FILE_TOO_LARGE,
        )


def audio_too_long(name: str, seconds: float, limit: float) -> ContractViolation:
    """The violation for an audio over limits.max_audio_seconds (measured by limits.check_limits)."""
    return ContractViolation(
        f'The audio "{name}" lasts {human_duration(seconds)}; this service accepts audio of up to '
        f"{human_duration(limit)}. Split the audio into shorter parts (one job each), or ask the operator to raise "
        "limits.max_audio_seconds.",
        [f"{name}: {seconds:.2f} s (limits.max_audio_seconds = {limit:g})"],
        code=ErrorCode.LIMIT_AUDIO_TOO_LONG,
    )


def _size_beside(size: int, limit: int) -> str:
    shown = human_size(size)
    return f"{shown} ({size} bytes)" if shown == human_size(limit) else shown


def human_duration(seconds: float) -> str:
    """``3725`` -> ``1 h 02 min 05 s (3725 s)``: the clock form, and the seconds the limit is set in."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        clock = f"{hours} h {minutes:02d} min {secs:02d} s"
    elif minutes:
        clock = f"{minutes} min {secs:02d} s"
    else:
        return f"{seconds:.1f} s"
    exact = f"{seconds:.2f}".rstrip("0").rstrip(".")
    return f"{clock} ({exact} s)"


def read_job_file(folder: Path) -> JobFile:
    """The folder's job.toml (any case), checked. Raises ContractViolation with its code."""
    path = next(entry for entry in folder.iterdir() if entry.name.lower() == JOB_FILE)
    try:
        with open_regular(path) as handle:  # a pipe or a link named job.toml is never read (nor waited on)
            raw = tomllib.load(handle)
    except NotAFile as err:
        raise ContractViolation(f"job.toml is not a file but {err.kind}.", code=ErrorCode.JOB_TOML_INVALID) from None
    except tomllib.TOMLDecodeError as err:
        raise ContractViolation(f"job.toml is not valid TOML: {err}.", code=ErrorCode.JOB_TOML_INVALID) from None
    except RecursionError:  # tomllib recurses once per nesting level
        raise ContractViolation("job.toml is nested too deeply to be read.", code=ErrorCode.JOB_TOML_INVALID) from None
    except PermissionError:
        raise ContractViolation(
            "job.toml cannot be read by the service (permission denied): give its user read access.",
            code=ErrorCode.INPUT_UNREADABLE,
        ) from None
    except UnicodeDecodeError as err:
        raise ContractViolation(f"job.toml is not UTF-8 text: {err}.", code=ErrorCode.JOB_TOML_INVALID) from None
    try:
        return JobFile.model_validate(raw)
    except (ValidationError, RecursionError) as err:
        reason = _short_validation(err) if isinstance(err, ValidationError) else "it is nested too deeply"
        raise ContractViolation(f"job.toml is not valid: {reason}", code=ErrorCode.JOB_TOML_INVALID) from None


def _short_validation(err: ValidationError) -> str:
    parts = []
    for error in err.errors():
        key = ".".join(str(part) for part in error["loc"]) or "(top)"
        message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
        parts.append(f"{key}: {message}")
    return "; ".join(parts)
