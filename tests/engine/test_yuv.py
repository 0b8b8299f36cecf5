"""Face crops and pastes on I420 frames, against the BGR ones in blend.py, and the colour conventions
of cv2's I420 conversions against ffmpeg's."""

from __future__ import annotations

import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from media_factory import make_video, presenter_frame
from oracles import paste

from heygemd.engine.blend import crop_face, first_pasted_row
from heygemd.engine.ffmpeg_tools import ffmpeg_path
from heygemd.engine.generator_io import FACE_SIZE
from heygemd.engine.media import SWS_FLAGS, read_frames
from heygemd.engine.probe import probe_video
from heygemd.engine.settings import BlendMode
from heygemd.engine.yuv import (
    chroma_aligned,
    crop_face_i420,
    paste_i420,
    planes,
    region_i420,
)

PICTURE = (192, 144)  # (width, height)
BOXES = [(41, 23, 137, 121), (40, 22, 136, 120), (0, 1, 191, 144), (61, 30, 64, 33)]


def to_i420(bgr: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420)


def to_bgr(i420: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(i420, cv2.COLOR_YUV2BGR_I420)


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    """(216, 192) I420 of a presenter picture: the astronaut's face, sharp edges included."""
    return to_i420(presenter_frame(5, PICTURE))


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    """A (96, 96, 3) float prediction: another face, so every blended pixel changes."""
    picture = presenter_frame(0, (300, 300))[40:200, 70:230]
    return cv2.resize(picture, (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_AREA).astype(np.float32) * 0.9 + 10


def test_planes_are_views_in_i420_order():
    frame = np.arange(12 * 8, dtype=np.int64).astype(np.uint8).reshape(12, 8)
    luma, u, v = planes(frame)
    assert luma.shape == (8, 8) and u.shape == v.shape == (4, 4)
    assert u[0, 0] == 64 and v[0, 0] == 80 and v[3, 3] == 95
    luma[0, 0] = 200
    assert frame[0, 0] == 200
    with pytest.raises(ValueError):
        planes(np.zeros((12, 7), np.uint8))
    with pytest.raises(ValueError):
        planes(np.zeros((12, 8, 3), np.uint8))


def test_an_aligned_region_is_a_small_i420_image(frame):
    rect = chroma_aligned((41, 23, 137, 121))
    assert rect == (40, 22, 138, 122)
    np.testing.assert_array_equal(to_bgr(region_i420(frame, rect)), to_bgr(frame)[22:122, 40:138])


@pytest.mark.parametrize("box", BOXES)
def test_crop_face_i420_is_crop_face_of_the_bgr_frame(frame, box):
    crop = crop_face_i420(frame, box)
    assert crop.shape == (FACE_SIZE, FACE_SIZE, 3) and crop.dtype == np.uint8
    np.testing.assert_array_equal(crop, crop_face(to_bgr(frame), box))


def changed(before: np.ndarray, after: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Masks of the pixels that differ in each plane: (H, W), (H/2, W/2), (H/2, W/2)."""
    return tuple(a != b for a, b in zip(planes(before), planes(after)))  # type: ignore[return-value]


@pytest.mark.parametrize("mode", [BlendMode.FEATHER, BlendMode.HARD])
@pytest.mark.parametrize("box", BOXES)
def test_paste_i420_leaves_everything_outside_the_pasted_rows_as_decoded(frame, face, mode, box):
    before = frame.copy()
    pasted = frame.copy()
    paste_i420(pasted, box, face, mode, feather=0.12)
    x1, y1, x2, y2 = box
    top = y1 + first_pasted_row(y2 - y1, mode, 0.12)
    luma, u, v = changed(before, pasted)
    inside = np.zeros_like(luma)
    inside[top:y2, x1:x2] = True
    assert not luma[~inside].any(), "Y changed outside the pasted rows of the box"
    ax1, ay1, ax2, ay2 = chroma_aligned((x1, top, x2, y2))
    chroma_inside = np.zeros_like(u)
    chroma_inside[ay1 // 2 : ay2 // 2, ax1 // 2 : ax2 // 2] = True
    assert not u[~chroma_inside].any() and not v[~chroma_inside].any(), "U/V changed outside the pasted blocks"
    if mode == BlendMode.FEATHER:
        assert top > y1 + (y2 - y1) // 2 - 1
    if (x2 - x1) * (y2 - y1) > 100:
        assert luma[inside].mean() > 0.5, "the face was pasted"


@pytest.mark.parametrize("mode", [BlendMode.FEATHER, BlendMode.HARD])
@pytest.mark.parametrize("box", BOXES)
def test_paste_i420_is_paste_of_the_bgr_frame_converted_back(frame, face, mode, box):
    """Inside what it changes, paste_i420 gives exactly the I420 that converting the BGR oracle paste's result gives."""
    pasted = frame.copy()
    paste_i420(pasted, box, face, mode, feather=0.12)
    bgr = to_bgr(frame)
    paste(bgr, box, face, mode, feather=0.12)
    expected = to_i420(bgr)
    x1, y1, x2, y2 = box
    top = y1 + first_pasted_row(y2 - y1, mode, 0.12)
    ax1, ay1, ax2, ay2 = chroma_aligned((x1, top, x2, y2))
    (luma, u, v), (want_luma, want_u, want_v) = planes(pasted), planes(expected)
    np.testing.assert_array_equal(luma[top:y2, x1:x2], want_luma[top:y2, x1:x2])
    chroma = np.s_[ay1 // 2 : ay2 // 2, ax1 // 2 : ax2 // 2]
    np.testing.assert_array_equal(u[chroma], want_u[chroma])
    np.testing.assert_array_equal(v[chroma], want_v[chroma])


# Measured on the presenter picture with another face pasted (box (41, 23, 137, 121)): mean 0.97
# (FEATHER) and 1.55 (HARD) levels, 99th percentile 13 and 18, max 38 and 63 at sharp colour edges
# that 4:2:0 cannot hold. The whole picture through BGR -> I420 -> BGR alone: mean 1.5, 99th percentile 23.
BGR_TOLERANCE = {BlendMode.FEATHER: (1.3, 16), BlendMode.HARD: (2.0, 22)}  # (mean, 99th percentile)


@pytest.mark.parametrize("mode", [BlendMode.FEATHER, BlendMode.HARD])
def test_paste_i420_looks_like_paste_on_the_bgr_frame(frame, face, mode):
    """Against the BGR oracle paste on the frame's BGR, the pasted box differs only by 4:2:0's shared chroma."""
    box = BOXES[0]
    pasted = frame.copy()
    paste_i420(pasted, box, face, mode, feather=0.12)
    bgr = to_bgr(frame)
    paste(bgr, box, face, mode, feather=0.12)
    x1, y1, x2, y2 = box
    difference = np.abs(to_bgr(pasted)[y1:y2, x1:x2].astype(int) - bgr[y1:y2, x1:x2])
    mean_limit, percentile_limit = BGR_TOLERANCE[mode]
    assert difference.mean() < mean_limit
    assert np.percentile(difference, 99) <= percentile_limit


def test_paste_i420_of_an_empty_feather_does_nothing(frame, face):
    pasted = frame.copy()
    paste_i420(pasted, (10, 10, 20, 11), face, BlendMode.FEATHER, 0.12)
    np.testing.assert_array_equal(pasted, frame)


# -- colour conventions ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smooth_clip(tmp_path_factory) -> Path:
    """Gradients and a slow sine, no face: smooth everywhere but the index stamp along the bottom."""
    return make_video(tmp_path_factory.mktemp("colour") / "smooth.mp4", seconds=0.2, size=(128, 96), face=False)


def test_cv2_reads_ffmpegs_i420_as_ffmpeg_does(smooth_clip):
    """cv2's COLOR_YUV2BGR_I420 on ffmpeg's yuv420p frame agrees with ffmpeg's own bgr24 frame: BT.601, limited range."""
    info = probe_video(smooth_clip)
    for i420, bgr in zip(read_frames(info, pixel_format="yuv420p"), read_frames(info, pixel_format="bgr24")):
        smooth = np.s_[4:80, 4:124]
        difference = np.abs(to_bgr(i420)[smooth].astype(int) - bgr[smooth])
        # Measured: max 6, mean 1.2, no bias (signed mean 0.0): cv2 repeats each chroma sample where
        # ffmpeg interpolates. Read as BT.709 the planes would be off by up to 29 (mean 6.4), as full
        # range by up to 19 (mean 7.4); ffmpeg without media.SWS_FLAGS is 1 level darker on average.
        assert difference.max() <= 8 and difference.mean() < 1.8
        assert abs((to_bgr(i420)[smooth].astype(int) - bgr[smooth]).mean()) < 0.3


def test_cv2_writes_i420_as_ffmpeg_does(smooth_clip):
    """cv2's COLOR_BGR2YUV_I420 agrees with ffmpeg's bgr24 -> yuv420p conversion (the bgr24 writer's)."""
    [bgr] = read_frames(probe_video(smooth_clip), 0, 1, pixel_format="bgr24")
    ffmpeg_i420 = subprocess.run(
        [
            ffmpeg_path(),
            "-nostdin",
            "-v",
            "error",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "bgr24",
            "-s",
            "128x96",
            "-i",
            "-",
            "-sws_flags",
            SWS_FLAGS,
            "-f",
            "rawvideo",
            "-pix_fmt",
            "yuv420p",
            "-",
        ],
        input=bgr.tobytes(),
        capture_output=True,
        check=True,
    ).stdout
    theirs = np.frombuffer(ffmpeg_i420, np.uint8).reshape(144, 128)
    ours = to_i420(bgr)
    # Measured: Y identical; U and V within 2 and 3 (means 0.4, 1.3): cv2 averages each 2x2 block,
    # ffmpeg filters chroma over more pixels and sites it on the left column. BT.709 or full range:
    # Y off by up to ~20. Without media.SWS_FLAGS, ffmpeg's Y is 0.5 lower on average.
    limits = [(1, 0.1), (4, 2.0), (4, 2.0)]  # (max, mean) for Y, U, V
    for mine, reference, (max_limit, mean_limit) in zip(planes(ours), planes(theirs), limits):
        rows = mine.shape[0] * 80 // 96
        difference = np.abs(mine[:rows].astype(int) - reference[:rows])
        assert difference.max() <= max_limit and difference.mean() < mean_limit
