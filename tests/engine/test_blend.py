"""Crops in, predictions pasted back."""

import cv2
import numpy as np
from oracles import paste

from heygemd.engine.blend import (
    blend_face,
    crop_face,
    first_pasted_row,
    generator_faces,
    lower_face_mask,
    prediction_images,
)
from heygemd.engine.generator_io import FACE_SIZE
from heygemd.engine.settings import BlendMode

rng = np.random.default_rng(7)


def test_generator_faces_masks_the_lower_half_of_the_first_copy():
    crops = rng.integers(1, 256, size=(2, FACE_SIZE, FACE_SIZE, 3), dtype=np.uint8)
    faces = generator_faces(crops)
    assert faces.shape == (2, 6, FACE_SIZE, FACE_SIZE) and faces.dtype == np.float32
    assert np.all(faces[:, :3, 48:] == 0)
    assert np.all(faces[:, :3, :48] > 0)
    np.testing.assert_allclose(faces[:, 3:].transpose(0, 2, 3, 1), crops / 255.0, atol=1e-6)


def test_crop_face_resizes_the_box():
    frame = rng.integers(0, 256, size=(120, 160, 3), dtype=np.uint8)
    crop = crop_face(frame, (10, 20, 58, 68))
    expected = cv2.resize(frame[20:68, 10:58], (FACE_SIZE, FACE_SIZE))
    np.testing.assert_array_equal(crop, expected)


def test_hard_paste_reproduces_the_reference_rectangle():
    frame = np.zeros((100, 100, 3), np.uint8)
    prediction = rng.random((1, 3, FACE_SIZE, FACE_SIZE)).astype(np.float32)
    face = prediction_images(prediction)[0]
    paste(frame, (20, 30, 60, 80), face, BlendMode.HARD, feather=0.1)
    np.testing.assert_array_equal(frame[30:80, 20:60], cv2.resize(face.astype(np.uint8), (40, 50)))
    assert frame[:30].sum() == 0 and frame[80:].sum() == 0 and frame[:, :20].sum() == 0


def test_feathered_paste_changes_only_the_lower_face():
    frame = np.full((100, 100, 3), 50, np.uint8)
    original = frame.copy()
    face = np.full((FACE_SIZE, FACE_SIZE, 3), 250.0, np.float32)
    paste(frame, (20, 20, 80, 80), face, BlendMode.FEATHER, feather=0.12)
    outside = np.ones((100, 100), bool)
    outside[20:80, 20:80] = False
    np.testing.assert_array_equal(frame[outside], original[outside])
    assert np.all(frame[20:50, 20:80] == 50), "upper half of the box is left as it was"
    assert frame[70, 50, 0] == 250, "centre of the lower face is the prediction"
    assert 50 < frame[79, 50, 0] < 150, "bottom edge eases back to the frame"


def test_mask_is_bounded_and_zero_above_the_mouth():
    mask = lower_face_mask(64, 80, 0.12)
    assert mask.shape == (80, 64, 1)
    assert mask.min() >= 0 and mask.max() <= 1
    assert np.all(mask[:40] == 0)
    assert mask[60, 32, 0] == 1.0


def test_first_pasted_row_is_where_the_mask_starts():
    for width, height in [(64, 80), (40, 41), (13, 7), (96, 96)]:
        mask = lower_face_mask(width, height, 0.12)[:, 0, 0]
        top = first_pasted_row(height, BlendMode.FEATHER, 0.12)
        assert np.all(mask[:top] == 0) and mask[top] > 0, (width, height)
    assert first_pasted_row(80, BlendMode.HARD, 0.12) == 0
    assert first_pasted_row(1, BlendMode.FEATHER, 0.12) == 1, "a box one row high has no row below MASK_TOP"


def test_blend_face_of_the_lower_rows_is_those_rows_of_the_whole_paste():
    frame = rng.integers(0, 256, size=(100, 120, 3), dtype=np.uint8)
    face = rng.random((FACE_SIZE, FACE_SIZE, 3)).astype(np.float32) * 255
    box = (10, 12, 71, 89)
    for mode in (BlendMode.FEATHER, BlendMode.HARD):
        whole = frame.copy()
        paste(whole, box, face, mode, feather=0.2)
        top = 40
        rows = blend_face(frame[12 + top : 89, 10:71], face, mode, 0.2, top)
        np.testing.assert_array_equal(rows, whole[12 + top : 89, 10:71])
        untouched = first_pasted_row(89 - 12, mode, 0.2)
        np.testing.assert_array_equal(whole[12 : 12 + untouched], frame[12 : 12 + untouched])
