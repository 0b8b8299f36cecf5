"""MuseTalk 1.5's memory against the audio's length: the same template rendered with short and long audio.

Each length renders in a fresh child process (LipSyncEngine with ``engine.model = "musetalk"``, the small
test configs of the UNet and VAE with seeded random weights, tests/musetalk_factory.py; the network's width
changes the constant part of the memory, not how it grows). The child records its RSS after loading the
engine, after preparing the audio (whisper features), every 5 % of the render (compare_bench.RssTrace), and
its peak RSS (getrusage; the peak is reset after loading so it is the render's own). The template is a short
720p clip that loops (ping-pong) for the whole audio, with a fixed face box: no detection, and the template
latent cache holds only the template's own frames, whatever the audio's length.

    .venv/bin/python bench/musetalk_memory_bench.py                     # 10 s and 60 s of audio, 10 fps
    .venv/bin/python bench/musetalk_memory_bench.py --seconds 10 60 300 --fps 25

The template's frame rate sets the number of frames (and the time: about 1 to 2 frames a second on the
2-core CPU); the whisper features depend on the audio's seconds only. Writes
bench/results/musetalk-memory.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from compare_bench import KIB_PER_MIB, RssTrace, current_rss_mib, reset_peaks  # noqa: E402

SIZE = (1280, 720)
BOX = (520, 120, 760, 400)  # the presenter frames' face (x1, y1, x2, y2): media_factory.presenter_frame at 720p
TEMPLATE_SECONDS = 2.0
BATCH = 8
SAMPLE_RATE = 16000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, nargs="+", default=[10.0, 60.0], help="audio lengths")
    parser.add_argument("--fps", default="10", help="the template's frame rate")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "musetalk-memory.json")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        return child(json.loads(args.child.read_text()))

    from media_factory import make_video, speech_like
    from musetalk_factory import make_musetalk_dir
    from scipy.io import wavfile

    rows = []
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        models = make_musetalk_dir(scratch / "models", seed=0)
        template = make_video(scratch / "template.mp4", seconds=TEMPLATE_SECONDS, fps=args.fps, size=SIZE)
        for seconds in args.seconds:
            wav = scratch / f"speech-{seconds:g}.wav"
            samples = speech_like(seconds)
            wavfile.write(wav, SAMPLE_RATE, (samples.clip(-1, 1) * 32767).astype("int16"))
            job = {"models": str(models), "wav": str(wav), "template": str(template), "out": str(scratch / "out.mp4")}
            job_file = scratch / "job.json"
            job_file.write_text(json.dumps(job))
            done = subprocess.run(
                [sys.executable, __file__, "--child", str(job_file)], capture_output=True, text=True, check=False
            )
            if done.returncode != 0:
                print(done.stderr[-4000:], file=sys.stderr)
                return 1
            rows.append({"audio_seconds": seconds, **json.loads(done.stdout.splitlines()[-1])})
            print(json.dumps(rows[-1]), flush=True)

    shortest, longest = rows[0], rows[-1]
    result = {
        "what": "peak and traced RSS of one MuseTalk render (fresh process each) against the audio's length",
        "configs": "small (tests/musetalk_factory.py SMALL_UNET, SMALL_VAE; whisper-tiny at full size), random weights",
        "template": f"{SIZE[0]}x{SIZE[1]} at {args.fps} fps, {TEMPLATE_SECONDS:g} s, looped; fixed face box",
        "batch": BATCH,
        "machine": {"cpu": platform.processor() or platform.machine(), "python": platform.python_version()},
        "renders": rows,
        "peak_growth_mib": round(longest["render_peak_rss_mib"] - shortest["render_peak_rss_mib"], 1),
        "peak_growth_mib_per_minute_of_audio": round(
            (longest["render_peak_rss_mib"] - shortest["render_peak_rss_mib"])
            / max(1e-9, (longest["audio_seconds"] - shortest["audio_seconds"]) / 60),
            1,
        ),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({key: value for key, value in result.items() if key != "renders"}, indent=2))
    return 0


def child(job: dict[str, Any]) -> int:
    """One render in this fresh process; prints its figures as one JSON line."""
    from heygemd.engine import EngineSettings, LipSyncEngine, RenderOptions

    engine = LipSyncEngine(
        EngineSettings(model="musetalk", musetalk_dir=job["models"], detector="lbp", device="cpu", batch_size=BATCH)
    )
    loaded_rss = current_rss_mib()
    reset_peaks("cpu")
    trace = RssTrace()
    started = time.perf_counter()
    with engine.prepare_audio(Path(job["wav"])) as audio:
        prepared_rss = current_rss_mib()
        report = engine.render(
            audio,
            Path(job["template"]),
            Path(job["out"]),
            RenderOptions(fixed_box=BOX, preset="ultrafast", silence_min_s=0),
            progress=trace.sample,
        )
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "frames": report.output.frame_count,
                "render_s": round(seconds, 1),
                "fps": round(report.output.frame_count / seconds, 2),
                "template_cache_hits": report.lipsync.template_cache_hits if report.lipsync else None,
                "rss_after_load_mib": loaded_rss,
                "rss_after_audio_mib": prepared_rss,
                "rss_after_render_mib": current_rss_mib(),
                "render_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / KIB_PER_MIB, 1),
                "rss_trace_mib": trace.points,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
