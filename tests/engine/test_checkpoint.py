"""Checkpoint inspection, loading and fitting: good files load, bad ones say why."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest
import torch
from checkpoint_factory import make_s3fd_checkpoint, make_wav2lip_checkpoint
from torch import nn

from heygemd.engine import weights
from heygemd.engine.checkpoint import (
    CheckpointInfo,
    inspect_checkpoint,
    load_s3fd,
    load_state_dict,
    load_wav2lip,
)
from heygemd.engine.errors import CheckpointError
from heygemd.engine.files import sha256_file
from heygemd.engine.model import STATE_DICT_ENTRIES, Wav2Lip
from heygemd.engine.weights import known_name

SEED = 0
HTML_PAGE = (
    b"<!DOCTYPE html>\n<html lang='en'><head><title>Sign in</title></head>"
    + b"<body>"
    + b"<div>please log in to continue</div>" * 1200
    + b"</body></html>\n"
)
LFS_POINTER = b"version https://git-lfs.github.com/spec/v1\noid sha256:b78b\nsize 435807851\n"
DROPPED_KEY = "face_decoder_blocks.3.1.conv_block.0.weight"
RENAMED_KEY = "audio_encoder.4.conv_block.1.running_mean"
RESHAPED_KEY = "output_block.1.weight"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("checkpoints")


@pytest.fixture(scope="module")
def public(checkpoints: Path) -> Path:
    return make_wav2lip_checkpoint(checkpoints / "wav2lip.pth", SEED)


@pytest.fixture(scope="module")
def public_state(public: Path) -> dict[str, torch.Tensor]:
    return load_state_dict(public)


@pytest.fixture(scope="module")
def reference_output() -> torch.Tensor:
    torch.manual_seed(SEED)
    return _predict(Wav2Lip().eval())


def _predict(model: nn.Module) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    audio = torch.randn(2, 1, 80, 16, generator=generator)
    faces = torch.rand(2, 6, 96, 96, generator=generator)
    with torch.inference_mode():
        return model(audio, faces)


def _raises_for(path: Path, *fragments: str) -> CheckpointError:
    with pytest.raises(CheckpointError) as caught:
        load_wav2lip(path, "cpu")
    err = caught.value
    assert err.path == path
    assert str(err).startswith(f"{path}: ")
    for fragment in fragments:
        assert fragment in str(err), str(err)
    return err


# ---------------------------------------------------------------------------- good files


@pytest.mark.parametrize(("wrap", "legacy"), [("public", True), ("module_prefix", True), ("bare", True), ("public", False)])
def test_each_layout_loads_strictly_with_identical_outputs(
    checkpoints: Path, reference_output: torch.Tensor, wrap: str, legacy: bool
) -> None:
    path = make_wav2lip_checkpoint(checkpoints / f"{wrap}-{legacy}.pth", SEED, wrap=wrap, legacy=legacy)
    model, info = load_wav2lip(path, "cpu")
    assert not model.training
    assert next(model.parameters()).device.type == "cpu"
    assert info.path == path
    assert torch.equal(_predict(model), reference_output)
    path.unlink()


def test_public_layout_keeps_training_entries_and_stays_small(public: Path) -> None:
    raw = torch.load(public, map_location="cpu", weights_only=True)
    assert set(raw) == {"state_dict", "optimizer", "global_step", "global_epoch"}
    weight_bytes = sum(t.numel() * t.element_size() for t in raw["state_dict"].values())
    assert public.stat().st_size < 1.1 * weight_bytes


def test_outputs_tell_models_apart(reference_output: torch.Tensor) -> None:
    torch.manual_seed(SEED + 1)
    assert not torch.equal(_predict(Wav2Lip().eval()), reference_output)


def test_state_dict_strips_module_prefix(checkpoints: Path, public_state: dict) -> None:
    path = make_wav2lip_checkpoint(checkpoints / "prefixed.pth", SEED, wrap="module_prefix")
    state = load_state_dict(path)
    assert list(state) == list(public_state)
    assert len(state) == STATE_DICT_ENTRIES
    path.unlink()


def test_missing_batch_counters_are_tolerated(checkpoints: Path, public_state: dict, reference_output) -> None:
    old = {key: value for key, value in public_state.items() if not key.endswith("num_batches_tracked")}
    path = checkpoints / "pre-0.4.1.pth"
    torch.save(old, path)
    model, _ = load_wav2lip(path, "cpu")
    assert torch.equal(_predict(model), reference_output)
    path.unlink()


# ---------------------------------------------------------------------------- inspection


def test_info_reports_size_and_sha256(public: Path) -> None:
    info = inspect_checkpoint(public)
    assert info == CheckpointInfo(
        path=public,
        size_bytes=public.stat().st_size,
        sha256=hashlib.sha256(public.read_bytes()).hexdigest(),
        known_name=None,
    )
    assert sha256_file(public) == info.sha256


def test_known_hash_is_recognised(public: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    digest = sha256_file(public)
    monkeypatch.setattr(
        weights,
        "PUBLISHED",
        (*weights.PUBLISHED, weights.PublishedWeights("wav2lip_gan.pth", digest, weights.WeightsRole.LIP_SYNC)),
    )
    assert inspect_checkpoint(public).known_name == "wav2lip_gan.pth"


def test_published_hashes_and_s3fd_prefix() -> None:
    assert known_name("b78b681b68ad9fe6c6fb1debc6ff43ad05834a8af8a62ffc4167b7b34ef63c37") == "wav2lip.pth"
    assert known_name("ca9ab7b7b812c0e80a6e70a5977c545a1e8a365a6c49d5e533023c034d7ac3d8") == "wav2lip_gan.pth"
    assert known_name("619a316812" + "0" * 54) == "s3fd-619a316812.pth"
    assert known_name("0" * 64) is None


# ---------------------------------------------------------------------------- bad files


def test_missing_file(tmp_path: Path) -> None:
    _raises_for(tmp_path / "wav2lip.pth", "not found")


def test_directory(tmp_path: Path) -> None:
    path = tmp_path / "wav2lip.pth"
    path.mkdir()
    _raises_for(path, "directory")


def test_zero_bytes(tmp_path: Path) -> None:
    path = tmp_path / "wav2lip.pth"
    path.touch()
    _raises_for(path, "empty", "0 bytes")


def test_html_page(tmp_path: Path) -> None:
    path = tmp_path / "wav2lip.pth"
    path.write_bytes(HTML_PAGE)
    _raises_for(path, "is an HTML page, not a checkpoint", "download it again")


def test_git_lfs_pointer(tmp_path: Path) -> None:
    path = tmp_path / "wav2lip.pth"
    path.write_bytes(LFS_POINTER)
    _raises_for(path, "Git LFS pointer")


@pytest.mark.parametrize(
    "text",
    ['{"error": "quota exceeded"}\n', "x" + "é" * 1000],  # the second cuts a character at the 1 KiB probe
)
def test_plain_text(tmp_path: Path, text: str) -> None:
    path = tmp_path / "wav2lip.pth"
    path.write_text(text, encoding="utf-8")
    _raises_for(path, "text file")


def test_random_bytes(tmp_path: Path) -> None:
    path = tmp_path / "wav2lip.pth"
    path.write_bytes(b"\x00\xff" + random.Random(0).randbytes(4096))
    _raises_for(path, "neither a torch zip archive nor a pickle")


@pytest.mark.parametrize("legacy", [True, False])
def test_truncated_in_half(checkpoints: Path, legacy: bool) -> None:
    whole = make_wav2lip_checkpoint(checkpoints / f"whole-{legacy}.pth", SEED, wrap="bare", legacy=legacy)
    half = checkpoints / f"half-{legacy}.pth"
    with whole.open("rb") as source:
        half.write_bytes(source.read(whole.stat().st_size // 2))
    whole.unlink()
    _raises_for(half, "truncated", "download it again")
    half.unlink()


def test_truncated_right_after_the_header(public: Path, tmp_path: Path) -> None:
    path = tmp_path / "wav2lip.pth"
    with public.open("rb") as source:
        path.write_bytes(source.read(12))
    _raises_for(path, "truncated")


def test_wrong_network(tmp_path: Path) -> None:
    path = tmp_path / "linear.pth"
    torch.save({"state_dict": nn.Linear(4, 2).state_dict()}, path)
    _raises_for(path, "different network", f"{STATE_DICT_ENTRIES} expected entries, 0 match", "2 unexpected")


def _save_variant(path: Path, state: dict[str, torch.Tensor], change: str) -> Path:
    state = dict(state)
    if change == "dropped":
        del state[DROPPED_KEY]
    elif change == "renamed":
        state[RENAMED_KEY + "_old"] = state.pop(RENAMED_KEY)
    elif change == "reshaped":
        state[RESHAPED_KEY] = torch.zeros(3, 32, 3, 3)
    elif change == "nan":
        state[RESHAPED_KEY] = torch.full_like(state[RESHAPED_KEY], float("nan"))
    torch.save({"state_dict": state}, path)
    return path


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        ("dropped", ("does not fit Wav2Lip", "351 match", "1 missing", DROPPED_KEY)),
        ("renamed", ("1 missing", RENAMED_KEY, "1 unexpected", RENAMED_KEY + "_old")),
        ("reshaped", ("1 with the wrong shape", RESHAPED_KEY, "(3, 32, 3, 3) vs (3, 32, 1, 1)")),
        ("nan", ("NaN or infinite", RESHAPED_KEY)),
    ],
)
def test_almost_wav2lip(public_state: dict, tmp_path: Path, change: str, fragments: tuple[str, ...]) -> None:
    path = _save_variant(tmp_path / f"{change}.pth", public_state, change)
    _raises_for(path, *fragments)


class _Pickled:
    """Not a tensor: weights_only loading must refuse it."""


def test_arbitrary_objects_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "wav2lip.pth"
    torch.save({"state_dict": {}, "extra": _Pickled()}, path)
    _raises_for(path, "weights_only")


def test_dict_without_tensors(tmp_path: Path) -> None:
    path = tmp_path / "wav2lip.pth"
    torch.save({"global_step": 3, "note": "hello"}, path)
    _raises_for(path, "not a state_dict", "global_step")


# ---------------------------------------------------------------------------- S3FD


def test_s3fd_checkpoint_loads_like_the_published_file(tmp_path: Path) -> None:
    from face_alignment.detection.sfd.sfd_detector import SFDDetector

    path = make_s3fd_checkpoint(tmp_path / "s3fd-619a316812.pth")
    detector, info = load_s3fd(path, "cpu")
    assert not detector.training and info.known_name is None
    reference = SFDDetector("cpu", path_to_detector=str(path)).face_detector
    for key, tensor in reference.state_dict().items():
        assert torch.equal(detector.state_dict()[key], tensor), key
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        for ours, theirs in zip(detector(image), reference(image), strict=True):
            assert torch.equal(ours, theirs)
    _raises_for(path, "different network, not Wav2Lip")
