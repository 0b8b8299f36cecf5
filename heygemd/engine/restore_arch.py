"""The GFPGAN v1.3/v1.4 face restorer ("clean" variant), laid out so the public files load unchanged.

Written from the published description of the network (GFP-GAN, Wang et al., CVPR 2021, and the
released v1.3/v1.4 configuration), not from its code. Attribute names, block order and tensor
shapes reproduce the public checkpoints' ``params_ema`` state_dict exactly (keys such as
``stylegan_decoder.style_convs.0.modulated_conv.weight``); renaming anything here breaks loading.
tests/data/gfpgan_v1.4_keys.txt lists every key and shape.

The released configuration: 512x512 output, 512 style features, channel multiplier 2, narrow 1,
an 8-layer style MLP (stored, unused: the encoder's codes are already latents), one latent per
decoder layer, and spatial feature transforms (SFT) on half of each decoder level's channels.

Shapes (N = batch):
    input   (N, 3, 512, 512)  an FFHQ-aligned face, RGB, in [-1, 1]
    output  (N, 3, 512, 512)  the restored face, RGB, clamped to [-1, 1]

The network has two halves:

1. A U-Net of residual blocks. Its encoder halves the picture seven times (512 -> 4); a linear
   layer turns the 4x4 features into 16 style latents. Its decoder doubles back (4 -> 512), adding
   the encoder's feature of the same size before each block, and at each size makes an SFT
   scale and shift (two small conv stacks).
2. A StyleGAN2 generator: a learned 4x4 constant goes through modulated 3x3 convolutions (two per
   size, the first upsampling), each followed by noise, bias and a leaky ReLU; after the first
   convolution of each size the SFT scale and shift are applied to the second half of its channels.
   A modulated 1x1 "to RGB" per size adds to the upsampled picture of the size before.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

OUT_SIZE = 512
LOG_SIZE = int(math.log2(OUT_SIZE))  # 9
STYLE_FEATURES = 512
STYLE_MLP_LAYERS = 8
CHANNEL_MULTIPLIER = 2
NARROW = 1.0
UNET_NARROW = NARROW / 2  # the U-Net runs at half the generator's width
NUM_LATENTS = 2 * LOG_SIZE - 2  # 16: one per modulated conv and to-RGB along the way
NUM_NOISES = 2 * (LOG_SIZE - 2) + 1  # 15: one per style conv
SLOPE = 0.2  # leaky ReLU
ACTIVATION_GAIN = math.sqrt(2.0)  # keeps the variance through a style conv's leaky ReLU
DEMOD_EPS = 1e-8
IMAGE_CHANNELS = 3
STATE_DICT_ENTRIES = 285  # tensors in the public checkpoints' params_ema
STATE_DICT_VALUES = 87_143_276  # their float32 values: 348,573,104 bytes of the 348,632,874-byte files


def generator_channels(size: int, narrow: float = NARROW) -> int:
    """Feature channels of the StyleGAN2 generator at ``size``x``size`` (4 ... 512)."""
    if size <= 32:
        return int(512 * narrow)
    return int(512 * 32 // size * CHANNEL_MULTIPLIER * narrow)


def unet_channels(size: int) -> int:
    """Feature channels of the U-Net at ``size``: half the generator's."""
    return generator_channels(size, UNET_NARROW)


def _resample(x: torch.Tensor, factor: float) -> torch.Tensor:
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)


# ---------------------------------------------------------------------------- the U-Net


class ResBlock(nn.Module):
    """Conv, resample (x0.5 or x2, bilinear), conv, plus a resampled 1x1 projection of the input.

    (N, in, H, W) -> (N, out, H * factor, W * factor).
    """

    def __init__(self, in_channels: int, out_channels: int, factor: float) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, in_channels, 3, padding=1)
        self.conv2 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        main = F.leaky_relu(self.conv1(x), SLOPE)
        main = F.leaky_relu(self.conv2(_resample(main, self.factor)), SLOPE)
        return main + self.skip(_resample(x, self.factor))


def _sft_branch(channels: int) -> nn.Sequential:
    """Two 3x3 convs making one SFT map (scale or shift) for half of a generator level's channels."""
    return nn.Sequential(
        nn.Conv2d(channels, channels, 3, padding=1),
        nn.LeakyReLU(SLOPE, inplace=True),
        nn.Conv2d(channels, channels, 3, padding=1),
    )


# ---------------------------------------------------------------------------- the StyleGAN2 generator


class ModulatedConv2d(nn.Module):
    """A convolution whose input channels are scaled per sample by an affine map of a style latent.

    With ``demodulate`` each output channel is then divided by the norm of its effective
    (scaled) kernel, which keeps activations at unit variance. ``upsample`` doubles H and W
    (bilinear) before the convolution. No bias: the layers around it add one.

    Computed as conv(x * s) * d, with s the per-sample input scales and d the per-sample output
    norms: the same function as convolving with per-sample scaled kernels, but one ordinary
    batched convolution instead of a grouped one per sample.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, *, demodulate: bool = True, upsample: bool = False
    ) -> None:
        super().__init__()
        self.modulation = nn.Linear(STYLE_FEATURES, in_channels)
        # Stored with a leading 1, as in the public checkpoints.
        self.weight = nn.Parameter(
            torch.randn(1, out_channels, in_channels, kernel_size, kernel_size) / math.sqrt(in_channels * kernel_size**2)
        )
        self.demodulate = demodulate
        self.upsample = upsample
        self.padding = kernel_size // 2

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        kernel = self.weight[0]  # (out, in, k, k)
        scales = self.modulation(style)  # (N, in)
        if self.upsample:
            x = _resample(x, 2.0)
        out = F.conv2d(x * scales[:, :, None, None].to(x.dtype), kernel, padding=self.padding)
        if self.demodulate:
            out = out * self._output_norms(kernel, scales).to(out.dtype)[:, :, None, None]
        return out

    @staticmethod
    def _output_norms(kernel: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
        """(N, out): 1 / |kernel[o] * scales[n]|, in float32 (squares of float16 weights underflow)."""
        energy = kernel.float().pow(2).sum(dim=(2, 3))  # (out, in)
        return torch.rsqrt(scales.float().pow(2) @ energy.t() + DEMOD_EPS)


class StyleConv(nn.Module):
    """Modulated 3x3 conv, then per-pixel noise times a learned strength, a bias and a leaky ReLU."""

    def __init__(self, in_channels: int, out_channels: int, *, upsample: bool = False) -> None:
        super().__init__()
        self.modulated_conv = ModulatedConv2d(in_channels, out_channels, 3, upsample=upsample)
        self.weight = nn.Parameter(torch.zeros(1))  # noise strength
        self.bias = nn.Parameter(torch.zeros(1, out_channels, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        out = self.modulated_conv(x, style) * ACTIVATION_GAIN
        out = out + self.weight * noise + self.bias
        return F.leaky_relu(out, SLOPE)


class ToRGB(nn.Module):
    """Modulated 1x1 conv to RGB (no demodulation) plus a bias, added to the previous size's picture upsampled."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.modulated_conv = ModulatedConv2d(in_channels, IMAGE_CHANNELS, 1, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, IMAGE_CHANNELS, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, previous: torch.Tensor | None = None) -> torch.Tensor:
        out = self.modulated_conv(x, style) + self.bias
        return out if previous is None else out + _resample(previous, 2.0)


class ConstantInput(nn.Module):
    """The generator's learned 4x4 starting feature map."""

    def __init__(self, channels: int, size: int = 4) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, channels, size, size))

    def forward(self, batch: int) -> torch.Tensor:
        return self.weight.expand(batch, -1, -1, -1)


class _NormStyle(nn.Module):
    """Scales each style vector to unit root-mean-square (the style MLP's first step; parameter-free)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + DEMOD_EPS)


def _style_mlp() -> nn.Sequential:
    """Normalise, then 8 x (linear 512 -> 512, leaky ReLU): the linears sit at indices 1, 3, ... 15."""
    layers: list[nn.Module] = [_NormStyle()]
    for _ in range(STYLE_MLP_LAYERS):
        layers += [nn.Linear(STYLE_FEATURES, STYLE_FEATURES), nn.LeakyReLU(SLOPE, inplace=True)]
    return nn.Sequential(*layers)


def _noise_side(index: int) -> int:
    """Side of the fixed noise map of style conv ``index``: 4 for the first, then two per size 8 ... 512."""
    return 2 ** ((index + 5) // 2)


class StyleGAN2Decoder(nn.Module):
    """StyleGAN2 generator taking one latent per layer and SFT conditions from the U-Net."""

    def __init__(self) -> None:
        super().__init__()
        self.style_mlp = _style_mlp()  # part of the checkpoint; unused, the U-Net's codes are latents already
        base = generator_channels(4)
        self.constant_input = ConstantInput(base)
        self.style_conv1 = StyleConv(base, base)
        self.to_rgb1 = ToRGB(base)
        self.style_convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        previous = base
        for level in range(3, LOG_SIZE + 1):
            channels = generator_channels(2**level)
            self.style_convs.append(StyleConv(previous, channels, upsample=True))
            self.style_convs.append(StyleConv(channels, channels))
            self.to_rgbs.append(ToRGB(channels))
            previous = channels
        self.noises = nn.Module()  # fixed noise maps: the same every frame, so no frame-to-frame flicker
        for index in range(NUM_NOISES):
            side = _noise_side(index)
            self.noises.register_buffer(f"noise{index}", torch.randn(1, 1, side, side))

    def forward(
        self, latents: torch.Tensor, conditions: list[tuple[torch.Tensor, torch.Tensor]], *, randomize_noise: bool = False
    ) -> torch.Tensor:
        """latents (N, 16, 512); conditions: (scale, shift) per size 8 ... 512 -> (N, 3, 512, 512)."""
        noises = self._noises(latents.shape[0], randomize_noise)
        out = self.style_conv1(self.constant_input(latents.shape[0]), latents[:, 0], noises[0])
        image = self.to_rgb1(out, latents[:, 1])
        for level, (scale, shift) in enumerate(conditions):
            first, second = self.style_convs[2 * level], self.style_convs[2 * level + 1]
            latent = 2 * level + 1
            out = first(out, latents[:, latent], noises[latent])
            out = _half_sft(out, scale, shift)
            out = second(out, latents[:, latent + 1], noises[latent + 1])
            image = self.to_rgbs[level](out, latents[:, latent + 2], image)
        return image

    def _noises(self, batch: int, randomize: bool) -> list[torch.Tensor]:
        stored = [getattr(self.noises, f"noise{index}") for index in range(NUM_NOISES)]
        if not randomize:
            return stored
        return [torch.randn(batch, 1, n.shape[2], n.shape[3], device=n.device, dtype=n.dtype) for n in stored]


def _half_sft(features: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Keep the first half of the channels; scale and shift the second half, pixel by pixel."""
    kept, modulated = features.chunk(2, dim=1)
    return torch.cat([kept, modulated * scale + shift], dim=1)


# ---------------------------------------------------------------------------- the whole network


class GFPGANv1Clean(nn.Module):
    """U-Net encoder/decoder producing style latents and SFT conditions for a StyleGAN2 decoder."""

    def __init__(self) -> None:
        super().__init__()
        self.conv_body_first = nn.Conv2d(IMAGE_CHANNELS, unet_channels(OUT_SIZE), 1)
        self.conv_body_down = nn.ModuleList()
        previous = unet_channels(OUT_SIZE)
        for level in range(LOG_SIZE, 2, -1):  # 512 -> 256, ... 8 -> 4
            channels = unet_channels(2 ** (level - 1))
            self.conv_body_down.append(ResBlock(previous, channels, 0.5))
            previous = channels
        self.final_conv = nn.Conv2d(previous, unet_channels(4), 3, padding=1)
        self.conv_body_up = nn.ModuleList()
        previous = unet_channels(4)
        for level in range(3, LOG_SIZE + 1):  # 4 -> 8, ... 256 -> 512
            channels = unet_channels(2**level)
            self.conv_body_up.append(ResBlock(previous, channels, 2.0))
            previous = channels
        self.toRGB = nn.ModuleList(nn.Conv2d(unet_channels(2**level), IMAGE_CHANNELS, 1) for level in range(3, LOG_SIZE + 1))
        self.final_linear = nn.Linear(unet_channels(4) * 4 * 4, NUM_LATENTS * STYLE_FEATURES)
        self.stylegan_decoder = StyleGAN2Decoder()
        self.condition_scale = nn.ModuleList(_sft_branch(unet_channels(2**level)) for level in range(3, LOG_SIZE + 1))
        self.condition_shift = nn.ModuleList(_sft_branch(unet_channels(2**level)) for level in range(3, LOG_SIZE + 1))

    def forward(
        self, x: torch.Tensor, *, return_rgb: bool = True, randomize_noise: bool = False
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """x (N, 3, 512, 512) RGB in [-1, 1] -> (restored image, the U-Net's low-resolution RGB outputs).

        The image is clamped to [-1, 1]. ``return_rgb`` False skips the U-Net's per-size RGB
        pictures (a training aid) and returns an empty list. ``randomize_noise`` draws fresh noise
        per call, as GFPGAN's own inference does; the default uses the stored maps, so the same
        face gives the same output every frame.
        """
        _check_input(x)
        feature = F.leaky_relu(self.conv_body_first(x), SLOPE)
        skips: list[torch.Tensor] = []
        for block in self.conv_body_down:
            feature = block(feature)
            skips.append(feature)
        feature = F.leaky_relu(self.final_conv(feature), SLOPE)
        latents = self.final_linear(feature.flatten(1)).view(-1, NUM_LATENTS, STYLE_FEATURES)

        conditions: list[tuple[torch.Tensor, torch.Tensor]] = []
        pictures: list[torch.Tensor] = []
        for level, block in enumerate(self.conv_body_up):
            feature = block(feature + skips.pop())
            conditions.append((self.condition_scale[level](feature), self.condition_shift[level](feature)))
            if return_rgb:
                pictures.append(self.toRGB[level](feature))

        image = self.stylegan_decoder(latents, conditions, randomize_noise=randomize_noise)
        return image.clamp(-1.0, 1.0), pictures


def _check_input(x: torch.Tensor) -> None:
    """A readable message instead of a shape error deep inside a layer."""
    if x.ndim != 4 or tuple(x.shape[1:]) != (IMAGE_CHANNELS, OUT_SIZE, OUT_SIZE):
        raise ValueError(f"faces must be (N, {IMAGE_CHANNELS}, {OUT_SIZE}, {OUT_SIZE}), got {tuple(x.shape)}")
