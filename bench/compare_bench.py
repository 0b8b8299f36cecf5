"""heygemd against the floor and the reference Wav2Lip approach, on whatever device is present.

For generated templates (720p25 and 1080p25 by default) and one generated speech-like audio of
the same length (60 s by default), in one run:

  floor          ffmpeg alone decodes the template and re-encodes it with heygemd's encoder settings
                 (libx264, crf 18, preset medium, AAC 192k from the audio file): nothing is faster.
  heygemd-io     heygemd's dry run: the same streaming decode -> raw frames -> encode, no model.
  heygemd-cold   a fresh process: import, load LipSyncEngine (generator + detector), render once.
  heygemd-warm   the same process renders the same template again with the engine loaded, as
                 the daemon does for a re-used template (the render reports whether its face
                 track came from the cache).
  reference      bench/reference_pipeline.py: all frames in RAM, detection on every frame at full
                 resolution (batch 16), generator batch 128, hard paste, intermediate AVI, then an
                 ffmpeg re-encode; same checkpoint, same audio features.

Every case runs in its own child process, so peak RSS is per case: getrusage(RUSAGE_SELF) in
the child for Python (reset between the cold and the warm render) and getrusage(RUSAGE_CHILDREN)
for its ffmpeg processes (the largest one). GPU memory is torch's peak allocation on CUDA.
Separately, heygemd renders long templates (600 s of 1080p by default) once each, to show that
its peak RSS does not grow with the length (an RSS trace over the render is recorded too).

On a CPU, S3FD is far too slow for whole videos (tens of seconds per full-resolution frame),
so CPU runs use --detector lbp; with LBP the reference's "full-resolution detection" costs what
heygemd's does (the cascade works on a 200 px copy either way). To show what S3FD would cost, an
LBP run also times one S3FD forward pass at heygemd's detection size (640 px) and at each
template's full resolution (--probe-frames; random weights cost exactly what real ones do in the
network, but face-alignment's post-processing of random scores would not, so only the network
is timed).

    .venv/bin/python bench/compare_bench.py                                   # 60 s, 720p+1080p, s3fd
    .venv/bin/python bench/compare_bench.py --seconds 10 --detector lbp --long-seconds 120 600

No weights are downloaded: unless --checkpoint / --detector-checkpoint name real files,
random-weight checkpoints of the public shapes are generated (tests/checkpoint_factory.py). The
networks' compute is the same as with the real weights, with one exception: random S3FD scores
pass face-alignment's candidate threshold almost everywhere, and its Python post-processing
(box decoding and NMS over thousands of candidates a frame) then costs more than the network
(on the 2-core CPU here: +2 s a frame at 640 px, +37 s at 720p, +170 s at 1080p). So time S3FD
with the real s3fd-619a316812.pth (--detector-checkpoint); with random weights its figures
overstate detection, the reference's (full resolution) far more than heygemd's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the media and checkpoint factories live with the tests

SIZES: dict[str, tuple[int, int]] = {"720p": (1280, 720), "1080p": (1920, 1080)}
FPS = "25"
DEFAULT_SECONDS = 60.0
DEFAULT_LONG_SECONDS = [600.0]
DEFAULT_LONG_SIZE = "1080p"
DEFAULT_OUT = ROOT / "bench" / "results" / "compare.json"
REFERENCE_SCRIPT = ROOT / "bench" / "reference_pipeline.py"
PROBE_SIDE = 640  # heygemd's default detect_max_side: frames are detected at this longest side
CASE_ORDER = ("floor", "heygemd-io", "heygemd-cold", "heygemd-warm", "reference")
RSS_TRACE_STEPS = 20  # RSS samples per render (one per 5 % of its frames)
KIB_PER_MIB = 1024  # ru_maxrss and /proc VmRSS are in KiB on Linux
BYTES_PER_MIB = 2**20
CLEAR_REFS = Path("/proc/self/clear_refs")
RESET_PEAK_RSS = "5"  # written to clear_refs: the peak RSS (VmHWM, ru_maxrss) restarts from now
CHILD_SAMPLE_S = 0.2  # how often the children's memory is read from /proc
ERROR_LINES = 3
RANDOM_WEIGHTS = "random weights of the public shapes (tests/checkpoint_factory.py)"

Job = dict[str, Any]
Row = dict[str, Any]


# ============================================================================ the parent


def main() -> int:
    args = parse_args()
    if args.child:
        return CHILDREN[args.child](json.loads(args.job.read_text()))
    with ScratchFolder(args.work) as work:
        document = run_all(args, work, lambda document: save(document, args.out))
    print(table(document))
    print(f"written to {args.out}")
    return 0


def save(document: dict[str, Any], out: Path) -> None:
    """Write the figures so far (after every step, so a long run interrupted keeps what it measured)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2) + "\n")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS, help="audio and template length")
    parser.add_argument("--sizes", nargs="*", default=list(SIZES), choices=list(SIZES), help="none: only the long renders")
    parser.add_argument("--detector", default="s3fd", choices=["s3fd", "lbp"], help="for heygemd and the reference")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    parser.add_argument("--skip-reference", action="store_true", help="do not run the reference approach")
    parser.add_argument("--skip-io", action="store_true", help="do not run heygemd's dry run (I/O only)")
    parser.add_argument(
        "--long-seconds",
        type=float,
        nargs="*",
        default=DEFAULT_LONG_SECONDS,
        help="lengths of the long-template peak-RSS renders (heygemd only); none to skip",
    )
    parser.add_argument("--long-size", default=DEFAULT_LONG_SIZE, choices=list(SIZES))
    parser.add_argument(
        "--long-fixed-box", action="store_true", help="long renders skip detection: a fixed box found on the first frame"
    )
    parser.add_argument(
        "--warm-renders",
        type=int,
        default=1,
        help="warm renders after the cold one (more than 1: RSS after each, to see whether it creeps)",
    )
    parser.add_argument(
        "--probe-frames", type=int, default=1, help="S3FD forward passes timed per size when --detector lbp (0: none)"
    )
    parser.add_argument("--checkpoint", type=Path, help="real Wav2Lip weights (default: generated random weights)")
    parser.add_argument("--detector-checkpoint", type=Path, help="real S3FD weights (default: generated random weights)")
    parser.add_argument("--work", type=Path, help="keep generated inputs here and reuse them (default: a temp folder)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--child", choices=list(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--job", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args()


class ScratchFolder:
    """The --work folder (kept), or a temporary one (removed)."""

    def __init__(self, work: Path | None) -> None:
        self._temporary = None if work else tempfile.TemporaryDirectory(prefix="heygemd-compare-")
        self.path = work or Path(self._temporary.name)  # type: ignore[union-attr]

    def __enter__(self) -> Path:
        self.path.mkdir(parents=True, exist_ok=True)
        return self.path

    def __exit__(self, *exc: object) -> None:
        if self._temporary is not None:
            self._temporary.cleanup()


def run_all(args: argparse.Namespace, work: Path, save: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    device = resolve_device(args.device)
    checkpoint, detector_checkpoint = prepare_checkpoints(work, args.checkpoint, args.detector_checkpoint)
    audio = prepare_audio(work, args.seconds)
    document: dict[str, Any] = {
        "benchmark": "compare",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join(shlex.quote(part) for part in [".venv/bin/python", "bench/compare_bench.py", *sys.argv[1:]]),
        "git_commit": git_commit(),
        "machine": machine(),
        "load": {"start": uptime()},
        "settings": {
            "seconds": args.seconds,
            "fps": FPS,
            "sizes": args.sizes,
            "detector": args.detector,
            "device": device,
            "wav2lip_checkpoint": str(args.checkpoint) if args.checkpoint else RANDOM_WEIGHTS,
            "s3fd_checkpoint": str(args.detector_checkpoint) if args.detector_checkpoint else RANDOM_WEIGHTS,
            "wav2lip_checkpoint_bytes": checkpoint.stat().st_size,
            **encoder_settings(),
            **engine_defaults(),
        },
        "definitions": DEFINITIONS,
        "results": [],
        "detector_probe": None,
        "long": [],
    }
    for size in args.sizes:
        template = prepare_template(work, size, args.seconds)
        document["results"] += compare_one_size(args, work, size, template, audio, checkpoint, detector_checkpoint, device)
        save(document)
    if args.detector == "lbp" and args.probe_frames > 0 and args.sizes:
        document["detector_probe"] = detector_probe(args, work, detector_checkpoint)
        save(document)
    for seconds in args.long_seconds:
        document["long"].append(long_case(args, work, seconds, checkpoint, detector_checkpoint, device))
        save(document)
    document["load"]["end"] = uptime()
    save(document)
    return document


DEFINITIONS = {
    "wall_s": "floor: the ffmpeg process; heygemd-io and heygemd-warm: the render call; heygemd-cold: from "
    "spawning the process (interpreter, imports, engine load) to the end of its first render; reference: "
    "the whole reference process",
    "fps": "output frames / wall_s",
    "x_realtime": "audio seconds / wall_s (above 1: faster than real time)",
    "realtime_factor": "wall_s / audio seconds",
    "x_floor": "wall_s / the floor's wall_s for the same template",
    "peak_rss_mib": "peak RSS of the case's Python process (getrusage RUSAGE_SELF; reset before the warm render)",
    "ffmpeg_peak_rss_mib": "the largest peak RSS (VmHWM) of one of the case's ffmpeg children, sampled from /proc every "
    "0.2 s; children_together_peak_rss_mib: the largest sum of the children's RSS at one moment (heygemd runs a decoder "
    "and an encoder at once); rusage_children_maxrss_mib: getrusage(RUSAGE_CHILDREN), which on Linux includes the RSS "
    "of the Python process each child was forked from, so it is not ffmpeg's own",
    "gpu_peak_mib": "torch.cuda.max_memory_allocated during the case, CUDA only",
    "rss_after_mib": "RSS of the heygemd process right after the render returned; render_history (with "
    "--warm-renders > 1): per render of one process, to see whether memory creeps from render to render",
    "rss_trace_mib": "(stage, fraction of the stage done, RSS MiB) sampled from the render's progress callback",
    "cpu_s": "user + system CPU seconds of the case's Python process and of its children (for the heygemd "
    "renders: during the render call); on a shared machine wall time varies with the load, CPU time much less",
}


def compare_one_size(
    args: argparse.Namespace,
    work: Path,
    size: str,
    template: Path,
    audio: Path,
    checkpoint: Path,
    detector_checkpoint: Path,
    device: str,
) -> list[Row]:
    settings = engine_settings(args.detector, checkpoint, detector_checkpoint, device)
    floor_job = {
        "video": str(template),
        "audio": str(audio),
        "output": str(work / "floor.mp4"),
        "encoder": heygemd_encoder(device),
    }
    rows = [run_case("floor", size, "floor", work, floor_job)]
    if not args.skip_io:
        io_job = heygemd_job(template, audio, work / "io.mp4", {**settings, "dry_run": True}, renders=1)
        rows += expand_renders(run_case("heygemd", size, "heygemd-io", work, io_job), ["heygemd-io"])
    render_job = heygemd_job(
        template,
        audio,
        work / "heygemd.mp4",
        with_face_cache(settings, work / f"face-tracks-{size}"),
        renders=1 + max(1, args.warm_renders),
    )
    rows += expand_renders(run_case("heygemd", size, "heygemd-cold", work, render_job), ["heygemd-cold", "heygemd-warm"])
    if not args.skip_reference:
        rows.append(run_reference(args, work, size, template, audio, checkpoint, detector_checkpoint, device))
    return with_floor_ratios(rows)


def long_case(
    args: argparse.Namespace, work: Path, seconds: float, checkpoint: Path, detector_checkpoint: Path, device: str
) -> Row:
    """One heygemd render of a long template (fresh process), for its peak RSS."""
    template = prepare_template(work, args.long_size, seconds)
    audio = prepare_audio(work, seconds)
    options = {"fixed_box": list(first_frame_box(template))} if args.long_fixed_box else {}
    job = heygemd_job(
        template,
        audio,
        work / "long.mp4",
        engine_settings(args.detector, checkpoint, detector_checkpoint, device),
        renders=1,
        options=options,
    )
    row = expand_renders(run_case("heygemd", args.long_size, "heygemd-long", work, job), ["heygemd-long"])[0]
    row["template_seconds"] = seconds
    row["fixed_box"] = options.get("fixed_box")
    return row


def detector_probe(args: argparse.Namespace, work: Path, detector_checkpoint: Path) -> Row:
    """S3FD network seconds per frame at heygemd's detection size and at each full resolution."""
    sizes = {f"{PROBE_SIDE}px": scaled_to_side(SIZES[args.sizes[0]], PROBE_SIDE), **{s: SIZES[s] for s in args.sizes}}
    job = {"detector_checkpoint": str(detector_checkpoint), "sizes": sizes, "frames": args.probe_frames}
    row = run_case("probe", "-", "s3fd-probe", work, job)
    per_frame = row.get("s3fd_forward_s_per_frame", {})
    frames = round(args.seconds * float(FPS))
    if per_frame:
        row["estimated_detect_s"] = {
            f"heygemd ({PROBE_SIDE}px, any size)": round(per_frame[f"{PROBE_SIDE}px"] * frames, 1)
        } | {f"reference ({size} full)": round(per_frame[size] * frames, 1) for size in args.sizes}
        row["estimated_for_frames"] = frames
    return row


def run_reference(
    args: argparse.Namespace,
    work: Path,
    size: str,
    template: Path,
    audio: Path,
    checkpoint: Path,
    detector_checkpoint: Path,
    device: str,
) -> Row:
    command = [
        sys.executable, str(REFERENCE_SCRIPT), "--audio", str(audio), "--video", str(template),
        "--out", str(work / "reference.mp4"), "--checkpoint", str(checkpoint), "--detector", args.detector,
        "--detector-checkpoint", str(detector_checkpoint), "--device", device,
    ]  # fmt: skip
    row = run_process(command, size, "reference")
    if "error" not in row:
        row["wall_s"] = row["process_wall_s"]
        add_speed(row)
    return row


def run_case(kind: str, size: str, case: str, work: Path, job: Job) -> Row:
    """Run ``job`` in a fresh child of this script; its last stdout line is its JSON figures."""
    job_file = work / "job.json"
    job_file.write_text(json.dumps({**job, "spawned_at": time.time()}))
    return run_process([sys.executable, str(Path(__file__).resolve()), "--child", kind, "--job", str(job_file)], size, case)


def run_process(command: list[str], size: str, case: str) -> Row:
    print(f"{size}: {case}...", file=sys.stderr, flush=True)
    load_before = os.getloadavg()
    started = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    row: Row = {"size": size, "case": case, "process_wall_s": round(time.perf_counter() - started, 2)}
    row["loadavg_1m"] = {"before": round(load_before[0], 2), "after": round(os.getloadavg()[0], 2)}
    lines = completed.stdout.strip().splitlines()
    try:
        figures = json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        figures = {}
    if completed.returncode != 0 or not figures or "error" in figures:
        errors = [line for line in completed.stderr.strip().splitlines() if line.strip()][-ERROR_LINES:]
        row["error"] = figures.get("error") or " / ".join(errors) or f"exit code {completed.returncode}"
        print(f"  failed: {row['error']}", file=sys.stderr, flush=True)
    return row | {key: value for key, value in figures.items() if key != "error"}


def expand_renders(row: Row, cases: list[str]) -> list[Row]:
    """A heygemd child's row holds one entry per render: one row per render, named by ``cases``."""
    if "error" in row:
        return [row | {"case": case} for case in cases]
    renders = row.pop("renders")
    rows = [add_speed({**row, **render, "case": case}) for case, render in zip(cases, renders)]
    if len(renders) > len(cases):  # more warm renders: what each one left behind, on the last row
        rows[-1]["render_history"] = [
            {key: render[key] for key in ("render_s", "peak_rss_mib", "rss_after_mib", "face_cache_hit")}
            for render in renders
        ]
    return rows


def add_speed(row: Row) -> Row:
    wall, frames, audio_s = row["wall_s"], row["frames"], row["audio_s"]
    row["fps"] = round(frames / wall, 2)
    row["x_realtime"] = round(audio_s / wall, 3)
    row["realtime_factor"] = round(wall / audio_s, 3)
    return row


def with_floor_ratios(rows: list[Row]) -> list[Row]:
    floor = next((row for row in rows if row["case"] == "floor" and "error" not in row), None)
    for row in rows:
        if floor is not None and "wall_s" in row:
            row["x_floor"] = round(row["wall_s"] / floor["wall_s"], 2)
    return rows


# ---------------------------------------------------------------------------- inputs


def resolve_device(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def prepare_checkpoints(work: Path, wav2lip: Path | None, s3fd: Path | None) -> tuple[Path, Path]:
    """The given weights, or random ones of the public shapes generated into ``work`` (once)."""
    from checkpoint_factory import make_s3fd_checkpoint, make_wav2lip_checkpoint

    if wav2lip is None:
        wav2lip = work / "wav2lip_gan.pth"
        if not wav2lip.exists():
            make_wav2lip_checkpoint(wav2lip)
    if s3fd is None:
        s3fd = work / "s3fd.pth"
        if not s3fd.exists():
            make_s3fd_checkpoint(s3fd)
    return wav2lip, s3fd


def prepare_audio(work: Path, seconds: float) -> Path:
    from media_factory import make_audio

    path = work / f"speech-{seconds:g}s.wav"
    return path if path.exists() else make_audio(path, seconds=seconds)


def prepare_template(work: Path, size: str, seconds: float) -> Path:
    from media_factory import make_video

    path = work / f"template-{size}-{seconds:g}s.mp4"
    if path.exists():
        return path
    print(f"generating the {size} template ({seconds:g} s)...", file=sys.stderr, flush=True)
    partial = path.with_name(f"partial-{path.name}")
    make_video(partial, seconds=seconds, fps=FPS, size=SIZES[size])
    return partial.rename(path)


def first_frame_box(template: Path) -> tuple[int, int, int, int]:
    """The LBP cascade's face on the template's first frame, for --long-fixed-box."""
    from heygemd.engine.faces import LBPDetector
    from heygemd.engine.media import read_frames
    from heygemd.engine.probe import probe_video

    frame = next(read_frames(probe_video(template), 0, 1, pixel_format="bgr24"))
    found = LBPDetector().detect([frame])[0]
    if not found:
        raise RuntimeError(f"no face on the first frame of {template}")
    return found[0].box


def scaled_to_side(size: tuple[int, int], side: int) -> tuple[int, int]:
    scale = side / max(size)
    return (round(size[0] * scale), round(size[1] * scale))


def engine_settings(detector: str, checkpoint: Path, detector_checkpoint: Path, device: str) -> dict[str, Any]:
    return {
        "checkpoint": str(checkpoint),
        "detector": detector,
        "detector_checkpoint": str(detector_checkpoint),
        "device": device,
    }


def with_face_cache(settings: dict[str, Any], folder: Path) -> dict[str, Any]:
    """``settings`` with an empty face-track cache folder."""
    if folder.exists():
        shutil.rmtree(folder)
    return {**settings, "face_cache_dir": str(folder)}


def heygemd_encoder(device: str) -> str:
    """The video encoder heygemd's engine picks with its default settings on ``device``."""
    from heygemd.engine.engine import choose_encoder
    from heygemd.engine.settings import EngineSettings

    return choose_encoder(EngineSettings().encoder, device)


def heygemd_job(
    template: Path, audio: Path, output: Path, settings: dict[str, Any], renders: int, options: dict[str, Any] | None = None
) -> Job:
    return {
        "video": str(template),
        "audio": str(audio),
        "output": str(output),
        "settings": settings,
        "options": options or {},
        "renders": renders,
    }


def encoder_settings() -> dict[str, Any]:
    from heygemd.engine.media import AUDIO_BITRATE
    from heygemd.engine.settings import RenderOptions

    options = RenderOptions()
    return {"crf": options.crf, "preset": options.preset, "audio_bitrate": AUDIO_BITRATE}


def engine_defaults() -> dict[str, Any]:
    from heygemd.engine.settings import EngineSettings

    defaults = EngineSettings()
    return {
        "heygemd_batch_size": defaults.batch_size,
        "heygemd_detector_batch_size": defaults.detector_batch_size,
        "heygemd_detect_max_side": defaults.detect_max_side,
    }


def machine() -> dict[str, Any]:
    import torch

    from heygemd.engine.ffmpeg_tools import ffmpeg_version

    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "processor": cpu_model() or platform.machine(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "ffmpeg": ffmpeg_version(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def git_commit() -> str | None:
    completed = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    )
    return completed.stdout.strip() or None


def uptime() -> str:
    completed = subprocess.run(["uptime"], capture_output=True, text=True, check=False)
    return completed.stdout.strip() or "load average: {:.2f}, {:.2f}, {:.2f}".format(*os.getloadavg())


# ---------------------------------------------------------------------------- the table


def table(document: dict[str, Any]) -> str:
    header = (
        f"{'size':6} {'case':13} {'wall s':>8} {'CPU s':>7} {'frames':>6} {'fps':>7} {'x real time':>11} "
        f"{'x floor':>7} {'RSS py MiB':>10} {'RSS ffmpeg':>10} {'GPU MiB':>7}"
    )
    lines = [header]
    for row in [*document["results"], *document["long"]]:
        lines.append(table_row(row))
    probe = document.get("detector_probe")
    if probe and "s3fd_forward_s_per_frame" in probe:
        timings = ", ".join(f"{size} {seconds:.2f} s" for size, seconds in probe["s3fd_forward_s_per_frame"].items())
        lines.append(f"S3FD forward per frame (not run in the cases above): {timings}")
        estimates = ", ".join(f"{name} {seconds:g} s" for name, seconds in probe.get("estimated_detect_s", {}).items())
        lines.append(f"  so detecting {probe.get('estimated_for_frames')} frames with S3FD would take: {estimates}")
    return "\n".join(lines)


def table_row(row: Row) -> str:
    case = row["case"] if "template_seconds" not in row else f"long {row['template_seconds']:g}s"
    if "error" in row:
        return f"{row['size']:6} {case:13} error: {row['error']}"

    def number(key: str, width: int, digits: int) -> str:
        value = row.get(key)
        return f"{value:>{width}.{digits}f}" if isinstance(value, (int, float)) else f"{'-':>{width}}"

    cpu = row.get("cpu_s")
    cpu_text = f"{sum(cpu.values()):>7.1f}" if isinstance(cpu, dict) else f"{'-':>7}"
    return (
        f"{row['size']:6} {case:13} {number('wall_s', 8, 1)} {cpu_text} {number('frames', 6, 0)} {number('fps', 7, 2)} "
        f"{number('x_realtime', 11, 3)} {number('x_floor', 7, 2)} {number('peak_rss_mib', 10, 0)} "
        f"{number('ffmpeg_peak_rss_mib', 10, 0)} {number('gpu_peak_mib', 7, 0)}"
    )


# ============================================================================ the children


def child_floor(job: Job) -> int:
    """ffmpeg decodes and re-encodes the template with heygemd's settings, and nothing else."""
    from heygemd.engine.ffmpeg_tools import ffmpeg_path, last_lines
    from heygemd.engine.media import AUDIO_BITRATE, video_codec_arguments
    from heygemd.engine.probe import probe_audio, probe_video

    settings = encoder_settings()
    command = [
        ffmpeg_path(), "-nostdin", "-v", "error", "-y", "-i", job["video"], "-i", job["audio"],
        "-map", "0:v:0", "-map", "1:a:0", *video_codec_arguments(job["encoder"], settings["crf"], settings["preset"]),
        "-c:a", "aac", "-b:a", AUDIO_BITRATE, "-movflags", "+faststart", job["output"],
    ]  # fmt: skip
    children, cpu_before = ChildMemory(), cpu_seconds()
    started = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    children.stop()
    if completed.returncode != 0:
        print(json.dumps({"error": f"ffmpeg failed: {last_lines(completed.stderr)}"}))
        return 1
    output = probe_video(Path(job["output"]))
    figures = {
        "wall_s": round(wall, 2),
        "frames": output.frame_count,
        "audio_s": round(probe_audio(Path(job["audio"])).duration, 3),
        "width": output.width,
        "height": output.height,
        "encoder": job["encoder"],
        **children.figures(),
        "cpu_s": cpu_seconds(since=cpu_before),
    }
    print(json.dumps(add_speed(figures)))
    return 0


def child_heygemd(job: Job) -> int:
    """Load the engine, render ``job["renders"]`` times; the first render is the cold one."""
    import torch

    from heygemd.engine import EngineSettings, LipSyncEngine, RenderOptions

    imported = time.time()
    children = ChildMemory()
    started = time.perf_counter()
    engine = LipSyncEngine(EngineSettings(**job["settings"]))
    load_s = time.perf_counter() - started
    options = RenderOptions(**job["options"])
    renders = []
    for number in range(job["renders"]):
        if number:
            reset_peaks(engine.device)
            children.reset()
        trace, cpu_before = RssTrace(), cpu_seconds()
        started = time.perf_counter()
        report = engine.render(Path(job["audio"]), Path(job["video"]), Path(job["output"]), options, progress=trace.sample)
        render_s = time.perf_counter() - started
        figures = render_figures(report, render_s, trace, engine.device) | children.figures()
        figures["cpu_s"] = cpu_seconds(since=cpu_before)
        figures["rss_after_mib"] = current_rss_mib()
        # The cold render is what a fresh `heygemd render` costs: interpreter, imports, engine, render.
        figures["wall_s"] = (
            round(time.time() - job["spawned_at"], 2)
            if number == 0 and not job["settings"].get("dry_run")
            else figures["render_s"]
        )
        renders.append(figures)
    children.stop()
    print(
        json.dumps(
            {
                "device": engine.device,
                "detector": report.faces.detector,
                "engine_settings": job["settings"],
                "import_s": round(imported - job["spawned_at"], 2),
                "engine_load_s": round(load_s, 2),
                "torch_threads": torch.get_num_threads(),
                "renders": renders,
            }
        )
    )
    return 0


def render_figures(report: Any, render_s: float, trace: RssTrace, device: str) -> Row:
    from heygemd.engine.report import Stage

    timings = report.timings.model_dump()
    figures: Row = {
        "render_s": round(render_s, 2),
        "frames": report.output.frame_count,
        "width": report.output.width,
        "height": report.output.height,
        "audio_s": round(report.audio.duration_s, 3),
        "stage_s": {stage.value: round(timings[stage.value], 2) for stage in Stage},
        "frames_with_face": report.faces.frames_with_face,
        "face_cache_hit": report.faces.cache_hit,
        "encoder": report.output.encoder,
        "warnings": report.warnings,
        "peak_rss_mib": self_peak_rss_mib(),
        "rss_trace_mib": trace.points,
    }
    if device.startswith("cuda"):
        import torch

        figures["gpu_peak_mib"] = round(torch.cuda.max_memory_allocated(device) / BYTES_PER_MIB, 1)
        figures["gpu_reserved_peak_mib"] = round(torch.cuda.max_memory_reserved(device) / BYTES_PER_MIB, 1)
    return figures


class RssTrace:
    """Current RSS sampled from the render's progress callback, about every 5 % of each stage."""

    def __init__(self) -> None:
        self.points: list[tuple[str, float, float]] = []  # (stage, fraction done, RSS MiB)
        self._next: dict[str, float] = {}

    def sample(self, progress: Any) -> None:
        fraction = progress.frames_done / progress.frames_total if progress.frames_total else 1.0  # of this stage
        if fraction < self._next.get(progress.stage, 0.0):
            return
        self._next[progress.stage] = fraction + 1 / RSS_TRACE_STEPS
        self.points.append((progress.stage, round(fraction, 3), current_rss_mib()))


def child_probe(job: Job) -> int:
    """Seconds of one S3FD forward pass per frame at each size (the network alone)."""
    import torch
    from face_alignment.detection.sfd.net_s3fd import s3fd

    net = s3fd()
    net.load_state_dict(torch.load(job["detector_checkpoint"], map_location="cpu", weights_only=True))
    net.eval()
    per_frame: dict[str, float] = {}
    for name, (width, height) in job["sizes"].items():
        frames = torch.rand(1, 3, height, width) * 255
        started = time.perf_counter()
        with torch.inference_mode():
            for _ in range(job["frames"]):
                net(frames)
        per_frame[name] = round((time.perf_counter() - started) / job["frames"], 2)
    print(
        json.dumps(
            {
                "s3fd_forward_s_per_frame": per_frame,
                "sizes": job["sizes"],
                "frames_timed": job["frames"],
                "device": "cpu",
                "torch_threads": torch.get_num_threads(),
                "peak_rss_mib": self_peak_rss_mib(),
            }
        )
    )
    return 0


CHILDREN: dict[str, Callable[[Job], int]] = {"floor": child_floor, "heygemd": child_heygemd, "probe": child_probe}


# ---------------------------------------------------------------------------- memory in a child


def self_peak_rss_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / KIB_PER_MIB, 1)


def cpu_seconds(since: dict[str, float] | None = None) -> dict[str, float]:
    """User + system CPU seconds of this process and of its waited-for children, minus ``since``."""
    totals = {}
    for name, who in (("python", resource.RUSAGE_SELF), ("children", resource.RUSAGE_CHILDREN)):
        usage = resource.getrusage(who)
        totals[name] = round(usage.ru_utime + usage.ru_stime - (since or {}).get(name, 0.0), 2)
    return totals


def current_rss_mib() -> float:
    return round(proc_status(os.getpid()).get("VmRSS", 0) / KIB_PER_MIB, 1)


def proc_status(pid: int) -> dict[str, Any]:
    """Name and the kB fields of /proc/PID/status ({} once the process is gone)."""
    fields: dict[str, Any] = {}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return fields
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key == "Name":
            fields[key] = value.strip()
        elif value.strip().endswith("kB"):
            fields[key] = int(value.split()[0])
    return fields


class ChildMemory:
    """Peak RSS of this process's children (ffmpeg, ffprobe), read from /proc while they run.

    getrusage(RUSAGE_CHILDREN) cannot tell: a child's ru_maxrss starts from the RSS of the
    Python process it was forked from (Linux keeps the pre-exec peak), so it reports Python's
    size, not ffmpeg's. VmHWM after exec is the program's own peak; sampled every
    CHILD_SAMPLE_S, it misses at most a child's last moments (or a child shorter than that).
    """

    def __init__(self) -> None:
        self._own_name = proc_status(os.getpid()).get("Name")
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.reset()
        self._thread = threading.Thread(target=self._run, name="child-memory", daemon=True)
        self._thread.start()

    def reset(self) -> None:
        with self._lock:
            self._peak_kib: dict[str, int] = {}  # program name -> largest VmHWM seen
            self._together_kib = 0  # largest sum of the children's VmRSS at one moment

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def figures(self) -> dict[str, Any]:
        with self._lock:
            ffmpeg = [kib for name, kib in self._peak_kib.items() if name.startswith("ffmpeg")]
            return {
                "ffmpeg_peak_rss_mib": round(max(ffmpeg, default=0) / KIB_PER_MIB, 1),
                "children_together_peak_rss_mib": round(self._together_kib / KIB_PER_MIB, 1),
                "children_peak_rss_mib": {name: round(kib / KIB_PER_MIB, 1) for name, kib in sorted(self._peak_kib.items())},
                "rusage_children_maxrss_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / KIB_PER_MIB, 1),
            }

    def _run(self) -> None:
        while not self._stop.wait(CHILD_SAMPLE_S):
            self._sample()

    def _sample(self) -> None:
        together = 0
        for pid in child_pids():
            status = proc_status(pid)
            name = status.get("Name")
            if not name or name == self._own_name:  # gone, or forked but not yet exec'd
                continue
            together += status.get("VmRSS", 0)
            with self._lock:
                self._peak_kib[name] = max(self._peak_kib.get(name, 0), status.get("VmHWM", 0))
        with self._lock:
            self._together_kib = max(self._together_kib, together)


def child_pids() -> list[int]:
    """This process's children, created by any of its threads."""
    pids: list[int] = []
    for children in Path(f"/proc/{os.getpid()}/task").glob("*/children"):
        try:
            pids += [int(pid) for pid in children.read_text().split()]
        except OSError:  # the thread ended
            continue
    return pids


def reset_peaks(device: str) -> None:
    """Restart this process's peak RSS (Linux clear_refs) and torch's CUDA peak from now."""
    CLEAR_REFS.write_text(RESET_PEAK_RSS)
    if device.startswith("cuda"):
        import torch

        torch.cuda.reset_peak_memory_stats(device)


if __name__ == "__main__":
    sys.exit(main())
