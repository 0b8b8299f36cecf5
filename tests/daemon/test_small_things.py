"""Small things a person meets first: a closed pipe, a command run in the wrong folder, the service's name."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from service_harness import service_config


def _env() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if not key.startswith("HEYGEMD_")}


@pytest.mark.parametrize(
    "arguments", [["status"], ["status", "--json"], ["doctor"], ["doctor", "--json"], ["--help"], ["init", "--help"]]
)
def test_a_reader_that_stops_reading_gets_no_traceback(tmp_path, arguments):
    """Like `heygemd status | head -1`, made certain: the pipe is closed before the command writes at all."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "heygemd", *arguments],
            cwd=tmp_path,
            env=_env(),
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert "Traceback" not in result.stderr and "BrokenPipeError" not in result.stderr, result.stderr


def test_status_outside_the_service_folder_hints_at_config(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "heygemd", "status"], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 3
    assert f"no status in {tmp_path / 'state'}" in result.stdout
    assert "no configuration file was found" in result.stderr and "--config PATH" in result.stderr


def _status_lines(daemon) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-m", "heygemd", "status", "--config", str(daemon.config_path)],
        cwd=daemon.root,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.stdout.splitlines()


def test_the_service_is_called_by_its_host_or_its_configured_name_never_state(daemon_factory, tmp_path):
    daemon = daemon_factory()
    daemon.write_config(service_config(daemon.root))
    daemon.start()
    daemon.wait_ready()
    host = socket.gethostname()
    assert json.loads((daemon.state / "status.json").read_text())["name"] == host
    assert _status_lines(daemon)[0].startswith(f"running    {host}: pid ")
    [started] = daemon.logged("heygemd starting")
    assert started["service"] == host
    assert daemon.stop() == 0

    named = daemon_factory(tmp_path / "second")
    config = service_config(named.root, service={"name": "studio A"}, paths={"state": str(named.root / "gpu0")})
    named.write_config(config)
    named.start()
    named.wait_for(lambda: (named.root / "gpu0" / "status.json").exists(), "the status")
    named.wait_ready()
    assert json.loads((named.root / "gpu0" / "status.json").read_text())["name"] == "studio A"
    assert named.stop() == 0


def test_several_services_on_one_host_are_told_apart_by_their_state_folder():
    from heygemd.daemon.status import service_name

    host = socket.gethostname()
    assert service_name("", Path("/srv/heygemd/state")) == host
    assert service_name("", Path("/srv/heygemd/state/gpu1")) == f"{host} gpu1"
    assert service_name("  studio A ", Path("/srv/heygemd/state")) == "studio A"
