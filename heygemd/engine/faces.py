"""Find the face in every template frame: detectors, a streaming tracker, padding and smoothing.

Two detectors share one small interface (:class:`FaceDetector`):

* :class:`S3FDDetector` — face-alignment's S3FD network, the detector Wav2Lip's boxes come
  from. Needs ``s3fd-619a316812.pth``; fed OpenCV's BGR frames unchanged like the reference.
* :class:`LBPDetector` — scikit-image's LBP frontal-face cascade. Ships with scikit-image (no
  download), CPU only, frontal faces of at least ~12 % of the frame's short side.

:class:`FaceTracker` streams frames (downscaled by the decoder) through a detector in batches
and follows one face; :func:`stream_final_boxes` pads and smooths
the raw track the way the reference does. All boxes are ``(x1, y1, x2, y2)`` ints, x2/y2
exclusive, in pixels of the full-resolution frame.
"""

from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import cv2
import numpy as np

from heygemd.engine.errors import CheckpointError
from heygemd.engine.settings import Box, DetectorKind, Pads
from heygemd.engine.weights import S3FD

if TYPE_CHECKING:
    from heygemd.engine.checkpoint import CheckpointInfo

S3FD_NMS_OVERLAP = 0.3  # face-alignment's: detections overlapping a better one this much are dropped

# LBP cascade. The search runs on a grey copy whose short side is LBP_WORK_SIDE pixels, so a
# frame of any size costs the same; the cascade's 24 px window then means the smallest face
# found is 24 / 200 = 12 % of the frame's short side (a talking-head face is far larger).
LBP_WORK_SIDE = 200
LBP_SCALE_FACTOR = 1.15  # window growth per scale step
LBP_STEP_RATIO = 1.0  # exhaustive positions: coarser steps lose most hits on small faces
LBP_MIN_HITS = 4  # raw hits a merged face needs; non-faces rarely collect more than 3
LBP_MERGE_IOU = 0.3  # raw hits overlapping at least this much belong to one face
LBP_NO_MERGE = 2.0  # skimage merges hits whose overlap ratio (<= 1) exceeds this: never

TRACK_IOU = 0.3  # a detection continues the track when it overlaps the last box this much
REACQUIRE_AFTER = 5  # frames without a continuing detection before the track may jump


@dataclass(frozen=True)
class Detection:
    """One face in one frame: its box (pixels of the frame given to the detector) and score.

    S3FD's score is its confidence in [0, 1]; the LBP cascade's is the number of raw hits
    merged into the box (>= LBP_MIN_HITS). Scores are comparable only within one detector.
    """

    box: Box
    score: float


class FaceDetector(Protocol):
    name: str

    def detect(self, frames: Sequence[np.ndarray]) -> list[list[Detection]]:
        """Faces in each frame; frames are BGR uint8 (H, W, 3), all of one size."""
        ...


# ---------------------------------------------------------------------------- S3FD


class S3FDDetector:
    """face-alignment's S3FD network, loaded through heygemd's checked loader (``checkpoint.load_s3fd``:
    weights only, every key and shape, no NaN), and run through face-alignment's own batch detection."""

    name = "s3fd"

    def __init__(self, checkpoint: Path, device: str, threshold: float = 0.5, *, half: bool = False) -> None:
        from face_alignment.detection.sfd.bbox import nms
        from face_alignment.detection.sfd.detect import batch_detect

        self.threshold = threshold
        self.device = device
        self.half = half  # float16 autocast on CUDA
        self._net, self.checkpoint = _load_s3fd(Path(checkpoint), device)
        self._batch_detect, self._nms = batch_detect, nms

    def detect(self, frames: Sequence[np.ndarray]) -> list[list[Detection]]:
        """Faces with confidence above the threshold; frames (H, W, 3) BGR uint8, one size."""
        import torch

        if not frames:
            return []
        height, width = frames[0].shape[:2]
        # BGR passed unchanged: face-alignment flips channels itself, and the reference's
        # boxes (the ones Wav2Lip was trained on) come from exactly this input.
        batch = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float()  # B, C, H, W
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16, enabled=self.half):
            found = self._batch_detect(self._net, batch, device=self.device)
        return [_sfd_detections(self._confident(rows), width, height) for rows in found]

    def _confident(self, rows: np.ndarray) -> list[np.ndarray]:
        """face-alignment's filter: overlapping boxes merged (NMS), then those above the threshold."""
        if len(rows) == 0:
            return []
        return [row for row in rows[self._nms(rows, S3FD_NMS_OVERLAP), :] if row[-1] > self.threshold]


def _load_s3fd(checkpoint: Path, device: str) -> tuple[Any, CheckpointInfo]:
    import torch

    from heygemd.engine.checkpoint import load_s3fd

    if not checkpoint.exists():
        missing = CheckpointError(
            f"S3FD weights not found at {checkpoint}: download {S3FD.file_name} from the "
            f'face-alignment project and save it there, or set detector = "lbp"'
        )
        missing.path = checkpoint  # kept for callers; the message already names the file
        raise missing
    try:
        torch.device(device)
    except RuntimeError:
        raise ValueError(f"S3FD cannot run on device {device!r}: use cpu, cuda, cuda:N or mps") from None
    try:
        return load_s3fd(checkpoint, device)
    except CheckpointError as err:
        raise CheckpointError(
            f"{err.reason}; expected {S3FD.file_name} from the face-alignment project", checkpoint
        ) from err


def _sfd_detections(rows: Iterable[np.ndarray], width: int, height: int) -> list[Detection]:
    """face-alignment rows (x1, y1, x2, y2, score) as clipped int Detections, best first."""
    detections = []
    for row in rows:
        # int() truncates like the reference does when it turns S3FD's floats into pixels.
        box = _clip_box((int(row[0]), int(row[1]), int(row[2]), int(row[3])), width, height)
        if box is not None:
            detections.append(Detection(box, float(row[4])))
    return sorted(detections, key=lambda d: d.score, reverse=True)


# ---------------------------------------------------------------------------- LBP


class LBPDetector:
    """scikit-image's LBP frontal-face cascade; score = raw hits merged into the face.

    The cascade runs on one core and releases the GIL, so a batch's frames are searched in
    parallel, one thread per core (``workers``).
    """

    name = "lbp"

    def __init__(self, workers: int | None = None) -> None:
        from skimage.data import lbp_frontal_face_cascade_filename
        from skimage.feature import Cascade

        self._cascade = Cascade(lbp_frontal_face_cascade_filename())
        self._pool = ThreadPoolExecutor(max_workers=workers or len(os.sched_getaffinity(0)), thread_name_prefix="lbp")

    def detect(self, frames: Sequence[np.ndarray]) -> list[list[Detection]]:
        """Faces in each BGR uint8 (H, W, 3) frame, best (most hits) first."""
        return list(self._pool.map(self._detect_one, frames))

    def _detect_one(self, frame: np.ndarray) -> list[Detection]:
        height, width = frame.shape[:2]
        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        scale = min(1.0, LBP_WORK_SIDE / min(height, width))
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        hits = self._raw_hits(grey)
        detections = []
        for (x1, y1, x2, y2), count in _merge_hits(hits):
            box = _clip_box((round(x1 / scale), round(y1 / scale), round(x2 / scale), round(y2 / scale)), width, height)
            if box is not None and count >= LBP_MIN_HITS:
                detections.append(Detection(box, float(count)))
        return sorted(detections, key=lambda d: d.score, reverse=True)

    def _raw_hits(self, grey: np.ndarray) -> np.ndarray:
        """Every window the cascade accepts, unmerged: (N, 4) float x1, y1, x2, y2."""
        side = min(grey.shape)
        window = max(self._cascade.window_width, self._cascade.window_height)
        if side < window:
            return np.zeros((0, 4))
        found = self._cascade.detect_multi_scale(
            grey,
            scale_factor=LBP_SCALE_FACTOR,
            step_ratio=LBP_STEP_RATIO,
            min_size=(window, window),
            max_size=(side, side),
            min_neighbor_number=1,
            intersection_score_threshold=LBP_NO_MERGE,
        )
        return np.array([(h["c"], h["r"], h["c"] + h["width"], h["r"] + h["height"]) for h in found], float).reshape(-1, 4)


def _merge_hits(hits: np.ndarray) -> list[tuple[tuple[float, float, float, float], int]]:
    """Group hits (N, 4) linked by IoU >= LBP_MERGE_IOU (transitively): (mean box, count) each."""
    count = len(hits)
    if count == 0:
        return []
    linked = _iou_matrix(hits, hits) >= LBP_MERGE_IOU
    group = np.arange(count)
    changed = True
    while changed:  # propagate the smallest index through links until stable: connected components
        spread = np.where(linked, group[None, :], count).min(axis=1)
        changed = bool((spread != group).any())
        group = spread
    merged = []
    for label in np.unique(group):
        members = hits[group == label]
        merged.append((tuple(float(v) for v in members.mean(axis=0)), len(members)))
    return merged  # type: ignore[return-value]


def _iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in a (N, 4) with every box in b (M, 4): (N, M)."""
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = ix * iy
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


# ---------------------------------------------------------------------------- choosing


def build_detector(
    kind: DetectorKind, checkpoint: Path, device: str, threshold: float, *, half: bool = False
) -> FaceDetector:
    """The detector the settings ask for; S3FD loads (and checks) its weights now."""
    if DetectorKind(kind) == DetectorKind.S3FD:
        return S3FDDetector(checkpoint, device, threshold, half=half)
    return LBPDetector()


# ---------------------------------------------------------------------------- tracking


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (0 when they do not touch)."""
    return float(_iou_matrix(np.array([a], float), np.array([b], float))[0, 0])


class FaceTracker:
    """Streams frames through a detector and follows one face.

    The track starts on the highest-scoring face. Afterwards each frame keeps the detection
    overlapping the last tracked box most (IoU >= TRACK_IOU), so with two faces in view the
    track does not jump to the other one when it scores higher. When nothing continues the
    track the frame gets None; after REACQUIRE_AFTER such frames in a row the track restarts
    on the highest score (the person moved fast, or there was a cut).
    """

    def __init__(self, detector: FaceDetector, batch_size: int = 8) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.detector = detector
        self.batch_size = batch_size

    def track(self, frames: Iterable[np.ndarray], full_size: tuple[int, int]) -> Iterator[Box | None]:
        """One box or None per BGR frame, in order, lazily, in pixels of the full frame.

        The frames come downscaled (by the decoder, ``media.read_detection_frames``) from frames of
        ``full_size`` (width, height); the boxes are mapped back onto it. A batch goes to the
        detector as soon as it is full, before the next frame is pulled.
        """
        state = _TrackState()
        for batch in self._batches(frames):
            small_size = (batch[0].shape[1], batch[0].shape[0])
            found = self.detector.detect(batch)
            if len(found) != len(batch):
                raise RuntimeError(f"{self.detector.name} returned {len(found)} results for {len(batch)} frames")
            for detections in found:
                scaled = [_scale_detection(d, small_size, full_size) for d in detections]
                yield state.follow([d for d in scaled if d is not None])

    def _batches(self, frames: Iterable[np.ndarray]) -> Iterator[list[np.ndarray]]:
        batch: list[np.ndarray] = []
        for frame in frames:
            batch.append(frame)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch:
            yield batch


@dataclass
class _TrackState:
    last: Box | None = None
    misses: int = 0

    def follow(self, detections: list[Detection]) -> Box | None:
        """The box for this frame given its detections (full-resolution pixels)."""
        chosen = self._continuation(detections)
        if chosen is None and detections and (self.last is None or self.misses + 1 >= REACQUIRE_AFTER):
            chosen = max(detections, key=lambda d: d.score).box
        if chosen is None:
            self.misses += 1
            return None
        self.last, self.misses = chosen, 0
        return chosen

    def _continuation(self, detections: list[Detection]) -> Box | None:
        if self.last is None or not detections:
            return None
        overlaps = [(box_iou(self.last, d.box), d.box) for d in detections]
        best_iou, best_box = max(overlaps, key=lambda pair: pair[0])
        return best_box if best_iou >= TRACK_IOU else None


def _scale_detection(detection: Detection, small: tuple[int, int], full: tuple[int, int]) -> Detection | None:
    """A detection on the downscaled frame (width, height) mapped onto the full frame."""
    if small == full:
        return detection
    sx, sy = full[0] / small[0], full[1] / small[1]
    x1, y1, x2, y2 = detection.box
    box = _clip_box((math.floor(x1 * sx), math.floor(y1 * sy), math.ceil(x2 * sx), math.ceil(y2 * sy)), *full)
    return Detection(box, detection.score) if box is not None else None


# ---------------------------------------------------------------------------- padding, smoothing


def stream_final_boxes(
    raw: Iterable[Box | None], pads: Pads, frame_size: tuple[int, int], smooth_window: int = 5
) -> Iterator[Box | None]:
    """Pad, clip and smooth a raw track, lazily; None frames stay None.

    pads: (top, bottom, left, right) pixels added around each box, then clipped to
    frame_size (width, height). Smoothing is a forward mean: frame i averages the padded
    boxes of frames i..i+w-1 that have a face, so box i comes out once raw box i+w-1 is in.
    The last w-1 frames use the last full window (frames n-w..n-1) as the reference does, so
    the tail is smoothed as strongly as the rest (the reference averages that window in place,
    partly over already-smoothed boxes; here it is always the padded boxes). Means are
    floored, as the reference's int array does.
    """
    if smooth_window < 1:
        raise ValueError("smooth_window must be at least 1")
    width, height = frame_size
    window: deque[Box | None] = deque(maxlen=smooth_window)
    for box in raw:
        window.append(None if box is None else _pad_box(box, pads, width, height))
        if len(window) == smooth_window:
            yield _window_mean(window, window[0])
    pending = list(window)[1:] if len(window) == smooth_window else list(window)
    for box in pending:
        yield _window_mean(window, box)


def _window_mean(window: Iterable[Box | None], box: Box | None) -> Box | None:
    """None for a frame without a face, else the floored mean of the window's boxes."""
    if box is None:
        return None
    faces = [b for b in window if b is not None]  # box is one of them
    return tuple(sum(side) // len(faces) for side in zip(*faces))


def _pad_box(box: Box, pads: Pads, width: int, height: int) -> Box:
    top, bottom, left, right = pads
    x1, y1, x2, y2 = box
    padded = _clip_box((x1 - left, y1 - top, x2 + right, y2 + bottom), width, height)
    if padded is None:  # negative pads ate the box: keep one pixel where it was
        cx, cy = min(max(x1, 0), width - 1), min(max(y1, 0), height - 1)
        return (cx, cy, cx + 1, cy + 1)
    return padded


def _clip_box(box: tuple[int, int, int, int], width: int, height: int) -> Box | None:
    """The box clipped to a width x height frame, or None when nothing of it is left."""
    x1, y1, x2, y2 = box
    x1, x2 = max(0, min(x1, width)), max(0, min(x2, width))
    y1, y2 = max(0, min(y1, height)), max(0, min(y2, height))
    if x2 <= x1 or y2 <= y1:
        return None
    return (x1, y1, x2, y2)


def interpolate_stride(samples: Iterable[Box | None], stride: int, frames: int) -> Iterator[Box | None]:
    """A box for each of ``frames`` frames from boxes detected on frames 0, stride, 2*stride, ... (lazily).

    Between two sampled frames that both have a face the box moves linearly; next to a sampled
    frame without a face, the nearer sample decides (the earlier one on a tie); after the last
    sample its box is held. Frame j's box comes out once the sample after it is in.
    """
    if stride < 1:
        raise ValueError("stride must be at least 1")
    emitted = 0
    previous: Box | None = None
    for number, box in enumerate(samples):
        at = number * stride
        for frame in range(emitted, min(at, frames)):
            yield _between(previous, box, (frame - (at - stride)) / stride)
        if at < frames:
            yield box
        emitted, previous = at + 1, box
    for _ in range(emitted, frames):
        yield previous


def _between(before: Box | None, after: Box | None, t: float) -> Box | None:
    """The box a fraction ``t`` (0 < t < 1) of the way from ``before`` to ``after``."""
    if before is not None and after is not None:
        return tuple(round(a + (b - a) * t) for a, b in zip(before, after))  # type: ignore[return-value]
    return before if t <= 0.5 else after
