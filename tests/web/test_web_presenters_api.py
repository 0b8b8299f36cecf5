"""The presenter library, the voices, the script preview and jobs from presenters and a typed script, over HTTP.

`heygemd web`'s application under uvicorn on real folders: real uploads, real probes, real espeak-ng speech.
"""

from __future__ import annotations

import io
import os
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from media_factory import make_still
from webserver import WebThread

from heygemd.daemon.config import HeygemdConfig, PathsConfig
from heygemd.speech.text import split_sentences
from heygemd.uploadmark import UPLOAD_MARK
from heygemd.web.app import create_app
from heygemd.web.settings import WebSettings
from heygemd.web.speaking import PREVIEW_MAX_CHARS, preview_text

LONG_SCRIPT = " ".join(f"This is sentence number {number} of a long script." for number in range(1, 40))


@dataclass
class Library:
    root: Path
    url: str

    @property
    def presenters(self) -> Path:
        return self.root / "presenters"

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Library]:
    names = ("inbox", "outbox", "quarantine", "work", "archive", "state")
    paths = PathsConfig(**{name: tmp_path / name for name in names})
    for name in names:
        (tmp_path / name).mkdir()
    server = WebThread(create_app(WebSettings.from_config(HeygemdConfig(paths=paths)))).start()
    try:
        yield Library(tmp_path, server.url)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def still(tmp_path_factory) -> Path:
    return make_still(tmp_path_factory.mktemp("presenter-still") / "portrait.png")


def templates(media: dict[str, Path], still: Path | None = None) -> list:
    files = [("templates", ("front.mp4", media["video"].read_bytes(), "video/mp4"))]
    if still is not None:
        files.append(("templates", ("portrait.png", still.read_bytes(), "image/png")))
    return files


def add(client: httpx.Client, name: str, files: list) -> httpx.Response:
    return client.post("/api/presenters", data={"name": name}, files=files)


def frames(wav: bytes) -> int:
    with wave.open(io.BytesIO(wav)) as spoken:
        return spoken.getnframes()


def visible(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


def test_a_presenter_is_uploaded_once_listed_with_thumbnails_renamed_and_deleted(site, media, still):
    with site.client() as client:
        answer = add(client, "anna", templates(media, still))
        assert answer.status_code == 201, answer.text
        assert [item["name"] for item in answer.json()["templates"]] == ["front.mp4", "portrait.png"]
        assert visible(site.presenters) == ["anna"]  # the staging folder renamed in, nothing else left
        assert (site.presenters / "anna" / "front.mp4").read_bytes() == media["video"].read_bytes()

        listed = client.get("/api/presenters").json()["presenters"]
        assert [(p["name"], [t["kind"] for t in p["templates"]]) for p in listed] == [("anna", ["video", "still"])]
        frame = client.get(listed[0]["templates"][0]["thumbnail_url"])
        assert frame.status_code == 200 and frame.headers["content-type"] == "image/jpeg"
        assert frame.content.startswith(b"\xff\xd8")  # a JPEG frame read from the video
        again = client.get(listed[0]["templates"][0]["thumbnail_url"], headers={"If-None-Match": frame.headers["etag"]})
        assert again.status_code == 304 and again.content == b""  # the browser's copy is current: no frame read
        replaced = site.presenters / "anna" / "front.mp4"
        replaced.write_bytes(replaced.read_bytes() + b"\0")  # another file now: another tag, a new frame
        fresh = client.get(listed[0]["templates"][0]["thumbnail_url"], headers={"If-None-Match": frame.headers["etag"]})
        assert fresh.status_code == 200 and fresh.headers["etag"] != frame.headers["etag"]
        picture = client.get(listed[0]["templates"][1]["thumbnail_url"])
        assert picture.headers["content-type"] == "image/png" and picture.content == still.read_bytes()

        assert add(client, "ben", templates(media)).status_code == 201
        taken = client.patch("/api/presenters/anna", json={"name": "ben"})
        assert taken.status_code == 409 and taken.json()["error"]["kind"] == "presenter.exists"
        renamed = client.patch("/api/presenters/anna", json={"name": "anna lee"})
        assert renamed.status_code == 200 and renamed.json()["name"] == "anna lee"
        assert visible(site.presenters) == ["anna lee", "ben"]

        assert client.delete("/api/presenters/ben").json() == {"name": "ben", "deleted": True}
        assert visible(site.presenters) == ["anna lee"]
        gone = client.delete("/api/presenters/ben")
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "presenter.unknown"


def test_bad_presenters_are_refused_with_their_codes_and_leave_nothing(site, media, tmp_path):
    with site.client() as client:
        bad = add(client, "../escape", templates(media))
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "presenter.bad_name"
        slash = add(client, "anna/front.mp4", templates(media))
        assert slash.status_code == 400 and slash.json()["error"]["code"] == "presenter.bad_name"
        fake = add(client, "fake", [("templates", ("front.mp4", b"not a video at all", "video/mp4"))])
        assert fake.status_code == 415 and fake.json()["error"]["code"] == "input.undecodable"
        empty = client.post("/api/presenters", data={"name": "nobody"}, files=[("unused", ("", b"", "text/plain"))])
        assert empty.status_code == 400 and empty.json()["error"]["kind"] == "presenter.no_template"
        assert add(client, "anna", templates(media)).status_code == 201
        hidden = client.patch("/api/presenters/anna", json={"name": ".hidden"})
        assert hidden.status_code == 400 and hidden.json()["error"]["code"] == "presenter.bad_name"
        again = add(client, "anna", templates(media))
        assert again.status_code == 409 and again.json()["error"]["kind"] == "presenter.exists"
    assert visible(site.presenters) == ["anna"]  # no staging folder of a refused upload is left behind
    assert visible(site.presenters / "anna") == ["front.mp4"]


def test_the_page_deletes_a_presenter_only_when_the_deletion_is_confirmed(site, media):
    with site.client() as client:
        add(client, "anna", templates(media))
        page = client.get("/presenters")
        assert page.status_code == 200 and "presenters = [&#34;anna&#34;]" in page.text
        assert "/api/presenters/anna/templates/front.mp4/thumbnail" in page.text
        form, origin = {"csrf_token": client.cookies["heygemd_csrf"]}, {"Origin": site.url}
        unconfirmed = client.post("/presenters/anna/delete", data=form, headers=origin)
        assert unconfirmed.status_code == 400 and "Yes, delete" in unconfirmed.text
        assert visible(site.presenters) == ["anna"]
        forged = client.post("/presenters/anna/delete", data={"confirm": "yes"}, headers=origin)
        assert forged.status_code == 403 and visible(site.presenters) == ["anna"]
        confirmed = client.post("/presenters/anna/delete", data={**form, "confirm": "yes"}, headers=origin)
        assert confirmed.status_code == 303 and confirmed.headers["location"] == "/presenters"
        assert visible(site.presenters) == []


def test_a_typed_script_with_two_presenters_becomes_one_job_folder(site, media):
    with site.client() as client:
        add(client, "anna", templates(media))
        add(client, "ben", templates(media))
        form = {
            "presenters": ["anna", "ben"],
            "script": "Hello there. This is a test.",
            "voice": "espeak-ng",
            "language": "en",
            "speed": "1.25",
        }
        answer = client.post("/api/jobs", data=form, files=[("unused", ("", b"", "text/plain"))])
        assert answer.status_code == 201, answer.text
        assert answer.json()["id"] == "script"
        job = client.get("/api/jobs/script").json()
        assert [video["template"] for video in job["videos"]] == ["anna/front.mp4", "ben/front.mp4"]
    folder = site.inbox / "script"
    assert visible(folder) == sorted([UPLOAD_MARK, "job.toml", "script.txt"])  # the mark: claimed at once
    assert (folder / "script.txt").read_text(encoding="utf-8") == "Hello there. This is a test.\n"
    assert (folder / "job.toml").read_text(encoding="utf-8") == (
        'presenters = ["anna", "ben"]\nvoice = "espeak-ng"\nlanguage = "en"\nspeed = 1.25\n'
    )


def test_jobs_naming_presenters_are_checked_as_the_service_will(site, media):
    with site.client() as client:
        add(client, "anna", templates(media))
        unknown = client.post("/api/jobs", data={"presenters": "anna, nobody", "script": "Hi."}, files=[("x", ("", b""))])
        assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "presenter.unknown"
        audio = ("audio", ("voice.wav", media["audio"].read_bytes(), "audio/wav"))
        both = client.post("/api/jobs", data={"presenters": "anna", "script": "Hi."}, files=[audio])
        assert both.status_code == 400 and both.json()["error"]["code"] == "job.audio_and_script"
        nothing = client.post("/api/jobs", data={"script": "Hi."}, files=[("x", ("", b""))])
        assert nothing.status_code == 400 and nothing.json()["error"]["kind"] == "upload.no_template"
        long = client.post("/api/jobs", data={"presenters": "anna", "script": "word " * 5000}, files=[("x", ("", b""))])
        assert long.status_code == 413 and long.json()["error"]["code"] == "limit.script_too_long"
        second = ("audio", ("second.wav", media["audio"].read_bytes(), "audio/wav"))
        several = client.post("/api/jobs", data={"presenters": "anna"}, files=[audio, second])
        assert several.status_code == 201, several.text  # several audio files: each rendered with every template
    assert visible(site.inbox) == ["voice"]
    assert visible(site.inbox / "voice") == sorted([UPLOAD_MARK, "job.toml", "second.wav", "voice.wav"])


def test_the_voices_are_those_the_doctor_lists(site):
    with site.client() as client:
        voices = {voice["engine"]: voice for voice in client.get("/api/voices").json()["voices"]}
    assert voices["espeak-ng"]["usable"] and {"en", "zh"} <= set(voices["espeak-ng"]["languages"])
    assert not voices["kokoro"]["usable"] and "missing" in voices["kokoro"]["detail"]  # no weights in the tests


def test_the_preview_speaks_the_script_s_first_sentences_only(site):
    with site.client() as client:
        answer = client.post("/api/speech/preview", json={"text": LONG_SCRIPT, "voice": "espeak-ng", "language": "en"})
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "audio/wav"
        start = preview_text(LONG_SCRIPT, split_sentences(LONG_SCRIPT))
        same = client.post("/api/speech/preview", json={"text": start, "voice": "espeak-ng", "language": "en"})
        zh = client.post("/api/speech/preview", json={"text": "你好，欢迎。", "voice": "espeak-ng"})
        bad_voice = client.post("/api/speech/preview", json={"text": "Hello.", "voice": "robot"})
        unsupported = client.post("/api/speech/preview", json={"text": "Hello.", "voice": "espeak-ng", "language": "xx"})
        too_fast = client.post("/api/speech/preview", json={"text": "Hello.", "speed": 9})
    assert len(start) <= PREVIEW_MAX_CHARS < len(LONG_SCRIPT) / 5
    # only the start of the long script was spoken: as long as its first sentences (espeak-ng varies by a few samples)
    assert 0 < frames(answer.content) == pytest.approx(frames(same.content), rel=0.05)
    assert zh.status_code == 200 and zh.content.startswith(b"RIFF")  # auto language: Mandarin from the writing
    assert bad_voice.status_code == 400 and bad_voice.json()["error"]["kind"] == "speech.bad_voice"
    assert unsupported.status_code == 400 and unsupported.json()["error"]["code"] == "script.language_unsupported"
    assert too_fast.status_code == 422


def test_the_preview_text_keeps_whole_sentences_within_the_bound():
    assert preview_text("One. Two.", ["One.", "Two."]) == "One. Two."
    long = "x" * (PREVIEW_MAX_CHARS * 2)
    assert preview_text(long, [long, "Next."]) == "x" * PREVIEW_MAX_CHARS
    assert preview_text("  ", []) == ""


def test_the_openapi_description_documents_the_library_voices_and_preview(site):
    with site.client() as client:
        schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    assert {"get", "post"} <= set(paths["/api/presenters"]) and {"patch", "delete"} <= set(paths["/api/presenters/{name}"])
    assert "/api/presenters/{name}/templates/{file_name}/thumbnail" in paths
    assert (
        "get" in paths["/api/voices"] and "audio/wav" in paths["/api/speech/preview"]["post"]["responses"]["200"]["content"]
    )
    submit = paths["/api/jobs"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
    assert {"presenters", "script", "voice", "language", "speed"} <= set(submit)
    assert {"Presenter", "PresenterList", "VoiceList", "PreviewRequest"} <= set(schema["components"]["schemas"])


def test_the_folders_of_an_interrupted_presenter_upload_or_deletion_are_removed_at_start(tmp_path):
    from heygemd.names import machine_tag
    from heygemd.web.library import PRESENTER_STAGING
    from heygemd.web.upload import remove_stale_staging

    staging = tmp_path / f".{PRESENTER_STAGING}.heygemd-{machine_tag()}-999999999-abcdef.tmp"
    deleting = tmp_path / f".anna.heygemd-{machine_tag()}-999999999-abcdef.tmp"
    alive = tmp_path / f".ben.heygemd-{machine_tag()}-{os.getpid()}-abcdef.tmp"
    for folder in (staging, deleting, alive, tmp_path / "carla"):
        folder.mkdir()
    assert sorted(remove_stale_staging(tmp_path, final=None)) == sorted([staging.name, deleting.name])
    assert sorted(os.listdir(tmp_path)) == sorted([alive.name, "carla"])
