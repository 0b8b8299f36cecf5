"""``outbox/<job>/index.html``: the job's results on one static page, for people browsing the share.

It is written into the results folder before the folder is renamed into the outbox, so it
appears with the results, atomically. It needs no server and no script: thumbnails
(``<stem>.jpg``, one frame of each video, made by ffmpeg when the video is finished), HTML5
players and links, all relative, so it works from ``file://`` and from a copy of the folder.
Every name in it is escaped (a name may be 255 bytes of any script, ``<`` and ``&`` included).
"""

from __future__ import annotations

import subprocess
from html import escape
from pathlib import Path
from urllib.parse import quote

from pydantic import ValidationError

from heygemd import __version__
from heygemd.atomic import write_atomic
from heygemd.daemon.reports import JobReport, JobStatus, VideoResult, VideoStatus
from heygemd.engine import RenderReport
from heygemd.engine.ffmpeg_tools import FFmpegNotFound, ffmpeg_path, run_tool
from heygemd.resultfiles import ERROR_REPORT, JOB_REPORT, thumbnail_name

INDEX_FILE = "index.html"
THUMBNAIL_WIDTH = 320
THUMBNAIL_AT_SECONDS = 1.0  # past a fade-in, but within the shortest video
THUMBNAIL_TIMEOUT_SECONDS = 60

_STATUS_KEYS = {JobStatus.OK: "status.ok", JobStatus.PARTIAL: "status.partial", JobStatus.FAILED: "status.failed"}

# The page's words in each language of outputs.language / job.toml (reports' own reasons stay as written).
_TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "status.ok": "Done: every template was rendered.",
        "status.partial": "Partly done: some templates could not be rendered (they are in quarantine).",
        "status.failed": "Failed: nothing could be rendered.",
        "count": "{status} {ok} of {total} videos.",
        "meta": "Audio: {audio} · finished {finished} UTC · {seconds} s from drop to result · job id {job_id}",
        "dry_run": " · <strong>dry run</strong> (made without the model)",
        "job_warnings": "Warnings about the job",
        "not_rendered": "Not rendered",
        "quarantine": "They are in the quarantine folder {folder}, with {error_report} saying why.",
        "whole_report": "The whole report: {link}.",
        "download": "Download the video",
        "render_report": "render report",
        "rendered_in": " · rendered in {seconds} s",
        "warnings": "Warnings",
        "no_face": "no face was found in {missed} of {frames} frames: those frames are shown as in the template",
    },
    "zh": {
        "status.ok": "已完成：所有模板视频都已生成。",
        "status.partial": "部分完成：有些模板视频无法生成（它们在隔离文件夹中）。",
        "status.failed": "失败：没有生成任何视频。",
        "count": "{status}共 {total} 个视频，已生成 {ok} 个。",
        "meta": "音频：{audio} · 完成于 {finished} UTC · 从放入到完成 {seconds} 秒 · 任务编号 {job_id}",
        "dry_run": " · <strong>试运行</strong>（未使用模型生成）",
        "job_warnings": "关于此任务的警告",
        "not_rendered": "未生成",
        "quarantine": "它们在隔离文件夹 {folder} 中，{error_report} 说明了原因。",
        "whole_report": "完整报告：{link}。",
        "download": "下载视频",
        "render_report": "渲染报告",
        "rendered_in": " · 渲染用时 {seconds} 秒",
        "warnings": "警告",
        "no_face": "{frames} 帧中有 {missed} 帧未找到人脸：这些帧与模板相同",
    },
}
HTML_LANGUAGES = {"en": "en", "zh": "zh-Hans"}


def _words(language: str) -> dict[str, str]:
    return _TEXTS.get(language, _TEXTS["en"])


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 60rem; padding: 0 1rem; color: #222; }
h1 { font-size: 1.5rem; word-break: break-all; } h2 { font-size: 1.1rem; word-break: break-all; }
.video { border-top: 1px solid #ddd; padding: 1rem 0; }
video { display: block; max-width: 100%; max-height: 60vh; background: #000; }
.failed { color: #a00; } .warnings li { color: #8a5a00; } .meta { color: #555; font-size: 0.9rem; }
.thumb { display: inline-block; margin: 0 0.5rem 0.5rem 0; } .thumb img { max-width: 160px; border: 1px solid #ccc; }
code { background: #f3f3f3; padding: 0 0.2rem; }
"""


def make_thumbnail(video: Path, target: Path, duration_s: float | None) -> bool:
    """One JPEG frame of ``video`` at ``target`` (written whole or not at all). False if it could not be made:
    a page without a thumbnail is better than a video held back for one."""
    at = min(THUMBNAIL_AT_SECONDS, duration_s / 2) if duration_s else 0.0
    command = [
        ffmpeg_path(),
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-ss",
        f"{at:.3f}",
        "-i",
        str(video.resolve()),
        "-frames:v",
        "1",
        "-vf",
        f"scale=w=min({THUMBNAIL_WIDTH}\\,iw):h=-2",
        "-q:v",
        "4",
        "-f",
        "image2pipe",
        "-c:v",
        "mjpeg",
        "pipe:1",
    ]
    try:
        result = run_tool(command, timeout=THUMBNAIL_TIMEOUT_SECONDS)
    except (OSError, FFmpegNotFound, subprocess.TimeoutExpired):
        return False
    if result.returncode != 0 or not result.stdout:
        return False
    try:
        write_atomic(target, result.stdout, durable=False, create_parent=False)
    except OSError:
        return False
    return True


def write_result_page(folder: Path, report: JobReport) -> Path:
    """Write ``folder/index.html`` for the job's results in ``folder`` (its job.json is ``report``)."""
    files = {entry.relative_to(folder).as_posix() for entry in folder.rglob("*") if entry.is_file()}  # subfolders too
    renders = {video.output: _render_report(folder, video) for video in report.videos if video.output}
    target = folder / INDEX_FILE
    write_atomic(target, result_page(report, renders, files), create_parent=False)
    return target


def _render_report(folder: Path, video: VideoResult) -> RenderReport | None:
    if not video.report:
        return None
    try:
        return RenderReport.model_validate_json((folder / video.report).read_text(encoding="utf-8"))
    except (OSError, ValidationError, ValueError):
        return None


def result_page(report: JobReport, renders: dict[str, RenderReport | None], files: set[str]) -> str:
    """The page as text. ``renders``: each output's sidecar (by output name); ``files``: what the folder holds."""
    ok = [video for video in report.videos if video.status is VideoStatus.OK and video.output in files]
    failed = [video for video in report.videos if video.status is VideoStatus.FAILED]
    words = _words(report.language)
    meta = words["meta"].format(
        audio=escape(report.audio),
        finished=f"{report.finished_at:%Y-%m-%d %H:%M:%S}",
        seconds=f"{report.seconds:.0f}",
        job_id=f"<code>{escape(report.job_id)}</code>",
    )
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="{HTML_LANGUAGES.get(report.language, "en")}">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<meta name="generator" content="heygemd {escape(__version__)}">',
        f"<title>{escape(report.job)} – heygemd</title>",
        f"<style>{_STYLE}</style>",
        "</head>",
        "<body>",
        f"<h1>{escape(report.job)}</h1>",
        "<p>"
        + words["count"].format(status=escape(words[_STATUS_KEYS[report.status]]), ok=len(ok), total=len(report.videos))
        + "</p>",
        f'<p class="meta">{meta}' + (words["dry_run"] if report.dry_run else "") + "</p>",
    ]
    if len(ok) > 1:
        parts.append("<p>" + "".join(_thumbnail_link(number, video, files) for number, video in enumerate(ok, 1)) + "</p>")
    parts += _warning_list(report.warnings, words["job_warnings"])
    for number, video in enumerate(ok, 1):
        parts += _video_section(number, video, renders.get(video.output or ""), files, words)
    if failed:
        parts.append(f'<div class="video"><h2 class="failed">{escape(words["not_rendered"])}</h2><ul>')
        parts += [
            f'<li class="failed"><strong>{escape(video.template)}</strong> '
            f"<code>{escape(video.code.value if video.code else '')}</code>: {escape(video.error or '')}</li>"
            for video in failed
        ]
        parts.append("</ul>")
        if report.quarantine_folder:
            folder = f"<code>{escape(Path(report.quarantine_folder).name)}</code>"
            parts.append(f"<p>{words['quarantine'].format(folder=folder, error_report=ERROR_REPORT)}</p>")
        parts.append("</div>")
    parts += [
        '<p class="meta">' + words["whole_report"].format(link=f'<a href="{_href(JOB_REPORT)}">{JOB_REPORT}</a>') + "</p>",
        "</body>",
        "</html>",
        "",
    ]
    return "\n".join(parts)


def _href(name: str) -> str:
    """A relative link to a file of the folder (or of a subfolder): percent-encoded (``#``, ``?``, spaces), then
    HTML-escaped."""
    return escape(quote(name, safe="/"), quote=True)


def _stem(video: VideoResult) -> str:
    """The output's name without .mp4, its subfolder kept (``english/anna-front``: a job with several scripts)."""
    return Path(video.output or "").with_suffix("").as_posix()


def _thumbnail_link(number: int, video: VideoResult, files: set[str]) -> str:
    thumbnail = thumbnail_name(_stem(video))
    inner = (
        f'<img src="{_href(thumbnail)}" alt="{escape(video.template, quote=True)}">'
        if thumbnail in files
        else escape(video.template)
    )
    return f'<a class="thumb" href="#video-{number}">{inner}</a>'


def _video_section(
    number: int, video: VideoResult, render: RenderReport | None, files: set[str], words: dict[str, str]
) -> list[str]:
    assert video.output is not None
    thumbnail = thumbnail_name(_stem(video))
    poster = f' poster="{_href(thumbnail)}"' if thumbnail in files else ""
    parts = [
        f'<div class="video" id="video-{number}">',
        f"<h2>{escape(video.template)}</h2>",
        f'<video controls preload="metadata"{poster} src="{_href(video.output)}"></video>',
        f'<p><a href="{_href(video.output)}" download>{escape(words["download"])}</a>'
        + (
            f' · <a href="{_href(video.report)}">{escape(words["render_report"])}</a>'
            if video.report and video.report in files
            else ""
        )
        + "</p>",
    ]
    if render is not None:
        output = render.output
        took = words["rendered_in"].format(seconds=f"{video.seconds:.1f}") if video.seconds else ""
        parts.append(
            f'<p class="meta">{output.duration_s:.2f} s · {output.width}×{output.height} · {output.fps:g} fps{took}</p>'
        )
        parts += _warning_list(_render_warnings(render, words), words["warnings"])
    parts.append("</div>")
    return parts


def _render_warnings(render: RenderReport, words: dict[str, str]) -> list[str]:
    warnings = list(render.warnings)
    faces = render.faces
    frames = faces.frames_with_face + faces.frames_without_face
    if faces.frames_without_face and not render.dry_run:
        warnings.append(words["no_face"].format(missed=faces.frames_without_face, frames=frames))
    return warnings


def _warning_list(warnings: list[str], title: str) -> list[str]:
    if not warnings:
        return []
    items = "".join(f"<li>{escape(warning[:1].upper() + warning[1:])}</li>" for warning in warnings)
    return [f'<div class="warnings"><p>{escape(title)}:</p><ul>{items}</ul></div>']
