"""The face restorer's settings: config defaults, job.toml, fetch-models and doctor (no torch, no weights)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from service_harness import toml_text
from test_contract import make
from test_fetch import server  # noqa: F401 (the local HTTP server fixture)

from heygemd.commands.doctor import Level, run_checks
from heygemd.commands.fetch import wanted_models
from heygemd.daemon.config import HeygemdConfig, LoadedConfig
from heygemd.daemon.contract import ContractViolation, plan_job
from heygemd.engine import RenderOptions
from heygemd.engine.settings import RESTORER_LABEL, RestorerKind
from heygemd.engine.weights import GFPGAN_V14, known_name

RESTORER_WEIGHTS = os.urandom(200_000)


def test_the_restorer_is_off_by_default_and_fetches_the_published_v14():
    config = HeygemdConfig()
    assert config.engine.restorer is RestorerKind.NONE
    assert config.engine.restorer_checkpoint == Path("checkpoints/GFPGANv1.4.pth")
    assert 0.5 <= config.render.restore_weight <= 0.7
    assert config.models.restorer_url == GFPGAN_V14.url and config.models.restorer_sha256 == GFPGAN_V14.sha256
    assert known_name(GFPGAN_V14.sha256) == "GFPGANv1.4.pth"
    assert RESTORER_LABEL not in [model.label for model in wanted_models(config)]


def test_with_the_restorer_on_its_weights_are_wanted():
    config = HeygemdConfig.model_validate({"engine": {"restorer": "gfpgan", "restorer_checkpoint": "w/GFPGANv1.3.pth"}})
    restorer = [model for model in wanted_models(config) if model.label == RESTORER_LABEL]
    assert len(restorer) == 1 and restorer[0].path == Path("w/GFPGANv1.3.pth") and restorer[0].url == GFPGAN_V14.url


@pytest.mark.parametrize("weight", [0, 0.35, 1])
def test_a_job_sets_the_restore_weight(tmp_path, weight):
    folder = make(
        tmp_path / "job",
        {
            "a.wav": b"a",
            "v.mp4": b"v",
            "w.mp4": b"w",
            "job.toml": f'[render]\nrestore_weight = {weight}\n[videos."w.mp4"]\nrestore_weight = 0\n',
        },
    )
    plan = plan_job(folder, "job", RenderOptions())
    by_name = {video.source.name: video.options.restore_weight for video in plan.videos}
    assert by_name == {"v.mp4": weight, "w.mp4": 0}


def test_a_restore_weight_out_of_range_is_a_job_toml_error(tmp_path):
    folder = make(tmp_path / "job", {"a.wav": b"a", "v.mp4": b"v", "job.toml": "[render]\nrestore_weight = 1.5\n"})
    with pytest.raises(ContractViolation, match="restore_weight"):
        plan_job(folder, "job", RenderOptions())


def _doctor(tmp_path: Path, **engine: object) -> dict[str, object]:
    config = HeygemdConfig.model_validate({"engine": {"restorer_checkpoint": str(tmp_path / "GFPGANv1.4.pth"), **engine}})
    return {check.name: check for check in run_checks(LoadedConfig(config=config, source=None))}


def test_doctor_says_the_restorer_is_off(tmp_path):
    checks = _doctor(tmp_path)
    assert checks["restorer"].level is Level.OK and "off" in checks["restorer"].detail
    assert RESTORER_LABEL not in checks


def test_doctor_names_missing_restorer_weights(tmp_path):
    checks = _doctor(tmp_path, restorer="gfpgan")
    assert checks["restorer"].detail.startswith("gfpgan: ") and "restore_weight 0.6" in checks["restorer"].detail
    assert checks[RESTORER_LABEL].level is Level.FAIL and "fetch-models" in checks[RESTORER_LABEL].detail


def test_doctor_accepts_published_weights_and_flags_others(tmp_path):
    (tmp_path / "GFPGANv1.4.pth").write_bytes(RESTORER_WEIGHTS)
    digest = hashlib.sha256(RESTORER_WEIGHTS).hexdigest()
    checks = _doctor(tmp_path, restorer="gfpgan")
    assert checks[RESTORER_LABEL].level is Level.WARN and "not the expected" in checks[RESTORER_LABEL].detail
    config = HeygemdConfig.model_validate(
        {
            "engine": {"restorer": "gfpgan", "restorer_checkpoint": str(tmp_path / "GFPGANv1.4.pth")},
            "models": {"restorer_sha256": digest},
        }
    )
    matched = {check.name: check for check in run_checks(LoadedConfig(config=config, source=None))}
    assert matched[RESTORER_LABEL].level is Level.OK and digest in matched[RESTORER_LABEL].detail


def _fetch(tmp_path: Path, base: str, handler, *, restorer: str) -> subprocess.CompletedProcess:
    handler.files.update({"/w2l.pth": b"w" * 1000, "/gfpgan.pth": RESTORER_WEIGHTS})
    (tmp_path / "checkpoints").mkdir(exist_ok=True)
    (tmp_path / "checkpoints" / "wav2lip_gan.pth").write_bytes(b"w" * 1000)
    config = tmp_path / "heygemd.toml"
    config.write_text(
        toml_text(
            {
                "engine": {"detector": "lbp", "restorer": restorer, "restorer_checkpoint": "checkpoints/GFPGANv1.4.pth"},
                "models": {
                    "checkpoint_url": f"{base}/w2l.pth",
                    "checkpoint_sha256": hashlib.sha256(b"w" * 1000).hexdigest(),
                    "restorer_url": f"{base}/gfpgan.pth",
                    "restorer_sha256": hashlib.sha256(RESTORER_WEIGHTS).hexdigest(),
                },
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEYGEMD_")}
    return subprocess.run(
        [sys.executable, "-m", "heygemd", "fetch-models", "--config", str(config)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_fetch_models_gets_the_restorer_weights_only_when_it_is_on(tmp_path, server):  # noqa: F811
    base, handler = server
    off = _fetch(tmp_path, base, handler, restorer="none")
    assert off.returncode == 0, off.stderr
    assert not (tmp_path / "checkpoints" / "GFPGANv1.4.pth").exists()
    on = _fetch(tmp_path, base, handler, restorer="gfpgan")
    assert on.returncode == 0, on.stderr
    assert (tmp_path / "checkpoints" / "GFPGANv1.4.pth").read_bytes() == RESTORER_WEIGHTS
    assert "GFPGANv1.4.pth downloaded" in on.stdout


def test_fetch_models_offline_says_where_the_restorer_weights_go(tmp_path, server):  # noqa: F811
    _, handler = server
    result = _fetch(tmp_path, "http://127.0.0.1:9", handler, restorer="gfpgan")  # discard port: refused
    assert result.returncode == 69
    target = str((tmp_path / "checkpoints" / "GFPGANv1.4.pth").resolve())
    line = next(line for line in result.stderr.splitlines() if RESTORER_LABEL in line)
    assert "Place it by hand" in line and target in line and "http://127.0.0.1:9/gfpgan.pth" in line
