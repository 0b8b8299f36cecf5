"""Engine benchmark: per-stage speed, real-time factor and peak memory of `heygemd render`.

For generated 720p and 1080p templates and a generated speech-like audio (60 s by default) it
renders each template once per device (CPU, and CUDA when present) in a fresh child process,
so peak RSS is that render's alone, and writes the figures as JSON (and a short table).

    .venv/bin/python bench/engine_bench.py                      # defaults: 60 s, 720p+1080p, s3fd
    .venv/bin/python bench/engine_bench.py --seconds 10 --detector lbp --out bench/results/quick.json

No weights are downloaded: unless --checkpoint / --detector-checkpoint name real files, the
benchmark generates random-weight checkpoints of the public shapes (same compute cost).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the media and checkpoint factories live with the tests

SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}
STAGES = ("decode", "detect", "model", "blend", "encode")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="audio and template length")
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--fps", default="25")
    parser.add_argument("--detector", default="s3fd", choices=["s3fd", "lbp"])
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu, plus cuda when available")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--checkpoint", type=Path, help="real Wav2Lip weights (default: generated)")
    parser.add_argument("--detector-checkpoint", type=Path, help="real S3FD weights (default: generated)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "engine.json")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child)

    import torch

    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    with tempfile.TemporaryDirectory(prefix="heygemd-bench-") as scratch:
        work = Path(scratch)
        checkpoint, detector_checkpoint = prepare_checkpoints(work, args)
        audio = make_inputs_audio(work, args.seconds)
        results = []
        for size_name in args.sizes:
            template = make_template(work, size_name, args.seconds, args.fps)
            for device in devices:
                job = {
                    "audio": str(audio),
                    "video": str(template),
                    "output": str(work / f"{size_name}-{device}.mp4"),
                    "settings": {
                        "checkpoint": str(checkpoint),
                        "detector": args.detector,
                        "detector_checkpoint": str(detector_checkpoint),
                        "device": device,
                        "batch_size": args.batch_size,
                    },
                }
                print(f"rendering {size_name} on {device}...", file=sys.stderr, flush=True)
                results.append({"size": size_name, "device": device, **run_child(work, job)})
    document = {
        "benchmark": "engine",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),  # other work on the machine skews the figures
        "seconds": args.seconds,
        "fps": args.fps,
        "detector": args.detector,
        "batch_size": args.batch_size,
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(table(document))
    print(f"written to {args.out}")
    return 0


def prepare_checkpoints(work: Path, args: argparse.Namespace) -> tuple[Path, Path]:
    from checkpoint_factory import make_s3fd_checkpoint, make_wav2lip_checkpoint

    checkpoint = args.checkpoint or make_wav2lip_checkpoint(work / "wav2lip_gan.pth")
    detector = args.detector_checkpoint or make_s3fd_checkpoint(work / "s3fd.pth")
    return checkpoint, detector


def make_inputs_audio(work: Path, seconds: float) -> Path:
    from media_factory import make_audio

    return make_audio(work / "speech.wav", seconds=seconds)


def make_template(work: Path, size_name: str, seconds: float, fps: str) -> Path:
    from media_factory import make_video

    print(f"generating the {size_name} template ({seconds:g} s)...", file=sys.stderr, flush=True)
    return make_video(work / f"template-{size_name}.mp4", seconds=seconds, fps=fps, size=SIZES[size_name])


def run_child(work: Path, job: dict) -> dict:
    """Render in a fresh process; return its figures plus its peak RSS."""
    job_file = work / "job.json"
    job_file.write_text(json.dumps(job))
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, __file__, "--child", str(job_file)], capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - started
    if completed.returncode != 0:
        return {"error": completed.stderr.strip().splitlines()[-1:] or ["failed"]}
    figures = json.loads(completed.stdout.strip().splitlines()[-1])
    figures["process_wall_s"] = round(wall, 2)
    return figures


def child(job_file: Path) -> int:
    """One render in this process; prints one JSON line of figures."""
    import torch

    from heygemd.engine import EngineSettings, LipSyncEngine

    job = json.loads(job_file.read_text())
    started = time.perf_counter()
    engine = LipSyncEngine(EngineSettings(**job["settings"]))
    load_s = time.perf_counter() - started
    report = engine.render(Path(job["audio"]), Path(job["video"]), Path(job["output"]))
    frames = report.output.frame_count
    timings = report.timings.model_dump()
    figures = {
        "frames": frames,
        "width": report.output.width,
        "height": report.output.height,
        "audio_s": round(report.audio.duration_s, 3),
        "model_load_s": round(load_s, 2),
        "render_s": round(timings["total"], 2),
        "stage_s": {stage: round(timings[stage], 2) for stage in STAGES},
        "stage_fps": {stage: round(frames / timings[stage], 1) if timings[stage] else None for stage in STAGES},
        "render_fps": round(frames / timings["total"], 2),
        "realtime_factor": round(timings["total"] / report.audio.duration_s, 3),
        "x_realtime": round(report.audio.duration_s / timings["total"], 3),
        "model_share_of_wall": round(timings["model"] / timings["total"], 3),
    }
    # ru_maxrss is in KiB on Linux. (The children's figure is not reported: a forked ffmpeg is
    # charged the parent's pages before exec; bench/compare_bench.py samples /proc instead.)
    figures["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    if torch.cuda.is_available() and report.device.startswith("cuda"):
        figures["gpu_peak_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    print(json.dumps(figures))
    return 0


def machine() -> dict:
    import torch

    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def table(document: dict) -> str:
    header = f"{'size':6} {'device':6} {'frames':>6} {'x real time':>11} {'peak RSS MiB':>12}  " + "  ".join(
        f"{s + ' fps':>10}" for s in STAGES
    )
    lines = [header]
    for row in document["results"]:
        if "error" in row:
            lines.append(f"{row['size']:6} {row['device']:6} error: {row['error']}")
            continue
        stage_fps = "  ".join(f"{row['stage_fps'][s] or 0:>10.1f}" for s in STAGES)
        lines.append(
            f"{row['size']:6} {row['device']:6} {row['frames']:>6} {row['x_realtime']:>11.3f} "
            f"{row['peak_rss_mib']:>12.0f}  {stage_fps}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
