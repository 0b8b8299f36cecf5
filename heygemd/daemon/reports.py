"""What a person reads after a job: outbox/<job>/job.json and quarantine/<job>/error.json."""

from __future__ import annotations

import socket
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from heygemd import __version__
from heygemd.clock import utc_now as utc_now  # the daemon's modules take it from here
from heygemd.codes import ErrorCode, Failure
from heygemd.engine.report import EngineInfo
from heygemd.resultfiles import SPEECH_AUDIO

RETRY_HINT = "(error.json may stay in the folder when you drop it again: it is ignored.)"


def host_name() -> str:
    return socket.gethostname()


class JobStatus(StrEnum):
    OK = "ok"  # every template rendered
    PARTIAL = "partial"  # some templates rendered, the others are in quarantine
    FAILED = "failed"  # nothing rendered; the whole job is in quarantine


class VideoStatus(StrEnum):
    PENDING = "pending"
    OK = "ok"
    FAILED = "failed"


class InputFile(BaseModel):
    """One input of a job as it was when rendered."""

    name: str
    size_bytes: int
    mtime_ns: int
    sha256: str = Field(description="hex sha256 of the content")


class RenderedBy(BaseModel):
    """Cluster mode: the worker that rendered a video (in the journal and job.json's videos)."""

    name: str = Field(description="the worker's name: host/device/pid")
    host: str
    gpu: str | None = Field(None, description="the GPU's name, or CPU; None from a worker that did not say")


class VideoResult(BaseModel):
    template: str = Field(description="file name of the template in the job folder")
    status: VideoStatus
    output: str | None = Field(None, description="result video, relative to the job's outbox folder")
    report: str | None = Field(None, description="render report (sidecar), relative to the job's outbox folder")
    error: str | None = Field(None, description="why this template failed, in plain language")
    code: ErrorCode | None = Field(None, description="why this template failed, as a stable code (see docs/error-codes.md)")
    seconds: float | None = Field(None, description="wall-clock time of the render")
    output_duration_s: float | None = None
    worker: RenderedBy | None = Field(None, description="cluster mode: the worker that rendered it (host, GPU)")


class SpeechReport(BaseModel):
    """speech.json beside speech.wav, and ``speech`` in job.json: how a script job's words were spoken."""

    script: str = Field(description="the script's file name")
    text_sha256: str
    characters: int
    voice: str = Field(description="engine:speaker, e.g. espeak-ng:en-us or kokoro:af_heart")
    voice_licence: str
    model_file: str | None = Field(description="the voice's model (Kokoro) or library (espeak-ng) file")
    model_sha256: str | None
    language: str
    speed: float
    sentences: int
    sample_rate: int
    duration_s: float
    audio: str = SPEECH_AUDIO


class JobReport(BaseModel):
    """outbox/<job>/job.json"""

    job: str = Field(description="name of the job folder as it was dropped")
    job_id: str
    status: JobStatus
    dry_run: bool = Field(description="true: made without the model (template fitted to the audio, new audio)")
    audio: str
    videos: list[VideoResult]
    inputs: list[InputFile] = Field(default_factory=list, description="every input as rendered: size, mtime, sha256")
    received_at: datetime = Field(
        description="when the job folder arrived in the inbox (first seen by the service, or the folder's last "
        "change before the claim if earlier; the claim time for jobs claimed by an older heygemd)"
    )
    claimed_at: datetime | None = Field(None, description="when the service took the folder out of the inbox")
    started_at: datetime | None
    finished_at: datetime
    seconds: float = Field(description="from arrival to finish: from drop to result")
    quarantine_folder: str | None = Field(None, description="where the failed templates went, if any")
    warnings: list[str] = Field(default_factory=list)
    language: str = Field("en", description="the language of index.html: en or zh (job.toml, else outputs.language)")
    engine: EngineInfo | None = Field(None, description="device, checkpoint (path, sha256, name), detector...")
    speech: list[SpeechReport] = Field(
        default_factory=list, description="a script job: per script the voice, its model's hash, the text's hash"
    )
    host: str = Field(default_factory=host_name)
    heygemd_version: str = __version__


class FailedVideo(BaseModel):
    template: str
    reason: str
    code: ErrorCode


class ErrorReport(BaseModel):
    """quarantine/<job>/error.json"""

    job: str
    job_id: str
    code: ErrorCode = Field(description="why, as a stable machine-readable code (see docs/error-codes.md)")
    reason: str = Field(description="what went wrong, in plain language")
    details: list[str] = Field(default_factory=list)
    failed_videos: list[FailedVideo] = Field(default_factory=list)
    outbox_folder: str | None = Field(None, description="where this job's good results went, if any")
    what_to_do: str

    @classmethod
    def of(cls, job: str, job_id: str, failure: Failure, **extra: Any) -> ErrorReport:
        return cls(
            job=job,
            job_id=job_id,
            code=failure.code,
            reason=failure.reason,
            details=failure.details,
            what_to_do=f"{failure.fix} {RETRY_HINT}",
            **extra,
        )

    time: datetime = Field(default_factory=utc_now)
    host: str = Field(default_factory=host_name)
    heygemd_version: str = __version__
