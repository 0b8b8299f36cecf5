"""Enumerated options are checked before any work: a typo is the configuration's or the job.toml's fault, not the input's.

The real `heygemd run`: a wrong `render.preset` in the configuration stops it at start (exit 78,
naming the key); in a job.toml it quarantines that job as `job_toml.invalid`, and the service goes on.
"""

from __future__ import annotations

import pytest
from service_harness import drop_job, service_config

from heygemd.exitcodes import ExitCode

pytestmark = pytest.mark.slow


def test_a_preset_typo_in_the_config_stops_the_service_at_start(daemon_factory):
    daemon = daemon_factory()
    daemon.write_config(service_config(daemon.root, render={"preset": "veryfsat"}))
    daemon.start()
    assert daemon.process is not None
    assert daemon.process.wait(timeout=120) == ExitCode.CONFIG
    logged = daemon.log_path.read_text()  # logged before the configured format is known
    assert "configuration error" in logged and "render.preset" in logged and "veryfsat" in logged


def test_a_preset_typo_in_a_job_toml_quarantines_that_job_and_not_the_next(daemon_factory, media):
    daemon = daemon_factory()
    daemon.write_config(service_config(daemon.root))
    daemon.start()
    daemon.wait_ready()
    files = {"speech.wav": media["audio"], "presenter.mp4": media["video"]}
    drop_job(daemon.inbox, "typo", {**files, "job.toml": b'[render]\npreset = "veryfsat"\n'})
    error = daemon.wait_quarantine("typo")
    assert error["code"] == "job_toml.invalid" and "preset" in error["reason"], error
    drop_job(daemon.inbox, "fine", {**files, "job.toml": b'[render]\npreset = "superfast"\n'})
    daemon.wait_outbox("fine")
    assert daemon.stop() == 0
