"""The Wav2Lip module matches the public checkpoints' layout and computes sane outputs."""

from __future__ import annotations

import copy
import re

import pytest
import torch

from heygemd.engine.model import (
    PARAMETER_COUNT,
    STATE_DICT_ENTRIES,
    ConvUnit,
    Wav2Lip,
    fold_batch_norms,
    prepare_for_inference,
)

# Shapes read off the public layout (ConvTranspose2d weights are (in, out, kH, kW)).
SPOT_SHAPES: dict[str, tuple[int, ...]] = {
    "face_encoder_blocks.0.0.conv_block.0.weight": (16, 6, 7, 7),
    "face_encoder_blocks.1.0.conv_block.0.weight": (32, 16, 3, 3),
    "face_encoder_blocks.2.3.conv_block.0.weight": (64, 64, 3, 3),
    "face_encoder_blocks.5.1.conv_block.1.running_var": (512,),
    "face_encoder_blocks.6.1.conv_block.0.weight": (512, 512, 1, 1),
    "audio_encoder.0.conv_block.0.weight": (32, 1, 3, 3),
    "audio_encoder.9.conv_block.0.bias": (256,),
    "audio_encoder.12.conv_block.0.weight": (512, 512, 1, 1),
    "face_decoder_blocks.0.0.conv_block.0.weight": (512, 512, 1, 1),
    "face_decoder_blocks.1.0.conv_block.0.weight": (1024, 512, 3, 3),
    "face_decoder_blocks.3.0.conv_block.0.weight": (768, 384, 3, 3),
    "face_decoder_blocks.6.0.conv_block.0.weight": (160, 64, 3, 3),
    "face_decoder_blocks.6.2.conv_block.1.num_batches_tracked": (),
    "output_block.0.conv_block.0.weight": (32, 80, 3, 3),
    "output_block.1.weight": (3, 32, 1, 1),
    "output_block.1.bias": (3,),
}
UNIT_KEY = re.compile(
    r"^(face_encoder_blocks\.\d\.\d|audio_encoder\.\d{1,2}|face_decoder_blocks\.\d\.\d|output_block\.0)"
    r"\.conv_block\.[01]\.(weight|bias|running_mean|running_var|num_batches_tracked)$"
)
FINAL_CONV_KEYS = {"output_block.1.weight", "output_block.1.bias"}
FACE_ENCODER_LENGTHS = [1, 3, 4, 3, 3, 2, 2]
FACE_DECODER_LENGTHS = [1, 2, 3, 3, 3, 3, 3]
AUDIO_ENCODER_LENGTH = 13
BATCH = 2


@pytest.fixture(scope="module")
def model() -> Wav2Lip:
    torch.manual_seed(0)
    return Wav2Lip().eval()


def _inputs(seed: int, batch: int = BATCH) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    audio = torch.randn(batch, 1, 80, 16, generator=generator)
    faces = torch.rand(batch, 6, 96, 96, generator=generator)
    return audio, faces


def test_counts_match_the_public_checkpoints(model: Wav2Lip) -> None:
    assert len(model.state_dict()) == STATE_DICT_ENTRIES == 352
    assert sum(p.numel() for p in model.parameters()) == PARAMETER_COUNT == 36_298_035


def test_block_layout(model: Wav2Lip) -> None:
    assert [len(block) for block in model.face_encoder_blocks] == FACE_ENCODER_LENGTHS
    assert [len(block) for block in model.face_decoder_blocks] == FACE_DECODER_LENGTHS
    assert len(model.audio_encoder) == AUDIO_ENCODER_LENGTH


def test_every_key_follows_the_public_pattern(model: Wav2Lip) -> None:
    odd = [key for key in model.state_dict() if key not in FINAL_CONV_KEYS and not UNIT_KEY.match(key)]
    assert odd == []


@pytest.mark.parametrize(("key", "shape"), SPOT_SHAPES.items())
def test_spot_shapes(model: Wav2Lip, key: str, shape: tuple[int, ...]) -> None:
    assert tuple(model.state_dict()[key].shape) == shape


def test_forward_shape_and_range(model: Wav2Lip) -> None:
    with torch.inference_mode():
        out = model(*_inputs(seed=1))
    assert out.shape == (BATCH, 3, 96, 96)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_output_depends_on_audio_and_face(model: Wav2Lip) -> None:
    # Random weights barely pass the audio through, so look at gradients, not output differences.
    audio, faces = _inputs(seed=2, batch=1)
    audio.requires_grad_(True)
    faces.requires_grad_(True)
    model(audio, faces).sum().backward()
    assert audio.grad is not None and torch.count_nonzero(audio.grad) > 0
    assert faces.grad is not None and torch.count_nonzero(faces.grad) > 0
    model.zero_grad(set_to_none=True)


def test_batch_items_are_independent_in_eval(model: Wav2Lip) -> None:
    audio, faces = _inputs(seed=4)
    with torch.inference_mode():
        together = model(audio, faces)
        alone = model(audio[:1], faces[:1])
    torch.testing.assert_close(together[:1], alone, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("audio_shape", "faces_shape"),
    [((2, 1, 80, 15), (2, 6, 96, 96)), ((2, 1, 80, 16), (2, 3, 96, 96)), ((1, 1, 80, 16), (2, 6, 96, 96))],
)
def test_wrong_input_shapes_are_refused(model: Wav2Lip, audio_shape: tuple, faces_shape: tuple) -> None:
    with pytest.raises(ValueError, match=r"audio|faces|batch"):
        model(torch.zeros(audio_shape), torch.zeros(faces_shape))


def _identity_unit(residual: bool) -> ConvUnit:
    """A 1x1 unit whose conv outputs zero and whose BatchNorm is the identity (eval)."""
    unit = ConvUnit(4, 4, 1, 1, 0, residual=residual).eval()
    with torch.no_grad():
        for tensor in unit.conv_block[0].parameters():
            tensor.zero_()
    return unit


def test_residual_unit_adds_its_input_before_relu() -> None:
    x = torch.randn(1, 4, 5, 5, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        torch.testing.assert_close(_identity_unit(residual=True)(x), torch.relu(x))
        assert torch.count_nonzero(_identity_unit(residual=False)(x)) == 0


def test_residual_unit_must_keep_its_shape() -> None:
    with pytest.raises(ValueError):
        ConvUnit(16, 32, 3, 1, 1, residual=True)
    with pytest.raises(ValueError):
        ConvUnit(16, 16, 3, 2, 1, residual=True)


def _with_trained_looking_batch_norms(seed: int) -> Wav2Lip:
    """A model whose BatchNorms carry non-trivial statistics and affine terms, as trained ones do."""
    torch.manual_seed(seed)
    model = Wav2Lip().eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                size = module.num_features
                module.running_mean.copy_(torch.randn(size, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(size, generator=generator) + 0.5)
                module.weight.copy_(torch.rand(size, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(size, generator=generator) * 0.1)
    return model


def test_prepared_model_computes_what_the_checkpoint_layout_computes() -> None:
    reference = _with_trained_looking_batch_norms(3)
    prepared = prepare_for_inference(copy.deepcopy(reference))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in prepared.modules())
    audio, faces = _inputs(11, batch=3)
    with torch.inference_mode():
        expected = reference(audio, faces)
        got = prepared(audio, faces.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_batch_norms_fold_only_in_eval_mode() -> None:
    with pytest.raises(ValueError, match="eval"):
        fold_batch_norms(Wav2Lip().train())
