"""`heygemd doctor`: check everything the service needs, and say what to fix."""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from heygemd.commands.fetch import place_by_hand, wanted_models
from heygemd.daemon.config import HeygemdConfig, LoadedConfig
from heygemd.daemon.fsutil import filesystem_type, same_filesystem
from heygemd.daemon.openfiles import probe_capability
from heygemd.daemon.watcher import choose_watch_mode
from heygemd.engine.files import sha256_file
from heygemd.engine.settings import ModelKind


class Level(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Check:
    name: str
    level: Level
    detail: str


def run_checks(loaded: LoadedConfig) -> list[Check]:
    config = loaded.config
    checks = [Check("config", Level.OK, str(loaded.source) if loaded.source else "no file found: built-in defaults")]
    checks.append(_model_check(config))
    checks += _ffmpeg_checks()
    checks += _torch_checks(config)
    checks += _checkpoint_checks(config)
    checks.append(_restorer_check(config))
    checks += _voice_checks(config)
    checks += _folder_checks(config)
    checks += _service_checks(config)
    return checks


def _service_checks(config: HeygemdConfig) -> list[Check]:
    """A service of this state folder that runs but waits for its model files: which file goes where."""
    from heygemd.daemon.status import WAITING_FOR_MODEL, process_alive, read_status

    status = read_status(config.paths.state)
    if status is None or status.state != WAITING_FOR_MODEL or not process_alive(status.pid):
        return []
    wanted = "; ".join(file.describe() for file in status.model_files)
    return [Check("service", Level.WARN, f"pid {status.pid} runs, {WAITING_FOR_MODEL} (jobs stay queued): {wanted}")]


def _ffmpeg_checks() -> list[Check]:
    try:
        from heygemd.engine.ffmpeg_tools import ffmpeg_path, ffprobe_path
    except ImportError as err:
        return [Check("ffmpeg", Level.FAIL, f"the engine's ffmpeg helpers cannot be imported: {err}")]
    checks = []
    for name, locate in (("ffmpeg", ffmpeg_path), ("ffprobe", ffprobe_path)):
        try:
            binary = str(locate())
            result = subprocess.run([binary, "-version"], capture_output=True, text=True, timeout=30)
            first = (result.stdout.splitlines() or ["?"])[0]
            level = Level.OK if result.returncode == 0 else Level.FAIL
            checks.append(Check(name, level, f"{binary} ({first})"))
        except Exception as err:  # any failure to locate or start is the finding itself
            checks.append(Check(name, Level.FAIL, f"not usable: {err}"))
    return checks


def _torch_checks(config: HeygemdConfig) -> list[Check]:
    try:
        import torch
    except ImportError as err:
        return [Check("torch", Level.FAIL, f"cannot be imported: {err}")]
    checks = [Check("torch", Level.OK, f"torch {torch.__version__}")]
    if torch.cuda.is_available():
        names = ", ".join(f"{index}: {torch.cuda.get_device_name(index)}" for index in range(torch.cuda.device_count()))
        checks.append(Check("cuda", Level.OK, f"CUDA {torch.version.cuda}; GPUs {names}"))
    else:
        wants_gpu = config.engine.device.startswith("cuda")
        detail = "no CUDA GPU visible to torch"
        if os.path.exists("/dev/nvidiactl") and not os.path.exists("/dev/nvidia-uvm"):
            detail += " (/dev/nvidia-uvm is missing: run nvidia-modprobe -u -c=0 or load nvidia_uvm)"
        elif not os.path.exists("/dev/nvidiactl"):
            detail += " (no /dev/nvidia* devices: driver not loaded, or hidden by the unit's hardening)"
        hint = "" if wants_gpu else f"; engine.device = {config.engine.device!r}: renders will use the CPU (slow)"
        checks.append(Check("cuda", Level.FAIL if wants_gpu else Level.WARN, detail + hint))
    return checks


def _checkpoint_checks(config: HeygemdConfig) -> list[Check]:
    checks = []
    missing_level = Level.WARN if config.engine.dry_run else Level.FAIL
    for model in wanted_models(config):
        if not model.path.is_file():
            level = Level.WARN if model.optional else missing_level
            # the service waits for the engine's weights and loads them when valid; a voice file is optional
            waits = "" if model.optional else " (a running service loads it the moment it is valid, with no restart)"
            detail = f"{model.path} is missing: run `heygemd fetch-models`; offline: {place_by_hand(model)}{waits}"
            checks.append(Check(model.label, level, detail))
            continue
        digest = sha256_file(model.path)
        size = model.path.stat().st_size
        if not model.verified:
            checks.append(
                Check(model.label, Level.OK, f"{model.path}, {size} bytes, sha256 {digest} (no published digest to compare)")
            )
        elif model.matches(digest):
            checks.append(Check(model.label, Level.OK, f"{model.path}, {size} bytes, sha256 {digest}"))
        else:
            checks.append(
                Check(
                    model.label,
                    Level.WARN,
                    f"{model.path}, {size} bytes, sha256 {digest}: not the expected {model.sha256} "
                    "(a different or damaged file; the engine checks it when it loads)",
                )
            )
    return checks


MODEL_DESCRIPTIONS = {
    ModelKind.WAV2LIP: "Wav2Lip, a 96x96 mouth (its weights are for personal/research use only)",
    ModelKind.MUSETALK: "MuseTalk 1.5, a 256x256 face (weights for any purpose, even commercially)",
}


def _model_check(config: HeygemdConfig) -> Check:
    """Which lip-sync model the service runs (its files have their own lines below)."""
    model = ModelKind(config.engine.model)
    where = {ModelKind.WAV2LIP: config.engine.checkpoint, ModelKind.MUSETALK: config.engine.musetalk_dir}[model]
    return Check("model", Level.OK, f"engine.model = {model.value!r}: {MODEL_DESCRIPTIONS[model]}, from {where}")


def _restorer_check(config: HeygemdConfig) -> Check:
    """Whether the face restorer is on, and how it runs (its weights have their own line above)."""
    engine = config.engine
    if engine.restorer.value == "none":
        return Check("restorer", Level.OK, 'off (engine.restorer = "none"): the mouth is the lip-sync model\'s own drawing')
    precision = "float16 on CUDA" if engine.half_precision else "float32"
    return Check(
        "restorer",
        Level.OK,
        f"{engine.restorer.value}: {engine.restorer_checkpoint}, restore_weight {config.render.restore_weight}, "
        f"batch {engine.restorer_batch_size}, {precision} (a job's job.toml may set restore_weight; 0 turns it off)",
    )


def _voice_checks(config: HeygemdConfig) -> list[Check]:
    """Which voices can speak a script here: espeak-ng always (else FAIL), Kokoro when its files load (else WARN)."""
    from heygemd.speech import usable_voices

    checks = []
    for status in usable_voices(config.speech.kokoro_files()):
        if status.usable:
            languages = ", ".join(status.languages) if len(status.languages) <= 8 else f"{len(status.languages)} languages"
            checks.append(Check(f"voice {status.engine}", Level.OK, f"usable: {languages}; {status.detail}"))
        else:
            level = Level.FAIL if status.engine == "espeak-ng" else Level.WARN
            checks.append(Check(f"voice {status.engine}", level, f"not usable: {status.detail}"))
    return checks


def _writable(folder: Path) -> str | None:
    if not folder.is_dir():
        return "does not exist (run `heygemd init`)"
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".heygemd-doctor-"):
            pass
    except OSError as err:
        return f"not writable: {err.strerror}"
    return None


def _folder_checks(config: HeygemdConfig) -> list[Check]:
    paths = config.paths
    checks = []
    for key in ("inbox", "work", "outbox", "quarantine", "archive", "state"):
        folder: Path = getattr(paths, key)
        problem = _writable(folder)
        fs_type = filesystem_type(folder if folder.exists() else folder.parent)
        detail = f"{folder.resolve()} ({fs_type})"
        checks.append(
            Check(f"paths.{key}", Level.FAIL if problem else Level.OK, f"{detail}: {problem}" if problem else detail)
        )
    if paths.inbox.is_dir() and paths.work.is_dir() and not same_filesystem(paths.inbox, paths.work):
        checks.append(
            Check("claiming", Level.FAIL, "paths.work is not on the inbox's filesystem: a claim must be one rename")
        )
    for key in ("outbox", "quarantine"):
        folder = getattr(paths, key)
        if paths.work.is_dir() and folder.is_dir() and not same_filesystem(paths.work, folder):
            checks.append(
                Check(f"paths.{key}", Level.WARN, "not on the work folder's filesystem: results are copied, then renamed")
            )
    plan = choose_watch_mode(paths.inbox, config.watch.mode)
    checks.append(Check("watch mode", Level.OK, f"{plan.mode.value} ({plan.reason})"))
    checks.append(_open_files_check(paths.inbox))
    return checks


def _open_files_check(inbox: Path) -> Check:
    """Can the service see that an upload is still open (a client paused with its handle open)?"""
    capability = probe_capability(inbox)
    level = Level.OK if capability.available and capability.complete else Level.WARN
    return Check("open files", level, f"{capability.method.value}: {capability.detail}")


def format_checks(checks: list[Check]) -> str:
    width = max(len(check.name) for check in checks)
    return "\n".join(f"{check.level.value.upper():4}  {check.name:<{width}}  {check.detail}" for check in checks)
