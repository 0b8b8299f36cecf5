"""Scripts spoken by espeak-ng and presenters from the library, through a real `heygemd run` on real folders."""

from __future__ import annotations

import hashlib
import json
import wave
from pathlib import Path

import pytest
from service_harness import Daemon, drop_job, service_config

pytestmark = pytest.mark.slow

ENGLISH = "Good morning. Our spring campaign starts today!"
CHINESE = "早上好。我们的春季活动今天开始！"
ONE_FRAME_S = 1 / 25  # the template's frame rate


def start(daemon_factory, *, checkpoint: Path | None = None) -> Daemon:
    daemon = daemon_factory()
    daemon.write_config(service_config(daemon.root, checkpoint=checkpoint))
    daemon.start()
    daemon.wait_ready()
    return daemon


def add_presenter(daemon: Daemon, name: str, files: dict[str, Path]) -> Path:
    folder = daemon.root / "presenters" / name  # the default: presenters/ beside the inbox
    folder.mkdir(parents=True)
    for file_name, source in files.items():
        (folder / file_name).write_bytes(source.read_bytes())
    return folder


def fingerprint(folder: Path) -> dict[str, tuple[int, int, str]]:
    return {
        path.name: (path.stat().st_size, path.stat().st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
        for path in sorted(folder.iterdir())
    }


def wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes() / wav.getframerate()


def job_toml(**keys: object) -> bytes:
    return "\n".join(f"{key} = {json.dumps(value, ensure_ascii=False)}" for key, value in keys.items()).encode()


def test_english_and_chinese_scripts_with_a_presenter_from_the_library(daemon_factory, media, wav2lip_checkpoint):
    daemon = start(daemon_factory, checkpoint=wav2lip_checkpoint)
    anna = add_presenter(daemon, "anna", {"front.mp4": media["video"]})
    before = fingerprint(anna)

    drop_job(
        daemon.inbox,
        "spring en",
        {"script.txt": ENGLISH.encode(), "job.toml": job_toml(presenters=["anna"], voice="espeak-ng", language="en")},
    )
    english = daemon.wait_outbox("spring en")
    drop_job(
        daemon.inbox, "spring zh", {"script.txt": CHINESE.encode(), "job.toml": job_toml(presenters=["anna/front.mp4"])}
    )
    chinese = daemon.wait_outbox("spring zh")

    for out, voice, text in ((english, "espeak-ng:en-us", ENGLISH), (chinese, "espeak-ng:cmn", CHINESE)):
        report = json.loads((out / "job.json").read_text())
        assert report["status"] == "ok", report
        [speech] = report["speech"]
        assert speech["voice"] == voice and speech["script"] == "script.txt"
        assert speech["text_sha256"] == hashlib.sha256(text.encode()).hexdigest()
        assert len(speech["model_sha256"]) == 64 and speech["model_file"] == "libespeak-ng.so"
        assert (out / "speech.wav").is_file() and (out / "speech.json").is_file()  # published with the results
        assert abs(wav_seconds(out / "speech.wav") - speech["duration_s"]) < 0.001
        assert speech["duration_s"] > 1.5  # the speech, not the 1 s template, sets the length
        [video] = report["videos"]
        assert video["template"] == str(anna / "front.mp4") and video["output"] == "anna-front.mp4"
        assert abs(video["output_duration_s"] - speech["duration_s"]) <= ONE_FRAME_S + 0.001

    first = json.loads((english / "anna-front.json").read_text())
    second = json.loads((chinese / "anna-front.json").read_text())
    assert first["faces"]["cache_hit"] is False and second["faces"]["cache_hit"] is True  # no detection the 2nd time
    assert fingerprint(anna) == before  # never moved, archived or changed by a job
    archived = sorted(entry.name for entry in (daemon.archive / "spring en").iterdir())
    assert archived == ["job.toml", "script.txt"]
    assert daemon.stop() == 0


def test_several_scripts_each_with_every_presenter_in_its_own_folder(daemon_factory, media):
    daemon = start(daemon_factory)  # dry run: the templates fitted to the speech, no model
    add_presenter(daemon, "anna", {"front.mp4": media["video"]})
    add_presenter(daemon, "ben", {"front.mp4": media["video"], "side.mp4": media["video"]})
    drop_job(
        daemon.inbox,
        "launch",
        {
            "english.txt": ENGLISH.encode(),
            "chinese.txt": CHINESE.encode(),
            "job.toml": job_toml(presenters=["anna", "ben/side.mp4"], voice="espeak-ng"),
        },
    )
    out = daemon.wait_outbox("launch")
    report = json.loads((out / "job.json").read_text())
    assert report["status"] == "ok", report
    outputs = sorted(video["output"] for video in report["videos"])
    assert outputs == ["chinese/anna-front.mp4", "chinese/ben-side.mp4", "english/anna-front.mp4", "english/ben-side.mp4"]
    inputs = [item["name"] for item in report["inputs"]]  # each fingerprinted once
    assert sorted(inputs) == sorted(
        [
            "chinese.txt",
            "english.txt",
            str(daemon.root / "presenters" / "anna" / "front.mp4"),
            str(daemon.root / "presenters" / "ben" / "side.mp4"),
        ]
    )
    speeches = {speech["audio"]: speech for speech in report["speech"]}
    assert set(speeches) == {"chinese/speech.wav", "english/speech.wav"}
    assert speeches["chinese/speech.wav"]["voice"] == "espeak-ng:cmn"  # language auto: from the writing system
    assert speeches["english/speech.wav"]["voice"] == "espeak-ng:en-us"
    for video in report["videos"]:
        spoken = speeches[video["output"].split("/")[0] + "/speech.wav"]
        assert (out / video["output"]).is_file()
        assert abs(video["output_duration_s"] - spoken["duration_s"]) <= ONE_FRAME_S + 0.001
    for script in ("english", "chinese"):
        assert sorted(entry.name for entry in (out / script).iterdir()) == sorted(
            ["anna-front.jpg", "anna-front.json", "anna-front.mp4", "ben-side.jpg", "ben-side.json", "ben-side.mp4"]
            + ["speech.json", "speech.wav"]
        )
    page = (out / "index.html").read_text()
    assert 'src="english/anna-front.mp4"' in page or 'href="english/anna-front.mp4"' in page
    assert 'src="chinese/ben-side.jpg"' in page
    assert daemon.stop() == 0


REFUSALS: dict[str, tuple[dict[str, bytes], str]] = {
    "unknown presenter": (
        {"script.txt": ENGLISH.encode(), "job.toml": job_toml(presenters=["nobody"])},
        "presenter.unknown",
    ),
    "unknown template": (
        {"script.txt": ENGLISH.encode(), "job.toml": job_toml(presenters=["anna/side.mp4"])},
        "presenter.unknown",
    ),
    "empty presenter": ({"script.txt": ENGLISH.encode(), "job.toml": job_toml(presenters=["empty"])}, "presenter.empty"),
    "climbing out": ({"script.txt": ENGLISH.encode(), "job.toml": job_toml(presenters=["../anna"])}, "presenter.bad_name"),
    "too deep": (
        {"script.txt": ENGLISH.encode(), "job.toml": job_toml(presenters=["anna/x/front.mp4"])},
        "presenter.bad_name",
    ),
    "rooted": ({"script.txt": ENGLISH.encode(), "job.toml": job_toml(presenters=["/anna"])}, "presenter.bad_name"),
    "audio and script": (
        {"voice.wav": b"", "script.txt": ENGLISH.encode(), "job.toml": job_toml(presenters=["anna"])},
        "job.audio_and_script",
    ),
    "empty script": ({"script.txt": b" \n ... \n", "job.toml": job_toml(presenters=["anna"])}, "script.empty"),
    "wrong language": (
        {"script.txt": CHINESE.encode(), "job.toml": job_toml(presenters=["anna"], language="en")},
        "script.language_unsupported",
    ),
    "too long": (
        {"script.txt": ("word " * 50).encode(), "job.toml": job_toml(presenters=["anna"])},
        "limit.script_too_long",
    ),
    "no kokoro here": (
        {"script.txt": ENGLISH.encode(), "job.toml": job_toml(presenters=["anna"], voice="kokoro")},
        "speech.voice_unavailable",
    ),
    "not utf-8": ({"script.txt": "Grüße".encode("latin-1"), "job.toml": job_toml(presenters=["anna"])}, "input.undecodable"),
}


def test_each_refusal_goes_to_quarantine_with_its_code(daemon_factory, media):
    daemon = daemon_factory()
    daemon.write_config(service_config(daemon.root, limits={"max_script_chars": 200}))
    daemon.start()
    daemon.wait_ready()
    anna = add_presenter(daemon, "anna", {"front.mp4": media["video"]})
    (daemon.root / "presenters" / "empty").mkdir()
    before = fingerprint(anna)
    for name, (files, _) in REFUSALS.items():
        if "voice.wav" in files:
            files = {**files, "voice.wav": media["audio"].read_bytes()}
        drop_job(daemon.inbox, name, {file_name: content for file_name, content in files.items()})
    for name, (files, code) in REFUSALS.items():
        error = daemon.wait_quarantine(name)
        assert error["code"] == code, (name, error)
        assert sorted(entry.name for entry in (daemon.quarantine / name).iterdir()) == sorted([*files, "error.json"])
    assert fingerprint(anna) == before
    assert daemon.stop() == 0
