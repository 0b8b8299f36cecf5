"""The GFPGAN restorer: its layout matches the public files, loading is strict and checked, framing and blending."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from checkpoint_factory import (
    GFPGAN_DISTINCT_KEY,
    make_gfpgan_checkpoint,
    make_wav2lip_checkpoint,
)
from media_factory import presenter_frame

from heygemd.engine.checkpoint import load_state_dict
from heygemd.engine.errors import CheckpointError
from heygemd.engine.restore import load_gfpgan, load_gfpgan_checkpoint
from heygemd.engine.restore_arch import (
    OUT_SIZE,
    STATE_DICT_ENTRIES,
    STATE_DICT_VALUES,
    GFPGANv1Clean,
    ModulatedConv2d,
)
from heygemd.engine.restore_frame import (
    LBP_FRAMING,
    RESTORER_SIZE,
    S3FD_FRAMING,
    Framing,
    ffhq_framing,
    from_restorer_output,
    paste_restored,
    restorer_crop,
    to_restorer_input,
)
from heygemd.engine.settings import BlendMode
from heygemd.engine.wav2lip_port import WAV2LIP_GEOMETRY
from heygemd.engine.weights import PUBLISHED, WeightsRole, known_name
from heygemd.engine.yuv import planes

KEYS_FILE = Path(__file__).parents[1] / "data" / "gfpgan_v1.4_keys.txt"
SEED = 3
PUBLIC_FILE_BYTES = 348_632_874  # GFPGANv1.3.pth and GFPGANv1.4.pth as released


def _listed_keys() -> list[tuple[str, tuple[int, ...]]]:
    rows = [line.split("\t") for line in KEYS_FILE.read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
    return [(key, tuple(int(n) for n in shape.split("x"))) for key, shape in rows]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gfpgan")


@pytest.fixture(scope="module")
def public(checkpoints: Path) -> Path:
    return make_gfpgan_checkpoint(checkpoints / "GFPGANv1.4.pth", SEED)


@pytest.fixture(scope="module")
def seeded_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(SEED)
    return GFPGANv1Clean().state_dict()


def _raises_for(path: Path, *fragments: str) -> CheckpointError:
    with pytest.raises(CheckpointError) as caught:
        load_gfpgan(path, "cpu")
    err = caught.value
    assert err.path == path and str(err).startswith(f"{path}: ")
    for fragment in fragments:
        assert fragment in str(err), str(err)
    return err


# ---------------------------------------------------------------------------- layout


def test_state_dict_matches_the_public_key_list_exactly():
    with torch.device("meta"):
        model = GFPGANv1Clean()
    ours = [(key, tuple(tensor.shape)) for key, tensor in model.state_dict().items()]
    assert ours == _listed_keys()
    assert len(ours) == STATE_DICT_ENTRIES
    assert sum(math.prod(shape) for _, shape in ours) == STATE_DICT_VALUES


def test_one_state_dict_accounts_for_the_published_file_size():
    """The released files hold params_ema alone: 4 bytes a value plus well under 0.1 % of framing."""
    overhead = PUBLIC_FILE_BYTES - 4 * STATE_DICT_VALUES
    assert 0 < overhead < 0.001 * PUBLIC_FILE_BYTES


def test_modulated_conv_equals_convolving_with_per_sample_kernels():
    """The published computation scales the kernel per sample, demodulates it and convolves group-wise."""
    torch.manual_seed(0)
    layer = ModulatedConv2d(6, 5, 3, upsample=True).eval()
    with torch.no_grad():
        layer.modulation.bias.fill_(1.0)
    x, style = torch.randn(2, 6, 8, 8), torch.randn(2, 512)
    with torch.inference_mode():
        ours = layer(x, style)
        scales = layer.modulation(style)  # (2, 6)
        kernels = layer.weight * scales[:, None, :, None, None]  # (2, 5, 6, 3, 3)
        kernels = kernels * torch.rsqrt(kernels.pow(2).sum(dim=(2, 3, 4)) + 1e-8)[:, :, None, None, None]
        upsampled = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        grouped = F.conv2d(upsampled.reshape(1, 12, 16, 16), kernels.reshape(10, 6, 3, 3), padding=1, groups=2)
    torch.testing.assert_close(ours, grouped.reshape(2, 5, 16, 16), rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------- loading


def test_public_format_loads_strictly_in_eval_mode(public: Path, seeded_state):
    model, info = load_gfpgan_checkpoint(public, "cpu")
    assert not model.training
    assert info.known_name is None and info.size_bytes == public.stat().st_size
    loaded = model.state_dict()
    assert loaded.keys() == seeded_state.keys()
    assert all(torch.equal(loaded[key], seeded_state[key]) for key in seeded_state)


def test_params_ema_wins_over_params(public: Path, seeded_state):
    assert torch.equal(load_gfpgan(public, "cpu").state_dict()[GFPGAN_DISTINCT_KEY], seeded_state[GFPGAN_DISTINCT_KEY])
    assert load_state_dict(public, ("params",))[GFPGAN_DISTINCT_KEY].abs().sum() == 0  # the two really differ


@pytest.mark.parametrize("wrap", ["ema_only", "params_only", "bare"])
def test_every_layout_of_the_weights_loads(checkpoints: Path, wrap: str):
    path = make_gfpgan_checkpoint(checkpoints / f"{wrap}.pth", SEED, wrap=wrap)
    assert len(load_gfpgan(path, "cpu").state_dict()) == STATE_DICT_ENTRIES
    path.unlink()


def test_published_releases_are_recognised_by_hash():
    releases = [weights for weights in PUBLISHED if weights.role is WeightsRole.FACE_RESTORER]
    assert {weights.file_name for weights in releases} == {"GFPGANv1.3.pth", "GFPGANv1.4.pth"}
    assert all(len(weights.sha256) == 64 and int(weights.sha256, 16) >= 0 for weights in releases)
    assert all(known_name(weights.sha256.upper()) == weights.file_name for weights in releases)


@pytest.mark.slow
def test_forward_gives_a_512_image_in_range(public: Path):
    model = load_gfpgan(public, "cpu")
    faces = torch.rand(1, 3, OUT_SIZE, OUT_SIZE) * 2 - 1
    with torch.inference_mode():
        first, side_outputs = model(faces)
        again, _ = model(faces, return_rgb=False)
    assert first.shape == faces.shape and first.dtype == torch.float32
    assert first.min() >= -1 and first.max() <= 1
    assert [tuple(rgb.shape[2:]) for rgb in side_outputs] == [(2**k, 2**k) for k in range(3, 10)]
    assert torch.equal(first, again), "stored noise: the same face gives the same output"
    with pytest.raises(ValueError, match="512"):
        model(torch.zeros(1, 3, 256, 256))


# ---------------------------------------------------------------------------- file errors


def test_missing_file(tmp_path: Path):
    _raises_for(tmp_path / "GFPGANv1.4.pth", "not found")


def test_empty_file(tmp_path: Path):
    path = tmp_path / "GFPGANv1.4.pth"
    path.write_bytes(b"")
    _raises_for(path, "empty")


def test_html_page(tmp_path: Path):
    path = tmp_path / "GFPGANv1.4.pth"
    path.write_bytes(b"<!DOCTYPE html><html><head><title>GitHub</title></head><body>" + b"x" * 4000 + b"</body></html>")
    _raises_for(path, "HTML page")


def test_git_lfs_pointer(tmp_path: Path):
    path = tmp_path / "GFPGANv1.4.pth"
    path.write_bytes(b"version https://git-lfs.github.com/spec/v1\noid sha256:e2cd4703\nsize 348632874\n")
    _raises_for(path, "Git LFS pointer")


def test_truncated_download(public: Path, tmp_path: Path):
    path = tmp_path / "GFPGANv1.4.pth"
    with public.open("rb") as source:
        path.write_bytes(source.read(public.stat().st_size // 3))
    _raises_for(path, "truncated")


def test_wav2lip_weights_are_another_network(tmp_path: Path):
    path = make_wav2lip_checkpoint(tmp_path / "wav2lip_gan.pth", 0)
    err = _raises_for(
        path, "different network", f"{STATE_DICT_ENTRIES} expected entries, 0 match", "285 missing", "unexpected"
    )
    assert "e.g. conv_body_first.weight" in str(err)


def test_one_key_missing_and_one_reshaped_are_counted(seeded_state, tmp_path: Path):
    state = dict(seeded_state)
    del state["stylegan_decoder.noises.noise3"]
    state["final_linear.bias"] = torch.zeros(16)
    path = tmp_path / "almost.pth"
    torch.save({"params_ema": state}, path)
    _raises_for(
        path,
        "does not fit GFPGAN",
        f"{STATE_DICT_ENTRIES} expected entries, {STATE_DICT_ENTRIES - 2} match",
        "1 missing (e.g. stylegan_decoder.noises.noise3)",
        "1 with the wrong shape (e.g. final_linear.bias (16,) vs (8192,))",
    )


# ---------------------------------------------------------------------------- framing and blending

FRAME_SIZE = (640, 360)


def _i420(size: tuple[int, int] = FRAME_SIZE, index: int = 0) -> np.ndarray:
    return cv2.cvtColor(presenter_frame(index, size), cv2.COLOR_BGR2YUV_I420)


@pytest.mark.parametrize("box", [(200, 60, 330, 200), (0, 0, 50, 300), (10, 300, 400, 340), (601, 3, 640, 41)])
@pytest.mark.parametrize("rule", [S3FD_FRAMING, LBP_FRAMING])
def test_the_square_always_holds_the_box(box, rule):
    framing = ffhq_framing(box, rule)
    assert framing.x <= box[0] and framing.y <= box[1]
    assert framing.x + framing.side >= box[2] and framing.y + framing.side >= box[3]
    taller = (box[0], box[1], box[2], box[3] + 10)  # a model's crop box (MuseTalk's chin margin)
    framing = ffhq_framing(box, rule, holds=taller)
    assert framing.x <= taller[0] and framing.y <= taller[1]
    assert framing.x + framing.side >= taller[2] and framing.y + framing.side >= taller[3]


def test_the_square_is_larger_than_the_box_and_raised():
    box = (200, 60, 330, 200)
    framing = ffhq_framing(box, S3FD_FRAMING)
    assert framing.side == round(1.7 * 135)
    assert framing.y + framing.side / 2 < (box[1] + box[3]) / 2  # eyes, not the chin, near the centre
    assert abs(framing.x + framing.side / 2 - 265) <= 1


def test_crop_is_the_frames_own_pixels_resized():
    frame = _i420()
    framing = Framing(200, 40, 256)
    crop = restorer_crop(frame, framing)
    expected = cv2.resize(
        cv2.cvtColor(frame, cv2.COLOR_YUV2BGR_I420)[40:296, 200:456], (512, 512), interpolation=cv2.INTER_LINEAR
    )
    assert crop.shape == (RESTORER_SIZE, RESTORER_SIZE, 3)
    assert np.abs(crop.astype(int) - expected.astype(int)).max() <= 1


def test_crop_past_the_frame_edge_repeats_the_edge():
    frame = _i420()
    crop = restorer_crop(frame, Framing(-100, -100, 512))
    bgr = cv2.cvtColor(frame, cv2.COLOR_YUV2BGR_I420)
    assert np.array_equal(crop[:100, 100:], np.broadcast_to(bgr[0:1, 0:412], (100, 412, 3)))  # above: the top row
    assert np.array_equal(crop[100:460, 100:], bgr[:, :412])
    assert np.array_equal(crop[460:, 100:], np.broadcast_to(bgr[-1:, 0:412], (52, 412, 3)))  # below: the bottom row


def test_restorer_tensors_round_trip():
    crops = np.random.default_rng(0).integers(0, 256, (2, 512, 512, 3), dtype=np.uint8)
    tensors = to_restorer_input(crops)
    assert tensors.shape == (2, 3, 512, 512) and tensors.min() >= -1 and tensors.max() <= 1
    assert np.allclose(tensors[:, 0], crops[..., 2] / 127.5 - 1, atol=1e-6)  # RGB in, from BGR crops
    assert np.allclose(from_restorer_output(tensors), crops, atol=1e-3)


BOX = (200, 60, 330, 200)  # even corners: the box's chroma blocks are its own


def _mask(box, mode: BlendMode, geometry=WAV2LIP_GEOMETRY) -> np.ndarray:
    x1, y1, x2, y2 = box
    return geometry.paste_mask(x2 - x1, y2 - y1, mode, 0.12)


def _restored(value: float) -> np.ndarray:
    return np.full((RESTORER_SIZE, RESTORER_SIZE, 3), value, np.float32)


def test_weight_zero_changes_nothing():
    frame = _i420()
    before = frame.copy()
    paste_restored(frame, BOX, ffhq_framing(BOX), _restored(255.0), _mask(BOX, BlendMode.FEATHER), 0.0)
    assert np.array_equal(frame, before)


@pytest.mark.parametrize("mode", [BlendMode.FEATHER, BlendMode.HARD])
def test_only_the_rows_the_lip_sync_pasted_change(mode):
    frame = _i420()
    before = frame.copy()
    paste_restored(frame, BOX, ffhq_framing(BOX), _restored(255.0), _mask(BOX, mode), 0.6)
    x1, y1, x2, y2 = BOX
    first = y1 + (0 if mode == BlendMode.HARD else (y2 - y1) // 2)
    for plane, (old, new) in enumerate(zip(planes(before), planes(frame))):
        step = 1 if plane == 0 else 2
        inside = np.zeros(old.shape, bool)
        inside[first // step : y2 // step, x1 // step : x2 // step] = True
        assert np.array_equal(old[~inside], new[~inside]), f"plane {plane} changed outside the mask"
        assert not np.array_equal(old[inside], new[inside])


def test_weight_scales_the_blend_at_the_mask_centre():
    frame, full = _i420(), _i420()
    white = _restored(255.0)
    paste_restored(frame, BOX, ffhq_framing(BOX), white, _mask(BOX, BlendMode.HARD), 0.5)
    paste_restored(full, BOX, ffhq_framing(BOX), white, _mask(BOX, BlendMode.HARD), 1.0)
    luma, full_luma, original = planes(frame)[0], planes(full)[0], planes(_i420())[0]
    centre = (130, 265)
    assert full_luma[centre] >= 234  # white (limited-range Y)
    assert abs(int(luma[centre]) - (int(original[centre]) + int(full_luma[centre])) / 2) <= 2


def test_with_musetalk_the_restored_pixels_stay_inside_its_crop_box_and_paste_mask(public: Path):
    from heygemd.engine.musetalk.port import MUSETALK_GEOMETRY
    from heygemd.engine.restore import FaceRestorer

    frame = _i420()
    before = frame.copy()
    FaceRestorer(public, "cpu").restore(
        [frame], [BOX], geometry=MUSETALK_GEOMETRY, mode=BlendMode.FEATHER, feather=0.12, weight=1.0, warn=print
    )
    x1, y1, x2, y2 = MUSETALK_GEOMETRY.crop_box(BOX, *FRAME_SIZE)
    assert y2 == BOX[3] + MUSETALK_GEOMETRY.chin_margin_px
    allowed = np.zeros(planes(frame)[0].shape, bool)
    allowed[y1:y2, x1:x2] = MUSETALK_GEOMETRY.paste_mask(x2 - x1, y2 - y1, BlendMode.FEATHER, 0.12)[:, :, 0] > 0
    changed = planes(frame)[0] != planes(before)[0]
    assert not (changed & ~allowed).any(), "luma changed outside MuseTalk's paste mask"
    assert changed[BOX[3] : y2].any(), "MuseTalk's box reaches below the detector's: restored there too"
    for old, new in zip(planes(before)[1:], planes(frame)[1:]):  # chroma: only the 2x2 blocks of the crop box
        outside = np.ones(old.shape, bool)
        outside[y1 // 2 : (y2 + 1) // 2, x1 // 2 : (x2 + 1) // 2] = False
        assert np.array_equal(old[outside], new[outside])
