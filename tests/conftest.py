"""Fixtures shared by the whole suite: a generated checkpoint and a warm engine (no downloads)."""

from __future__ import annotations

from pathlib import Path

import pytest
from checkpoint_factory import make_wav2lip_checkpoint

# The service harness (a real `heygemd run`, media, Samba, Redis) serves the daemon, web and cluster tests alike.
pytest_plugins = ["service_harness"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``gpu`` are skipped, never deselected, where torch sees no CUDA device."""
    gpu_tests = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu_tests:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (run `pytest -m gpu` on a GPU machine)")
    for item in gpu_tests:
        item.add_marker(skip)


@pytest.fixture(scope="session")
def wav2lip_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Wav2Lip checkpoint in the exact public format, random weights from seed 0."""
    return make_wav2lip_checkpoint(tmp_path_factory.mktemp("checkpoints") / "wav2lip_gan.pth", seed=0)


@pytest.fixture(scope="session")
def engine_settings(wav2lip_checkpoint: Path):
    from heygemd.engine import EngineSettings

    return EngineSettings(
        checkpoint=wav2lip_checkpoint,
        detector="lbp",
        device="cpu",
        batch_size=16,
        detect_max_side=320,
    )


@pytest.fixture(scope="session")
def engine(engine_settings):
    """One warm engine for the session, as the daemon keeps one."""
    from heygemd.engine import LipSyncEngine

    return LipSyncEngine(engine_settings)


@pytest.fixture(scope="session")
def musetalk_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MuseTalk 1.5's published layout with seeded random weights (small UNet and VAE, full whisper-tiny)."""
    from musetalk_factory import make_musetalk_dir

    return make_musetalk_dir(tmp_path_factory.mktemp("musetalk"), seed=0)


@pytest.fixture(scope="session")
def musetalk(musetalk_dir: Path):
    """The MuseTalk entry point's model on the CPU, loaded once for the session."""
    from heygemd.engine.musetalk import load_musetalk

    return load_musetalk(musetalk_dir, device="cpu")
