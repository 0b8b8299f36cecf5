"""The reference Wav2Lip inference approach, rebuilt for comparison benchmarks.

Written from the facts in shared/docs/wav2lip-reference.md (not from the reference's code), so
that bench/compare_bench.py can measure what the usual way of running Wav2Lip costs next to
heygemd, with the same checkpoint and the same audio features:

1. every template frame is read into one list with OpenCV (the whole video in RAM);
2. the face detector runs on every frame at full resolution, 16 frames per batch
   (S3FD through face-alignment, fed BGR frames unchanged, as the reference does; or the LBP
   cascade, which scales every frame down to 200 px itself, so for LBP "full resolution"
   costs what it costs heygemd);
3. boxes are padded (top 0, bottom 10, left 0, right 0), clipped, and smoothed by a 5-frame
   forward mean computed in place in an int array (the tail windows average partly smoothed
   boxes, and means truncate); a frame without a face stops everything;
4. mel chunks are cut with the reference's indexing (window start int(i * 80 / fps), 16 wide;
   when a window would run past the end the last 16 mel frames are taken once and the cutting
   stops), so the output is a few frames short of the audio (3 at 25 fps);
5. the generator runs 128 frames per batch on copies of the frames; the 96x96 prediction is
   truncated to uint8, resized to the box and pasted hard;
6. frames go to an intermediate AVI through cv2.VideoWriter (DIVX), then ffmpeg muxes the audio
   and re-encodes with libx264 into the final MP4 (at heygemd's crf and preset, so the encode
   costs the same as heygemd's; the reference itself leaves libx264 at its defaults).

Run on its own it prints one JSON line of figures (stage seconds, frames, peak RSS of this
process and of its ffmpeg child, GPU memory on CUDA):

    .venv/bin/python bench/reference_pipeline.py --audio a.wav --video t.mp4 \
        --checkpoint wav2lip_gan.pth --detector lbp --out result.mp4
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from heygemd.engine import audio as audio_features
from heygemd.engine.ffmpeg_tools import ffmpeg_path, last_lines
from heygemd.engine.media import AUDIO_BITRATE
from heygemd.engine.model import Wav2Lip
from heygemd.engine.settings import RenderOptions

DETECTOR_BATCH = 16  # the reference's face_det_batch_size
GENERATOR_BATCH = 128  # the reference's wav2lip_batch_size
PADS = (0, 10, 0, 0)  # top, bottom, left, right
SMOOTH_WINDOW = 5  # frames in the forward mean over boxes
S3FD_THRESHOLD = 0.5  # face-alignment's filter threshold, as the reference uses it
FACE_SIZE = 96  # generator input and output side
STATE_DICT_KEY = "state_dict"
DATA_PARALLEL_PREFIX = "module."
INTERMEDIATE_NAME = "result.avi"
INTERMEDIATE_FOURCC = "DIVX"
FINAL_CRF = RenderOptions().crf  # heygemd's defaults, so both final encodes cost the same
FINAL_PRESET = RenderOptions().preset
KIB_PER_MIB = 1024  # ru_maxrss is in KiB on Linux
BYTES_PER_MIB = 2**20

Box = tuple[int, int, int, int]  # x1, y1, x2, y2 (x2, y2 exclusive)
FaceFinder = Callable[[Sequence[np.ndarray]], list[Box | None]]


class FaceNotDetected(RuntimeError):
    """The reference gives up on the whole video when one frame has no face."""


@dataclass
class Figures:
    """What one reference run measured."""

    stage_s: dict[str, float] = field(default_factory=dict)
    template_frames: int = 0
    audio_frames: int = 0  # frames the audio needs at the template's rate (heygemd writes this many)
    frames_written: int = 0
    width: int = 0
    height: int = 0
    fps: float = 0.0
    audio_s: float = 0.0

    def timed(self, stage: str, started: float) -> None:
        self.stage_s[stage] = round(self.stage_s.get(stage, 0.0) + time.perf_counter() - started, 3)


# ---------------------------------------------------------------------------- frames


def read_all_frames(video: Path) -> tuple[list[np.ndarray], float]:
    """Every frame of ``video`` as BGR uint8 arrays in one list, and the container's frame rate."""
    capture = cv2.VideoCapture(str(video))
    if not capture.isOpened():
        raise RuntimeError(f"OpenCV cannot open {video}")
    fps = float(capture.get(cv2.CAP_PROP_FPS))
    frames: list[np.ndarray] = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames, fps


# ---------------------------------------------------------------------------- faces


def s3fd_finder(checkpoint: Path, device: str) -> FaceFinder:
    """face-alignment's S3FD on full-resolution BGR frames; the best box per frame, truncated to ints."""
    from face_alignment.detection.sfd.sfd_detector import SFDDetector

    detector = SFDDetector(device, path_to_detector=str(checkpoint), filter_threshold=S3FD_THRESHOLD)

    def find(frames: Sequence[np.ndarray]) -> list[Box | None]:
        batch = torch.from_numpy(np.array(frames)).permute(0, 3, 1, 2)  # the BGR channels, unchanged
        found = detector.detect_from_batch(batch)
        return [_first_box(rows) for rows in found]

    return find


def _first_box(rows: Sequence[np.ndarray]) -> Box | None:
    if len(rows) == 0:
        return None
    x1, y1, x2, y2 = (int(v) for v in rows[0][:4])
    return (x1, y1, x2, y2)


def lbp_finder() -> FaceFinder:
    """scikit-image's LBP cascade (heygemd's wrapper); it scales each frame to 200 px itself."""
    from heygemd.engine.faces import LBPDetector

    detector = LBPDetector()

    def find(frames: Sequence[np.ndarray]) -> list[Box | None]:
        return [found[0].box if found else None for found in detector.detect(np.array(frames))]

    return find


def detect_all(frames: Sequence[np.ndarray], find: FaceFinder, batch_size: int = DETECTOR_BATCH) -> list[Box]:
    """One raw box per frame; any frame without a face is fatal, as in the reference."""
    boxes: list[Box] = []
    for start in range(0, len(frames), batch_size):
        for offset, box in enumerate(find(frames[start : start + batch_size])):
            if box is None:
                raise FaceNotDetected(f"no face in frame {start + offset}")
            boxes.append(box)
    return boxes


def pad_boxes(boxes: Sequence[Box], width: int, height: int, pads: tuple[int, int, int, int] = PADS) -> np.ndarray:
    """(n, 4) int array of padded boxes clipped to the frame, columns x1, y1, x2, y2."""
    top, bottom, left, right = pads
    return np.array(
        [
            (max(0, x1 - left), max(0, y1 - top), min(width, x2 + right), min(height, y2 + bottom))
            for x1, y1, x2, y2 in boxes
        ],
        dtype=np.int64,
    )


def smooth_in_place(boxes: np.ndarray, window: int = SMOOTH_WINDOW) -> np.ndarray:
    """Forward mean over ``window`` boxes, written back into the int array as it goes.

    Frame i averages rows i..i+window-1; the last window-1 frames average the last full window,
    whose rows are by then partly smoothed already. Assigning the float mean to an int row
    truncates it.
    """
    count = len(boxes)
    for i in range(count):
        start = count - window if i + window > count else i
        boxes[i] = np.mean(boxes[max(0, start) : max(0, start) + window], axis=0)
    return boxes


# ---------------------------------------------------------------------------- audio


def mel_chunks(mel: np.ndarray, fps: float) -> list[np.ndarray]:
    """(80, 16) windows, one per video frame, cut the reference's way (the tail is lost)."""
    chunks: list[np.ndarray] = []
    width = mel.shape[1]
    index = 0
    while True:
        start = audio_features.mel_window_start(index, fps)
        if start + audio_features.MEL_WINDOW > width:
            chunks.append(mel[:, width - audio_features.MEL_WINDOW :])
            return chunks
        chunks.append(mel[:, start : start + audio_features.MEL_WINDOW])
        index += 1


def load_mel(audio: Path) -> tuple[np.ndarray, int]:
    """The audio's mel features (heygemd's recipe is the reference's) and its number of 16 kHz samples."""
    import librosa

    samples, _ = librosa.load(str(audio), sr=audio_features.SAMPLE_RATE)
    return audio_features.melspectrogram(samples), len(samples)


# ---------------------------------------------------------------------------- generator


def load_generator(checkpoint: Path, device: torch.device) -> torch.nn.Module:
    """The Wav2Lip network with the checkpoint's state_dict (``module.`` prefix stripped), strict."""
    payload = torch.load(checkpoint, map_location=device, weights_only=True)
    state = payload.get(STATE_DICT_KEY, payload)
    state = {key.removeprefix(DATA_PARALLEL_PREFIX): value for key, value in state.items()}
    model = Wav2Lip()
    model.load_state_dict(state)
    return model.to(device).eval()


def generator_inputs(crops: list[np.ndarray], mels: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 6, 96, 96) faces (lower half masked, then whole) and (B, 1, 80, 16) mels, float32."""
    faces = np.asarray(crops)
    masked = faces.copy()
    masked[:, FACE_SIZE // 2 :] = 0
    stacked = np.concatenate((masked, faces), axis=3) / 255.0
    mel_batch = np.asarray(mels)[:, None]
    return torch.FloatTensor(mel_batch), torch.FloatTensor(np.transpose(stacked, (0, 3, 1, 2)))


def paste_hard(frame: np.ndarray, box: Box, prediction: np.ndarray) -> None:
    """Truncate to uint8, resize to the box and overwrite it (the visible square)."""
    x1, y1, x2, y2 = box
    frame[y1:y2, x1:x2] = cv2.resize(prediction.astype(np.uint8), (x2 - x1, y2 - y1))


def generate(
    frames: list[np.ndarray],
    boxes: np.ndarray,
    chunks: list[np.ndarray],
    model: torch.nn.Module,
    device: torch.device,
    writer: cv2.VideoWriter,
    figures: Figures,
) -> int:
    """Generator batches of GENERATOR_BATCH over the chunks; frames written in order. Returns the count."""
    written = 0
    for start in range(0, len(chunks), GENERATOR_BATCH):
        began = time.perf_counter()
        indices = [i % len(frames) for i in range(start, min(start + GENERATOR_BATCH, len(chunks)))]
        batch_frames = [frames[i].copy() for i in indices]
        batch_boxes: list[Box] = [tuple(int(v) for v in boxes[i]) for i in indices]  # type: ignore[misc]
        crops = [
            cv2.resize(frame[y1:y2, x1:x2], (FACE_SIZE, FACE_SIZE))
            for frame, (x1, y1, x2, y2) in zip(batch_frames, batch_boxes)
        ]
        mels, faces = generator_inputs(crops, chunks[start : start + len(indices)])
        figures.timed("prepare", began)
        began = time.perf_counter()
        with torch.no_grad():
            predicted = model(mels.to(device), faces.to(device))
        predictions = predicted.cpu().numpy().transpose(0, 2, 3, 1) * 255.0
        figures.timed("model", began)
        began = time.perf_counter()
        for frame, box, prediction in zip(batch_frames, batch_boxes, predictions):
            paste_hard(frame, box, prediction)
            writer.write(frame)
            written += 1
        figures.timed("paste_write", began)
    return written


# ---------------------------------------------------------------------------- encoding


def open_intermediate(path: Path, fps: float, width: int, height: int) -> cv2.VideoWriter:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*INTERMEDIATE_FOURCC), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {INTERMEDIATE_FOURCC} to {path}")
    return writer


def final_encode(audio: Path, intermediate: Path, output: Path) -> None:
    """ffmpeg muxes the audio with the intermediate video and re-encodes it to H.264/AAC."""
    command = [
        ffmpeg_path(), "-nostdin", "-v", "error", "-y", "-i", str(audio), "-i", str(intermediate),
        "-map", "1:v:0", "-map", "0:a:0",
        "-c:v", "libx264", "-preset", FINAL_PRESET, "-crf", str(FINAL_CRF), "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", AUDIO_BITRATE, str(output),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"ffmpeg could not encode {output}: {last_lines(result.stderr)}")


# ---------------------------------------------------------------------------- the whole run


def build_finder(detector: str, detector_checkpoint: Path | None, device: torch.device) -> FaceFinder:
    if detector == "s3fd":
        if detector_checkpoint is None:
            raise ValueError("--detector s3fd needs --detector-checkpoint")
        return s3fd_finder(detector_checkpoint, str(device))
    return lbp_finder()


def run(
    audio: Path,
    video: Path,
    output: Path,
    checkpoint: Path,
    detector: str,
    detector_checkpoint: Path | None,
    device: torch.device,
    work: Path,
) -> Figures:
    """The reference's steps in its order; returns the figures."""
    figures = Figures()
    began = time.perf_counter()
    frames, fps = read_all_frames(video)
    figures.timed("read", began)
    figures.template_frames, figures.fps = len(frames), fps
    figures.height, figures.width = frames[0].shape[:2]

    began = time.perf_counter()
    mel, num_samples = load_mel(audio)
    chunks = mel_chunks(mel, fps)
    figures.audio_s = num_samples / audio_features.SAMPLE_RATE
    figures.audio_frames = audio_features.video_frame_count(num_samples, fps)
    figures.timed("audio", began)
    frames = frames[: len(chunks)]

    began = time.perf_counter()
    find = build_finder(detector, detector_checkpoint, device)
    figures.timed("detector_load", began)
    began = time.perf_counter()
    boxes = smooth_in_place(pad_boxes(detect_all(frames, find), figures.width, figures.height))
    figures.timed("detect", began)

    began = time.perf_counter()
    model = load_generator(checkpoint, device)
    figures.timed("model_load", began)

    intermediate = work / INTERMEDIATE_NAME
    writer = open_intermediate(intermediate, fps, figures.width, figures.height)
    figures.frames_written = generate(frames, boxes, chunks, model, device, writer, figures)
    began = time.perf_counter()
    writer.release()
    figures.timed("paste_write", began)

    began = time.perf_counter()
    final_encode(audio, intermediate, output)
    figures.timed("final_encode", began)
    return figures


def peak_memory(device: torch.device) -> dict[str, float]:
    """Peak RSS of this process and GPU memory (its ffmpeg child is measured by ChildMemory)."""
    peaks = {"peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / KIB_PER_MIB, 1)}
    if device.type == "cuda":
        peaks["gpu_peak_mib"] = round(torch.cuda.max_memory_allocated(device) / BYTES_PER_MIB, 1)
        peaks["gpu_reserved_peak_mib"] = round(torch.cuda.max_memory_reserved(device) / BYTES_PER_MIB, 1)
    return peaks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--audio", required=True, type=Path)
    parser.add_argument("--video", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path, help="final .mp4")
    parser.add_argument("--checkpoint", required=True, type=Path, help="Wav2Lip weights")
    parser.add_argument("--detector", choices=["s3fd", "lbp"], default="s3fd")
    parser.add_argument("--detector-checkpoint", type=Path, help="S3FD weights (for --detector s3fd)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    from compare_bench import ChildMemory, cpu_seconds  # bench/ is on sys.path when this file runs as a script

    device = torch.device(args.device)
    children = ChildMemory()
    with tempfile.TemporaryDirectory(prefix="wav2lip-reference-") as scratch:
        try:
            figures = run(
                args.audio,
                args.video,
                args.out,
                args.checkpoint,
                args.detector,
                args.detector_checkpoint,
                device,
                Path(scratch),
            )
        except FaceNotDetected as err:
            print(json.dumps({"error": f"face not detected: {err}", **peak_memory(device)}))
            return 1
    children.stop()
    result = {
        "frames": figures.frames_written,
        "template_frames": figures.template_frames,
        "audio_frames": figures.audio_frames,
        "frames_short_of_audio": figures.audio_frames - figures.frames_written,
        "width": figures.width,
        "height": figures.height,
        "fps": figures.fps,
        "audio_s": round(figures.audio_s, 3),
        "detector": args.detector,
        "device": str(device),
        "stage_s": figures.stage_s,
        **peak_memory(device),
        **children.figures(),
        "cpu_s": cpu_seconds(),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
