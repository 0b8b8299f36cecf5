"""Face-restorer benchmark: what GFPGAN costs a render, and whether it flickers.

For generated 720p and 1080p presenter templates it renders each twice in a fresh child process
(peak RSS is that render's alone): Wav2Lip only, then with the GFPGAN restorer. It reports the
restorer stage's frames per second, the whole render's with and without it, and peak memory.

Flicker: on a still template (one photo, so any change between frames is the re-synced mouth)
it renders losslessly with and without the restorer and measures the mean absolute difference
of luma between consecutive frames inside the lip-sync's mask (the pixels the restorer may
touch), in 8-bit levels.

    .venv/bin/python bench/restore_bench.py                         # 10 frames a clip, 720p+1080p, CPU
    .venv/bin/python bench/restore_bench.py --restorer-checkpoint checkpoints/GFPGANv1.4.pth --checkpoint ...

No weights are downloaded: unless --checkpoint / --restorer-checkpoint name real files, random-
weight checkpoints of the public shapes are generated (the same compute cost; the flicker figure
then says nothing about image quality). Faces come from the LBP detector (S3FD needs real weights).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the media and checkpoint factories live with the tests
sys.path.insert(0, str(ROOT / "bench"))

from engine_bench import SIZES, machine  # noqa: E402

STILL_SIZE = "720p"
FEATHER_MASK_MIN = 0.0  # flicker counts every pixel the lip-sync's mask weighs above this


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--frames", type=int, default=10, help="frames per clip (a random GFPGAN takes seconds a face on a CPU)"
    )
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--restore-weight", type=float, default=None, help="default: the render default")
    parser.add_argument("--restorer-batch-size", type=int, default=None, help="default: the engine default")
    parser.add_argument("--checkpoint", type=Path, help="real Wav2Lip weights (default: generated)")
    parser.add_argument("--restorer-checkpoint", type=Path, help="real GFPGAN v1.3/v1.4 weights (default: generated)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "restore-cpu.json")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child)

    from checkpoint_factory import make_gfpgan_checkpoint, make_wav2lip_checkpoint
    from media_factory import make_audio, make_still, make_video

    from heygemd.engine import EngineSettings, RenderOptions

    weight = args.restore_weight if args.restore_weight is not None else RenderOptions().restore_weight
    batch = args.restorer_batch_size or EngineSettings().restorer_batch_size
    seconds = args.frames / 25
    with tempfile.TemporaryDirectory(prefix="heygemd-restore-bench-") as scratch:
        work = Path(scratch)
        checkpoint = args.checkpoint or make_wav2lip_checkpoint(work / "wav2lip_gan.pth")
        restorer = args.restorer_checkpoint or make_gfpgan_checkpoint(work / "GFPGANv1.4.pth", wrap="ema_only")
        audio = make_audio(work / "speech.wav", seconds=seconds)
        settings = {"checkpoint": str(checkpoint), "detector": "lbp", "device": args.device, "restorer_batch_size": batch}
        with_restorer = {**settings, "restorer": "gfpgan", "restorer_checkpoint": str(restorer)}
        speed = []
        for size_name in args.sizes:
            template = make_video(work / f"template-{size_name}.mp4", seconds=seconds, fps="25", size=SIZES[size_name])
            row: dict = {"size": size_name}
            for label, engine in (("wav2lip_only", settings), ("restored", with_restorer)):
                print(f"rendering {size_name}, {label}...", file=sys.stderr, flush=True)
                row[label] = run_child(
                    work,
                    {
                        "audio": str(audio),
                        "video": str(template),
                        "output": str(work / "out.mp4"),
                        "settings": engine,
                        "options": {"restore_weight": weight},
                    },
                )
            speed.append(summarise(row))
        print("rendering the still template for flicker...", file=sys.stderr, flush=True)
        still = make_still(work / "still.png", SIZES[STILL_SIZE])
        flicker = measure_flicker(work, audio, still, settings, with_restorer, weight)
    document = {
        "benchmark": "restore",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),  # other work on the machine skews the figures
        "device": args.device,
        "weights": "real" if args.restorer_checkpoint else "random (generated, the public shapes)",
        "frames_per_clip": args.frames,
        "detector": "lbp",
        "restore_weight": weight,
        "restorer_batch_size": batch,
        "speed": speed,
        "flicker": flicker,
        "note": "GPU figures will come when a GPU is lent; random weights cost what real ones do, but their "
        "flicker says nothing about real faces",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(table(document))
    print(f"written to {args.out}")
    return 0


def summarise(row: dict) -> dict:
    plain, restored = row["wav2lip_only"], row["restored"]
    if "error" in plain or "error" in restored:
        return row
    return {
        "size": row["size"],
        "frames": restored["frames"],
        "restore_stage_fps": restored["restore_fps"],
        "render_fps_wav2lip_only": plain["render_fps"],
        "render_fps_restored": restored["render_fps"],
        "slowdown": round(plain["render_fps"] / restored["render_fps"], 1),
        "restore_share_of_render": round(restored["stage_s"]["restore"] / restored["render_s"], 3),
        "peak_rss_mib_wav2lip_only": plain["peak_rss_mib"],
        "peak_rss_mib_restored": restored["peak_rss_mib"],
        "runs": row,
    }


def measure_flicker(work: Path, audio: Path, still: Path, plain: dict, restored: dict, weight: float) -> dict:
    """Consecutive-frame luma change inside the lip-sync's mask on a still template, without and with the restorer."""
    from heygemd.engine.blend import first_pasted_row, lower_face_mask
    from heygemd.engine.settings import RenderOptions

    box = still_face_box(still)
    options = {"fixed_box": list(box), "crf": 0, "preset": "ultrafast", "restore_weight": weight}
    outputs = {}
    for label, engine in (("wav2lip_only", plain), ("restored", restored)):
        output = work / f"still-{label}.mp4"
        outputs[label] = run_child(
            work, {"audio": str(audio), "video": str(still), "output": str(output), "settings": engine, "options": options}
        )
        outputs[label]["luma"] = luma_frames(output)
    x1, y1, x2, y2 = box
    feather = RenderOptions().feather
    mask = np.zeros(outputs["restored"]["luma"].shape[1:], bool)
    mask[y1:y2, x1:x2] = lower_face_mask(x2 - x1, y2 - y1, feather)[..., 0] > FEATHER_MASK_MIN
    figures = {}
    for label, run in outputs.items():
        frames = run.pop("luma").astype(np.float64)
        changes = np.abs(np.diff(frames, axis=0))[:, mask]
        figures[label] = round(float(changes.mean()), 3)
    return {
        "template": f"still photo, {STILL_SIZE}",
        "face_box": list(box),
        "mask_rows_from": y1 + first_pasted_row(y2 - y1, RenderOptions().blend, feather),
        "mask_pixels": int(mask.sum()),
        "mean_abs_luma_change_per_frame_wav2lip_only": figures["wav2lip_only"],
        "mean_abs_luma_change_per_frame_restored": figures["restored"],
        "ratio_restored_to_wav2lip_only": round(figures["restored"] / figures["wav2lip_only"], 3)
        if figures["wav2lip_only"]
        else None,
    }


def still_face_box(still: Path) -> tuple[int, int, int, int]:
    """The padded LBP box of the still's face, as the engine would draw it (pads 0, 10, 0, 0)."""
    import cv2

    from heygemd.engine.faces import LBPDetector

    image = cv2.imread(str(still))
    x1, y1, x2, y2 = (round(v) for v in LBPDetector().detect([image])[0][0].box)
    bottom = min(image.shape[0], y2 + 10)
    return x1 - x1 % 2, y1 - y1 % 2, x2 - x2 % 2, bottom - bottom % 2


def luma_frames(path: Path) -> np.ndarray:
    """(N, H, W) uint8 Y planes of a video."""
    from heygemd.engine.ffmpeg_tools import ffmpeg_path
    from heygemd.engine.probe import probe_video

    info = probe_video(path)
    raw = subprocess.run(
        [ffmpeg_path(), "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "gray", "-"],
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, info.height, info.width)


def run_child(work: Path, job: dict) -> dict:
    """Render in a fresh process; return its figures."""
    job_file = work / "job.json"
    job_file.write_text(json.dumps(job))
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, __file__, "--child", str(job_file)], capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        return {"error": completed.stderr.strip().splitlines()[-1:] or ["failed"]}
    figures = json.loads(completed.stdout.strip().splitlines()[-1])
    figures["process_wall_s"] = round(time.perf_counter() - started, 2)
    return figures


def child(job_file: Path) -> int:
    """One render in this process; prints one JSON line of figures."""
    import resource

    import torch

    from heygemd.engine import EngineSettings, LipSyncEngine, RenderOptions

    job = json.loads(job_file.read_text())
    started = time.perf_counter()
    engine = LipSyncEngine(EngineSettings(**job["settings"]))
    load_s = time.perf_counter() - started
    report = engine.render(Path(job["audio"]), Path(job["video"]), Path(job["output"]), RenderOptions(**job["options"]))
    timings = report.timings
    faces = report.faces.frames_with_face
    figures = {
        "frames": report.output.frame_count,
        "frames_with_face": faces,
        "models_load_s": round(load_s, 2),
        "render_s": round(timings.total, 2),
        "render_fps": round(report.output.frame_count / timings.total, 3),
        "stage_s": {
            stage: round(getattr(timings, stage), 2) for stage in ("decode", "detect", "model", "blend", "restore", "encode")
        },
        "restore_fps": round(faces / timings.restore, 3) if timings.restore else None,
        "restorer_sha256": report.restorer.sha256 if report.restorer else None,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    if torch.cuda.is_available() and report.device.startswith("cuda"):
        figures["gpu_peak_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    print(json.dumps(figures))
    return 0


def table(document: dict) -> str:
    lines = [
        f"{'size':6} {'restore fps':>11} {'render fps (w2l)':>16} {'render fps (+gfpgan)':>20} {'RSS MiB (+gfpgan)':>17}"
    ]
    for row in document["speed"]:
        if "restore_stage_fps" not in row:
            lines.append(f"{row['size']:6} error: {row}")
            continue
        lines.append(
            f"{row['size']:6} {row['restore_stage_fps']:>11.3f} {row['render_fps_wav2lip_only']:>16.2f} "
            f"{row['render_fps_restored']:>20.3f} {row['peak_rss_mib_restored']:>17.0f}"
        )
    flicker = document["flicker"]
    lines.append(
        f"flicker (mean |dY| per frame in the mask): wav2lip only {flicker['mean_abs_luma_change_per_frame_wav2lip_only']}, "
        f"restored {flicker['mean_abs_luma_change_per_frame_restored']}"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
