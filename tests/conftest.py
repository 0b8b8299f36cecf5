"""Fixtures shared by the whole suite: a generated checkpoint and a warm engine (no downloads)."""

from __future__ import annotations

import os
from pathlib import Path


def _share_the_cores_between_workers() -> None:
    """Under pytest-xdist, each worker's torch (and the services it starts, through the environment) uses its share
    of the cores: two workers with a thread per core each would fight over the cores and spin."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1 and "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // workers))


_share_the_cores_between_workers()  # before torch is imported below

import pytest  # noqa: E402
from checkpoint_factory import make_wav2lip_checkpoint  # noqa: E402

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
