"""`heygemd init`, `doctor` and `status` as real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from heygemd.daemon.config import default_config_text


def heygemd(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEYGEMD_")}
    return subprocess.run(
        [sys.executable, "-m", "heygemd", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_init_creates_the_layout_and_never_overwrites(tmp_path):
    first = heygemd("init", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    for folder in ("inbox", "outbox", "quarantine", "work", "archive", "state", "checkpoints", "presenters"):
        assert (tmp_path / folder).is_dir()
    config = tmp_path / "config" / "heygemd.toml"
    assert config.read_text() == default_config_text()
    config.write_text("[render]\ncrf = 20\n")
    second = heygemd("init", cwd=tmp_path)
    assert second.returncode == 0 and "kept" in second.stdout and "created" not in second.stdout
    assert config.read_text() == "[render]\ncrf = 20\n"


def test_doctor_reports_every_check(tmp_path):
    assert heygemd("init", cwd=tmp_path).returncode == 0
    result = heygemd("doctor", "--json", cwd=tmp_path)
    checks = {check["check"]: check for check in json.loads(result.stdout)}
    assert {
        "config",
        "ffmpeg",
        "torch",
        "cuda",
        "Wav2Lip weights",
        "S3FD face detector",
        "paths.inbox",
        "paths.state",
        "watch mode",
        "open files",
    } <= set(checks)
    assert checks["Wav2Lip weights"]["level"] == "fail" and "fetch-models" in checks["Wav2Lip weights"]["detail"]
    assert checks["paths.inbox"]["level"] == "ok" and checks["watch mode"]["detail"].startswith("native")
    assert checks["open files"]["level"] in ("ok", "warn") and checks["open files"]["detail"].startswith(("lease", "proc"))
    assert checks["voice espeak-ng"]["level"] == "ok" and "languages" in checks["voice espeak-ng"]["detail"]
    assert checks["voice kokoro"]["level"] == "warn" and "kokoro-v1.0.onnx" in checks["voice kokoro"]["detail"]
    assert checks["Kokoro-82M voice model"]["level"] == "warn"  # optional: espeak-ng speaks meanwhile
    assert result.returncode == 1  # the weights are missing
    text = heygemd("doctor", cwd=tmp_path)
    assert "FAIL" in text.stdout and "paths.outbox" in text.stdout


def test_status_without_a_service(tmp_path):
    assert heygemd("init", cwd=tmp_path).returncode == 0
    result = heygemd("status", cwd=tmp_path)
    assert result.returncode == 3 and "never ran" in result.stdout


def test_status_says_the_service_waits_for_a_missing_inbox(tmp_path):
    from heygemd.daemon.status import WAITING_FOR_INBOX, ServiceStatus, StatusFile

    assert heygemd("init", cwd=tmp_path).returncode == 0
    status = ServiceStatus(pid=os.getpid(), inbox="/srv/share/inbox", inbox_missing=True)  # a live pid: "running"
    status.set_state("idle")
    StatusFile(tmp_path / "state").write(status)
    result = heygemd("status", cwd=tmp_path)
    assert result.returncode == 0, result.stdout
    assert f"state      {WAITING_FOR_INBOX}: /srv/share/inbox is missing" in result.stdout
    assert "inbox      /srv/share/inbox is MISSING" in result.stdout and "idle" not in result.stdout
