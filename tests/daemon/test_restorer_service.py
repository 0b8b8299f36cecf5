"""`heygemd run` with the face restorer on: generated Wav2Lip and GFPGAN checkpoints, a real job."""

from __future__ import annotations

import json

import pytest
from checkpoint_factory import make_gfpgan_checkpoint
from media_factory import make_audio, make_video
from service_harness import TEMPLATE_SIZE, drop_job, service_config

from heygemd.engine.files import sha256_file

pytestmark = pytest.mark.slow

FRAMES = 3  # a random-weight GFPGAN takes seconds a face on a CPU


def test_a_job_with_the_restorer_reports_its_weights_and_time(daemon_factory, wav2lip_checkpoint, tmp_path):
    restorer = make_gfpgan_checkpoint(tmp_path / "weights" / "GFPGANv1.4.pth", seed=2, wrap="ema_only")
    (tmp_path / "media").mkdir()
    audio = make_audio(tmp_path / "media" / "speech.wav", seconds=FRAMES / 25)
    video = make_video(tmp_path / "media" / "presenter.mp4", seconds=FRAMES / 25, fps="25", size=TEMPLATE_SIZE)
    daemon = daemon_factory()
    daemon.write_config(
        service_config(
            daemon.root,
            checkpoint=wav2lip_checkpoint,
            engine={"restorer": "gfpgan", "restorer_checkpoint": str(restorer), "restorer_batch_size": 2},
        )
    )
    daemon.start()
    daemon.wait_ready()
    job_toml = '[render]\nrestore_weight = 0.5\n[videos."plain.mp4"]\nrestore_weight = 0\n'
    drop_job(
        daemon.inbox,
        "sharper",
        {"speech.wav": audio, "restored.mp4": video, "plain.mp4": video, "job.toml": job_toml.encode()},
    )

    out = daemon.wait_outbox("sharper")
    report = json.loads((out / "job.json").read_text())
    digest = sha256_file(restorer)
    assert report["status"] == "ok" and report["engine"]["restorer"]["sha256"] == digest
    restored = json.loads((out / "restored.json").read_text())
    assert restored["restorer"]["sha256"] == digest and restored["restorer"]["known_name"] is None
    assert restored["options"]["restore_weight"] == 0.5 and restored["timings"]["restore"] > 0
    assert any("not a published GFPGAN" in warning for warning in restored["warnings"])
    plain = json.loads((out / "plain.json").read_text())
    assert plain["restorer"] is None and plain["timings"]["restore"] == 0
    assert daemon.stop() == 0
