"""MuseTalk's crop box against the reference's landmark box, on real face photos in a 720p frame.

The reference frames MuseTalk's crop from 68 face landmarks: x1 and x2 the leftmost and rightmost, y2 the
lowest (the chin), y1 = y29 - (y2 - y29) with y29 the lower nose bridge (0-based point 29), then its bottom
10 px lower (v1.5). heygemd has no landmark model at run time: its crop is the detector's box with the
render's pads (0 top, 10 bottom), moved by the model geometry's crop rule for that detector, and 10 px lower
(heygemd/engine/musetalk/port.py; tested in tests/engine/test_musetalk_render.py).

Landmarks here come from MediaPipe's face mesh (468 points; its model ships inside the mediapipe 0.10.14
wheel, nothing is downloaded), mapped onto the 68-point layout's few points the box needs:

    jaw line 0..16        the mesh's face-oval points from 127 down round the chin to 356 (no forehead)
    29 (lower bridge)     mesh point 5: on the bridge two thirds of the way from the nasion (168, point 27)
                          to the nose tip (1, point 30), where the 68-point layout spaces 27..30 evenly
    lowest (the chin, 8)  mesh point 152

The photos are the real faces that installed packages ship: scikit-image's astronaut and matplotlib's
Grace Hopper, each at several sizes and places in a 1280x720 frame. For each, the bench measures heygemd's
crop box with the LBP detector the tests use, and with an S3FD-shaped box: S3FD itself cannot run here
with real weights, so its box is reasoned from the eyes as restore_frame.py frames it (WIDER FACE
proportions: 2.2 eye distances wide, 2.6 high, the eyes 0.7 eye distances below its top).

MediaPipe needs numpy < 2 and protobuf < 5, so it runs in a separate environment:

    python3 -m venv /tmp/mpvenv
    /tmp/mpvenv/bin/pip install --no-deps mediapipe==0.10.14
    /tmp/mpvenv/bin/pip install "numpy<2" absl-py attrs flatbuffers "protobuf>=4.25.3,<5" \\
        opencv-python-headless scikit-image matplotlib
    .venv/bin/python bench/musetalk_crop_bench.py --landmarks-python /tmp/mpvenv/bin/python

Writes bench/results/musetalk-crop.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FRAME_SIZE = (1280, 720)
BACKGROUND = 90
PHOTO_HEIGHTS = (360, 480, 600, 720)  # the photo's height in the frame, pixels
PLACES = (0.0, 0.5, 1.0)  # left, centre, right of the free width
JAW_LINE = (127, 234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 361, 323, 454, 356)
BRIDGE_29 = 5
CHIN = 152
LEFT_EYE = (33, 133)  # the person's right eye, on the image's left: outer and inner corners
RIGHT_EYE = (362, 263)
S3FD_SHAPE = {"width": 2.2, "height": 2.6, "eyes_below_top": 0.7}  # in eye distances (restore_frame.py)
EXTRA_MARGIN = 10  # the reference's v1.5 chin margin, pixels


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--landmarks-python", type=Path, help="a Python with mediapipe 0.10.14 (see above)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "musetalk-crop.json")
    parser.add_argument("--landmarks", type=Path, help=argparse.SUPPRESS)  # the child: frames and landmarks into DIR
    args = parser.parse_args()
    if args.landmarks is not None:
        return landmark_child(args.landmarks)
    if args.landmarks_python is None:
        parser.error("--landmarks-python is needed")
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        subprocess.run([str(args.landmarks_python), __file__, "--landmarks", str(scratch)], check=True)
        faces = json.loads((scratch / "faces.json").read_text())
        rows = [measure(face, cv2.imread(str(scratch / face["frame"]))) for face in faces]
    result = summarise(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["summary"], indent=2))
    return 0


# -------------------------------------------------------------------- the child, in the mediapipe environment


def landmark_child(folder: Path) -> int:
    import matplotlib.cbook
    import mediapipe as mp
    import skimage.data

    photos = {
        "astronaut": skimage.data.astronaut(),  # RGB
        "grace_hopper": cv2.cvtColor(
            cv2.imread(str(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))), cv2.COLOR_BGR2RGB
        ),
    }
    mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1)
    faces = []
    for name, photo in photos.items():
        for height in PHOTO_HEIGHTS:
            for place in PLACES:
                frame, (left, top, width) = compose(photo, height, place)
                # The mesh's own face finder wants a face that fills much of its picture: it is given the photo's
                # region of the frame, and its points are moved back into the frame.
                found = mesh.process(np.ascontiguousarray(frame[top:, left : left + width])).multi_face_landmarks
                if not found:
                    continue
                points = np.array([(left + p.x * width, top + p.y * height) for p in found[0].landmark])
                file_name = f"{name}-{height}-{place}.png"
                cv2.imwrite(str(folder / file_name), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
                faces.append({"frame": file_name, "photo": name, "photo_height": height, "place": place, **boxes(points)})
    (folder / "faces.json").write_text(json.dumps(faces))
    return 0


def compose(photo: np.ndarray, height: int, place: float) -> tuple[np.ndarray, tuple[int, int, int]]:
    """The photo scaled to ``height`` pixels, on a grey 1280x720 frame at ``place`` (0 left .. 1 right);
    and where it lies: (left, top, width)."""
    width = round(photo.shape[1] * height / photo.shape[0])
    scaled = cv2.resize(photo, (width, height), interpolation=cv2.INTER_AREA)
    frame = np.full((FRAME_SIZE[1], FRAME_SIZE[0], 3), BACKGROUND, np.uint8)
    left = round((FRAME_SIZE[0] - width) * place)
    top = FRAME_SIZE[1] - height  # standing on the frame's bottom edge, as a presenter does
    frame[top:, left : left + width] = scaled
    return frame, (left, top, width)


def boxes(points: np.ndarray) -> dict[str, Any]:
    """The reference's landmark box (before its chin margin) and the S3FD-shaped box, from mesh points."""
    jaw = points[list(JAW_LINE)]
    y29, y2 = float(points[BRIDGE_29, 1]), float(points[CHIN, 1])
    landmark = [float(jaw[:, 0].min()), max(0.0, y29 - (y2 - y29)), float(jaw[:, 0].max()), y2]
    left_eye, right_eye = points[list(LEFT_EYE)].mean(axis=0), points[list(RIGHT_EYE)].mean(axis=0)
    eyes = (left_eye + right_eye) / 2
    distance = float(np.linalg.norm(right_eye - left_eye))
    top = float(eyes[1]) - S3FD_SHAPE["eyes_below_top"] * distance
    half_width = S3FD_SHAPE["width"] * distance / 2
    s3fd = [float(eyes[0]) - half_width, top, float(eyes[0]) + half_width, top + S3FD_SHAPE["height"] * distance]
    return {"landmark_box": landmark, "s3fd_shaped_box": s3fd, "eye_distance": distance}


# -------------------------------------------------------------------- the measurement, in heygemd's environment


def measure(face: dict[str, Any], frame: np.ndarray) -> dict[str, Any]:
    from heygemd.engine.faces import LBPDetector
    from heygemd.engine.musetalk.port import MUSETALK_GEOMETRY
    from heygemd.engine.settings import DetectorKind, RenderOptions

    width, height = FRAME_SIZE
    pads = RenderOptions().pads
    reference = _with_margin(face["landmark_box"], EXTRA_MARGIN, height)
    row: dict[str, Any] = {key: face[key] for key in ("photo", "photo_height", "place", "eye_distance")}
    row["reference_crop"] = [round(value, 1) for value in reference]
    detected = LBPDetector(workers=1).detect([frame])[0]
    found = {"s3fd_shaped": ([round(value) for value in face["s3fd_shaped_box"]], DetectorKind.S3FD)}
    if detected:
        found["lbp"] = (list(detected[0].box), DetectorKind.LBP)
        found["lbp_without_rule"] = (list(detected[0].box), None)  # the crop before MuseTalk's LBP crop rule
    for name, (box, detector) in found.items():
        padded = _padded(box, pads, width, height)
        ours = MUSETALK_GEOMETRY.crop_box(padded, width, height, detector)
        row[name] = {
            "detector_box": box,
            "crop": list(ours),
            "iou": round(_iou(ours, reference), 3),
            "edges": _edges(ours, reference),
            "landmark_in_padded_units": _relative(face["landmark_box"], list(padded)),
        }
    return row


def _with_margin(box: list[float], margin: int, height: int) -> list[float]:
    return [box[0], box[1], box[2], min(float(height), box[3] + margin)]


def _padded(box: list[int], pads: tuple[int, int, int, int], width: int, height: int) -> tuple[int, int, int, int]:
    top, bottom, left, right = pads
    x1, y1, x2, y2 = box
    return max(0, x1 - left), max(0, y1 - top), min(width, x2 + right), min(height, y2 + bottom)


def _iou(a: tuple[int, int, int, int] | list[float], b: list[float]) -> float:
    overlap_w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    overlap_h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = overlap_w * overlap_h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _edges(ours: tuple[int, int, int, int], reference: list[float]) -> dict[str, float]:
    """Each edge of our box minus the reference's, as a fraction of the reference's width (x) or height (y)."""
    ref_w, ref_h = reference[2] - reference[0], reference[3] - reference[1]
    return {
        "left": round((ours[0] - reference[0]) / ref_w, 3),
        "top": round((ours[1] - reference[1]) / ref_h, 3),
        "right": round((ours[2] - reference[2]) / ref_w, 3),
        "bottom": round((ours[3] - reference[3]) / ref_h, 3),
    }


def _relative(reference: list[float], box: list[int]) -> dict[str, float]:
    """The edges of ``reference`` from those of ``box``, in ``box``'s width (x) or height (y): what a crop rule adds
    to the (padded) detector box to reach the landmark box."""
    width, height = box[2] - box[0], box[3] - box[1]
    return {
        "left": round((reference[0] - box[0]) / width, 3),
        "top": round((reference[1] - box[1]) / height, 3),
        "right": round((reference[2] - box[2]) / width, 3),
        "bottom": round((reference[3] - box[3]) / height, 3),
    }


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for detector in ("lbp", "lbp_without_rule", "s3fd_shaped"):
        found = [row[detector] for row in rows if detector in row]
        if not found:
            continue
        ious = np.array([item["iou"] for item in found])
        summary[detector] = {
            "faces": len(found),
            "iou_mean": round(float(ious.mean()), 3),
            "iou_min": round(float(ious.min()), 3),
            "edges_mean": {edge: _mean(found, "edges", edge) for edge in ("left", "top", "right", "bottom")},
            "edges_std": {edge: _std(found, "edges", edge) for edge in ("left", "top", "right", "bottom")},
            "landmark_in_padded_units_mean": {
                edge: _mean(found, "landmark_in_padded_units", edge) for edge in ("left", "top", "right", "bottom")
            },
            "landmark_in_padded_units_std": {
                edge: _std(found, "landmark_in_padded_units", edge) for edge in ("left", "top", "right", "bottom")
            },
        }
    return {
        "what": "heygemd's MuseTalk crop box against the reference's 68-landmark box (+10 px chin margin), real photos "
        "at several sizes and places in a 1280x720 frame; edges: ours minus the reference's, in the reference's "
        "width (left, right) or height (top, bottom), positive = right or down",
        "landmarks": "MediaPipe face mesh 0.10.14 (model inside the wheel), mapped to the 68-point jaw, point 29, chin",
        "s3fd_shaped": "S3FD not runnable with real weights here: its box reasoned from the eyes (2.2 x 2.6 eye "
        "distances, eyes 0.7 below the top), as restore_frame.py frames it",
        "faces": len(rows),
        "summary": summary,
        "rows": rows,
    }


def _mean(found: list[dict[str, Any]], field: str, edge: str) -> float:
    return round(float(np.mean([item[field][edge] for item in found])), 3)


def _std(found: list[dict[str, Any]], field: str, edge: str) -> float:
    return round(float(np.std([item[field][edge] for item in found])), 3)


if __name__ == "__main__":
    sys.exit(main())
