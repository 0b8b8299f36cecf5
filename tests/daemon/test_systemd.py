"""The shipped unit files pass `systemd-analyze verify` and keep the settings the service relies on."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from heygemd.exitcodes import ExitCode

REPO = Path(__file__).resolve().parents[2]
INSTALLED_AT = "/opt/heygemd/.venv/bin/heygemd"
ANALYZE = shutil.which("systemd-analyze") or (
    "/usr/bin/systemd-analyze" if Path("/usr/bin/systemd-analyze").exists() else None
)


def unit_text(name: str) -> str:
    return (REPO / "systemd" / name).read_text(encoding="utf-8")


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize(
    ("name", "instance"),
    [
        ("heygemd.service", "heygemd.service"),
        ("heygemd-web.service", "heygemd-web.service"),
        ("heygemd-worker@.service", "heygemd-worker@1.service"),
    ],
)
def test_units_verify(tmp_path, name, instance):
    # verify checks that ExecStart exists: point it at this checkout's entry point instead of /opt.
    here = Path(sys.executable).with_name("heygemd")
    if not here.exists():
        pytest.skip("the heygemd entry point is not installed in this environment")
    unit = tmp_path / instance
    unit.write_text(unit_text(name).replace(INSTALLED_AT, str(here)), encoding="utf-8")
    result = subprocess.run([ANALYZE, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), result.stderr


def test_the_service_unit_keeps_what_the_service_relies_on():
    text = unit_text("heygemd.service")
    settings = {
        line.split("=", 1)[0]: line.split("=", 1)[1]
        for line in text.splitlines()
        if "=" in line and not line.startswith("#")
    }
    assert settings["Type"] == "notify" and "WatchdogSec" in settings and settings["Restart"] == "on-failure"
    assert settings["ExecStart"].endswith("heygemd run") and "kill -HUP" in settings["ExecReload"]
    assert settings["UMask"] == "0002" and settings["User"] == "heygemd" and "DynamicUser" not in settings
    assert "PrivateDevices" not in settings and "ProcSubset" not in settings  # both hide the GPU
    no_restart = {ExitCode.MISSING_WEIGHTS, ExitCode.ALREADY_RUNNING, ExitCode.CONFIG}  # a restart fixes none of them
    assert {str(int(code)) for code in no_restart} <= set(settings["RestartPreventExitStatus"].split())
    assert "char-nvidia-uvm rw" in text and "char-nvidia-frontend rw" in text
    # open uploads are seen with file leases, on files of any owner: CAP_LEASE and nothing more
    assert settings["AmbientCapabilities"] == "CAP_LEASE" and settings["CapabilityBoundingSet"] == "CAP_LEASE"


def test_the_worker_template_pins_one_gpu_per_instance():
    text = unit_text("heygemd-worker@.service")
    assert "CUDA_VISIBLE_DEVICES=%i" in text and "HEYGEMD_PATHS__STATE=state/worker%i" in text
    assert "heygemd worker --device cuda:0" in text


def test_the_web_unit_stands_alone_without_devices_or_capabilities():
    text = unit_text("heygemd-web.service")
    settings = {
        line.split("=", 1)[0]: line.split("=", 1)[1]
        for line in text.splitlines()
        if "=" in line and not line.startswith("#")
    }
    assert settings["ExecStart"].endswith("heygemd web") and settings["Restart"] == "on-failure"
    assert settings["User"] == "heygemd" and settings["UMask"] == "0002" and settings["WorkingDirectory"] == "/srv/heygemd"
    assert str(int(ExitCode.CONFIG)) in settings["RestartPreventExitStatus"].split()
    assert settings["PrivateDevices"] == "yes" and settings["CapabilityBoundingSet"] == ""
    # a crash or restart of either side never affects the other: no dependency between the units
    for key in ("Requires", "BindsTo", "PartOf", "Requisite", "Wants"):
        assert "heygemd.service" not in settings.get(key, "") and "heygemd-worker@" not in settings.get(key, "")
