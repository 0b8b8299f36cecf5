"""On CUDA: how far float16 moves the generator's and the detector's results from float32.

Runs the same face crops and mel windows through the Wav2Lip generator in float32 and in
float16 (as the engine does with half_precision), and the same frames through S3FD with and
without autocast, and writes the largest pixel difference and the box differences as JSON.

    .venv/bin/python bench/precision_check.py [--checkpoint checkpoints/wav2lip_gan.pth]

Without a CUDA device it says so and exits 2. Generated random-weight checkpoints are used
when no real ones are named (the real weights give the meaningful figure).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

FRAMES = 64
SIZE = (1280, 720)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--detector-checkpoint", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "precision.json")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: float16 is only used on CUDA, nothing to compare", file=sys.stderr)
        return 2

    from checkpoint_factory import make_s3fd_checkpoint, make_wav2lip_checkpoint
    from media_factory import presenter_frame, speech_like

    from heygemd.engine.audio import mel_windows, melspectrogram
    from heygemd.engine.blend import crop_face, generator_faces
    from heygemd.engine.checkpoint import load_wav2lip
    from heygemd.engine.faces import S3FDDetector
    from heygemd.engine.model import prepare_for_inference

    device = torch.device("cuda")
    with tempfile.TemporaryDirectory() as scratch:
        checkpoint = args.checkpoint or make_wav2lip_checkpoint(Path(scratch) / "wav2lip.pth")
        detector_checkpoint = args.detector_checkpoint or make_s3fd_checkpoint(Path(scratch) / "s3fd.pth")
        model, _ = load_wav2lip(checkpoint, device)
        detector = S3FDDetector(detector_checkpoint, "cuda")
        half_detector = S3FDDetector(detector_checkpoint, "cuda", half=True)  # float16 autocast, as the engine runs it

        frames = [presenter_frame(i, SIZE) for i in range(FRAMES)]
        box = (SIZE[0] // 2 - 180, 40, SIZE[0] // 2 + 180, 400)
        faces = generator_faces(np.stack([crop_face(frame, box) for frame in frames]))
        mels = mel_windows(melspectrogram(speech_like(FRAMES / 25 + 0.5)), list(range(FRAMES)), 25.0)

        with torch.inference_mode():
            audio_t, faces_t = torch.from_numpy(mels).to(device), torch.from_numpy(faces).to(device)
            full = model(audio_t, faces_t).float().cpu().numpy()
            half_model = prepare_for_inference(copy.deepcopy(model), half=True)  # what the engine runs on CUDA
            half = (
                half_model(audio_t.half(), faces_t.contiguous(memory_format=torch.channels_last).half())
                .float()
                .cpu()
                .numpy()
            )
        pixel_difference = np.abs(full * 255 - half * 255)

        boxes_full = detector.detect(frames[:8])
        boxes_half = half_detector.detect(frames[:8])
        box_shift = [
            max(abs(a - b) for a, b in zip(f[0].box, h[0].box)) if f and h else None for f, h in zip(boxes_full, boxes_half)
        ]

    figures = {
        "gpu": torch.cuda.get_device_name(0),
        "generator_frames": FRAMES,
        "generator_max_pixel_difference": round(float(pixel_difference.max()), 3),
        "generator_mean_pixel_difference": round(float(pixel_difference.mean()), 4),
        "detector_max_box_shift_px": box_shift,
        "weights": "given" if args.checkpoint else "generated (random)",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
