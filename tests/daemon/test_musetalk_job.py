"""A service running MuseTalk 1.5: a real `heygemd run` renders a job with it, and refuses a job asking for another model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from service_harness import drop_job, service_config

from heygemd.codes import ErrorCode
from heygemd.daemon.contract import ContractViolation, ModelsOnOffer, ModelSource, plan_job
from heygemd.engine.audio import SAMPLE_RATE, video_frame_count
from heygemd.engine.media import decode_audio, read_frames
from heygemd.engine.probe import probe_video
from heygemd.engine.settings import ModelKind, RenderOptions


def _musetalk_service(daemon_factory, wav2lip_checkpoint: Path, musetalk_dir: Path):
    daemon = daemon_factory()
    config = service_config(daemon.root, checkpoint=wav2lip_checkpoint)
    config["engine"].update({"model": "musetalk", "musetalk_dir": str(musetalk_dir), "batch_size": 8})
    config["render"].update({"crf": 0})
    daemon.write_config(config)
    daemon.start()
    daemon.wait_ready()
    return daemon


def test_a_musetalk_service_renders_a_job_as_long_as_its_audio(daemon_factory, media, wav2lip_checkpoint, musetalk_dir):
    daemon = _musetalk_service(daemon_factory, wav2lip_checkpoint, musetalk_dir)
    drop_job(daemon.inbox, "muse", {"speech.wav": media["audio"], "front.mp4": media["video"]})
    out = daemon.wait_outbox("muse")
    report = json.loads((out / "job.json").read_text())
    assert report["status"] == "ok", report
    assert report["engine"]["model"] == "musetalk"
    assert [Path(entry["path"]).name for entry in report["engine"]["model_files"]] == [
        "unet.pth",
        "diffusion_pytorch_model.bin",
        "pytorch_model.bin",
    ]
    sidecar = json.loads((out / "front.json").read_text())
    assert sidecar["model"] == "musetalk" and "lipsync" in sidecar
    expected_frames = video_frame_count(len(decode_audio(media["audio"], SAMPLE_RATE)), 25.0)
    assert sidecar["output"]["frame_count"] == expected_frames
    frames = list(read_frames(probe_video(out / "front.mp4"), pixel_format="bgr24"))
    assert len(frames) == expected_frames
    template = next(read_frames(probe_video(media["video"]), pixel_format="bgr24"))
    assert np.array_equal(frames[0][:8], template[:8]), "the top rows, far from the face, are the template's"
    assert daemon.stop() == 0


def _service(model: ModelKind) -> ModelsOnOffer:
    return ModelsOnOffer(ModelSource.SERVICE, frozenset({model}))


def test_a_job_asking_for_another_model_is_refused_with_its_code(tmp_path: Path, media):
    folder = tmp_path / "job"
    folder.mkdir()
    (folder / "speech.wav").write_bytes(media["audio"].read_bytes())
    (folder / "front.mp4").write_bytes(media["video"].read_bytes())
    (folder / "job.toml").write_text('model = "musetalk"\n')
    plan = plan_job(folder, "job", RenderOptions(), models=_service(ModelKind.MUSETALK))
    assert len(plan.videos) == 1 and plan.model is ModelKind.MUSETALK
    workers = ModelsOnOffer(ModelSource.WORKERS, frozenset({ModelKind.WAV2LIP, ModelKind.MUSETALK}))
    assert plan_job(folder, "job", RenderOptions(), models=workers).model is ModelKind.MUSETALK
    try:
        plan_job(folder, "job", RenderOptions(), models=_service(ModelKind.WAV2LIP))
    except ContractViolation as err:
        assert err.code == ErrorCode.JOB_MODEL_UNAVAILABLE
        assert 'asks for the lip-sync model "musetalk", but this service runs "wav2lip"' in err.reason
    else:
        raise AssertionError("a job for MuseTalk was planned on a Wav2Lip service")
    (folder / "job.toml").write_text('model = "sadtalker"\n')
    try:
        plan_job(folder, "job", RenderOptions(), models=_service(ModelKind.WAV2LIP))
    except ContractViolation as err:
        assert err.code == ErrorCode.JOB_TOML_INVALID
    else:
        raise AssertionError("an unknown model name was accepted")


def test_the_service_quarantines_a_job_for_a_model_it_does_not_run(daemon_factory, media):
    daemon = daemon_factory()
    daemon.write_config(service_config(daemon.root))  # a dry-run Wav2Lip service
    daemon.start()
    daemon.wait_ready()
    drop_job(
        daemon.inbox,
        "wants muse",
        {"speech.wav": media["audio"], "front.mp4": media["video"], "job.toml": b'model = "musetalk"\n'},
    )
    error = daemon.wait_quarantine("wants muse")
    assert error["code"] == ErrorCode.JOB_MODEL_UNAVAILABLE.value
    assert "musetalk" in error["reason"]
    assert daemon.stop() == 0


def test_fetch_models_wants_musetalks_seven_files_under_musetalk_dir(tmp_path: Path):
    from heygemd.commands.fetch import Outcome, fetch_model, wanted_models
    from heygemd.daemon.config import HeygemdConfig

    config = HeygemdConfig.model_validate({"engine": {"model": "musetalk", "musetalk_dir": str(tmp_path / "muse")}})
    wanted = wanted_models(config)
    relative = [str(model.path.relative_to(tmp_path / "muse")) for model in wanted if model.path.is_relative_to(tmp_path)]
    assert relative == [
        "musetalkV15/unet.pth",
        "musetalkV15/musetalk.json",
        "sd-vae/config.json",
        "sd-vae/diffusion_pytorch_model.bin",
        "whisper/config.json",
        "whisper/pytorch_model.bin",
        "whisper/preprocessor_config.json",
    ]
    required = [model.label for model in wanted if not model.optional]  # Kokoro's voice files follow, optional
    assert required[-1] == "S3FD face detector", "the detector is the same for both models"
    assert not any("Wav2Lip" in model.label for model in wanted)
    present = wanted[1]
    present.path.parent.mkdir(parents=True)
    present.path.write_text("{}")
    result = fetch_model(present)
    assert result.outcome == Outcome.PRESENT and "no published sha256" in result.message


def test_a_musetalk_service_waits_for_musetalks_files_and_names_each_with_its_table_url(tmp_path: Path, musetalk_dir):
    from heygemd.daemon.config import ModelsConfig
    from heygemd.daemon.model_wait import MISSING, ModelWait
    from heygemd.engine.musetalk import load_musetalk
    from heygemd.engine.settings import EngineSettings
    from heygemd.engine.weights import MUSETALK_FILES, MUSETALK_UNET

    target = tmp_path / "muse"
    settings = EngineSettings(
        model=ModelKind.MUSETALK, musetalk_dir=target, checkpoint=tmp_path / "absent.pth", detector="lbp"
    )
    wait = ModelWait(settings, ModelsConfig(), lambda chosen: load_musetalk(chosen.musetalk_dir, "cpu"))
    assert wait.try_build() is None
    assert [(file.path, file.url, file.problem) for file in wait.missing] == [
        (str((target / row.file_name).resolve()), row.url, MISSING) for row in MUSETALK_FILES
    ], "MuseTalk's seven files, not the Wav2Lip checkpoint"
    assert "absent.pth" not in " ".join(file.describe() for file in wait.missing)

    shutil.copytree(musetalk_dir, target)
    (target / MUSETALK_UNET.file_name).write_text("<html><body>Sign in to download</body></html>\n")
    wait = ModelWait(settings, ModelsConfig(), lambda chosen: load_musetalk(chosen.musetalk_dir, "cpu"))
    assert wait.try_build() is None
    [damaged] = wait.missing
    assert damaged.path == str((target / MUSETALK_UNET.file_name).resolve()) and damaged.problem != MISSING

    shutil.copyfile(musetalk_dir / MUSETALK_UNET.file_name, target / MUSETALK_UNET.file_name)
    wait = ModelWait(settings, ModelsConfig(), lambda chosen: load_musetalk(chosen.musetalk_dir, "cpu"))
    assert wait.try_build() is not None and wait.missing == []


def test_musetalks_vae_is_named_as_safetensors_once_one_is_placed(tmp_path: Path):
    from heygemd.engine.settings import EngineSettings
    from heygemd.engine.weights import SD_VAE

    settings = EngineSettings(model=ModelKind.MUSETALK, musetalk_dir=tmp_path, detector="lbp")
    [vae] = [file for file in settings.weight_files() if file.published is SD_VAE]
    assert vae.path == tmp_path / "sd-vae/diffusion_pytorch_model.bin"
    (tmp_path / "sd-vae").mkdir()
    (tmp_path / "sd-vae/diffusion_pytorch_model.safetensors").write_bytes(b"")
    [vae] = [file for file in settings.weight_files() if file.published is SD_VAE]
    assert vae.path == tmp_path / "sd-vae/diffusion_pytorch_model.safetensors", "the file the engine loads"
