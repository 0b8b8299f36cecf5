"""outbox/<job>/index.html: parses, every link and image resolves to a file of the folder, every name is escaped."""

from __future__ import annotations

import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from heygemd.daemon.reports import (
    JobReport,
    JobStatus,
    VideoResult,
    VideoStatus,
    utc_now,
)
from heygemd.daemon.resultpage import INDEX_FILE, make_thumbnail, write_result_page
from heygemd.resultfiles import thumbnail_name

NASTY = '<b>x<b> & "q" \'s #1?.mp4'  # names hold anything but "/" and NUL
CJK = "发言人" * 27 + "xx.mp4"  # 249 bytes: its thumbnail name fits too
DOTTED = "..%2F..%2Fetc passwd.mp4"


class Page(HTMLParser):
    """Collects links, sources, ids, the text, and any element the page must never have."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()
        self.text: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("href", "src", "poster") and value is not None:
                self.links.append(value)
            if name == "id" and value is not None:
                self.ids.add(value)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


@pytest.fixture
def results(tmp_path: Path, media: dict[str, Path]) -> tuple[Path, JobReport]:
    folder = tmp_path / "job"
    folder.mkdir()
    videos = []
    for template in (NASTY, CJK, DOTTED):
        stem = Path(template).stem
        shutil.copy(media["video"], folder / f"{stem}.mp4")
        (folder / f"{stem}.json").write_text("{}", encoding="utf-8")  # not a render report: the page does without
        assert make_thumbnail(folder / f"{stem}.mp4", folder / thumbnail_name(stem), 1.0)
        videos.append(
            VideoResult(
                template=template,
                status=VideoStatus.OK,
                output=f"{stem}.mp4",
                report=f"{stem}.json",
                seconds=1.5,
                output_duration_s=1.0,
            )
        )
    videos.append(
        VideoResult(
            template="<script>alert(1)<script>.mp4",
            status=VideoStatus.FAILED,
            error='no face in "<script>"',
            code="face.not_found",
        )
    )
    (folder / "job.json").write_text("{}", encoding="utf-8")
    now = utc_now()
    report = JobReport(
        job="<i>campaign<i> & 春",
        job_id="20250101T000000Z-abc123",
        status=JobStatus.PARTIAL,
        dry_run=True,
        audio="voice <1>.wav",
        videos=videos,
        received_at=now,
        started_at=now,
        finished_at=now,
        seconds=3.0,
        quarantine_folder="/srv/quarantine/<i>campaign<i> & 春",
        warnings=["the audio outlasts the template: extended with 'pingpong'"],
    )
    return folder, report


def test_the_page_parses_and_every_link_resolves_to_a_file_of_the_folder(results):
    folder, report = results
    page = parse(write_result_page(folder, report))
    files = {entry.name for entry in folder.iterdir()}
    local = [link for link in page.links if not link.startswith("#")]
    assert local, "the page links the results"
    for link in local:
        parts = urlsplit(link)
        assert not parts.scheme and not parts.netloc and "/" not in parts.path, f"relative to the folder: {link}"
        assert unquote(parts.path) in files, link
    for link in page.links:
        if link.startswith("#"):
            assert link[1:] in page.ids
    for template in (NASTY, CJK, DOTTED):
        stem = Path(template).stem
        assert {f"{stem}.mp4", f"{stem}.jpg", f"{stem}.json"} <= {unquote(link) for link in local}
    assert "job.json" in local and INDEX_FILE in files


def test_every_name_is_escaped(results):
    folder, report = results
    page = parse(write_result_page(folder, report))
    text = "".join(page.text)
    assert "script" not in page.tags and "b" not in page.tags and "i" not in page.tags
    assert report.job in text and NASTY in text and CJK in text and "<script>alert(1)<script>.mp4" in text
    assert "face.not_found" in text and 'no face in "<script>"' in text
    assert "The audio outlasts the template" in text, "warnings in words"
    assert "quarantine folder <i>campaign<i> & 春" in text and "/srv/" not in text, "the folder by name, not by path"


def test_a_thumbnail_is_a_jpeg_or_nothing(tmp_path, media):
    target = tmp_path / "t.jpg"
    assert make_thumbnail(media["video"], target, 1.0)
    assert target.read_bytes()[:3] == b"\xff\xd8\xff"
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    assert not make_thumbnail(broken, tmp_path / "b.jpg", None) and not (tmp_path / "b.jpg").exists()
    assert [entry.name for entry in tmp_path.iterdir() if entry.name.startswith(".")] == [], "no temporary file left"
