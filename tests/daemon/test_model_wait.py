"""A first run without the weights: `heygemd run` waits for the model files, says which file goes where, keeps the
jobs queued, and loads the model the moment a valid file is in place, in the same process."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

import pytest
from service_harness import WAIT_SECONDS, drop_job, heygemd_cli, service_config

from heygemd.daemon.config import ModelsConfig
from heygemd.daemon.model_wait import MISSING, SETTLE_SECONDS, ModelWait
from heygemd.daemon.notify import Notifier
from heygemd.daemon.status import LOADING_MODEL, WAITING_FOR_MODEL
from heygemd.engine.settings import GENERATOR_LABEL, EngineSettings
from heygemd.exitcodes import ExitCode


def _status(daemon) -> dict:
    try:
        return json.loads((daemon.state / "status.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def test_the_service_waits_for_the_weights_and_loads_them_without_a_restart(
    daemon_factory, media, wav2lip_checkpoint, notify_socket
):
    # systemd's watchdog at 0.2 s (a ping every 0.1 s): a model build lasts longer than that
    daemon = daemon_factory(env={"NOTIFY_SOCKET": str(notify_socket.path), "WATCHDOG_USEC": "200000"})
    checkpoint = daemon.root / "checkpoints" / "wav2lip_gan.pth"
    daemon.write_config(service_config(daemon.root, checkpoint=checkpoint))
    daemon.start()
    [ready] = daemon.wait_for(lambda: daemon.logged("ready"), "the service to be ready, waiting for the model")
    assert ready["waiting_for_model"] is True
    status = _status(daemon)
    assert status["state"] == WAITING_FOR_MODEL
    [wanted] = status["model_files"]
    assert wanted["label"] == GENERATOR_LABEL and wanted["path"] == str(checkpoint.resolve())
    assert wanted["problem"] == MISSING and wanted["url"] == ModelsConfig().checkpoint_url

    shown = heygemd_cli(daemon, "status")
    assert "WAITING for the model files" in shown.stdout and f"at {checkpoint.resolve()}" in shown.stdout, shown.stdout
    doctor = {check["check"]: check for check in json.loads(heygemd_cli(daemon, "doctor", "--json").stdout)}
    assert str(checkpoint) in doctor[GENERATOR_LABEL]["detail"] and "offline" in doctor[GENERATOR_LABEL]["detail"]
    assert WAITING_FOR_MODEL in doctor["service"]["detail"] and str(checkpoint.resolve()) in doctor["service"]["detail"]

    drop_job(daemon.inbox, "first job", {"a.wav": media["audio"], "v.mp4": media["video"]})
    drop_job(daemon.inbox, "cancel me", {"a.wav": media["audio"], "v.mp4": media["video"]})
    daemon.wait_for(
        lambda: {"first job", "cancel me"} <= set(_status(daemon).get("queued", [])), "the jobs to be listed as queued"
    )
    assert (daemon.inbox / "first job").is_dir() and not daemon.quarantine.joinpath("first job").exists()

    # A queued job cancelled while the model is missing leaves the queue at once, as any cancelled job: to quarantine.
    assert heygemd_cli(daemon, "cancel", "cancel me").returncode == 0
    assert daemon.wait_quarantine("cancel me")["code"] == "cancelled"
    assert sorted(path.name for path in (daemon.quarantine / "cancel me").iterdir()) == ["a.wav", "error.json", "v.mp4"]
    daemon.wait_for(lambda: _status(daemon).get("state") == WAITING_FOR_MODEL, "the service to wait for its model again")
    assert _status(daemon)["queued"] == ["first job"] and (daemon.inbox / "first job").is_dir()

    checkpoint.parent.mkdir()
    checkpoint.write_text("<html><body>Sign in to download</body></html>\n")
    daemon.wait_for(
        lambda: any("HTML page" in file["problem"] for file in _status(daemon).get("model_files", [])),
        "the damaged file to be named in the status",
    )
    assert (daemon.inbox / "first job").is_dir()

    shutil.copyfile(wav2lip_checkpoint, checkpoint.with_name("incoming.tmp"))
    os.replace(checkpoint.with_name("incoming.tmp"), checkpoint)
    report = json.loads((daemon.wait_outbox("first job") / "job.json").read_text(encoding="utf-8"))
    assert report["status"] == "ok"
    assert daemon.logged("the model files are in place; the engine is loaded and jobs are taken")
    assert len(daemon.logged("heygemd starting")) == 1  # the same process: no restart
    status = _status(daemon)
    assert status["model_files"] == [] and status["engine"]["checkpoint"]["path"] == str(checkpoint)
    assert daemon.stop() == 0

    messages = notify_socket.drain()
    ready_at = messages.index("READY=1")
    assert messages[ready_at + 1].startswith(f"STATUS={WAITING_FOR_MODEL}")
    assert str(checkpoint.resolve()) in messages[ready_at + 1]
    assert any(message.startswith("STATUS=idle") for message in messages[ready_at:])
    # Each build after READY=1 (the damaged file's, then the good one's) runs in the loop's thread, which cannot ping:
    # the watchdog is fed from beside it, from the build's start to its end.
    builds = [
        pings_while_loading(messages, at)
        for at, line in enumerate(messages)
        if at > ready_at and line == f"STATUS={LOADING_MODEL}"
    ]
    assert len(builds) == 2 and min(builds) >= 1 and max(builds) >= 2, builds


def pings_while_loading(messages: list[str], loading_at: int) -> int:
    """The WATCHDOG=1 pings between a "loading model" status and the status after it."""
    after = messages[loading_at + 1 :]
    end = next((at for at, line in enumerate(after) if line.startswith("STATUS=")), len(after))
    return after[:end].count("WATCHDOG=1")


def test_the_watchdog_is_fed_while_a_long_call_runs_and_no_longer_after(notify_socket, monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", str(notify_socket.path))
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    notifier = Notifier()
    with notifier.keep_alive(WAIT_SECONDS):
        pass  # before READY=1 systemd does not watch: nothing is sent
    notifier.ready("ready")

    def pingers() -> list[threading.Thread]:
        return [thread for thread in threading.enumerate() if thread.name == "watchdog-keep-alive"]

    with notifier.keep_alive(WAIT_SECONDS):  # the long call: it waits here for three pings
        deadline = time.monotonic() + WAIT_SECONDS
        while notify_socket.messages.count("WATCHDOG=1") < 3:
            assert time.monotonic() < deadline, notify_socket.messages
            time.sleep(0.02)
        assert len(pingers()) == 1
    assert pingers() == []  # stopped and joined with the call's end
    with notifier.keep_alive(0.5):  # a call still running after its limit is hung: the pings stop, systemd acts
        deadline = time.monotonic() + WAIT_SECONDS
        while pingers():
            assert time.monotonic() < deadline, "the pings went on past their limit"
            time.sleep(0.02)
    messages = notify_socket.drain()
    assert messages[:2] == ["READY=1", "STATUS=ready"] and set(messages[2:]) == {"WATCHDOG=1"}


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_file_is_loaded_once_it_stops_changing_and_a_bad_one_is_not_reloaded(tmp_path, wav2lip_checkpoint):
    from heygemd.engine.checkpoint import load_wav2lip

    target = tmp_path / "wav2lip_gan.pth"
    settings = EngineSettings(checkpoint=target, detector="lbp")
    loads: list[Path] = []

    def build(chosen: EngineSettings):
        loads.append(chosen.checkpoint)
        return load_wav2lip(chosen.checkpoint, "cpu")[1]

    clock = _Clock()
    wait = ModelWait(settings, ModelsConfig(), build, clock)
    assert wait.try_build() is None and [file.problem for file in wait.missing] == [MISSING] and loads == []

    whole = wav2lip_checkpoint.read_bytes()
    target.write_bytes(whole[: len(whole) // 3])  # a copy under way
    assert wait.try_build() is None and loads == []  # it just changed: not loaded half-way
    clock.now += SETTLE_SECONDS + 0.1
    assert wait.try_build() is None and len(loads) == 1  # settled, tried: cut short
    assert "truncated" in wait.missing[0].problem, wait.missing[0].problem
    clock.now += 60
    assert wait.try_build() is None and len(loads) == 1  # unchanged since: not tried again

    target.write_bytes(whole)
    os.utime(target, ns=(1, 1))
    assert wait.try_build() is None
    clock.now += SETTLE_SECONDS + 0.1
    info = wait.try_build()
    assert info is not None and info.size_bytes == len(whole) and wait.missing == [] and len(loads) == 2


def test_a_dry_run_needs_no_files(tmp_path):
    settings = EngineSettings(checkpoint=tmp_path / "absent.pth", dry_run=True)
    wait = ModelWait(settings, ModelsConfig(), lambda chosen: "engine")
    assert settings.files_to_load() == [] and wait.try_build() == "engine" and wait.missing == []


@pytest.mark.parametrize("mode", ["service", "cluster coordinator"])
def test_without_ffmpeg_it_does_not_wait_for_weights_but_exits_69(daemon_factory, tmp_path, mode):
    missing = tmp_path / "nowhere" / "ffmpeg"
    daemon = daemon_factory(env={"HEYGEMD_FFMPEG": str(missing)})
    # A coordinator loads no model, but probes every input: it stops before it reaches for its broker.
    cluster = {"broker_url": "redis://127.0.0.1:9/0"} if mode == "cluster coordinator" else {}
    config = service_config(daemon.root, checkpoint=daemon.root / "checkpoints" / "wav2lip_gan.pth", cluster=cluster)
    daemon.write_config(config)
    daemon.start()
    assert daemon.process is not None
    assert daemon.process.wait(timeout=WAIT_SECONDS) == ExitCode.MISSING_WEIGHTS, daemon.tail()
    daemon.process = None
    [line] = daemon.logged("the engine cannot start")
    assert str(missing) in line["error"] and not daemon.logged("ready")
