"""The operator's limits on real folders and real files: template count, file size, audio length."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest

from heygemd.codes import ErrorCode
from heygemd.daemon.config import GIB, HeygemdConfig, LimitsConfig
from heygemd.daemon.contract import ContractViolation, plan_job
from heygemd.daemon.limits import check_limits
from heygemd.engine import RenderOptions


def make(folder: Path, files: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return folder


def long_wav(path: Path, seconds: float, rate: int = 8000) -> Path:
    """A valid 8-bit mono WAV whose samples are a hole in a sparse file: an hour of it costs no disk."""
    data = int(seconds * rate)
    header = b"RIFF" + struct.pack("<I", 36 + data) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate, 1, 8)
    path.write_bytes(header + b"data" + struct.pack("<I", data))
    os.truncate(path, 44 + data)
    return path


def violation(folder: Path, limits: LimitsConfig) -> ContractViolation:
    with pytest.raises(ContractViolation) as caught:
        plan_job(folder, folder.name, RenderOptions(), limits=limits)
    return caught.value


def test_defaults_are_generous():
    limits = HeygemdConfig().limits
    assert (limits.max_audio_seconds, limits.max_templates, limits.max_file_bytes) == (3600, 50, 20 * GIB)


def test_too_many_templates(tmp_path):
    folder = make(tmp_path / "job", {"a.wav": b"a", "1.mp4": b"v", "2.mp4": b"v", "3.jpg": b"i"})
    caught = violation(folder, LimitsConfig(max_templates=2))
    assert caught.code is ErrorCode.LIMIT_TOO_MANY_TEMPLATES
    assert "3 template videos" in caught.reason and "at most 2" in caught.reason and "limits.max_templates" in caught.reason
    assert caught.details == ['3 templates (limits.max_templates = 2): "1.mp4", "2.mp4", "3.jpg"']
    assert len(plan_job(folder, "job", RenderOptions(), limits=LimitsConfig(max_templates=3)).videos) == 3
    assert len(plan_job(folder, "job", RenderOptions(), limits=LimitsConfig(max_templates=0)).videos) == 3  # 0: none


def test_a_file_too_large_is_named_with_its_size_and_the_limit(tmp_path):
    folder = make(tmp_path / "job", {"speech.wav": b"a" * 10, "front.mp4": b"v" * 11, "side.mp4": b"v" * 2048})
    caught = violation(folder, LimitsConfig(max_file_bytes=10))
    assert caught.code is ErrorCode.LIMIT_FILE_TOO_LARGE
    assert caught.reason.startswith('"side.mp4" is 2 KiB, "front.mp4" is 11 B; this service accepts files of up to 10 B')
    assert "limits.max_file_bytes" in caught.reason and "speech.wav" not in caught.reason  # 10 bytes is allowed
    assert caught.details == [
        "side.mp4: 2048 bytes (limits.max_file_bytes = 10)",
        "front.mp4: 11 bytes (limits.max_file_bytes = 10)",
    ]
    plan_job(folder, "job", RenderOptions(), limits=LimitsConfig(max_file_bytes=0))


def test_the_default_size_limit_on_a_sparse_file(tmp_path):
    folder = make(tmp_path / "job", {"speech.wav": b"a", "camera original.mov": b""})
    os.truncate(folder / "camera original.mov", 20 * GIB + 1)  # sparse: only the size is real
    caught = violation(folder, LimitsConfig())
    assert caught.code is ErrorCode.LIMIT_FILE_TOO_LARGE
    assert '"camera original.mov" is 20 GiB (21474836481 bytes); this service accepts files of up to 20 GiB' in caught.reason
    os.truncate(folder / "camera original.mov", 20 * GIB)
    plan_job(folder, "job", RenderOptions())


def test_the_shape_of_the_folder_is_judged_before_the_limits(tmp_path):
    folder = make(tmp_path / "job", {"1.mp4": b"v" * 100, "2.mp4": b"v"})
    assert violation(folder, LimitsConfig(max_templates=1, max_file_bytes=10)).code is ErrorCode.JOB_NO_AUDIO


def test_unused_files_do_not_count(tmp_path):
    folder = make(tmp_path / "job", {"a.wav": b"a", "1.mp4": b"v", "notes.pdf": b"x" * 100, ".DS_Store": b"x" * 100})
    (folder / "extras").mkdir()
    (folder / "extras" / "2.mp4").write_bytes(b"v" * 100)
    plan = plan_job(folder, "job", RenderOptions(), limits=LimitsConfig(max_templates=1, max_file_bytes=10))
    assert [video.source.name for video in plan.videos] == ["1.mp4"]


def test_audio_longer_than_the_limit(tmp_path):
    folder = make(tmp_path / "job", {"1.mp4": b"v"})
    long_wav(folder / "lecture.wav", 3600.5)
    plan = plan_job(folder, "job", RenderOptions())
    with pytest.raises(ContractViolation) as caught:
        check_limits(plan, LimitsConfig())
    assert caught.value.code is ErrorCode.LIMIT_AUDIO_TOO_LONG
    assert caught.value.reason.startswith(
        'The audio "lecture.wav" lasts 1 h 00 min 00 s (3600.5 s); this service accepts audio of up to 1 h 00 min 00 s (3600 s).'
    )
    assert "limits.max_audio_seconds" in caught.value.reason
    assert caught.value.details == ["lecture.wav: 3600.50 s (limits.max_audio_seconds = 3600)"]
    check_limits(plan, LimitsConfig(max_audio_seconds=3601))
    check_limits(plan, LimitsConfig(max_audio_seconds=0))


def test_audio_at_the_limit_passes(tmp_path):
    folder = make(tmp_path / "job", {"1.mp4": b"v"})
    long_wav(folder / "voice.wav", 3600)
    check_limits(plan_job(folder, "job", RenderOptions()), LimitsConfig())


def test_an_unusable_audio_is_left_to_the_render_step(tmp_path):
    folder = make(tmp_path / "job", {"voice.wav": b"this is not audio at all, it is text\n" * 10, "1.mp4": b"v"})
    check_limits(plan_job(folder, "job", RenderOptions()), LimitsConfig(max_audio_seconds=1))


def test_the_contract_and_the_limits_import_no_torch():
    import subprocess
    import sys

    code = "import sys, heygemd.daemon.limits, heygemd.daemon.contract; print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert result.stdout.strip() == "False", result.stderr


# ---------------------------------------------------------------------------- `heygemd run` (dry-run engine)


@pytest.mark.slow
def test_each_limit_sends_its_job_to_quarantine_with_its_code(daemon_factory, media, tmp_path):
    from media_factory import make_audio
    from service_harness import drop_job, service_config

    limits = {"max_audio_seconds": 1.0, "max_templates": 2, "max_file_bytes": 100 * 1024**2}
    daemon = daemon_factory()
    daemon.write_config(service_config(daemon.root, limits=limits))
    daemon.start()
    daemon.wait_ready()

    huge = tmp_path / "camera original.mov"
    with open(huge, "wb") as handle:
        handle.truncate(100 * 1024**2 + 1)  # sparse
    short = make_audio(tmp_path / "short.wav", seconds=0.8)
    jobs = {
        "too many": (
            {"a.wav": short, "1.mp4": media["video"], "2.mp4": media["video"], "3.mp4": media["video"]},
            ErrorCode.LIMIT_TOO_MANY_TEMPLATES,
            "limits.max_templates",
        ),
        "too large": (
            {"a.wav": short, "camera original.mov": None},
            ErrorCode.LIMIT_FILE_TOO_LARGE,
            "limits.max_file_bytes",
        ),
        "too long": (
            {"speech.wav": media["audio"], "v.mp4": media["video"]},
            ErrorCode.LIMIT_AUDIO_TOO_LONG,
            "limits.max_audio_seconds",
        ),
    }
    for name, (files, _, _) in jobs.items():
        drop_job(daemon.inbox, name, {file: source for file, source in files.items() if source is not None})
        if "camera original.mov" in files:
            os.rename(huge, daemon.inbox / name / "camera original.mov")
    drop_job(daemon.inbox, "within limits", {"a.wav": short, "1.mp4": media["video"], "2.mp4": media["video"]})

    for name, (_, code, key) in jobs.items():
        error = daemon.wait_quarantine(name)
        assert error["code"] == code.value, error
        assert key in error["reason"] and error["details"], error
    assert json.loads((daemon.wait_outbox("within limits") / "job.json").read_text())["status"] == "ok"
    assert sorted(entry.name for entry in daemon.quarantine.iterdir()) == sorted(jobs)
    assert daemon.process is not None and daemon.process.poll() is None
    assert daemon.stop() == 0
