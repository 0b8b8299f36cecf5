"""The names of the files a job's results folder holds, named once for the service, the cluster and the web.

Each rendered template gives three files named after its output stem (the template's name, made
safe): the video, its render report (the sidecar) and its thumbnail. The folder also holds the job's
report (``job.json``), or in quarantine the error report (``error.json``); a ZIP of the folder may
stand beside it in the outbox. A job spoken from a script also holds the speech (``speech.wav``) and how it was
spoken (``speech.json``), in each script's subfolder when the job has several.
"""

from __future__ import annotations

JOB_REPORT = "job.json"
ERROR_REPORT = "error.json"
REPORT_NAMES = frozenset({JOB_REPORT, ERROR_REPORT})
VIDEO_SUFFIX = ".mp4"
SIDECAR_SUFFIX = ".json"
THUMBNAIL_SUFFIX = ".jpg"
ZIP_SUFFIX = ".zip"
SPEECH_AUDIO = "speech.wav"  # a script job's speech, published with its videos
SPEECH_REPORT = "speech.json"


def video_name(output_stem: str) -> str:
    return f"{output_stem}{VIDEO_SUFFIX}"


def report_name(output_stem: str) -> str:
    """The video's render report (the sidecar)."""
    return f"{output_stem}{SIDECAR_SUFFIX}"


def thumbnail_name(output_stem: str) -> str:
    return f"{output_stem}{THUMBNAIL_SUFFIX}"


def result_names(output_stem: str) -> tuple[str, str, str]:
    """The three files one rendered template leaves in the results folder."""
    return (video_name(output_stem), report_name(output_stem), thumbnail_name(output_stem))
