"""The results gallery: finished jobs whose folders are still there, newest first, searched by name, a page at a time."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from heygemd.codes import ErrorCode
from heygemd.daemon.journal import HistoryEntry
from heygemd.daemon.reports import JobStatus
from heygemd.web.settings import WebSettings
from heygemd.web.views import FileLink, JobFinder, read_services, still_there

PAGE_SIZE = 24


class GalleryItem(BaseModel):
    id: str
    status: JobStatus
    code: ErrorCode | None = None
    finished_at: datetime
    videos_ok: int
    videos_failed: int
    video: FileLink | None = Field(None, description="the first result, played in the gallery")
    thumbnail: FileLink | None = None
    audio: str | None = None


class ResultsPage(BaseModel):
    items: list[GalleryItem]
    query: str = Field(description="the words searched for in the jobs' names ('' for all)")
    page: int = Field(description="1 for the newest")
    pages: int
    total: int = Field(description="the results found, on all pages")


def results_page(settings: WebSettings, query: str = "", page: int = 1) -> ResultsPage:
    services = read_services(settings)
    finder = JobFinder(settings, services)
    words = query.strip().lower()
    latest: dict[str, HistoryEntry] = {}
    for entry in sorted((line for service in services for line in service.history()), key=lambda line: line.finished_at):
        latest[entry.job] = entry  # a name used again: its newest job
    found = [
        entry
        for entry in sorted(latest.values(), key=lambda line: line.finished_at, reverse=True)
        if words in entry.job.lower() and still_there(settings, entry)
    ]
    pages = max(1, -(-len(found) // PAGE_SIZE))
    page = min(max(page, 1), pages)
    shown = found[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    return ResultsPage(
        items=[gallery_item(finder, entry) for entry in shown], query=query.strip(), page=page, pages=pages, total=len(found)
    )


def gallery_item(finder: JobFinder, entry: HistoryEntry) -> GalleryItem:
    item = GalleryItem(
        id=entry.job,
        status=entry.status,
        code=entry.code,
        finished_at=entry.finished_at,
        videos_ok=entry.videos_ok,
        videos_failed=entry.videos_failed,
    )
    job = finder.find(entry.job)
    if job is not None:
        first = next((video for video in job.videos if video.output is not None), None)
        item.video = first.output if first else None
        item.thumbnail = first.thumbnail if first else None
        item.audio = job.audio
    return item
