"""`heygemd run` when the engine cannot start: a clear log line and an exit systemd does not restart on."""

from __future__ import annotations

import pytest
from service_harness import WAIT_SECONDS, service_config

from heygemd.exitcodes import ExitCode


@pytest.mark.parametrize("variable", ["HEYGEMD_FFMPEG", "HEYGEMD_FFPROBE"])
def test_a_missing_ffmpeg_stops_the_service_without_a_restart_loop(daemon_factory, tmp_path, variable):
    missing = tmp_path / "nowhere" / variable.removeprefix("HEYGEMD_").lower()
    daemon = daemon_factory(env={variable: str(missing)})
    daemon.write_config(service_config(daemon.root))
    daemon.start()
    assert daemon.process is not None
    code = daemon.process.wait(timeout=WAIT_SECONDS)
    assert code == ExitCode.MISSING_WEIGHTS, daemon.tail()  # in the units' RestartPreventExitStatus
    [line] = daemon.logged("the engine cannot start")
    assert line["error"] == f"{variable}={missing} does not name an executable {missing.name}"
    assert "Traceback" not in daemon.log_path.read_text()
    assert not daemon.logged("ready")
