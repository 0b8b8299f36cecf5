"""Frame I/O benchmark: bgr24 against yuv420p (I420) frames through the ffmpeg pipes, and the detection reader.

For generated 720p25 and 1080p25 clips (10 s by default) it measures, on this machine:

* decode + encode through the pipes (``read_frames`` into ``VideoWriter``, libx264 crf 18 preset
  medium: the engine's defaults) with bgr24 frames and with yuv420p frames, next to the floor
  ``ffmpeg -i in -c:v libx264 -crf 18 -preset medium out.mp4``, and decode alone;
* the quality of those round trips against the source (ffmpeg's psnr filter), and of lossless
  (crf 0) round trips, which isolate what the colour conversions alone cost;
* the detection reader (``read_detection_frames``, shrunk in ffmpeg) against reading full bgr24
  frames and shrinking them with cv2.resize (INTER_AREA), every frame and every 5th.

    .venv/bin/python bench/io_bench.py                 # writes bench/results/io-cpu.json
    .venv/bin/python bench/io_bench.py --seconds 4 --sizes 720p --out /tmp/io.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the media factory lives with the tests

from heygemd.engine.ffmpeg_tools import ffmpeg_path  # noqa: E402
from heygemd.engine.media import PixelFormat, VideoWriter, detection_size, read_detection_frames, read_frames  # noqa: E402
from heygemd.engine.probe import VideoInfo, probe_video  # noqa: E402

SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}
CRF, PRESET = 18, "medium"
PSNR_LINE = re.compile(r"PSNR y:(?P<y>\S+) u:(?P<u>\S+) v:(?P<v>\S+) average:(?P<average>\S+)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--max-side", type=int, default=320, help="detection frames' longest side")
    parser.add_argument("--repeat", type=int, default=2, help="runs per timing; the fastest counts")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "io-cpu.json")
    args = parser.parse_args()

    from media_factory import make_audio, make_video

    results = []
    with tempfile.TemporaryDirectory(prefix="heygemd-io-bench-") as scratch:
        work = Path(scratch)
        voice = make_audio(work / "voice.wav", seconds=args.seconds)
        for name in args.sizes:
            log(f"generating the {name} clip ({args.seconds:g} s)")
            info = probe_video(make_video(work / f"source-{name}.mp4", seconds=args.seconds, size=SIZES[name]))
            results.append(bench_size(work, name, info, voice, args.max_side, args.repeat))
    document = {
        "machine": {
            "cpus": os.cpu_count(),
            "processor": processor(),
            "python": platform.python_version(),
            "ffmpeg": ffmpeg_version(),
            "opencv": cv2.__version__,
        },
        "clip_seconds": args.seconds,
        "timing": f"wall and CPU (user + system, this process and its ffmpeg children) seconds of the fastest of "
        f"{args.repeat} runs",
        "encode": {"codec": "libx264", "crf": CRF, "preset": PRESET},
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(json.dumps(document, indent=2))
    return 0


def bench_size(work: Path, name: str, info: VideoInfo, voice: Path, max_side: int, repeat: int) -> dict:
    frames = info.frame_count
    result: dict = {"size": name, "width": info.width, "height": info.height, "frames": frames}

    log(f"{name}: floor encode")
    floor_path = work / f"floor-{name}.mp4"
    floor_s, floor_cpu = timed(
        lambda: subprocess.run(
            [
                ffmpeg_path(),
                "-nostdin",
                "-v",
                "error",
                "-y",
                "-i",
                str(info.path),
                "-c:v",
                "libx264",
                "-crf",
                str(CRF),
                "-preset",
                PRESET,
                str(floor_path),
            ],
            check=True,
        ),
        repeat,
    )
    result["floor"] = {"wall_s": round(floor_s, 2), "cpu_s": round(floor_cpu, 2), "psnr": psnr(floor_path, info.path)}

    for layout in ("bgr24", "yuv420p"):
        log(f"{name}: {layout} decode only, decode + encode, lossless round trip")
        decode_s, decode_cpu = timed(lambda layout=layout: sum(1 for _ in read_frames(info, pixel_format=layout)), repeat)
        output = work / f"{layout}-{name}.mp4"
        pipe_s, pipe_cpu = timed(
            lambda output=output, layout=layout: round_trip(info, output, voice, layout, CRF, PRESET), repeat
        )
        lossless = work / f"{layout}-{name}-lossless.mp4"
        round_trip(info, lossless, voice, layout, 0, "ultrafast")
        result[layout] = {
            "decode": {"wall_s": round(decode_s, 2), "cpu_s": round(decode_cpu, 2), "fps": round(frames / decode_s, 1)},
            "decode_encode": {
                "wall_s": round(pipe_s, 2),
                "cpu_s": round(pipe_cpu, 2),
                "fps": round(frames / pipe_s, 1),
                "wall_over_floor": round(pipe_s / floor_s, 3),
                "cpu_over_floor": round(pipe_cpu / floor_cpu, 3),
            },
            "psnr_crf18": psnr(output, info.path),
            "psnr_lossless": psnr(lossless, info.path),
        }

    width, height = detection_size(info, max_side)
    result["detection"] = {"max_side": max_side, "size": [width, height]}
    for every in (1, 5):
        log(f"{name}: detection frames, every {every}")
        wanted = -(-frames // every)
        ffmpeg_s, ffmpeg_cpu = timed(
            lambda every=every, wanted=wanted: count_all(read_detection_frames(info, frames, max_side, every), wanted),
            repeat,
        )
        cv2_s, cv2_cpu = timed(
            lambda every=every, wanted=wanted: count_all(
                (
                    cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
                    for k, frame in enumerate(read_frames(info, pixel_format="bgr24"))
                    if k % every == 0
                ),
                wanted,
            ),
            repeat,
        )
        result["detection"][f"every_{every}"] = {
            "frames_out": wanted,
            "read_detection_frames": {
                "wall_s": round(ffmpeg_s, 2),
                "cpu_s": round(ffmpeg_cpu, 2),
                "frames_out_per_s": round(wanted / ffmpeg_s, 1),
            },
            "bgr24_then_cv2_resize": {
                "wall_s": round(cv2_s, 2),
                "cpu_s": round(cv2_cpu, 2),
                "frames_out_per_s": round(wanted / cv2_s, 1),
            },
            "speedup": round(cv2_s / ffmpeg_s, 2),
        }
    log(f"{name}: {json.dumps(result)}")
    return result


def round_trip(info: VideoInfo, output: Path, voice: Path, layout: PixelFormat, crf: int, preset: str) -> None:
    with VideoWriter(
        output, info.width, info.height, Fraction(info.fps_fraction), voice, crf=crf, preset=preset, pixel_format=layout
    ) as writer:
        for frame in read_frames(info, pixel_format=layout):
            writer.write(frame)


def count_all(frames, wanted: int) -> int:
    got = sum(1 for _ in frames)
    if got != wanted:
        raise RuntimeError(f"{got} frames where {wanted} were due")
    return got


def psnr(distorted: Path, reference: Path) -> dict[str, float | str]:
    """ffmpeg's psnr filter over the whole clip, dB per plane and averaged ("inf": identical)."""
    result = subprocess.run(
        [
            ffmpeg_path(),
            "-nostdin",
            "-hide_banner",
            "-nostats",
            "-i",
            str(distorted),
            "-i",
            str(reference),
            "-lavfi",
            "[0:v][1:v]psnr",
            "-f",
            "null",
            "-",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    match = PSNR_LINE.search(result.stderr)
    if match is None:
        raise RuntimeError(f"no PSNR in ffmpeg's output: {result.stderr[-300:]}")
    return {plane: "inf" if value == "inf" else round(float(value), 2) for plane, value in match.groupdict().items()}


def timed(work: Callable[[], object], repeat: int) -> tuple[float, float]:
    """(wall, CPU) seconds of the fastest of ``repeat`` runs; CPU counts this process and its children."""
    runs = []
    for _ in range(repeat):
        cpu_before = cpu_seconds()
        started = time.perf_counter()
        work()
        runs.append((time.perf_counter() - started, cpu_seconds() - cpu_before))
    return min(runs)


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def ffmpeg_version() -> str:
    first = subprocess.run([ffmpeg_path(), "-version"], capture_output=True, text=True, check=True).stdout
    return first.splitlines()[0]


def processor() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
