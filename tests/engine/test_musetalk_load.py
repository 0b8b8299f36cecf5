"""MuseTalk 1.5's files: the published layout loads strictly; wrong, damaged or foreign files are refused with reasons."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from checkpoint_factory import make_wav2lip_checkpoint
from musetalk_factory import (
    PUBLISHED_UNET,
    PUBLISHED_VAE,
    TINY_UNET,
    WHISPER_TINY,
    constructor,
    make_musetalk_dir,
    old_attention_names,
)
from transformers import WhisperConfig, WhisperForConditionalGeneration

from heygemd.engine.checkpoint import fit_state_dict
from heygemd.engine.errors import CheckpointError
from heygemd.engine.musetalk.layout import ModelFiles
from heygemd.engine.musetalk.loading import (
    WHISPER_BASE_PREFIX,
    WHISPER_TIED_HEAD,
    build_unet,
    build_vae,
    build_whisper,
    load_networks,
    rename_old_attention,
)

HTML_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>Hugging Face</title></head><body>" + b"<p>blob</p>" * 500 + b"</body></html>"
)
LFS_POINTER = b"version https://git-lfs.github.com/spec/v1\noid sha256:0123\nsize 151061672\n"


@pytest.fixture
def layout(musetalk_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the session's layout that a test may damage."""
    return Path(shutil.copytree(musetalk_dir, tmp_path / "musetalk"))


def test_the_published_layout_loads_strictly_with_every_tensor_from_its_file(musetalk_dir: Path):
    networks = load_networks(musetalk_dir)
    saved = torch.load(ModelFiles(musetalk_dir).unet_weights, weights_only=True)
    loaded = networks.unet.state_dict()
    assert loaded.keys() == saved.keys()
    assert all(torch.equal(loaded[key], saved[key]) for key in saved)
    vae_saved = torch.load(musetalk_dir / "sd-vae/diffusion_pytorch_model.bin", weights_only=True)
    assert any(".mid_block.attentions.0.query." in key for key in vae_saved), "the factory writes the old names"
    vae_loaded = networks.vae.state_dict()
    assert torch.equal(
        vae_loaded["encoder.mid_block.attentions.0.to_q.weight"], vae_saved["encoder.mid_block.attentions.0.query.weight"]
    )
    whisper_saved = torch.load(ModelFiles(musetalk_dir).whisper_weights, weights_only=True)
    assert torch.equal(networks.whisper.conv1.weight, whisper_saved["model.encoder.conv1.weight"])
    assert networks.unet_file.size_bytes == ModelFiles(musetalk_dir).unet_weights.stat().st_size
    assert len(networks.unet_file.sha256) == 64


def test_the_vae_loads_from_safetensors_too(tmp_path: Path, musetalk_dir: Path):
    root = make_musetalk_dir(tmp_path / "safetensors", seed=0, safetensors=True)
    assert not (root / "sd-vae/diffusion_pytorch_model.bin").exists()
    from_safetensors = load_networks(root).vae.state_dict()
    from_bin = load_networks(musetalk_dir).vae.state_dict()
    assert all(torch.equal(from_safetensors[key], from_bin[key]) for key in from_bin)


def test_the_full_size_published_configs_fit_key_for_key_on_the_meta_device():
    """The published configs build the networks whose keys the published files hold (no memory: meta tensors)."""
    with torch.device("meta"):
        unet = build_unet(constructor(PUBLISHED_UNET), Path("musetalk.json"))
        vae = build_vae(constructor(PUBLISHED_VAE), Path("config.json"))
        whisper = build_whisper(WhisperConfig.from_dict(WHISPER_TINY), Path("config.json"))
        published_whisper = WhisperForConditionalGeneration(WhisperConfig.from_dict(WHISPER_TINY)).state_dict()
        fresh_unet = build_unet(constructor(PUBLISHED_UNET), Path("musetalk.json"))
        fresh_vae = build_vae(constructor(PUBLISHED_VAE), Path("config.json"))
    fit_state_dict(fresh_unet, unet.state_dict(), Path("unet.pth"), "UNet")
    fit_state_dict(fresh_vae, rename_old_attention(old_attention_names(vae.state_dict())), Path("vae.bin"), "VAE")
    whisper_state = {key.removeprefix(WHISPER_BASE_PREFIX): value for key, value in published_whisper.items()}
    whisper_state.pop(WHISPER_TIED_HEAD)
    fit_state_dict(whisper, whisper_state, Path("pytorch_model.bin"), "whisper-tiny")
    unet_parameters = sum(parameter.numel() for parameter in unet.parameters())
    assert 3.0e9 < unet_parameters * 4 < 3.8e9, "a full-size UNet is ~3.4 GB in float32"
    assert len(old_attention_names(vae.state_dict()).keys() - vae.state_dict().keys()) == 16, (
        "query, key, value, proj_attn (weight and bias) of the encoder's and decoder's mid-block attention"
    )
    assert whisper.config.d_model == 384 and whisper.config.encoder_layers == 4


def test_a_wav2lip_checkpoint_in_place_of_the_unet_is_refused_with_counts(layout: Path):
    make_wav2lip_checkpoint(ModelFiles(layout).unet_weights, seed=0)
    with pytest.raises(CheckpointError) as raised:
        load_networks(layout)
    with torch.device("meta"):
        entries = len(build_unet(constructor(TINY_UNET), Path("musetalk.json")).state_dict())
    assert raised.value.path == ModelFiles(layout).unet_weights
    assert raised.value.reason.startswith(
        f"this looks like a different network, not MuseTalk 1.5's UNet: {entries} expected entries, 0 match; "
        f"{entries} missing"
    )
    assert "; 352 unexpected (e.g. face_encoder_blocks." in raised.value.reason  # all of Wav2Lip's entries


def test_weights_of_another_width_are_refused_with_the_wrong_shapes_counted(layout: Path):
    wider = {**TINY_UNET, "block_out_channels": [32, 32, 32, 32]}  # the first block twice as wide
    torch.manual_seed(1)
    from diffusers import UNet2DConditionModel

    torch.save(UNet2DConditionModel(**constructor(wider)).state_dict(), ModelFiles(layout).unet_weights)
    with pytest.raises(
        CheckpointError,
        match=r"does not fit MuseTalk 1.5's UNet: 440 expected entries, 297 match; 2 missing .*; 141 with the wrong shape \(e.g. conv_in.weight \(32, 8, 3, 3\) vs \(16, 8, 3, 3\)",
    ):
        load_networks(layout)


def test_a_vae_key_under_an_unknown_name_is_counted_missing_and_unexpected(layout: Path):
    path = layout / "sd-vae/diffusion_pytorch_model.bin"
    state = torch.load(path, weights_only=True)
    state["encoder.mid_block.attentions.0.querry.weight"] = state.pop("encoder.mid_block.attentions.0.query.weight")
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"1 missing .*to_q.weight.*; 1 unexpected .*querry.weight"):
        load_networks(layout)


@pytest.mark.parametrize(
    ("relative", "content", "reason"),
    [
        ("musetalkV15/unet.pth", HTML_PAGE, "is an HTML page"),
        ("whisper/pytorch_model.bin", LFS_POINTER, "is a Git LFS pointer"),
        ("sd-vae/config.json", HTML_PAGE, "is an HTML page"),
        ("musetalkV15/musetalk.json", b"{not json", "is not a JSON config file"),
    ],
)
def test_a_web_page_pointer_or_broken_config_is_named_with_its_problem(
    layout: Path, relative: str, content: bytes, reason: str
):
    (layout / relative).write_bytes(content)
    with pytest.raises(CheckpointError, match=reason) as raised:
        load_networks(layout)
    assert raised.value.path == layout / relative


@pytest.mark.parametrize(
    "relative", ["musetalkV15/unet.pth", "sd-vae/diffusion_pytorch_model.bin", "whisper/pytorch_model.bin"]
)
def test_a_truncated_weights_file_is_named_as_truncated(layout: Path, relative: str):
    path = layout / relative
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(CheckpointError, match="truncated") as raised:
        load_networks(layout)
    assert raised.value.path == path


def test_a_truncated_safetensors_file_is_named_as_truncated(tmp_path: Path):
    root = make_musetalk_dir(tmp_path / "safetensors", seed=0, safetensors=True)
    path = root / "sd-vae/diffusion_pytorch_model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 1000])
    with pytest.raises(CheckpointError, match="is truncated: its header promises"):
        load_networks(root)


def test_a_missing_file_is_named(layout: Path):
    (layout / "whisper/preprocessor_config.json").unlink()
    with pytest.raises(CheckpointError, match="not found") as raised:
        load_networks(layout)
    assert raised.value.path == layout / "whisper/preprocessor_config.json"


def test_a_file_holding_python_objects_is_not_unpickled(layout: Path):
    torch.save({"unet": torch.nn.Linear(2, 2)}, ModelFiles(layout).unet_weights)
    with pytest.raises(CheckpointError, match="weights_only=True"):
        load_networks(layout)


def test_a_unet_config_for_other_audio_features_is_refused(layout: Path):
    config_path = ModelFiles(layout).unet_config
    config = json.loads(config_path.read_text())
    config["cross_attention_dim"] = 768
    config_path.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="cross_attention_dim is 768"):
        load_networks(layout)
