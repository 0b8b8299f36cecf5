"""The job runner with several audio files in one job (fake engine, real folders, journal and publishing)."""

from __future__ import annotations

import json
from pathlib import Path

from test_runner import Bench

from heygemd.codes import ErrorCode
from heygemd.daemon.journal import Phase
from heygemd.daemon.reports import VideoStatus
from heygemd.daemon.runner import StepKind
from heygemd.engine import MediaError

TWO_AUDIOS = {"en.wav": b"RIFF english", "fr.wav": b"RIFF french", "a.mp4": b"video a", "b.mp4": b"video b"}


def test_each_audio_is_rendered_with_every_template_into_its_own_folder(tmp_path: Path) -> None:
    bench = Bench(tmp_path)
    record = bench.claimed("launch", TWO_AUDIOS)
    assert bench.runner.work_on(record).kind is StepKind.DONE and record.phase is Phase.PUBLISHING
    assert [audio.path.name for audio in bench.engine.audios] == ["en.wav", "fr.wav"]  # one after the other
    assert all(audio.closed for audio in bench.engine.audios)
    out = bench.paths.outbox / "launch"
    report = json.loads((out / "job.json").read_text())
    assert [video["output"] for video in report["videos"]] == ["en/a.mp4", "en/b.mp4", "fr/a.mp4", "fr/b.mp4"]
    assert sorted(item["name"] for item in report["inputs"]) == sorted(TWO_AUDIOS)  # each fingerprinted once
    for folder in ("en", "fr"):
        assert sorted(entry.name for entry in (out / folder).iterdir() if entry.suffix != ".jpg") == [
            "a.json", "a.mp4", "b.json", "b.mp4",
        ]  # fmt: skip
    assert 'src="fr/a.mp4"' in (out / "index.html").read_text()


def test_a_changed_second_audio_renders_its_own_videos_again(tmp_path: Path) -> None:
    bench = Bench(tmp_path)
    bench.config.watch.settle_seconds = 0.0
    record = bench.claimed("launch", TWO_AUDIOS)
    input_dir = bench.work.input_dir(record.job_id)

    def change_french_once(video: Path) -> None:
        if video.name == "b.mp4" and len(bench.engine.rendered) == 3:  # fr/b.mp4 is being rendered
            with open(input_dir / "fr.wav", "ab") as handle:
                handle.write(b" more")

    bench.engine.during_render = change_french_once
    step = bench.runner.work_on(record)
    assert step.kind is StepKind.RETRY and step.failure is not None
    assert step.failure.code is ErrorCode.INPUT_CHANGED_WHILE_RENDERING
    pending = [video.output_stem for video in record.videos if video.status is VideoStatus.PENDING]
    assert pending == ["fr/a", "fr/b"], "the French videos render again, the English ones stay done"
    assert bench.runner.work_on(record).kind is StepKind.DONE
    assert bench.engine.rendered == ["a.mp4", "b.mp4", "a.mp4", "b.mp4", "a.mp4", "b.mp4"]
    report = json.loads((bench.paths.outbox / "launch" / "job.json").read_text())
    french = next(item for item in report["inputs"] if item["name"] == "fr.wav")
    assert french["size_bytes"] == len(TWO_AUDIOS["fr.wav"]) + len(b" more")


def test_an_unusable_audio_fails_only_its_own_videos(tmp_path: Path) -> None:
    bench = Bench(tmp_path)
    record = bench.claimed("launch", TWO_AUDIOS)
    original = bench.engine.prepare_audio

    def refuse_french(path: Path):
        if path.name == "fr.wav":
            raise MediaError("not an audio file", path)
        return original(path)

    bench.engine.prepare_audio = refuse_french  # type: ignore[method-assign]
    assert bench.runner.work_on(record).kind is StepKind.DONE
    report = json.loads((bench.paths.outbox / "launch" / "job.json").read_text())
    assert report["status"] == "partial"
    statuses = {video["output"] or video["template"]: video["status"] for video in report["videos"]}
    assert [video["status"] for video in report["videos"]] == ["ok", "ok", "failed", "failed"], statuses
    failed = [video for video in report["videos"] if video["status"] == "failed"]
    assert all(video["code"] == "input.undecodable" and "fr.wav" in video["error"] for video in failed)
    quarantined = sorted(entry.name for entry in (bench.paths.quarantine / "launch").iterdir())
    assert quarantined == ["a.mp4", "b.mp4", "en.wav", "error.json", "fr.wav"]  # the templates, a copy of each audio
