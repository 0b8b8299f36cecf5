"""Face detectors, the streaming tracker, and box padding/smoothing."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
import torch

from heygemd.engine.errors import CheckpointError
from heygemd.engine.faces import (
    REACQUIRE_AFTER,
    Detection,
    FaceTracker,
    LBPDetector,
    S3FDDetector,
    _pad_box,
    _sfd_detections,
    box_iou,
    build_detector,
    stream_final_boxes,
)
from heygemd.engine.settings import Box, DetectorKind

# The astronaut's face in skimage.data.astronaut() (512x512), by eye: brow line to chin,
# cheek to cheek (the detector's box at full size overlaps it with IoU ~0.85).
ASTRONAUT_FACE: Box = (176, 70, 278, 175)
FACE_CROP = (slice(10, 230), slice(115, 335))  # the head with some hair and background
MIN_FACE_IOU = 0.6
LETTERBOX = (640, 360)
FRAME_GREY = 90


# ---------------------------------------------------------------------------- images


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)


@pytest.fixture(scope="module")
def lbp() -> LBPDetector:
    return LBPDetector()


def letterbox(image: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, float, int]:
    """image scaled to the frame's height and centred on black: (frame, scale, x offset)."""
    width, height = size
    scale = height / image.shape[0]
    scaled = cv2.resize(image, (round(image.shape[1] * scale), height), interpolation=cv2.INTER_AREA)
    frame = np.zeros((height, width, 3), np.uint8)
    offset = (width - scaled.shape[1]) // 2
    frame[:, offset : offset + scaled.shape[1]] = scaled
    return frame, scale, offset


def scaled_box(box: Box, scale: float, dx: int = 0, dy: int = 0) -> Box:
    return tuple(round(v * scale) + (dx if i % 2 == 0 else dy) for i, v in enumerate(box))  # type: ignore[return-value]


def faceless_frames() -> list[np.ndarray]:
    width, height = LETTERBOX
    ramp = np.tile(np.linspace(0, 255, width, dtype=np.float32), (height, 1)).astype(np.uint8)
    noise = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return [np.dstack([ramp] * 3), noise]


def two_faces(astronaut: np.ndarray, left: int, right: int) -> np.ndarray:
    """A 640x360 frame with the astronaut's head at ``left`` px on the left and ``right`` px on the right."""
    width, height = LETTERBOX
    frame = np.full((height, width, 3), FRAME_GREY, np.uint8)
    crop = astronaut[FACE_CROP]
    for side, x in ((left, 40), (right, width - 40 - right)):
        y = (height - side) // 2
        frame[y : y + side, x : x + side] = cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA)
    return frame


# ---------------------------------------------------------------------------- LBP


def best_box(detections: list[Detection]) -> Box:
    assert detections, "no face found"
    return max(detections, key=lambda d: d.score).box


def test_lbp_finds_the_astronaut_at_full_size(astronaut: np.ndarray, lbp: LBPDetector) -> None:
    [found] = lbp.detect([astronaut])
    assert len(found) == 1
    assert box_iou(found[0].box, ASTRONAUT_FACE) >= MIN_FACE_IOU
    assert found[0].score >= 4  # merged raw hits


def test_lbp_finds_the_astronaut_at_256(astronaut: np.ndarray, lbp: LBPDetector) -> None:
    small = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)
    [found] = lbp.detect([small])
    assert box_iou(best_box(found), scaled_box(ASTRONAUT_FACE, 0.5)) >= MIN_FACE_IOU


def test_lbp_finds_the_astronaut_letterboxed(astronaut: np.ndarray, lbp: LBPDetector) -> None:
    frame, scale, offset = letterbox(astronaut, LETTERBOX)
    [found] = lbp.detect([frame])
    assert box_iou(best_box(found), scaled_box(ASTRONAUT_FACE, scale, dx=offset)) >= MIN_FACE_IOU


def test_lbp_finds_nothing_without_a_face(lbp: LBPDetector) -> None:
    assert lbp.detect(faceless_frames()) == [[], []]


def test_lbp_handles_frames_smaller_than_its_window(lbp: LBPDetector) -> None:
    assert lbp.detect([np.zeros((16, 40, 3), np.uint8)]) == [[]]


def test_lbp_searches_a_batch_in_parallel_with_the_serial_result(astronaut: np.ndarray) -> None:
    frames = [np.roll(astronaut, shift, axis=1) for shift in (0, 40, 80, 120)] + faceless_frames()
    serial = LBPDetector(workers=1).detect(frames)
    assert LBPDetector(workers=3).detect(frames) == serial
    assert all(serial[:4]) and serial[4:] == [[], []]


# ---------------------------------------------------------------------------- tracker, scripted


class ScriptedDetector:
    """Returns, frame after frame, scripted detections given in its input frame's pixels."""

    name = "scripted"

    def __init__(self, script: Sequence[list[Detection]]) -> None:
        self.script = list(script)
        self.calls: list[tuple[int, tuple[int, ...]]] = []  # (batch length, frame shape)

    def detect(self, frames: Sequence[np.ndarray]) -> list[list[Detection]]:
        self.calls.append((len(frames), frames[0].shape))
        out, self.script = self.script[: len(frames)], self.script[len(frames) :]
        return out


BLANK_SIZE = (320, 240)


def blank(count: int, size: tuple[int, int] = BLANK_SIZE) -> list[np.ndarray]:
    return [np.zeros((size[1], size[0], 3), np.uint8) for _ in range(count)]


def shrunk(frame: np.ndarray, max_side: int) -> np.ndarray:
    """The frame with its longest side brought down to ``max_side`` by area averaging, as the decoder
    shrinks detection frames (media.read_detection_frames); a smaller frame is left as it is."""
    height, width = frame.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return frame if scale == 1.0 else cv2.resize(frame, size, interpolation=cv2.INTER_AREA)


FACE_A: Box = (20, 40, 100, 120)
FACE_B: Box = (200, 40, 290, 130)


def shifted(box: Box, dx: int) -> Box:
    return (box[0] + dx, box[1], box[2] + dx, box[3])


def test_track_starts_on_the_best_face_and_keeps_it_when_the_other_scores_higher() -> None:
    script = [[Detection(FACE_B, 0.7), Detection(FACE_A, 0.9)]]
    script += [[Detection(FACE_B, 0.99), Detection(shifted(FACE_A, 3 * i), 0.6)] for i in range(1, 6)]
    boxes = list(FaceTracker(ScriptedDetector(script), batch_size=4).track(blank(6), BLANK_SIZE))
    assert boxes == [FACE_A] + [shifted(FACE_A, 3 * i) for i in range(1, 6)]


def test_track_reacquires_the_best_face_after_several_frames_without_its_face() -> None:
    gone = REACQUIRE_AFTER + 2
    script = [[Detection(FACE_A, 0.9)]] + [[Detection(FACE_B, 0.5)] for _ in range(gone)]
    boxes = list(FaceTracker(ScriptedDetector(script)).track(blank(1 + gone), BLANK_SIZE))
    waited = REACQUIRE_AFTER - 1
    assert boxes == [FACE_A] + [None] * waited + [FACE_B] * (gone - waited)


def test_track_gives_none_for_frames_without_a_face() -> None:
    script = [[], [Detection(FACE_A, 0.9)], [], [Detection(FACE_A, 0.8)]]
    assert list(FaceTracker(ScriptedDetector(script)).track(blank(4), BLANK_SIZE)) == [None, FACE_A, None, FACE_A]


def test_track_maps_frames_the_decoder_downscaled_back_to_their_full_size() -> None:
    detector = ScriptedDetector([[Detection((100, 50, 200, 150), 0.9)]] * 2)
    tracker = FaceTracker(detector, batch_size=2)
    boxes = list(tracker.track(blank(2, (640, 360)), full_size=(1920, 1080)))
    assert detector.calls == [(2, (360, 640, 3))]
    assert boxes == [(300, 150, 600, 450)] * 2


def test_track_of_frames_at_full_size_keeps_the_boxes() -> None:
    detector = ScriptedDetector([[Detection((10, 10, 50, 50), 0.9)]])
    assert list(FaceTracker(detector).track(blank(1), BLANK_SIZE)) == [(10, 10, 50, 50)]
    assert detector.calls == [(1, (240, 320, 3))]


def test_track_is_lazy_and_holds_one_batch() -> None:
    pulled = 0

    def frames() -> Iterator[np.ndarray]:
        nonlocal pulled
        for frame in blank(10):
            pulled += 1
            yield frame

    detector = ScriptedDetector([[Detection(FACE_A, 0.9)]] * 10)
    boxes = FaceTracker(detector, batch_size=4).track(frames(), BLANK_SIZE)
    assert pulled == 0
    next(boxes)
    assert pulled == 4
    assert len(list(boxes)) == 9
    assert [length for length, _ in detector.calls] == [4, 4, 2]


# ---------------------------------------------------------------------------- tracker, real faces


def test_tracker_boxes_on_a_2x_frame_are_2x(astronaut: np.ndarray, lbp: LBPDetector) -> None:
    big = cv2.resize(astronaut, (1024, 1024), interpolation=cv2.INTER_CUBIC)
    tracker = FaceTracker(lbp)
    [small_box] = list(tracker.track([shrunk(astronaut, 512)], (512, 512)))
    [big_box] = list(tracker.track([shrunk(big, 512)], (1024, 1024)))
    assert small_box is not None and big_box is not None
    assert np.abs(np.array(big_box) - 2 * np.array(small_box)).max() <= 6
    assert box_iou(big_box, scaled_box(ASTRONAUT_FACE, 2)) >= MIN_FACE_IOU


def test_tracker_stays_on_one_of_two_real_faces(astronaut: np.ndarray, lbp: LBPDetector) -> None:
    # The right head grows and the left one shrinks; LBP's scores swap on the way.
    sizes = [(240, 200), (240, 210), (235, 220), (230, 230), (220, 245), (210, 260), (200, 280)]
    frames = [two_faces(astronaut, left, right) for left, right in sizes]
    detections = lbp.detect(frames)
    assert all(len(found) == 2 for found in detections)
    leaders = ["right" if best_box(found)[0] > LETTERBOX[0] // 2 else "left" for found in detections]
    assert leaders[0] == "right" and "left" in leaders[1:], "the scores no longer swap: pick other sizes"
    boxes = list(FaceTracker(lbp, batch_size=3).track(frames, LETTERBOX))
    assert all(box is not None and box[0] > LETTERBOX[0] // 2 for box in boxes)


def test_tracker_gives_none_without_faces(lbp: LBPDetector) -> None:
    assert list(FaceTracker(lbp).track(faceless_frames(), LETTERBOX)) == [None, None]


# ---------------------------------------------------------------------------- final boxes


def finalize_boxes(raw, pads, frame_size, smooth_window=5) -> list[Box | None]:
    """The whole track through stream_final_boxes."""
    return list(stream_final_boxes(raw, pads, frame_size, smooth_window))


def test_pads_are_top_bottom_left_right_and_clipped_to_the_frame() -> None:
    raw: list[Box | None] = [(30, 30, 40, 40), (5, 5, 50, 70)]
    boxes = finalize_boxes(raw, (1, 2, 3, 4), (100, 80), smooth_window=1)
    assert boxes[0] == (27, 29, 44, 42)
    assert finalize_boxes(raw[1:], (10, 20, 8, 60), (100, 80), smooth_window=1) == [(0, 0, 100, 80)]


def test_smoothing_is_a_forward_mean_with_the_last_full_window_at_the_end() -> None:
    raw: list[Box | None] = [(x, 0, x + 10, 10) for x in (0, 3, 6, 9, 12, 15)]
    boxes = finalize_boxes(raw, (0, 0, 0, 0), (100, 100), smooth_window=3)
    assert [box[0] for box in boxes if box] == [3, 6, 9, 12, 12, 12]
    assert all(box == (box[0], 0, box[0] + 10, 10) for box in boxes if box)


def test_smoothing_floors_the_mean() -> None:
    raw: list[Box | None] = [(0, 0, 10, 10), (1, 1, 11, 11), (1, 2, 12, 12)]
    # frame 0 averages frames 0-1 (0.5, 0.5, 10.5, 10.5); frames 1 and 2 the last window, 1-2.
    assert finalize_boxes(raw, (0, 0, 0, 0), (50, 50), smooth_window=2) == [
        (0, 0, 10, 10),
        (1, 1, 11, 11),
        (1, 1, 11, 11),
    ]


def test_frames_without_a_face_stay_none_and_do_not_pull_the_average() -> None:
    raw: list[Box | None] = [(10, 10, 20, 20), None, (30, 10, 40, 20), (40, 10, 50, 20), None]
    boxes = finalize_boxes(raw, (0, 0, 0, 0), (100, 100), smooth_window=2)
    assert boxes == [(10, 10, 20, 20), None, (35, 10, 45, 20), (40, 10, 50, 20), None]


def test_window_longer_than_the_video_averages_everything() -> None:
    raw: list[Box | None] = [(0, 0, 10, 10), (4, 4, 14, 14)]
    assert finalize_boxes(raw, (0, 0, 0, 0), (50, 50), smooth_window=5) == [(2, 2, 12, 12)] * 2
    assert finalize_boxes([], (0, 10, 0, 0), (50, 50)) == []


def _random_box(rng: np.random.Generator, width: int, height: int) -> Box:
    x1, y1 = int(rng.integers(0, width - 1)), int(rng.integers(0, height - 1))
    return (x1, y1, int(rng.integers(x1 + 1, width + 1)), int(rng.integers(y1 + 1, height + 1)))


def _finalize_by_definition(raw, pads, size, window):
    """Frame i: floored mean of the padded boxes with a face in frames min(i, n-w) .. +w-1."""
    padded = [None if box is None else _pad_box(box, pads, *size) for box in raw]
    w = min(window, len(raw))
    result = []
    for i, box in enumerate(padded):
        start = min(i, len(raw) - w)
        faces = np.array([b for b in padded[start : start + w] if b is not None])
        result.append(None if box is None else tuple(int(v) for v in np.floor(faces.mean(axis=0))))
    return result


@pytest.mark.parametrize("window", [1, 2, 5, 9])
def test_streamed_boxes_match_the_definition(window: int) -> None:
    rng = np.random.default_rng(window)
    for count in (0, 1, 3, 8, 40):
        raw = [None if rng.random() < 0.2 else _random_box(rng, 200, 120) for _ in range(count)]
        expected = _finalize_by_definition(raw, (3, 9, 2, 2), (200, 120), window)
        assert finalize_boxes(raw, (3, 9, 2, 2), (200, 120), window) == expected


def test_a_streamed_box_comes_out_once_its_window_is_in() -> None:
    pulled = []

    def raw():
        for i in range(10):
            pulled.append(i)
            yield (i, i, i + 20, i + 20)

    stream = stream_final_boxes(raw(), (0, 0, 0, 0), (100, 100), smooth_window=3)
    assert next(stream) == (1, 1, 21, 21) and pulled == [0, 1, 2]


def test_finalized_boxes_are_ints_inside_the_frame_with_area() -> None:
    rng = np.random.default_rng(1)
    width, height = 64, 48
    raw = [_random_box(rng, width, height) if rng.random() > 0.2 else None for _ in range(200)]
    for pads in ((0, 10, 0, 0), (-30, -30, -30, -30), (50, 50, 50, 50)):
        for box, before in zip(finalize_boxes(raw, pads, (width, height), smooth_window=5), raw):
            assert (box is None) == (before is None)
            if box is not None:
                assert all(type(v) is int for v in box)
                assert 0 <= box[0] < box[2] <= width and 0 <= box[1] < box[3] <= height


# ---------------------------------------------------------------------------- S3FD


@pytest.fixture(scope="module")
def s3fd_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from checkpoint_factory import make_s3fd_checkpoint

    return make_s3fd_checkpoint(tmp_path_factory.mktemp("s3fd") / "s3fd.pth")


def small_frames(count: int = 2, side: int = 64) -> list[np.ndarray]:
    rng = np.random.default_rng(2)
    return [rng.integers(0, 256, (side, side, 3), dtype=np.uint8) for _ in range(count)]


def test_s3fd_loads_random_weights_and_detects_well_formed_boxes(s3fd_checkpoint: Path) -> None:
    detector = S3FDDetector(s3fd_checkpoint, "cpu", threshold=0.5)
    frames = small_frames()
    found = detector.detect(frames)
    assert detector.name == "s3fd" and len(found) == len(frames)
    for detections in found:
        assert [d.score for d in detections] == sorted((d.score for d in detections), reverse=True)
        for detection in detections:
            x1, y1, x2, y2 = detection.box
            assert all(type(v) is int for v in detection.box)
            assert 0 <= x1 < x2 <= 64 and 0 <= y1 < y2 <= 64
            assert 0.5 < detection.score <= 1.0
    strict = S3FDDetector(s3fd_checkpoint, "cpu", threshold=0.99999).detect(frames)
    assert all(len(s) <= len(f) for s, f in zip(strict, found))
    assert all(d.score > 0.99999 for detections in strict for d in detections)
    assert detector.detect([]) == []


def test_s3fd_missing_weights_say_where_to_put_them(tmp_path: Path) -> None:
    path = tmp_path / "checkpoints" / "s3fd.pth"
    with pytest.raises(CheckpointError) as caught:
        build_detector(DetectorKind.S3FD, path, "cpu", 0.5)
    assert str(caught.value) == (
        f"S3FD weights not found at {path}: download s3fd-619a316812.pth from the face-alignment "
        'project and save it there, or set detector = "lbp"'
    )


def test_s3fd_html_download_is_a_checkpoint_error(tmp_path: Path) -> None:
    path = tmp_path / "s3fd.pth"
    path.write_text("<!DOCTYPE html><html><body>Not found</body></html>")
    with pytest.raises(CheckpointError) as caught:
        S3FDDetector(path, "cpu")
    assert caught.value.path == path and str(path) in str(caught.value)


@pytest.mark.parametrize(
    "state",
    [
        {"face_encoder_blocks.0.0.conv_block.0.weight": torch.zeros(16, 6, 7, 7)},  # Wav2Lip's first key
        {"weight": torch.zeros(2, 3), "bias": torch.zeros(2)},
    ],
    ids=["wav2lip-shaped", "unrelated"],
)
def test_s3fd_other_weights_are_a_checkpoint_error(tmp_path: Path, state: dict[str, torch.Tensor]) -> None:
    path = tmp_path / "not-s3fd.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as caught:
        S3FDDetector(path, "cpu")
    message = str(caught.value)
    assert caught.value.path == path and str(path) in message
    assert "S3FD" in message and "s3fd-619a316812.pth" in message


def test_build_detector_lbp_needs_no_weights(tmp_path: Path) -> None:
    detector = build_detector(DetectorKind.LBP, tmp_path / "absent.pth", "cpu", 0.5)
    assert detector.name == "lbp" and isinstance(detector, LBPDetector)


def test_s3fd_unknown_device_is_named(s3fd_checkpoint: Path) -> None:
    with pytest.raises(ValueError, match="'auto'"):
        S3FDDetector(s3fd_checkpoint, "auto")


def test_s3fd_detects_exactly_what_face_alignments_own_detector_does(s3fd_checkpoint: Path) -> None:
    from face_alignment.detection.sfd.sfd_detector import SFDDetector

    frames = small_frames(3)
    theirs = SFDDetector("cpu", path_to_detector=str(s3fd_checkpoint), filter_threshold=0.5)
    batch = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float()
    expected = [_sfd_detections(rows, 64, 64) for rows in theirs.detect_from_batch(batch)]
    assert any(expected), "random weights found nothing: pick other frames"
    assert S3FDDetector(s3fd_checkpoint, "cpu", threshold=0.5).detect(frames) == expected


def test_s3fd_weights_go_through_the_checked_loader(tmp_path: Path) -> None:
    """NaN weights are refused (face-alignment's own loader would take them), the file named."""
    from face_alignment.detection.sfd.net_s3fd import s3fd

    state = s3fd().state_dict()
    state["conv1_1.weight"][0, 0, 0, 0] = float("nan")
    path = tmp_path / "s3fd-nan.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="NaN") as caught:
        S3FDDetector(path, "cpu")
    assert caught.value.path == path and "s3fd-619a316812.pth" in str(caught.value)


def test_an_s3fd_engine_hashes_its_detector_weights_once_and_describes_them(
    s3fd_checkpoint: Path, wav2lip_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from heygemd.engine import EngineSettings, LipSyncEngine, checkpoint
    from heygemd.engine.files import sha256_file

    hashed: list[Path] = []

    def counting(path: Path) -> str:
        hashed.append(Path(path))
        return sha256_file(path)

    monkeypatch.setattr(checkpoint, "sha256_file", counting)
    engine = LipSyncEngine(
        EngineSettings(checkpoint=wav2lip_checkpoint, detector="s3fd", detector_checkpoint=s3fd_checkpoint, device="cpu")
    )
    assert hashed.count(s3fd_checkpoint) == 1 and hashed.count(wav2lip_checkpoint) == 1
    info = engine.describe()
    assert info.detector is DetectorKind.S3FD and info.detector_checkpoint is not None
    assert info.detector_checkpoint.sha256 == sha256_file(s3fd_checkpoint) == engine.track_identity["weights"]
