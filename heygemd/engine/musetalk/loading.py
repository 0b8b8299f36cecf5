"""Load MuseTalk 1.5's three networks from the published layout, strictly and without running code from a file.

Each weights file gets the checks of ``engine.checkpoint`` (missing, empty, web page, LFS pointer,
truncated, not tensors), then every key and shape is compared with the network its config builds.
The networks are built on the meta device and take their tensors from the file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from heygemd.engine.checkpoint import (
    CheckpointInfo,
    fit_state_dict,
    inspect_checkpoint,
    inspect_safetensors,
    load_state_dict,
    read_config,
)
from heygemd.engine.errors import CheckpointError
from heygemd.engine.musetalk.layout import HIDDEN_SIZE, HIDDEN_STATES, SAMPLE_RATE, ModelFiles
from heygemd.engine.weights import SAFETENSORS_SUFFIX

CONFIG_METADATA_PREFIX = "_"  # keys such as _class_name, _diffusers_version: not constructor arguments
WHISPER_BASE_PREFIX = "model."  # the published file is a WhisperForConditionalGeneration's state_dict
WHISPER_TIED_HEAD = "proj_out.weight"  # the output head, tied to the decoder's token embedding: not needed
# diffusers before 0.15 named the attention of the VAE's mid-block differently; the published .bin keeps those names.
OLD_VAE_ATTENTION = re.compile(
    r"^(?P<block>(?:encoder|decoder)\.mid_block\.attentions\.\d+)\.(?P<old>query|key|value|proj_attn)\.(?P<kind>weight|bias)$"
)
NEW_VAE_ATTENTION = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}


@dataclass(frozen=True)
class LoadedNetworks:
    """The three networks in eval mode on the CPU (float32), with what each weights file is."""

    unet: UNet2DConditionModel
    vae: AutoencoderKL
    whisper: WhisperEncoder
    feature_extractor: WhisperFeatureExtractor
    unet_file: CheckpointInfo
    vae_file: CheckpointInfo
    whisper_file: CheckpointInfo


def load_networks(models_dir: Path) -> LoadedNetworks:
    """Read every file of ``models_dir`` (the published layout) into its network. Raises CheckpointError."""
    files = ModelFiles(Path(models_dir))
    unet, unet_file = load_unet(files)
    vae, vae_file = load_vae(files)
    whisper, whisper_file = load_whisper(files)
    return LoadedNetworks(
        unet=unet,
        vae=vae,
        whisper=whisper,
        feature_extractor=load_feature_extractor(files),
        unet_file=unet_file,
        vae_file=vae_file,
        whisper_file=whisper_file,
    )


def constructor_config(path: Path) -> dict[str, object]:
    """A diffusers config file without its metadata keys."""
    return {key: value for key, value in read_config(path).items() if not key.startswith(CONFIG_METADATA_PREFIX)}


def build_unet(config: Mapping[str, object], path: Path) -> UNet2DConditionModel:
    """The UNet a config describes (on the current default device), or a CheckpointError naming the config."""
    try:
        unet = UNet2DConditionModel(**config)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"does not describe a diffusers UNet2DConditionModel ({err})", path) from None
    if unet.config.cross_attention_dim != HIDDEN_SIZE:
        raise CheckpointError(
            f"cross_attention_dim is {unet.config.cross_attention_dim}: MuseTalk's UNet attends to whisper "
            f"features of {HIDDEN_SIZE}",
            path,
        )
    return unet


def build_vae(config: Mapping[str, object], path: Path) -> AutoencoderKL:
    try:
        return AutoencoderKL(**config)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"does not describe a diffusers AutoencoderKL ({err})", path) from None


def build_whisper(config: WhisperConfig, path: Path) -> WhisperModel:
    if config.d_model != HIDDEN_SIZE or config.encoder_layers != HIDDEN_STATES - 1:
        raise CheckpointError(
            f"describes a whisper of width {config.d_model} with {config.encoder_layers} encoder layers: MuseTalk "
            f"1.5 uses whisper-tiny (width {HIDDEN_SIZE}, {HIDDEN_STATES - 1} layers)",
            path,
        )
    return WhisperModel(config)


def load_unet(files: ModelFiles) -> tuple[UNet2DConditionModel, CheckpointInfo]:
    config = constructor_config(files.unet_config)
    info = inspect_checkpoint(files.unet_weights)
    state = load_state_dict(info.path)
    with torch.device("meta"):
        unet = build_unet(config, files.unet_config)
    fit_state_dict(unet, state, info.path, "MuseTalk 1.5's UNet")
    return unet.eval(), info


def load_vae(files: ModelFiles) -> tuple[AutoencoderKL, CheckpointInfo]:
    config = constructor_config(files.vae_config)
    path = files.vae_weights
    if path.suffix == SAFETENSORS_SUFFIX:
        from safetensors.torch import load_file

        info = inspect_safetensors(path)
        try:
            state = load_file(str(path))
        except Exception as err:  # safetensors raises its own SafetensorError
            raise CheckpointError(f"could not be read as a safetensors file ({err})", path) from err
    else:
        info = inspect_checkpoint(path)
        state = load_state_dict(path)
    with torch.device("meta"):
        vae = build_vae(config, files.vae_config)
    fit_state_dict(vae, rename_old_attention(state), info.path, "the sd-vae-ft-mse VAE")
    return vae.eval(), info


def rename_old_attention(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The VAE's tensors under today's names: the mid-block's ``query``/``key``/``value``/``proj_attn`` renamed.

    Any other key is left as it is, so a file of another network still fails the fit with its own names.
    """
    renamed: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        match = OLD_VAE_ATTENTION.match(key)
        if match:
            key = f"{match['block']}.{NEW_VAE_ATTENTION[match['old']]}.{match['kind']}"
        renamed[key] = tensor
    return renamed


def load_whisper(files: ModelFiles) -> tuple[WhisperEncoder, CheckpointInfo]:
    """whisper-tiny's encoder: the whole published model is checked and fitted, the decoder then dropped."""
    try:
        config = WhisperConfig.from_dict(read_config(files.whisper_config))
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"is not a whisper config ({err})", files.whisper_config) from None
    info = inspect_checkpoint(files.whisper_weights)
    state = {key.removeprefix(WHISPER_BASE_PREFIX): value for key, value in load_state_dict(info.path).items()}
    state.pop(WHISPER_TIED_HEAD, None)
    with torch.device("meta"):
        whisper = build_whisper(config, files.whisper_config)
    fit_state_dict(whisper, state, info.path, "whisper-tiny")
    return whisper.encoder.eval(), info


def load_feature_extractor(files: ModelFiles) -> WhisperFeatureExtractor:
    settings = read_config(files.whisper_preprocessor)
    try:
        extractor = WhisperFeatureExtractor(**settings)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"is not a whisper feature extractor config ({err})", files.whisper_preprocessor) from None
    if extractor.sampling_rate != SAMPLE_RATE:
        raise CheckpointError(
            f"sets a sampling rate of {extractor.sampling_rate} Hz; whisper takes {SAMPLE_RATE}", files.whisper_preprocessor
        )
    return extractor
