"""The Wav2Lip generator, laid out so the public checkpoints load into it unchanged.

Attribute names, block order and layer shapes reproduce the public ``wav2lip.pth`` /
``wav2lip_gan.pth`` state_dict exactly (keys such as
``face_encoder_blocks.0.0.conv_block.0.weight``); renaming anything here breaks loading.

Shapes (B = batch): those of ``heygemd.engine.generator_io``, audio (B, 1, 80, 16) and faces
(B, 6, 96, 96) in, the predicted crop (B, 3, 96, 96) out.
"""

from __future__ import annotations

import typing

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from heygemd.engine.generator_io import FACE_CHANNELS, FACE_SIZE, MEL_BANDS, MEL_WINDOW, OUTPUT_CHANNELS

PARAMETER_COUNT = 36_298_035
STATE_DICT_ENTRIES = 352


Stride = int | tuple[int, int]


class ConvUnit(nn.Module):
    """Conv2d + BatchNorm2d + ReLU, optionally adding its input before the ReLU.

    A residual unit keeps the shape: (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: Stride = 1,
        padding: int = 0,
        *,
        residual: bool = False,
    ) -> None:
        super().__init__()
        if residual and (in_channels != out_channels or stride != 1):
            raise ValueError("a residual unit must keep channels and resolution")
        self.conv_block = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding),
            nn.BatchNorm2d(out_channels),
        )
        self.residual = residual
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_block(x)
        if self.residual:
            out = out + x
        return self.act(out)


class ConvTransposeUnit(nn.Module):
    """ConvTranspose2d + BatchNorm2d + ReLU (upsampling in the decoder)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        output_padding: int = 0,
    ) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride, padding, output_padding),
            nn.BatchNorm2d(out_channels),
        )
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv_block(x))


def _residuals(channels: int, count: int) -> list[ConvUnit]:
    """``count`` shape-preserving 3x3 residual units."""
    return [ConvUnit(channels, channels, 3, 1, 1, residual=True) for _ in range(count)]


def _down(in_channels: int, out_channels: int, residuals: int) -> nn.Sequential:
    """A stride-2 3x3 unit halving H and W, then ``residuals`` residual units."""
    return nn.Sequential(ConvUnit(in_channels, out_channels, 3, 2, 1), *_residuals(out_channels, residuals))


def _up(in_channels: int, out_channels: int, residuals: int) -> nn.Sequential:
    """A stride-2 transposed unit doubling H and W, then ``residuals`` residual units."""
    return nn.Sequential(
        ConvTransposeUnit(in_channels, out_channels, 3, 2, 1, output_padding=1),
        *_residuals(out_channels, residuals),
    )


def _face_encoder() -> nn.ModuleList:
    """Seven blocks, 96 -> 96, 48, 24, 12, 6, 3, 1 pixels; channels 16 ... 512."""
    return nn.ModuleList(
        [
            nn.Sequential(ConvUnit(FACE_CHANNELS, 16, 7, 1, 3)),
            _down(16, 32, 2),
            _down(32, 64, 3),
            _down(64, 128, 2),
            _down(128, 256, 2),
            _down(256, 512, 1),
            nn.Sequential(ConvUnit(512, 512, 3, 1, 0), ConvUnit(512, 512, 1, 1, 0)),
        ]
    )


def _audio_encoder() -> nn.Sequential:
    """(B, 1, 80, 16) -> (B, 512, 1, 1); 13 units."""
    return nn.Sequential(
        ConvUnit(1, 32, 3, 1, 1),
        *_residuals(32, 2),
        ConvUnit(32, 64, 3, (3, 1), 1),
        *_residuals(64, 2),
        ConvUnit(64, 128, 3, 3, 1),
        *_residuals(128, 2),
        ConvUnit(128, 256, 3, (3, 2), 1),
        *_residuals(256, 1),
        ConvUnit(256, 512, 3, 1, 0),
        ConvUnit(512, 512, 1, 1, 0),
    )


def _face_decoder() -> nn.ModuleList:
    """Seven blocks, 1 -> 1, 3, 6, 12, 24, 48, 96 pixels.

    Each block's input channels = previous block's output + the skip feature concatenated
    after it (face encoder outputs, deepest first).
    """
    return nn.ModuleList(
        [
            nn.Sequential(ConvUnit(512, 512, 1, 1, 0)),
            nn.Sequential(ConvTransposeUnit(1024, 512, 3, 1, 0), *_residuals(512, 1)),
            _up(1024, 512, 2),
            _up(768, 384, 2),
            _up(512, 256, 2),
            _up(320, 128, 2),
            _up(160, 64, 2),
        ]
    )


def _output_block() -> nn.Sequential:
    """(B, 80, 96, 96) -> (B, 3, 96, 96) in [0, 1]."""
    return nn.Sequential(
        ConvUnit(80, 32, 3, 1, 1),
        nn.Conv2d(32, OUTPUT_CHANNELS, kernel_size=1, stride=1, padding=0),
        nn.Sigmoid(),
    )


class Wav2Lip(nn.Module):
    """Generator: mouth region from a mel window and a masked + reference face crop."""

    def __init__(self) -> None:
        super().__init__()
        self.face_encoder_blocks = _face_encoder()
        self.audio_encoder = _audio_encoder()
        self.face_decoder_blocks = _face_decoder()
        self.output_block = _output_block()

    def forward(self, audio: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
        """audio (B, 1, 80, 16), faces (B, 6, 96, 96) -> (B, 3, 96, 96) in [0, 1]."""
        _check_inputs(audio, faces)
        x = self.audio_encoder(audio)  # (B, 512, 1, 1)

        skips: list[torch.Tensor] = []
        feature = faces
        for block in self.face_encoder_blocks:
            feature = block(feature)
            skips.append(feature)

        for block in self.face_decoder_blocks:
            x = torch.cat((block(x), skips.pop()), dim=1)

        return self.output_block(x)


def fold_batch_norms(model: nn.Module) -> nn.Module:
    """Fold every BatchNorm of ``model`` (in eval mode) into the convolution before it, in place.

    Each ``conv_block`` (conv, BatchNorm2d) becomes (conv with the normalisation folded into its
    weights and bias, Identity): the same function in one pass over the tensor instead of two.
    The folded model's state_dict no longer has the checkpoint's layout; fold only for inference.
    """
    if model.training:
        raise ValueError("fold batch norms only in eval mode: training uses batch statistics")
    for module in model.modules():
        block = getattr(module, "conv_block", None)
        if isinstance(block, nn.Sequential) and len(block) == 2 and isinstance(block[1], nn.BatchNorm2d):
            conv = typing.cast(nn.Conv2d, block[0])  # or its transpose: both are convolutions fuse_conv_bn_eval takes
            block[0] = fuse_conv_bn_eval(conv, block[1], transpose=isinstance(conv, nn.ConvTranspose2d))
            block[1] = nn.Identity()
    return model


def prepare_for_inference(model: nn.Module, *, half: bool = False) -> nn.Module:
    """Batch norms folded, weights channels-last (faster convolutions on CPU and GPU), float16 if ``half``.

    Inputs then run fastest as channels-last tensors of the same dtype.
    """
    model = fold_batch_norms(model.eval()).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return model.half() if half else model


def _check_inputs(audio: torch.Tensor, faces: torch.Tensor) -> None:
    """Fail with a readable message instead of a shape error deep inside a conv."""
    if tuple(audio.shape[1:]) != (1, MEL_BANDS, MEL_WINDOW):
        raise ValueError(f"audio must be (B, 1, {MEL_BANDS}, {MEL_WINDOW}), got {tuple(audio.shape)}")
    if tuple(faces.shape[1:]) != (FACE_CHANNELS, FACE_SIZE, FACE_SIZE):
        raise ValueError(f"faces must be (B, {FACE_CHANNELS}, {FACE_SIZE}, {FACE_SIZE}), got {tuple(faces.shape)}")
    if audio.shape[0] != faces.shape[0]:
        raise ValueError(f"batch sizes differ: audio {audio.shape[0]}, faces {faces.shape[0]}")
