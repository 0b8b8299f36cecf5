"""`heygemd web`'s routes under a real uvicorn, with a plain HTTP client, over folders written as the service writes them.

No service runs here: the state folder, outbox and quarantine are made by hand with the service's
own models, so each route's answer (files, ranges, refusals, sign-in, cross-site writes, the two
languages) is checked in milliseconds.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from webserver import WebThread

from heygemd.codes import ErrorCode, Failure
from heygemd.control import read_control, request_pause
from heygemd.daemon.config import HeygemdConfig, LimitsConfig, PathsConfig, Readiness, WatchConfig, WebConfig
from heygemd.daemon.journal import HistoryEntry, JobRecord, Journal, Phase, VideoRecord
from heygemd.daemon.reports import (
    ErrorReport,
    FailedVideo,
    InputFile,
    JobReport,
    JobStatus,
    VideoResult,
    VideoStatus,
    utc_now,
)
from heygemd.daemon.status import CurrentJob, ServiceStatus, StatusFile, WorkerTask
from heygemd.engine import EngineInfo, RenderOptions, RenderReport
from heygemd.engine.report import AudioInput, FaceStats, OutputFile, ProgressStage, StageTimings, VideoInput
from heygemd.metrics import Metrics, write_metrics
from heygemd.uploadmark import UPLOAD_MARK
from heygemd.web.app import create_app
from heygemd.web.settings import WebSettings

TOKEN = "correct horse battery staple"
VIDEO_BYTES = bytes(range(256)) * 40  # 10 KiB standing in for an MP4
SMALL_LIMIT = 4096
TINY_AUDIO = b"RIFF....WAVE"  # under SMALL_LIMIT: the refusals of size come before any probe


@dataclass
class Site:
    root: Path
    url: str
    settings: WebSettings

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def outbox(self) -> Path:
        return self.root / "outbox"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    @property
    def state(self) -> Path:
        return self.root / "state"

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10, **kwargs)


def make_site(
    root: Path,
    token: str | None = None,
    max_file_bytes: int = LimitsConfig().max_file_bytes,
    max_upload_bytes: int = 0,
    watch: WatchConfig | None = None,
) -> WebSettings:
    paths = PathsConfig(
        inbox=root / "inbox",
        outbox=root / "outbox",
        quarantine=root / "quarantine",
        work=root / "work",
        archive=root / "archive",
        state=root / "state",
    )
    for folder in (paths.inbox, paths.outbox, paths.quarantine, paths.state):
        folder.mkdir(parents=True, exist_ok=True)
    config = HeygemdConfig(
        paths=paths,
        limits=LimitsConfig(max_file_bytes=max_file_bytes),
        watch=watch or WatchConfig(),
        web=WebConfig(token=token, max_upload_bytes=max_upload_bytes),
    )
    return WebSettings.from_config(config)


@pytest.fixture
def site_factory(tmp_path: Path) -> Iterator:
    servers: list[WebThread] = []

    def make(**options) -> Site:
        root = tmp_path / f"site{len(servers)}"
        settings = make_site(root, **options)
        server = WebThread(create_app(settings)).start()
        servers.append(server)
        return Site(root, server.url, settings)

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def site(site_factory) -> Site:
    return site_factory()


def publish_done_job(site: Site, name: str = "campaign") -> None:
    """An outbox folder, its history line and reports, as the service leaves a finished job."""
    folder = site.outbox / name
    folder.mkdir()
    (folder / "front.mp4").write_bytes(VIDEO_BYTES)
    (folder / "front.json").write_text("{}")
    (folder / "front.jpg").write_bytes(b"\xff\xd8\xff\xd9")
    now = utc_now()
    report = JobReport(
        job=name,
        job_id="J1",
        status=JobStatus.OK,
        dry_run=True,
        audio="a.wav",
        received_at=now,
        started_at=now,
        finished_at=now,
        seconds=1.0,
        warnings=["a note from the service"],
        videos=[
            VideoResult(
                template="front.mp4", status=VideoStatus.OK, output="front.mp4", report="front.json", output_duration_s=1.0
            )
        ],
    )
    (folder / "job.json").write_text(report.model_dump_json())
    Journal(site.state).append_history(
        HistoryEntry(
            job=name,
            job_id="J1",
            status=JobStatus.OK,
            finished_at=now,
            seconds=1.0,
            videos_ok=1,
            videos_failed=0,
            outbox=folder,
        )
    )


def quarantine_job(site: Site, name: str = "broken") -> None:
    folder = site.quarantine / name
    folder.mkdir()
    (folder / "voice.wav").write_bytes(b"RIFF")
    failure = Failure(code=ErrorCode.FACE_NOT_FOUND, reason='"side.mp4": no face in any frame.')
    error = ErrorReport.of(
        name,
        "J2",
        failure,
        failed_videos=[
            FailedVideo(template="side.mp4", reason='"side.mp4": no face in any frame.', code=ErrorCode.FACE_NOT_FOUND)
        ],
    )
    (folder / "error.json").write_text(error.model_dump_json())


def running_status(site: Site, **values) -> None:
    engine = EngineInfo(heygemd_version="test", device="cpu", batch_size=32, encoder="libx264")
    StatusFile(site.state).write(ServiceStatus(**{"state": "idle", "engine": engine, **values}))


# ---------------------------------------------------------------------------- files


def test_results_are_served_whole_in_ranges_and_as_a_zip(site):
    publish_done_job(site)
    with site.client() as client:
        job = client.get("/api/jobs/campaign").json()
        assert job["phase"] == "done" and job["status"] == "ok"
        video = job["videos"][0]
        assert video["thumbnail"]["name"] == "front.jpg" and video["output"]["size_bytes"] == len(VIDEO_BYTES)
        url = video["output"]["url"]
        whole = client.get(url)
        assert whole.status_code == 200 and whole.content == VIDEO_BYTES and whole.headers["accept-ranges"] == "bytes"
        assert whole.headers["content-type"] == "video/mp4" and whole.headers["content-disposition"].startswith("inline")
        cases = {
            "bytes=0-0": (0, 0),
            "bytes=100-": (100, len(VIDEO_BYTES) - 1),
            "bytes=-10": (len(VIDEO_BYTES) - 10, len(VIDEO_BYTES) - 1),
            "bytes=5000-999999": (5000, len(VIDEO_BYTES) - 1),
        }
        for header, (start, end) in cases.items():
            part = client.get(url, headers={"Range": header})
            assert part.status_code == 206 and part.content == VIDEO_BYTES[start : end + 1], header
            assert part.headers["content-range"] == f"bytes {start}-{end}/{len(VIDEO_BYTES)}"
            assert int(part.headers["content-length"]) == end - start + 1
        unsatisfiable = client.get(url, headers={"Range": f"bytes={len(VIDEO_BYTES)}-"})
        assert unsatisfiable.status_code == 416 and unsatisfiable.headers["content-range"] == f"bytes */{len(VIDEO_BYTES)}"
        assert client.get(url, headers={"Range": "bytes=0-1,5-6"}).status_code == 200  # several ranges: the whole file
        stale = client.get(url, headers={"Range": "bytes=0-9", "If-Range": '"an-older-etag"'})
        assert stale.status_code == 200 and stale.content == VIDEO_BYTES  # changed since: the whole file
        fresh = client.get(url, headers={"Range": "bytes=0-9", "If-Range": whole.headers["etag"]})
        assert fresh.status_code == 206
        head = client.head(url)
        assert head.status_code == 200 and head.headers["content-length"] == str(len(VIDEO_BYTES)) and not head.content
        assert client.get(url, headers={"If-None-Match": whole.headers["etag"]}).status_code == 304
        assert client.get(url + "?download=1").headers["content-disposition"].startswith("attachment")

        archive = client.get(job["zip_url"])
        assert archive.headers["content-type"] == "application/zip"
        with zipfile.ZipFile(io.BytesIO(archive.content)) as opened:
            assert sorted(opened.namelist()) == [
                "campaign/front.jpg",
                "campaign/front.json",
                "campaign/front.mp4",
                "campaign/job.json",
            ]
            assert opened.read("campaign/front.mp4") == VIDEO_BYTES and opened.testzip() is None


def test_the_links_of_the_webhook_events_lead_to_the_job_by_its_id(site):
    from heygemd.daemon.journal import JobRecord as Record
    from heygemd.daemon.webhooks import job_links

    publish_done_job(site)
    record = Record(
        job_id="J1",
        name="campaign",
        phase=Phase.DONE,
        outbox_path=site.outbox / "campaign",
        videos=[VideoRecord(template="front.mp4", output_stem="front", status=VideoStatus.OK)],
    )
    links = job_links(site.url, record)
    with site.client() as client:
        assert client.get(links.api).json()["id"] == "campaign"
        assert client.get(links.page).status_code == 200 and "campaign" in client.get(links.page).text
        assert zipfile.ZipFile(io.BytesIO(client.get(links.zip).content)).namelist()
        assert client.get(links.files["front.mp4"]).content == VIDEO_BYTES
        assert client.get(links.files["front.json"]).status_code == 200


def test_the_zip_streams_large_members_without_a_temporary_file(tmp_path):
    from heygemd.web.files import ZIP_CHUNK_BYTES, ZipMember, zip_stream

    folder = tmp_path / "outbox" / "job"
    folder.mkdir(parents=True)
    big = os.urandom(3 * ZIP_CHUNK_BYTES + 7)
    (folder / "big.mp4").write_bytes(big)
    (folder / "small.json").write_text("{}")
    members = [ZipMember(tmp_path / "outbox", "job", name, f"job/{name}") for name in ("big.mp4", "gone.mp4", "small.json")]
    pieces = [piece for piece in zip_stream(members) if piece]
    assert len(pieces) > 3 and max(map(len, pieces)) <= ZIP_CHUNK_BYTES + 1024  # it streams: no piece holds the whole
    with zipfile.ZipFile(io.BytesIO(b"".join(pieces))) as opened:
        assert opened.namelist() == ["job/big.mp4", "job/small.json"]  # a vanished file is left out
        assert opened.read("job/big.mp4") == big


def test_traversal_links_and_unknown_files_are_refused(site, tmp_path):
    publish_done_job(site)
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the web")
    (site.outbox / "campaign" / "link.mp4").symlink_to(secret)
    (site.outbox / "linked job").symlink_to(tmp_path)
    os.mkfifo(site.outbox / "campaign" / "pipe.mp4")
    with site.client() as client:
        listed = {file["name"] for file in client.get("/api/jobs/campaign").json()["files"]}
        assert listed == {"front.mp4", "front.json", "front.jpg", "job.json"}  # no link, no pipe
        for path in (
            "/api/jobs/campaign/files/outbox/link.mp4",
            "/api/jobs/campaign/files/outbox/pipe.mp4",
            "/api/jobs/campaign/files/outbox/..%2F..%2Fsecret.txt",
            "/api/jobs/campaign/files/outbox/%2e%2e",
            "/api/jobs/campaign/files/work/front.mp4",
            "/api/jobs/campaign/files/quarantine/front.mp4",
            "/api/jobs/..%2Fsecret.txt/files/outbox/secret.txt",
            "/api/jobs/linked%20job/files/outbox/secret.txt",
            "/api/jobs/campaign/files/outbox/.hidden",
            "/api/jobs/linked%20job/zip",
        ):
            answer = client.get(path)
            assert answer.status_code == 404, path
            assert answer.json()["error"]["kind"] in ("error.file_not_found", "error.job_not_found", "error.not_found"), path
            assert b"not for the web" not in answer.content
        assert client.get("/api/jobs/campaign/files/outbox/../../../secret.txt").status_code == 404


TEMPLATE_BYTES = bytes(range(255, -1, -1)) * 20  # 5 KiB standing in for the template the result was made from


def name_templates(site: Site, *templates: str) -> None:
    """Rewrite campaign's job.json so that its rendered videos name these templates (as a share's user could)."""
    path = site.outbox / "campaign" / "job.json"
    report = JobReport.model_validate_json(path.read_text())
    report.videos = [
        VideoResult(template=template, status=VideoStatus.OK, output="front.mp4", report="front.json")
        for template in templates
    ]
    path.write_text(report.model_dump_json())


def test_a_results_template_is_served_from_its_archive_or_the_library_and_from_nowhere_else(site, tmp_path):
    publish_done_job(site)
    archived = site.root / "archive" / "campaign"
    archived.mkdir(parents=True)
    (archived / "front.mp4").write_bytes(TEMPLATE_BYTES)
    (archived / "job.toml").write_text("loop = 'pingpong'\n")  # in the archive, but no result's template
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the web")
    (archived / "link.mp4").symlink_to(secret)
    anna = site.settings.paths.presenter_library / "anna"
    anna.mkdir(parents=True)
    (anna / "smile.png").write_bytes(TEMPLATE_BYTES[:100])
    with site.client() as client:
        before = client.get("/api/jobs/campaign").json()["videos"][0]["before"]
        assert before == {"available": True, "url": "/api/jobs/campaign/templates/front.mp4", "still": False}
        assert client.get(before["url"]).content == TEMPLATE_BYTES
        assert client.get(before["url"], headers={"Range": "bytes=0-9"}).content == TEMPLATE_BYTES[:10]
        page = client.get("/jobs/campaign").text
        assert 'class="before-after"' in page and f'src="{before["url"]}"' in page

        refused = [
            "/api/jobs/campaign/templates/job.toml",  # there, but named by no result
            "/api/jobs/campaign/templates/..%2F..%2Fsecret.txt",
            "/api/jobs/campaign/templates/%2e%2e/campaign/front.mp4",
            "/api/jobs/campaign/templates/anna/smile.png",  # the library's, but not this job's
            "/api/jobs/campaign/templates/link.mp4",
        ]
        # A report edited on the share reaches nothing outside the archive folder and the library either.
        library = site.settings.paths.presenter_library.absolute()
        name_templates(
            site, "link.mp4", "../secret.txt", str(secret), f"{library}/../x/front.mp4", f"{library}/.hidden/a.mp4"
        )
        assert [video["before"]["available"] for video in client.get("/api/jobs/campaign").json()["videos"]] == [False] * 5
        for path in (*refused, "/api/jobs/campaign/templates/link.mp4", "/api/jobs/campaign/templates/..%2Fsecret.txt"):
            answer = client.get(path)
            assert answer.status_code == 404 and answer.json()["error"]["kind"] == "error.file_not_found", path
            assert b"not for the web" not in answer.content
        assert "Template no longer available" in client.get("/jobs/campaign").text

        name_templates(site, str(anna / "smile.png"))  # a still of the presenter library
        before = client.get("/api/jobs/campaign").json()["videos"][0]["before"]
        assert before == {"available": True, "url": "/api/jobs/campaign/templates/anna/smile.png", "still": True}
        assert client.get(before["url"]).content == TEMPLATE_BYTES[:100]
        assert '<img class="template"' in client.get("/jobs/campaign").text

        (anna / "smile.png").unlink()  # the presenter deleted: the page says so, the route has nothing
        assert client.get("/api/jobs/campaign").json()["videos"][0]["before"]["available"] is False
        assert client.get(before["url"]).status_code == 404
        assert "模板已不在" in client.get("/jobs/campaign?lang=zh-CN").text

        name_templates(site, "front.mp4")
        assert client.get("/api/jobs/campaign").json()["videos"][0]["before"]["available"] is True
        path = site.outbox / "campaign" / "job.json"
        report = JobReport.model_validate_json(path.read_text())
        report.inputs = [InputFile(name="front.mp4", size_bytes=len(TEMPLATE_BYTES) + 1, mtime_ns=0, sha256="")]
        path.write_text(report.model_dump_json())  # the archive's front.mp4 is not the file that was rendered
        assert client.get("/api/jobs/campaign").json()["videos"][0]["before"]["available"] is False
        assert client.get("/api/jobs/campaign/templates/front.mp4").status_code == 404
        report.inputs = [InputFile(name="front.mp4", size_bytes=len(TEMPLATE_BYTES), mtime_ns=0, sha256="")]
        path.write_text(report.model_dump_json())
        assert client.get("/api/jobs/campaign/templates/front.mp4").content == TEMPLATE_BYTES
        shutil.rmtree(archived)  # retention, or outputs.after_success = "delete"
        assert client.get("/api/jobs/campaign").json()["videos"][0]["before"]["available"] is False


def test_a_quarantined_job_shows_its_code_and_reason_in_both_languages(site):
    quarantine_job(site)
    with site.client() as client:
        job = client.get("/api/jobs/broken").json()
        assert job["status"] == "failed" and job["problem"]["code"] == "face.not_found"
        assert job["problem"]["summary"] == "No face was found in the template video."
        assert job["videos"][0]["problem"]["code"] == "face.not_found"
        chinese = client.get("/api/jobs/broken", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"}).json()
        assert (
            chinese["problem"]["summary"] == "在模板视频里没有找到人脸。" and chinese["problem"]["code"] == "face.not_found"
        )
        page = client.get("/jobs/broken?lang=zh-CN")
        assert (
            '<html lang="zh-CN">' in page.text
            and "在模板视频里没有找到人脸。" in page.text
            and "face.not_found" in page.text
        )
        assert page.cookies.get("heygemd_lang") == "zh-CN"
        assert "在模板视频里没有找到人脸" in client.get("/jobs/broken").text  # the cookie keeps the choice
        assert "No face was found" in client.get("/jobs/broken?lang=en").text


# ---------------------------------------------------------------------------- uploads


def upload_files(
    media: dict[str, Path],
    audio: bytes | None = None,
    template: bytes | None = None,
    audio_name: str = "voice.wav",
    template_name: str = "front.mp4",
) -> list:
    """A job's files as a form sends them: real media (they are probed) unless other bytes are given."""
    audio = media["audio"].read_bytes() if audio is None else audio
    template = media["video"].read_bytes() if template is None else template
    return [("audio", (audio_name, audio, "audio/wav")), ("templates", (template_name, template, "video/mp4"))]


def inbox_names(site: Site) -> list[str]:
    return sorted(os.listdir(site.inbox))


def test_oversized_uploads_are_refused_and_leave_nothing(site_factory, media):
    site = site_factory(max_file_bytes=SMALL_LIMIT)
    with site.client() as client:
        answer = client.post("/api/jobs", files=upload_files(media, audio=TINY_AUDIO, template=b"x" * (SMALL_LIMIT + 1)))
        assert answer.status_code == 413
        error = answer.json()["error"]
        assert (error["kind"], error["code"]) == ("upload.file_too_large", "limit.file_too_large")
        assert '"front.mp4" is larger than this service accepts (4 KiB)' in error["message"]
        chinese = client.post(
            "/api/jobs",
            files=upload_files(media, audio=TINY_AUDIO, template=b"x" * (SMALL_LIMIT + 1)),
            headers={"Accept-Language": "zh"},
        ).json()["error"]["message"]
        assert chinese == "“front.mp4”超过了服务允许的大小（4 KiB）。"
    assert inbox_names(site) == []  # no job, no staging folder left behind

    whole = site_factory(max_upload_bytes=SMALL_LIMIT)
    with whole.client() as client:
        answer = client.post("/api/jobs", files=upload_files(media, audio=TINY_AUDIO, template=b"x" * (2 * SMALL_LIMIT)))
        assert answer.status_code == 413 and answer.json()["error"]["kind"] == "upload.too_large"
    assert inbox_names(whole) == []


def test_uploads_with_bad_names_or_contents_are_refused_with_the_contract_s_words(site, media):
    cases = [
        (upload_files(media, template_name="../escape.mp4"), "upload.bad_name", None),
        (upload_files(media, template_name=".hidden.mp4"), "upload.bad_name", None),
        (upload_files(media, template_name="notes.txt"), "upload.not_template", None),
        (upload_files(media, audio_name="voice.mp4"), "upload.not_audio", None),
        (upload_files(media, template=b""), "upload.contract", "input.empty"),
        ([upload_files(media)[0]], "upload.no_template", None),
    ]
    with site.client() as client:
        for files, kind, code in cases:
            answer = client.post("/api/jobs", files=files)
            assert answer.status_code == 400, answer.text
            assert (answer.json()["error"]["kind"], answer.json()["error"]["code"]) == (kind, code), files
        bad_options = client.post("/api/jobs", files=upload_files(media), data={"job_toml": "[render]\nloop = 'sideways'"})
        assert bad_options.json()["error"]["code"] == "job_toml.invalid"
        bad_name = client.post("/api/jobs", files=upload_files(media), data={"name": "a/b"})
        assert bad_name.json()["error"]["kind"] == "upload.bad_job_name"
    assert inbox_names(site) == []


def test_files_are_probed_at_upload_so_a_text_file_named_mp4_is_refused_at_once(site, media):
    text = b"Meeting notes\nnot a video at all\n" * 20
    with site.client() as client:
        template = client.post("/api/jobs", files=upload_files(media, template=text, template_name="notes.mp4"))
        audio = client.post("/api/jobs", files=upload_files(media, audio=text, audio_name="voice.mp3"))
        silent = client.post("/api/jobs", files=upload_files(media, audio=media["video"].read_bytes(), audio_name="v.m4a"))
        chinese = client.post(
            "/api/jobs",
            files=upload_files(media, template=text, template_name="notes.mp4"),
            headers={"Accept-Language": "zh"},
        )
    assert template.status_code == 415
    error = template.json()["error"]
    assert (error["kind"], error["code"]) == ("upload.contract", "input.undecodable")
    assert error["reason"] == '"notes.mp4" is not a video or audio file ffmpeg can read (it contains text).'
    assert audio.json()["error"]["code"] == "input.undecodable" and '"voice.mp3"' in audio.json()["error"]["reason"]
    assert silent.json()["error"]["code"] == "audio.unusable"  # a video without sound where the audio goes
    assert chinese.json()["error"]["message"].startswith("无法接受这个任务：")
    assert inbox_names(site) == []


def test_an_upload_arrives_in_the_inbox_in_one_rename_with_its_options(site, media):
    with site.client() as client:
        answer = client.post("/api/jobs", files=upload_files(media), data={"name": "spring", "loop": "freeze", "crf": "20"})
        assert answer.status_code == 201, answer.text
        assert answer.json()["id"] == "spring"
        job = client.get("/api/jobs/spring").json()
        assert job["phase"] == "queued" and [video["template"] for video in job["videos"]] == ["front.mp4"]
    assert inbox_names(site) == ["spring"]
    folder = site.inbox / "spring"
    assert sorted(os.listdir(folder)) == [UPLOAD_MARK, "front.mp4", "job.toml", "voice.wav"]  # the mark: claimed at once
    assert (folder / "front.mp4").read_bytes() == media["video"].read_bytes()
    assert (folder / "job.toml").read_text() == '[render]\nloop = "freeze"\ncrf = 20\n'


def test_in_marker_mode_an_upload_arrives_with_its_marker(site_factory, media):
    site = site_factory(watch=WatchConfig(readiness=Readiness.MARKER, marker_name="READY"))
    with site.client() as client:
        assert client.post("/api/jobs", files=upload_files(media)).json()["id"] == "voice"  # named after the audio
    assert sorted(os.listdir(site.inbox / "voice")) == [UPLOAD_MARK, "READY", "front.mp4", "voice.wav"]


def test_the_services_of_several_instances_are_found_in_the_state_folder(tmp_path):
    settings = make_site(tmp_path)
    for instance in ("gpu0", "gpu1"):
        StatusFile(tmp_path / "state" / instance).write(ServiceStatus(state="idle"))
    (tmp_path / "state" / "face-tracks").mkdir()  # not a service's folder
    assert [folder.name for folder in settings.state_folders()] == ["gpu0", "gpu1"]
    StatusFile(tmp_path / "state").write(ServiceStatus(state="idle"))  # one service on the folder itself, too
    assert [folder.name for folder in settings.state_folders()] == ["state", "gpu0", "gpu1"]
    configured = WebSettings.from_config(HeygemdConfig(web=WebConfig(state_folders=[tmp_path / "elsewhere"])))
    assert configured.state_folders() == [tmp_path / "elsewhere"]


def test_a_partly_done_job_serves_both_its_folders_in_one_zip(site):
    publish_done_job(site, "mixed")
    quarantine_job(site, "mixed")
    Journal(site.state).append_history(
        HistoryEntry(  # the service's line for a partial job names both folders
            job="mixed",
            job_id="J1",
            status=JobStatus.PARTIAL,
            finished_at=utc_now(),
            seconds=1.0,
            videos_ok=1,
            videos_failed=1,
            outbox=site.outbox / "mixed",
            quarantine=site.quarantine / "mixed",
        )
    )
    with site.client() as client:
        job = client.get("/api/jobs/mixed").json()
        assert {(file["area"], file["name"]) for file in job["files"]} >= {
            ("outbox", "front.mp4"),
            ("quarantine", "error.json"),
        }
        assert [(video["template"], video["status"]) for video in job["videos"]] == [
            ("front.mp4", "ok"),
            ("side.mp4", "failed"),
        ]
        with zipfile.ZipFile(io.BytesIO(client.get(job["zip_url"]).content)) as opened:
            assert {"mixed/front.mp4", "mixed/quarantine/error.json", "mixed/quarantine/voice.wav"} <= set(opened.namelist())
        assert client.get("/api/jobs/mixed/files/quarantine/voice.wav").content == b"RIFF"


def test_stale_staging_folders_of_a_dead_upload_are_removed(tmp_path):
    from heygemd.names import machine_tag
    from heygemd.web.upload import STAGING_NAME, remove_stale_staging

    dead = tmp_path / f".{STAGING_NAME}.heygemd-{machine_tag()}-999999999-abcdef.tmp"
    alive = tmp_path / f".{STAGING_NAME}.heygemd-{machine_tag()}-{os.getpid()}-abcdef.tmp"
    other = tmp_path / f".voice.wav.heygemd-{machine_tag()}-999999999-abcdef.tmp"  # not the web's: left alone
    for folder in (dead, alive, other):
        folder.mkdir()
    assert remove_stale_staging(tmp_path) == [dead.name]
    assert sorted(os.listdir(tmp_path)) == sorted([alive.name, other.name])


# ---------------------------------------------------------------------------- sign-in and cross-site writes


def test_without_the_token_nothing_is_shown_and_nothing_is_done(site_factory, media):
    site = site_factory(token=TOKEN)
    publish_done_job(site)
    with site.client() as client:
        for path in (
            "/api/status",
            "/api/jobs/campaign",
            "/api/jobs/campaign/files/outbox/front.mp4",
            "/metrics",
            "/api/jobs/campaign/zip",
            "/openapi.json",
        ):
            answer = client.get(path)
            assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer", path
            assert answer.json()["error"]["kind"] == "auth.required"
        assert client.get("/api/status", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.post("/api/pause").status_code == 401
        assert client.post("/api/jobs", files=upload_files(media)).status_code == 401
        page = client.get("/jobs/campaign")
        assert page.status_code == 303 and page.headers["location"] == "/login?next=%2Fjobs%2Fcampaign"
        assert client.get("/docs").status_code == 303 and client.get("/jobs/J1/zip").status_code == 303
        assert client.get("/static/app.js").status_code == 200 and client.get("/healthz").status_code == 200
    assert not read_control(site.state).paused and inbox_names(site) == []

    with site.client(headers={"Authorization": f"Bearer {TOKEN}"}) as script:
        assert script.get("/api/jobs/campaign").status_code == 200
        assert script.post("/api/pause").json() == {"paused": True, "services": ["state"]}
        assert script.get("/metrics").status_code == 200
        assert script.get("/openapi.json").json()["info"]["title"] == "heygemd"
        assert "swagger" in script.get("/docs").text.lower()

    with site.client() as browser:
        login = browser.get("/login")
        csrf = browser.cookies["heygemd_csrf"]
        wrong = browser.post("/login", data={"token": "guess", "csrf_token": csrf, "next": "/"})
        assert wrong.status_code == 401 and "That password is not right." in wrong.text
        right = browser.post("/login", data={"token": TOKEN, "csrf_token": csrf, "next": "//evil.example/"})
        assert right.status_code == 303 and right.headers["location"] == "/"  # never sent to another site
        session = browser.cookies["heygemd_session"]
        assert TOKEN not in session and login.status_code == 200
        assert browser.get("/jobs/campaign").status_code == 200


def test_writes_from_other_sites_or_without_the_csrf_token_are_refused(site, media):
    publish_done_job(site)
    with site.client() as client:
        page = client.get("/")
        csrf = client.cookies["heygemd_csrf"]
        assert f'content="{csrf}"' in page.text
        evil = client.post("/api/pause", headers={"Origin": "http://evil.example"})
        assert evil.status_code == 403 and evil.json()["error"]["kind"] == "csrf.cross_site"
        forged = client.post("/pause", data={"csrf_token": "forged"}, headers={"Origin": site.url})
        assert forged.status_code == 403 and "Refused: the form is out of date" in forged.text
        no_header = client.post("/api/pause", headers={"Origin": site.url})
        assert no_header.status_code == 403 and no_header.json()["error"]["kind"] == "csrf.missing"
        cross_upload = client.post(
            "/upload", files=upload_files(media), data={"csrf_token": csrf}, headers={"Origin": "http://evil.example"}
        )
        assert cross_upload.status_code == 403
        no_token_upload = client.post("/upload", files=upload_files(media), headers={"Origin": site.url})
        assert no_token_upload.status_code == 403
        assert inbox_names(site) == [] and not read_control(site.state).paused

        assert client.post("/pause", data={"csrf_token": csrf}, headers={"Origin": site.url}).status_code == 303
        assert read_control(site.state).paused
        assert client.post("/api/resume", headers={"X-CSRF-Token": csrf, "Origin": site.url}).json()["paused"] is False
        uploaded = client.post(
            "/upload", files=upload_files(media), data={"csrf_token": csrf, "name": "by form"}, headers={"Origin": site.url}
        )
        assert uploaded.status_code == 303 and uploaded.headers["location"] == "/jobs/by%20form"
    with httpx.Client(base_url=site.url) as script:  # no cookie, no Origin: a script, which needs no CSRF token
        assert script.post("/api/pause").status_code == 200
    assert inbox_names(site) == ["by form"]


# ---------------------------------------------------------------------------- control, status, metrics


def test_cancel_and_pause_write_the_control_file(site):
    running_status(site)
    (site.inbox / "waiting job").mkdir()
    publish_done_job(site)
    with site.client() as client:
        answer = client.post("/api/jobs/waiting%20job/cancel")
        assert answer.status_code == 202 and answer.json() == {
            "id": "waiting job",
            "cancel_requested": True,
            "services": ["state"],
        }
        assert [request.job for request in read_control(site.state).cancel] == ["waiting job"]
        assert client.get("/api/jobs/waiting%20job").json()["cancel_requested"] is True
        assert client.post("/api/jobs/campaign/cancel").status_code == 409  # finished: nothing to cancel
        assert client.post("/api/jobs/nobody/cancel").status_code == 404
        assert client.post("/api/pause", params={"service": "nowhere"}).status_code == 404
        assert client.post("/api/pause", params={"service": "state"}).json()["paused"] is True
        assert client.get("/api/status").json()["paused"] is True


def test_pause_and_resume_address_a_service_by_the_name_the_page_shows(site):
    second = site.state / "gpu1"  # a second service's state folder inside paths.state, named by service.name
    second.mkdir()
    engine = EngineInfo(heygemd_version="test", device="cuda:1", batch_size=32, encoder="libx264")
    StatusFile(second).write(ServiceStatus(state="idle", engine=engine, name="render box B"))
    running_status(site, name="render box A")
    with site.client() as client:
        shown = [service["name"] for service in client.get("/api/status").json()["services"]]
        assert shown == ["render box A", "render box B"]
        answer = client.post("/api/pause", params={"service": "render box B"}).json()
        assert answer == {"paused": True, "services": ["render box B"]}
        assert read_control(second).paused and not read_control(site.state).paused
        assert client.post("/api/pause", params={"service": ["render box A", "gpu9"]}).status_code == 404
        assert not read_control(site.state).paused  # nothing written when one name is unknown
        both = client.post("/api/resume", params={"service": ["render box A", "render box B"]}).json()
        assert sorted(both["services"]) == ["render box A", "render box B"] and not read_control(second).paused
        assert client.post("/api/pause", params={"service": "gpu1"}).json()["services"] == ["render box B"]  # its folder


def test_a_job_is_found_along_its_way(site):
    running_status(site, arriving=["uploading"], waiting_for={"uploading": '"voice.wav" still open for writing'})
    (site.inbox / "uploading").mkdir()
    now = utc_now()
    record = JobRecord(
        job_id="J9",
        name="claimed job",
        phase=Phase.RENDERING,
        claimed_at=now - timedelta(seconds=5),
        videos=[
            VideoRecord(template="a.mp4", output_stem="a", status=VideoStatus.OK),
            VideoRecord(template="b.mp4", output_stem="b"),
        ],
    )
    Journal(site.state).save(record)
    current = CurrentJob(job="claimed job", job_id="J9", video="b.mp4", index=2, total=2)
    current.advance(40, 100, ProgressStage.RENDER, now=now - timedelta(seconds=2))
    current.advance(60, 100, ProgressStage.RENDER, now=now)
    running_status(
        site,
        arriving=["uploading"],
        waiting_for={"uploading": '"voice.wav" still open for writing'},
        current=current,
        state="working",
    )
    with site.client() as client:
        arriving = client.get("/api/jobs/uploading").json()
        assert arriving["phase"] == "arriving" and arriving["waiting_for"] == '"voice.wav" still open for writing'
        rendering = client.get("/api/jobs/claimed%20job").json()
        assert rendering["phase"] == "rendering" and rendering["service"] == "state"
        assert [video["status"] for video in rendering["videos"]] == ["ok", "rendering"]
        assert rendering["videos"][1]["progress"]["frames_done"] == 60
        overview = client.get("/api/status").json()
        assert overview["services"][0]["current"]["id"] == "claimed job"
        assert [(item["id"], item["phase"]) for item in overview["queue"]] == [("uploading", "arriving")]
        page = client.get("/")
        assert 'value="60.0"' in page.text and "60 of 100 frames" in page.text


def test_the_dashboard_shows_each_workers_task_in_cluster_mode(site):
    current = CurrentJob(job="spread", job_id="J1", video="a.mp4", index=1, total=2)
    tasks = [
        WorkerTask(
            video="a.mp4",
            task_id="t1",
            state="started",
            worker="gpu-box-0",
            stage="render",
            frames_done=30,
            frames_total=120,
            percent=25.0,
        ),
        WorkerTask(video="b.mp4", task_id="t2", state="queued"),
    ]
    running_status(site, current=current, state="working", tasks=tasks)
    with site.client() as client:
        service = client.get("/api/status").json()["services"][0]
        assert [(task["video"], task["worker"], task["percent"]) for task in service["tasks"]] == [
            ("a.mp4", "gpu-box-0", 25.0),
            ("b.mp4", None, None),
        ]
        page = client.get("/").text
        assert 'data-task="t1"' in page and "gpu-box-0" in page and "25%" in page and "waiting for a worker" in page
        chinese = client.get("/?lang=zh-CN").text
        assert "渲染节点" in chinese and "等待渲染节点" in chinese


def test_metrics_follow_the_services_files(site):
    metrics = Metrics()
    metrics.counters.jobs = {"ok": 3, "failed/face.not_found": 1}
    metrics.counters.videos = {"ok": 5}
    metrics.counters.video_seconds_produced = 12.5
    for seconds in (3, 40, 4000):
        metrics.counters.render_seconds.observe(seconds)
    metrics.gauges = metrics.gauges.model_copy(
        update={"up": True, "ready": True, "queue_length": 2, "free_bytes": {"outbox": 1000, "work": 2000}}
    )
    write_metrics(site.state, metrics)
    running_status(site)
    with site.client() as client:
        text = client.get("/metrics").text
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    service = ("service", "state")
    assert samples[("heygemd_jobs_finished_total", (("code", ""), service, ("status", "ok")))] == 3
    assert samples[("heygemd_jobs_finished_total", (("code", "face.not_found"), service, ("status", "failed")))] == 1
    assert samples[("heygemd_video_seconds_produced_total", (service,))] == 12.5
    assert samples[("heygemd_render_seconds_bucket", (("le", "5.0"), service))] == 1
    assert samples[("heygemd_render_seconds_bucket", (("le", "60.0"), service))] == 2
    assert samples[("heygemd_render_seconds_bucket", (("le", "+Inf"), service))] == 3
    assert samples[("heygemd_render_seconds_count", (service,))] == 3
    assert samples[("heygemd_free_bytes", (("filesystem", "work"), service))] == 2000
    assert samples[("heygemd_up", (service,))] == 1 and samples[("heygemd_queue_length", (service,))] == 2

    StatusFile(site.state).write(ServiceStatus(state="idle", pid=999999999))  # the process is gone: not up
    with site.client() as client:
        families = {family.name: family for family in text_string_to_metric_families(client.get("/metrics").text)}
    assert families["heygemd_up"].samples[0].value == 0 and families["heygemd_ready"].samples[0].value == 0


def test_the_openapi_description_lists_every_action(site):
    with site.client() as client:
        spec = client.get("/openapi.json").json()
    operations = {(path, method) for path, methods in spec["paths"].items() for method in methods}
    assert {
        ("/api/jobs", "post"),
        ("/api/jobs/{job}", "get"),
        ("/api/jobs", "get"),
        ("/api/jobs/{job}/cancel", "post"),
        ("/api/pause", "post"),
        ("/api/resume", "post"),
        ("/api/jobs/{job}/zip", "get"),
        ("/api/jobs/{job}/files/{area}/{name}", "get"),
        ("/api/status", "get"),
    } <= operations
    upload = spec["paths"]["/api/jobs"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert "required" not in upload  # audio or a script, templates or presenters: either of each
    assert {"audio", "templates", "presenters", "script"} <= set(upload["properties"])
    json.dumps(spec)


def visible_text(html: str) -> str:
    """The words a person sees, without the service's own (English) sentences, which are marked lang="en"."""
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    html = re.sub(r'<(span|ul)\b[^>]*lang="en"[^>]*>.*?</\1>', " ", html, flags=re.S)
    shown = re.findall(r'(?:placeholder|title)="([^"]*)"', html)
    return " ".join([*shown, *re.sub(r"<[^>]+>", " ", html).split()])


def test_the_chinese_pages_hold_no_english_words_of_the_page(site):
    from heygemd.web.i18n import MESSAGES

    publish_done_job(site)
    quarantine_job(site)
    running_status(site)
    english = {text for text, chinese in MESSAGES.values() if text != chinese and len(text) > 3 and "{" not in text}
    with site.client(headers={"Accept-Language": "en"}) as client:
        assert "Latest results" in visible_text(client.get("/").text)  # the check sees English where there is some
    with site.client(headers={"Accept-Language": "zh-CN"}) as client:
        for path in (
            "/",
            "/jobs/campaign",
            "/jobs/broken",
            "/upload",
            "/presenters",
            "/jobs/nobody",
            "/results",
            "/results?q=zzz",
            "/docs",
        ):
            shown = visible_text(client.get(path).text)
            assert not [text for text in english if text in shown], path


# ---------------------------------------------------------------------------- the job page says it all


CHECKPOINT_NOTE = "the checkpoint is not a published Wav2Lip file (sha256 abc…): results may look wrong"


def render_report(warnings: list[str]) -> RenderReport:
    """A render's report as the engine writes it beside a result (front.json), with these warnings."""
    now = utc_now()
    return RenderReport(
        heygemd_version="test",
        started_at=now,
        finished_at=now,
        audio=AudioInput(
            path=Path("a.wav"),
            sha256="a",
            size_bytes=1,
            duration_s=1.0,
            sample_rate=16000,
            channels=1,
            codec="pcm",
            snapshot_sha256="s",
            snapshot_duration_s=1.0,
        ),
        video=VideoInput(
            path=Path("front.mp4"),
            sha256="v",
            size_bytes=1,
            duration_s=1.0,
            fps=25,
            width=16,
            height=16,
            frame_count=25,
            codec="h264",
        ),
        output=OutputFile(
            path=Path("front.mp4"),
            duration_s=1.0,
            planned_duration_s=1.0,
            audio_duration_s=1.0,
            audio_sample_rate=16000,
            audio_channels=1,
            fps=25,
            width=16,
            height=16,
            frame_count=25,
            crf=18,
        ),
        options=RenderOptions(),
        faces=FaceStats(detector="lbp", frames_with_face=25, frames_without_face=0),
        device="cpu",
        timings=StageTimings(),
        warnings=warnings,
    )


def test_the_job_page_names_the_audio_says_dry_run_and_shows_the_render_warnings(site):
    publish_done_job(site)
    (site.outbox / "campaign" / "front.json").write_text(render_report([CHECKPOINT_NOTE]).model_dump_json())
    with site.client() as client:
        job = client.get("/api/jobs/campaign").json()
        assert job["audio"] == "a.wav" and job["dry_run"] is True
        assert job["videos"][0]["warnings"] == [
            {
                "kind": "text",
                "video": "front.mp4",
                "text": CHECKPOINT_NOTE,
                **dict.fromkeys(("count", "total", "policy", "fps")),
            }
        ]
        page = client.get("/jobs/campaign").text
    facts = re.search(r'<p class="facts" id="job-facts">(.*?)</p>', page, flags=re.S)
    assert facts is not None and "Audio: a.wav" in facts.group(1)
    assert '<span class="badge dry-run" id="dry-run">dry run (no model)</span>' in page
    assert f"front.mp4: {CHECKPOINT_NOTE}" in page and "a note from the service" in page


def test_a_cancelled_job_does_not_say_it_has_no_video_yet(site):
    folder = site.quarantine / "stopped early"
    folder.mkdir()
    (folder / "voice.wav").write_bytes(b"RIFF")
    (folder / "front.mp4").write_bytes(VIDEO_BYTES)
    failure = Failure(code=ErrorCode.CANCELLED, reason="cancelled by web before it started")
    (folder / "error.json").write_text(ErrorReport.of("stopped early", "J7", failure).model_dump_json())
    with site.client() as client:
        assert client.get("/api/jobs/stopped%20early").json()["audio"] == "voice.wav"
        page = client.get("/jobs/stopped%20early").text
    assert "No video was made." in page and "No video yet" not in page


def test_a_paused_service_says_paused_once(site):
    running_status(site, state="paused")
    request_pause(site.state, True)
    with site.client() as client:
        service = re.search(r'<article class="card service".*?</header>', client.get("/").text, flags=re.S)
    assert service is not None and service.group(0).count(">paused<") == 1


# ---------------------------------------------------------------------------- the gallery, deleting, whole-job progress


def test_the_results_are_searched_by_name_and_paged(site):
    from heygemd.web.gallery import PAGE_SIZE

    for number in range(PAGE_SIZE + 2):
        publish_done_job(site, f"clip {number:02d}")
    publish_done_job(site, "campaign")
    with site.client() as client:
        first = client.get("/api/results").json()
        assert (first["total"], first["pages"], len(first["items"])) == (PAGE_SIZE + 3, 2, PAGE_SIZE)
        assert first["items"][0]["id"] == "campaign"  # newest first
        assert first["items"][0]["video"]["url"].endswith("/outbox/front.mp4")
        second = client.get("/api/results", params={"page": 2}).json()
        assert [item["id"] for item in second["items"]] == ["clip 02", "clip 01", "clip 00"]
        searched = client.get("/api/results", params={"q": "CAMP"}).json()
        assert [item["id"] for item in searched["items"]] == ["campaign"] and searched["pages"] == 1
        page = client.get("/results", params={"q": "clip", "page": 2}).text
        assert 'rel="prev"' in page and 'rel="next"' not in page and "Page 2 of 2" in page
        assert client.get("/results", params={"q": "nothing like it"}).text.count('class="result ') == 0


def test_a_finished_job_is_deleted_with_its_folders_and_nothing_else(site):
    publish_done_job(site)
    publish_done_job(site, "kept")
    quarantine_job(site)
    (site.inbox / "waiting").mkdir()
    with site.client() as client:
        assert client.delete("/api/jobs/waiting").status_code == 409  # not finished: cancel it first
        assert client.delete("/api/jobs/nobody").status_code == 404
        answer = client.delete("/api/jobs/campaign")
        assert answer.status_code == 200 and answer.json() == {"id": "campaign", "removed": ["outbox"]}
        assert client.delete("/api/jobs/campaign").status_code == 404  # nothing left to delete
        assert client.delete("/api/jobs/broken").json()["removed"] == ["quarantine"]
        assert [item["id"] for item in client.get("/api/results").json()["items"]] == ["kept"]
        assert 'data-job="campaign"' not in client.get("/").text
    assert os.listdir(site.outbox) == ["kept"] and os.listdir(site.quarantine) == []
    assert os.listdir(site.inbox) == ["waiting"]


def test_a_rendering_job_shows_its_whole_progress_and_time_left(site):
    record = JobRecord(
        job_id="J5",
        name="three",
        phase=Phase.RENDERING,
        videos=[
            VideoRecord(template="a.mp4", output_stem="a", status=VideoStatus.OK),
            VideoRecord(template="b.mp4", output_stem="b"),
            VideoRecord(template="c.mp4", output_stem="c"),
        ],
    )
    Journal(site.state).save(record)
    current = CurrentJob(job="three", job_id="J5", video="b.mp4", index=2, total=3)
    now = utc_now()
    current.advance(0, 100, ProgressStage.RENDER, now=now - timedelta(seconds=10))
    current.advance(50, 100, ProgressStage.RENDER, now=now)
    running_status(site, current=current, state="working")
    with site.client() as client:
        job = client.get("/api/jobs/three").json()
        eta = job["videos"][1]["progress"]["eta_seconds"]
        assert job["progress"]["percent"] == 50.0 and (job["progress"]["videos_done"], job["progress"]["videos_total"]) == (
            1,
            3,
        )
        assert job["progress"]["eta_seconds"] == pytest.approx(eta + 2 * eta)  # b's time left, then c as long as all of b
        page = client.get("/jobs/three").text
        dashboard = client.get("/").text
    for shown in (page, dashboard):
        assert '<div class="progress whole-job">' in shown and "50% · 1 of 3 videos" in shown


def test_the_page_says_when_no_service_is_running(site, media):
    with site.client() as client:
        assert client.post("/api/jobs", files=upload_files(media), data={"name": "alone"}).status_code == 201
        assert 'id="no-service"' in client.get("/").text
        assert "this job waits in the inbox until one starts" in client.get("/jobs/alone").text
        running_status(site)  # a service up (this process stands for it)
        assert 'id="no-service"' not in client.get("/").text and 'id="no-service"' not in client.get("/jobs/alone").text
