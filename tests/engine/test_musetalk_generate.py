"""MuseTalk's generate: what the reference computes for the same crops and windows, frame by frame, written plainly.

The oracle loads the same files its own way (diffusers' from_pretrained for the VAE, which renames the
old attention keys itself; a plain load_state_dict for the UNet), builds the positional encoding with
math.sin/cos, and runs one frame at a time in float64 pre-processing, as the reference does. The one
deliberate difference is ours too: the VAE's latent mean instead of a random draw.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel

from heygemd.engine.musetalk import positional_encoding

SCALE = 0.18215


@pytest.fixture(scope="module")
def oracle_networks(musetalk_dir: Path) -> tuple[UNet2DConditionModel, AutoencoderKL]:
    config = json.loads((musetalk_dir / "musetalkV15/musetalk.json").read_text())
    unet = UNet2DConditionModel(**{key: value for key, value in config.items() if not key.startswith("_")})
    unet.load_state_dict(torch.load(musetalk_dir / "musetalkV15/unet.pth", weights_only=True))
    vae = AutoencoderKL.from_pretrained(str(musetalk_dir / "sd-vae"))
    return unet.eval(), vae.eval()


def _oracle_pe() -> torch.Tensor:
    table = torch.zeros(50, 384, dtype=torch.float64)
    for position in range(50):
        for channel in range(384):
            frequency = math.exp(-math.log(10000.0) * (channel - channel % 2) / 384)
            angle = position * frequency
            table[position, channel] = math.sin(angle) if channel % 2 == 0 else math.cos(angle)
    return table.float()


def _oracle_face(unet, vae, crop: np.ndarray, window: np.ndarray) -> np.ndarray:
    rgb = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB) / 255.0  # float64, as the reference
    whole = torch.tensor(rgb.transpose(2, 0, 1), dtype=torch.float32)
    masked = whole.clone()
    masked[:, 128:, :] = 0
    with torch.no_grad():
        latents = [vae.encode(((x - 0.5) / 0.5)[None]).latent_dist.mean * SCALE for x in (masked, whole)]
        audio = torch.from_numpy(window)[None] + _oracle_pe()[None]
        out = unet(torch.cat(latents, dim=1), torch.tensor([0]), encoder_hidden_states=audio).sample
        image = vae.decode(out / SCALE).sample[0]
    image = (image / 2 + 0.5).clamp(0, 1).permute(1, 2, 0).numpy()
    return cv2.cvtColor((image * 255).round().astype(np.uint8), cv2.COLOR_RGB2BGR)


def _inputs(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), (256, 256), interpolation=cv2.INTER_CUBIC)
    crops = np.stack([np.roll(base, shift * 7, axis=1) for shift in range(count)])
    windows = rng.standard_normal((count, 50, 384)).astype(np.float32)
    return crops, windows


def test_the_positional_encoding_is_sin_on_even_and_cos_on_odd_channels():
    np.testing.assert_allclose(positional_encoding().numpy(), _oracle_pe().numpy(), atol=1e-5)


def test_generate_computes_what_the_reference_order_computes(musetalk, oracle_networks):
    unet, vae = oracle_networks
    crops, windows = _inputs(3)
    faces = musetalk.generate(crops, windows)
    assert faces.shape == (3, 256, 256, 3) and faces.dtype == np.uint8
    for crop, window, face in zip(crops, windows, faces):
        expected = _oracle_face(unet, vae, crop, window)
        difference = np.abs(face.astype(int) - expected.astype(int))
        assert difference.max() <= 1, "equal up to float rounding at .5"
        assert (difference == 0).mean() > 0.99
    assert faces.std() > 5, "random weights still draw a picture, not a flat colour"


def test_the_upper_half_is_hidden_from_the_masked_input_only(musetalk):
    crops, windows = _inputs(1)
    changed = crops.copy()
    changed[:, 128:] = 255 - changed[:, 128:]
    masked_a, whole_a = musetalk.encode(crops).chunk(2, dim=1)
    masked_b, whole_b = musetalk.encode(changed).chunk(2, dim=1)
    assert not torch.allclose(whole_a, whole_b)
    # the VAE's receptive field crosses row 128: only latent rows well above it stay put
    torch.testing.assert_close(masked_a[..., :8, :], masked_b[..., :8, :])


def test_generate_is_deterministic_and_batch_independent(musetalk):
    crops, windows = _inputs(4, seed=3)
    together = musetalk.generate(crops, windows)
    np.testing.assert_array_equal(together, musetalk.generate(crops, windows))
    one_by_one = np.concatenate([musetalk.generate(crops[i : i + 1], windows[i : i + 1]) for i in range(4)])
    assert np.abs(together.astype(int) - one_by_one.astype(int)).max() <= 1


def test_the_audio_window_changes_the_face(musetalk):
    crops, windows = _inputs(2)
    same_crop = np.stack([crops[0], crops[0]])
    faces = musetalk.generate(same_crop, windows)
    assert np.abs(faces[0].astype(int) - faces[1].astype(int)).max() > 0


def test_crops_of_the_wrong_size_are_refused(musetalk):
    with pytest.raises(ValueError, match=r"crops must be \(N, 256, 256, 3\) uint8"):
        musetalk.generate(np.zeros((1, 96, 96, 3), np.uint8), np.zeros((1, 50, 384), np.float32))
