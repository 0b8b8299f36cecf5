"""Stable, machine-readable error codes: one table for the engine, the daemon, the reports and the web page.

Every failure a person can see (``error.json``, a video's ``error`` in ``job.json``, the
journal, ``heygemd status``) carries one of these codes beside its plain-language sentence.
The sentence names the file and may change wording; the code never changes. Each code says
whether the failure is *permanent* (the input itself is at fault: quarantine at once) or
*transient* (the environment: retry with backoff within the configured budget, then
quarantine with the last reason).

This module imports nothing heavy: the web service and the cluster read it too.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, Field


class Persistence(StrEnum):
    PERMANENT = "permanent"  # the input is at fault: retrying cannot help
    TRANSIENT = "transient"  # the environment is at fault: the same input may succeed later


@dataclass(frozen=True)
class CodeInfo:
    persistence: Persistence
    summary: str  # one plain sentence, with no file name: the web page translates it
    fix: str  # what the person (or the operator) can do about it


class ErrorCode(StrEnum):
    # -- the input files (permanent)
    INPUT_UNREADABLE = "input.unreadable"
    INPUT_UNDECODABLE = "input.undecodable"
    INPUT_EMPTY = "input.empty"
    INPUT_INCOMPLETE = "input.incomplete"
    INPUT_CHANGED_WHILE_RENDERING = "input.changed_while_rendering"
    INPUT_MANIFEST_MISMATCH = "input.manifest_mismatch"
    INPUT_MISSING = "input.missing"
    INPUT_REPLACED = "input.replaced"
    AUDIO_UNUSABLE = "audio.unusable"
    FACE_NOT_FOUND = "face.not_found"
    # -- the job folder's shape (permanent)
    JOB_EMPTY = "job.empty"
    JOB_NO_AUDIO = "job.no_audio"
    JOB_SEVERAL_AUDIO = "job.several_audio"
    JOB_NO_TEMPLATE = "job.no_template"
    JOB_ONLY_FOLDERS = "job.only_folders"
    JOB_TOML_INVALID = "job_toml.invalid"
    JOB_MODEL_UNAVAILABLE = "job.model_unavailable"
    NAME_TOO_LONG = "name.too_long"
    # -- operator limits (permanent for that input; the operator may raise them)
    LIMIT_AUDIO_TOO_LONG = "limit.audio_too_long"
    LIMIT_TOO_MANY_TEMPLATES = "limit.too_many_templates"
    LIMIT_FILE_TOO_LARGE = "limit.file_too_large"
    LIMIT_SCRIPT_TOO_LONG = "limit.script_too_long"
    # -- scripts and speech (permanent)
    JOB_AUDIO_AND_SCRIPT = "job.audio_and_script"
    SCRIPT_EMPTY = "script.empty"
    SCRIPT_LANGUAGE_UNSUPPORTED = "script.language_unsupported"
    SPEECH_VOICE_UNAVAILABLE = "speech.voice_unavailable"
    SPEECH_FAILED = "speech.failed"
    # -- the presenter library (permanent)
    PRESENTER_UNKNOWN = "presenter.unknown"
    PRESENTER_EMPTY = "presenter.empty"
    PRESENTER_BAD_NAME = "presenter.bad_name"
    # -- the environment (transient)
    DISK_FULL = "disk.full"
    SHARE_UNAVAILABLE = "share.unavailable"
    PROCESS_KILLED = "process.killed"
    OUT_OF_MEMORY = "memory.out"
    RENDER_STALLED = "render.stalled"
    RENDER_ENCODER_FAILED = "render.encoder_failed"
    RENDER_OPTION_UNFIT = "render.option_unfit"
    # -- the result itself
    OUTPUT_MISMATCH = "output.mismatch"
    # -- the service
    SERVICE_CRASHED = "service.crashed"
    CANCELLED = "cancelled"
    INTERNAL = "internal"

    @property
    def info(self) -> CodeInfo:
        return CODES[self]

    @property
    def transient(self) -> bool:
        return CODES[self].persistence is Persistence.TRANSIENT


_P, _T = Persistence.PERMANENT, Persistence.TRANSIENT

CODES: dict[ErrorCode, CodeInfo] = {
    ErrorCode.INPUT_UNREADABLE: CodeInfo(
        _P,
        "A file cannot be read by the service (permission denied).",
        "Give the service's user read permission on the file (on the share: the file's owner or its "
        "group), then drop the folder again.",
    ),
    ErrorCode.INPUT_UNDECODABLE: CodeInfo(
        _P,
        "A file is not usable audio or video (damaged, truncated, or another kind of file).",
        "Export or copy the file again, check that it plays, and drop the folder again.",
    ),
    ErrorCode.INPUT_EMPTY: CodeInfo(_P, "A file is empty (0 bytes).", "Copy the file again, then drop the folder again."),
    ErrorCode.INPUT_INCOMPLETE: CodeInfo(
        _P, "The copy of the folder never finished.", "Copy the files again, completely, then drop the folder again."
    ),
    ErrorCode.INPUT_CHANGED_WHILE_RENDERING: CodeInfo(
        _P,
        "An input kept changing while it was rendered: an upload was probably still running.",
        "Wait until the upload has finished, then drop the folder again.",
    ),
    ErrorCode.INPUT_MANIFEST_MISMATCH: CodeInfo(
        _P,
        "A file does not match the size or checksum listed in the READY marker.",
        "Copy the file again (or correct the marker), then drop the folder again.",
    ),
    ErrorCode.INPUT_MISSING: CodeInfo(
        _P,
        "An input was deleted from the claimed job folder before it was rendered.",
        "Drop the folder again with the file in it.",
    ),
    ErrorCode.INPUT_REPLACED: CodeInfo(
        _P,
        "An input was replaced after the claim by something that is not a file (a link, a pipe, a folder); it was not read.",
        "Drop the folder again with the real file in it.",
    ),
    ErrorCode.AUDIO_UNUSABLE: CodeInfo(
        _P,
        "The audio decodes but cannot drive a render (no sound track, no length, invalid samples).",
        "Export the audio again as WAV or MP3, then drop the folder again.",
    ),
    ErrorCode.FACE_NOT_FOUND: CodeInfo(
        _P,
        "No face was found in the template video.",
        "Use a template where the presenter's face is visible and frontal, then drop the folder again.",
    ),
    ErrorCode.JOB_EMPTY: CodeInfo(
        _P, "The job folder is empty.", "Put one audio file and at least one template video in it."
    ),
    ErrorCode.JOB_NO_AUDIO: CodeInfo(
        _P, "The job folder has no audio file.", "Add exactly one audio file, then drop it again."
    ),
    ErrorCode.JOB_SEVERAL_AUDIO: CodeInfo(
        _P, "The job folder has more than one audio file.", "Split it into one folder per audio, then drop them again."
    ),
    ErrorCode.JOB_NO_TEMPLATE: CodeInfo(
        _P, "The job folder has no template video.", "Add one or more template videos, then drop it again."
    ),
    ErrorCode.JOB_ONLY_FOLDERS: CodeInfo(
        _P, "The job folder holds only folders.", "Drop each job folder directly into the inbox."
    ),
    ErrorCode.JOB_TOML_INVALID: CodeInfo(
        _P, "The job.toml file is not valid.", "Correct job.toml (the details say which key), then drop the folder again."
    ),
    ErrorCode.JOB_MODEL_UNAVAILABLE: CodeInfo(
        _P,
        "The job.toml asks for a lip-sync model this service does not run (in cluster mode: no online worker runs).",
        "Remove the model key from job.toml, or drop the job on a service (or start a worker) that runs that model "
        "(engine.model).",
    ),
    ErrorCode.NAME_TOO_LONG: CodeInfo(
        _P, "A name is too long for the filesystem.", "Give the file or folder a shorter name, then drop it again."
    ),
    ErrorCode.LIMIT_AUDIO_TOO_LONG: CodeInfo(
        _P,
        "The audio is longer than this service accepts.",
        "Split the audio, or ask the operator to raise limits.max_audio_seconds.",
    ),
    ErrorCode.LIMIT_TOO_MANY_TEMPLATES: CodeInfo(
        _P,
        "The job has more template videos than this service accepts.",
        "Split the job into several folders, or ask the operator to raise limits.max_templates.",
    ),
    ErrorCode.LIMIT_FILE_TOO_LARGE: CodeInfo(
        _P,
        "A file is larger than this service accepts.",
        "Use a smaller file (shorter, or a lower bitrate), or ask the operator to raise limits.max_file_bytes.",
    ),
    ErrorCode.LIMIT_SCRIPT_TOO_LONG: CodeInfo(
        _P,
        "The script is longer than this service accepts.",
        "Split the script into several files, or ask the operator to raise limits.max_script_chars.",
    ),
    ErrorCode.JOB_AUDIO_AND_SCRIPT: CodeInfo(
        _P,
        "The job folder holds both audio and a script; a job is spoken from one or the other.",
        "Remove the audio files or the scripts (.txt), or put them in separate folders, then drop them again.",
    ),
    ErrorCode.SCRIPT_EMPTY: CodeInfo(
        _P, "The script has no words to speak.", "Write the text into the script (UTF-8 .txt), then drop the folder again."
    ),
    ErrorCode.SCRIPT_LANGUAGE_UNSUPPORTED: CodeInfo(
        _P,
        "The chosen voice cannot speak the script's language.",
        "Set language (and voice) in job.toml to match the script, or choose a voice that speaks it; then drop it again.",
    ),
    ErrorCode.SPEECH_VOICE_UNAVAILABLE: CodeInfo(
        _P,
        "The chosen voice is not available on this service.",
        "Choose a voice that heygemd doctor lists as usable, or ask the operator to install it (fetch-models).",
    ),
    ErrorCode.SPEECH_FAILED: CodeInfo(
        _P,
        "The voice produced no speech for the script.",
        "Check that the script holds words of its language (not only symbols), then drop the folder again.",
    ),
    ErrorCode.PRESENTER_UNKNOWN: CodeInfo(
        _P,
        "The job names a presenter (or a presenter's template) that is not in the presenter library.",
        "Check the names in job.toml's presenters against the presenters folder, then drop the folder again.",
    ),
    ErrorCode.PRESENTER_EMPTY: CodeInfo(
        _P,
        "A presenter's folder holds no template video or still.",
        "Put the presenter's template videos into their folder in the presenter library, then drop the job again.",
    ),
    ErrorCode.PRESENTER_BAD_NAME: CodeInfo(
        _P,
        'A presenter name in job.toml is not a plain name ("..", a leading "/" or more than one "/").',
        'Write "name" for all of a presenter\'s templates or "name/file.mp4" for one, then drop the folder again.',
    ),
    ErrorCode.DISK_FULL: CodeInfo(
        _T, "The disk that receives the results is full.", "The operator must free space; the job is retried meanwhile."
    ),
    ErrorCode.SHARE_UNAVAILABLE: CodeInfo(
        _T,
        "The shared folder or a file on it could not be reached.",
        "The operator must check the share (mount, network); the job is retried meanwhile.",
    ),
    ErrorCode.PROCESS_KILLED: CodeInfo(
        _T, "A helper program (ffmpeg) was stopped from outside.", "Nothing, usually: the job is retried."
    ),
    ErrorCode.OUT_OF_MEMORY: CodeInfo(
        _T, "The machine ran out of memory.", "The operator may lower engine.batch_size; the job is retried."
    ),
    ErrorCode.RENDER_STALLED: CodeInfo(
        _T,
        "A render made no progress for too long (a stalled share or a hung GPU) and was stopped.",
        "The operator should check the share and the GPU; the job is retried.",
    ),
    ErrorCode.RENDER_ENCODER_FAILED: CodeInfo(
        _T,
        "The video encoder (ffmpeg) stopped before the video was finished; the inputs were read without fault.",
        "Nothing, usually: the video is rendered again; if it persists, the operator should read the service log.",
    ),
    ErrorCode.RENDER_OPTION_UNFIT: CodeInfo(
        _P,
        "A render option does not fit this template (a fixed_box outside the frame).",
        "Correct the option (job.toml or the configuration's [render]), then drop the folder again.",
    ),
    ErrorCode.OUTPUT_MISMATCH: CodeInfo(
        _T,
        "The finished video's sound and picture lengths do not agree.",
        "Nothing, usually: the video is rendered again; if it persists, report it with the job's files.",
    ),
    ErrorCode.SERVICE_CRASHED: CodeInfo(
        _P,
        "The service stopped unexpectedly several times while working on this job.",
        "The operator should read the service log (journalctl -u heygemd); then drop the folder again.",
    ),
    ErrorCode.CANCELLED: CodeInfo(_P, "The job was cancelled.", "Drop the folder again to render it after all."),
    ErrorCode.INTERNAL: CodeInfo(
        _P,
        "heygemd failed on this input because of a defect of its own.",
        "Report it to the operator with the job's files; the service log has the details.",
    ),
}

assert set(CODES) == set(ErrorCode), "every code needs its table row"


class Failure(BaseModel):
    """One failure as people and programs see it: a stable code and a sentence naming the file."""

    code: ErrorCode
    reason: str = Field(description="what went wrong, in plain language, naming the file")
    details: list[str] = Field(default_factory=list)

    @property
    def transient(self) -> bool:
        return self.code.transient

    @property
    def fix(self) -> str:
        return self.code.info.fix


class CodedError(Exception):
    """An exception that carries its failure code. ``str(err)`` is the sentence."""

    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(self, reason: str, details: list[str] | None = None, *, code: ErrorCode | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.details = details or []
        if code is not None:
            self.code = code

    def failure(self) -> Failure:
        return Failure(code=self.code, reason=self.reason, details=self.details)


_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_UNREADABLE_ERRNOS = frozenset({errno.EACCES, errno.EPERM})


def code_for_os_error(err: OSError, *, reading_input: bool = False) -> ErrorCode:
    """What a filesystem error means for a job: a full disk, a name too long, no permission, or the share.

    Permission denied is the input's fault only while reading the job's own files; elsewhere (the
    outbox, the work folder) the operator must fix it, so it is retried like the share. Everything not
    recognised is taken as the share (transient): a wrong guess there costs a bounded number of
    retries, a wrong guess the other way would quarantine a good job.
    """
    if err.errno in _DISK_FULL_ERRNOS:
        return ErrorCode.DISK_FULL
    if err.errno == errno.ENAMETOOLONG:
        return ErrorCode.NAME_TOO_LONG
    if err.errno in _UNREADABLE_ERRNOS and reading_input:
        return ErrorCode.INPUT_UNREADABLE
    return ErrorCode.SHARE_UNAVAILABLE


def failure_from_os_error(err: OSError, what: str, *, reading_input: bool = False) -> Failure:
    """``what`` names the step in words ("claiming the job", "publishing the results")."""
    code = code_for_os_error(err, reading_input=reading_input)
    where = f' ("{os.path.basename(err.filename)}")' if err.filename else ""  # never a path in work/
    return Failure(code=code, reason=f"{code.info.summary} While {what}: {err.strerror or err}{where}.")
