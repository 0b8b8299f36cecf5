"""`heygemd start` (`make start`): the service and the page in the foreground, one Ctrl-C for both; offline, the
weights' download fails and the service waits for them instead of the command stopping."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from service_harness import WAIT_SECONDS, service_config, toml_text
from webserver import free_port, wait_until_up

from heygemd.daemon.status import WAITING_FOR_MODEL


def _wait(condition, what: str, process: subprocess.Popen, output: Path):
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        if process.poll() is not None:
            raise AssertionError(f"heygemd start exited ({process.returncode}) waiting for {what}:\n{output.read_text()}")
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}:\n{output.read_text()}")


def _start(root: Path, config: dict, port: int | None = None) -> tuple[subprocess.Popen, Path]:
    config_path = root / "config" / "heygemd.toml"
    config_path.parent.mkdir(parents=True)
    config_path.write_text(toml_text(config), encoding="utf-8")
    for folder in ("inbox", "outbox", "quarantine"):
        (root / folder).mkdir()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("HEYGEMD_", "NOTIFY_", "WATCHDOG_"))}
    output = root / "start.log"
    with open(output, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "heygemd", "start", "--port", str(port or free_port())],
            cwd=root,  # finds ./config/heygemd.toml as `make start` does
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return process, output


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _status(root: Path) -> dict:
    try:
        return json.loads((root / "state" / "status.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def test_one_ctrl_c_stops_the_service_and_the_page(tmp_path):
    process, output = _start(tmp_path, service_config(tmp_path))
    try:
        url = _wait(
            lambda: (found := re.search(r"page +(http://\S+)", output.read_text())) and found.group(1),
            "the page's address",
            process,
            output,
        )
        text = output.read_text()
        assert "sign in   none needed (web.token is unset" in text
        pids = [int(pid) for pid in re.findall(r"pid (\d+)", text.splitlines()[0])]
        assert len(pids) == 2
        wait_until_up(url.rstrip("/"))
        _wait(lambda: _status(tmp_path).get("state") == "idle", "the service to be idle", process, output)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=WAIT_SECONDS) == 0, output.read_text()
    finally:
        if process.poll() is None:
            process.kill()
    assert not any(_alive(pid) for pid in pids), output.read_text()
    assert _status(tmp_path)["state"] == "stopped"


def test_offline_the_start_goes_on_and_the_service_waits_for_the_weights(tmp_path):
    unreachable = f"http://127.0.0.1:{free_port()}/wav2lip_gan.pth"  # nothing listens there: as good as offline
    checkpoint = tmp_path / "checkpoints" / "wav2lip_gan.pth"
    config = service_config(tmp_path, checkpoint=checkpoint, models={"checkpoint_url": unreachable})
    process, output = _start(tmp_path, config)
    try:
        _wait(lambda: _status(tmp_path).get("state") == WAITING_FOR_MODEL, "the service to wait", process, output)
        text = output.read_text()
        assert f"could not be downloaded from {unreachable}" in text and "starting anyway" in text
        assert str(checkpoint.resolve()) in _status(tmp_path)["model_files"][0]["path"]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=WAIT_SECONDS) == 0, output.read_text()
    finally:
        if process.poll() is None:
            process.kill()


def test_when_one_of_the_two_fails_the_other_is_stopped_too(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process, output = _start(tmp_path, service_config(tmp_path), port=port)
        try:
            code = process.wait(timeout=WAIT_SECONDS)
        finally:
            if process.poll() is None:
                process.kill()
    text = output.read_text()
    assert code != 0 and "the web page exited" in text and "stopping the other" in text, text
    pids = [int(pid) for pid in re.findall(r"pid (\d+)", text.splitlines()[0])]
    assert not any(_alive(pid) for pid in pids), text
