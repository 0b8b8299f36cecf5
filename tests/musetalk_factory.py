"""Build MuseTalk 1.5's files in the published layout with seeded random weights, so tests need no download.

The configs are the published ones (``PUBLISHED_*``, facts from the MuseTalk download: musetalk.json,
sd-vae-ft-mse's config.json, whisper-tiny's config.json and preprocessor_config.json). A full-size
UNet is ~3.4 GB in float32, so the tests render with ``TINY_*`` and the benchmark with ``SMALL_*``: the
same architectures, narrower and with one layer per block (the loader reads whatever the config files say). whisper-tiny is small enough to be
written at full size: its width (384) and its 5 hidden states are part of MuseTalk's contract.

As published: unet.pth is a bare state_dict; the VAE's .bin names its mid-block attention with the
old keys (query, key, value, proj_attn); whisper's pytorch_model.bin is a
WhisperForConditionalGeneration's state_dict (keys under ``model.``, plus ``proj_out.weight``).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import WhisperConfig, WhisperForConditionalGeneration

from heygemd.engine.musetalk.layout import ModelFiles

PUBLISHED_UNET = {
    "_class_name": "UNet2DConditionModel",
    "_diffusers_version": "0.6.0.dev0",
    "act_fn": "silu",
    "attention_head_dim": 8,
    "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 384,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 8,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": 64,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
}
SMALL_UNET = {**PUBLISHED_UNET, "block_out_channels": [32, 64, 64, 64], "layers_per_block": 1}
# The tests' renders: narrower still (16 norm groups allow a width of 16); about 10x faster than SMALL on 2 cores.
TINY_UNET = {**SMALL_UNET, "block_out_channels": [16, 32, 32, 32], "norm_num_groups": 16}

PUBLISHED_VAE = {
    "_class_name": "AutoencoderKL",
    "_diffusers_version": "0.4.2",
    "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "in_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "out_channels": 3,
    "sample_size": 256,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
}
SMALL_VAE = {**PUBLISHED_VAE, "block_out_channels": [32, 32, 32, 32], "layers_per_block": 1}
TINY_VAE = {**SMALL_VAE, "block_out_channels": [16, 16, 16, 16], "norm_num_groups": 16}

WHISPER_TINY = {
    "architectures": ["WhisperForConditionalGeneration"],
    "model_type": "whisper",
    "activation_function": "gelu",
    "d_model": 384,
    "encoder_layers": 4,
    "encoder_attention_heads": 6,
    "encoder_ffn_dim": 1536,
    "decoder_layers": 4,
    "decoder_attention_heads": 6,
    "decoder_ffn_dim": 1536,
    "num_mel_bins": 80,
    "vocab_size": 51865,
    "max_source_positions": 1500,
    "max_target_positions": 448,
    "pad_token_id": 50257,
    "bos_token_id": 50257,
    "eos_token_id": 50257,
    "decoder_start_token_id": 50258,
    "scale_embedding": False,
    "torch_dtype": "float32",
}
WHISPER_PREPROCESSOR = {
    "chunk_length": 30,
    "feature_extractor_type": "WhisperFeatureExtractor",
    "feature_size": 80,
    "hop_length": 160,
    "n_fft": 400,
    "n_samples": 480000,
    "nb_max_frames": 3000,
    "padding_side": "right",
    "padding_value": 0.0,
    "processor_class": "WhisperProcessor",
    "return_attention_mask": False,
    "sampling_rate": 16000,
}
NEW_TO_OLD_ATTENTION = {".to_q.": ".query.", ".to_k.": ".key.", ".to_v.": ".value.", ".to_out.0.": ".proj_attn."}


def constructor(config: dict[str, object]) -> dict[str, object]:
    return {key: value for key, value in config.items() if not key.startswith("_")}


def make_musetalk_dir(
    root: Path,
    seed: int = 0,
    *,
    unet: dict[str, object] = TINY_UNET,
    vae: dict[str, object] = TINY_VAE,
    safetensors: bool = False,
) -> Path:
    """Write the published layout under ``root`` with seeded random weights; returns ``root``."""
    files = ModelFiles(root)
    for folder in ("musetalkV15", "sd-vae", "whisper"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    _write_json(files.unet_config, unet)
    torch.save(UNet2DConditionModel(**constructor(unet)).state_dict(), files.unet_weights)
    _write_json(files.vae_config, vae)
    vae_state = old_attention_names(AutoencoderKL(**constructor(vae)).state_dict())
    if safetensors:
        from safetensors.torch import save_file

        save_file(
            {key: value.contiguous() for key, value in vae_state.items()},
            str(root / "sd-vae/diffusion_pytorch_model.safetensors"),
        )
    else:
        torch.save(vae_state, root / "sd-vae/diffusion_pytorch_model.bin")
    _write_json(files.whisper_config, WHISPER_TINY)
    _write_json(files.whisper_preprocessor, WHISPER_PREPROCESSOR)
    whisper = WhisperForConditionalGeneration(WhisperConfig.from_dict(WHISPER_TINY))
    torch.save({key: value.clone() for key, value in whisper.state_dict().items()}, files.whisper_weights)
    return root


def old_attention_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The VAE's mid-block attention under the names of the published .bin."""
    renamed = {}
    for key, value in state.items():
        if ".mid_block.attentions." in key:
            for new, old in NEW_TO_OLD_ATTENTION.items():
                key = key.replace(new, old)
        renamed[key] = value
    return renamed


def _write_json(path: Path, content: dict[str, object]) -> None:
    path.write_text(json.dumps(content, indent=2) + "\n")
