"""`heygemd render`: lip-sync one audio onto one or more template videos, once, from a terminal."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pydantic import ValidationError

from heygemd.engine.errors import EngineError
from heygemd.engine.settings import (
    BlendMode,
    DetectorKind,
    Encoder,
    EngineSettings,
    LoopPolicy,
    RenderOptions,
    RestorerKind,
)

EXIT_OK = 0
EXIT_SOME_FAILED = 1  # at least one video could not be rendered
EXIT_USAGE = 2  # bad arguments (argparse uses 2 as well)
EXIT_ENGINE = 3  # the engine could not start: weights missing or damaged, device unavailable


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "render",
        help="render videos once and exit",
        description="Re-sync the presenter's mouth in each template video to AUDIO. Writes DIR/<stem>.mp4 and "
        "DIR/<stem>.json per video. Exit code 0 only if every video succeeded.",
    )
    parser.add_argument("--audio", required=True, type=Path, help="the new speech (any audio or video file ffmpeg reads)")
    parser.add_argument("--video", required=True, type=Path, action="append", help="a template video or still image; repeat for more")
    parser.add_argument("--out", required=True, type=Path, help="output folder (created if missing)")
    parser.add_argument("--overwrite", action="store_true", help="replace outputs that already exist")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")

    engine = parser.add_argument_group("engine")
    defaults = EngineSettings()
    engine.add_argument("--checkpoint", type=Path, default=defaults.checkpoint, help="Wav2Lip weights (default: %(default)s)")
    engine.add_argument("--detector", choices=[d.value for d in DetectorKind], default=defaults.detector.value)
    engine.add_argument("--detector-checkpoint", type=Path, default=defaults.detector_checkpoint, help="S3FD weights (default: %(default)s)")
    engine.add_argument("--device", default=defaults.device, help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    engine.add_argument("--batch-size", type=int, default=defaults.batch_size, help="frames per generator batch")
    engine.add_argument("--detector-batch-size", type=int, default=defaults.detector_batch_size)
    engine.add_argument("--detect-max-side", type=int, default=defaults.detect_max_side, help="downscale frames to this side for detection")
    engine.add_argument("--detect-stride", type=int, default=defaults.detect_stride, help="detect every k-th frame, interpolate between")
    engine.add_argument("--face-cache", type=Path, default=None, metavar="DIR", help="cache face tracks here: a re-used template skips detection")
    engine.add_argument("--encoder", choices=[e.value for e in Encoder], default=defaults.encoder.value)
    engine.add_argument("--restorer", choices=[r.value for r in RestorerKind], default=defaults.restorer.value,
                        help="gfpgan: sharpen the re-synced lower face with GFPGAN v1.3/v1.4 (default: %(default)s)")
    engine.add_argument("--restorer-checkpoint", type=Path, default=defaults.restorer_checkpoint, help="GFPGAN weights (default: %(default)s)")
    engine.add_argument("--restorer-batch-size", type=int, default=defaults.restorer_batch_size, help="faces per restorer batch")
    engine.add_argument("--full-precision", action="store_true", help="on CUDA, keep float32 (default: float16)")
    engine.add_argument("--dry-run", action="store_true", help="no model: fit the template to the audio and re-encode")

    render = parser.add_argument_group("render")
    options = RenderOptions()
    render.add_argument("--fixed-box", type=_ints(4), metavar="X1,Y1,X2,Y2", help="skip face detection, use this box")
    render.add_argument("--pads", type=_ints(4), metavar="TOP,BOTTOM,LEFT,RIGHT", default=options.pads, help="default: 0,10,0,0")
    render.add_argument("--loop", choices=[p.value for p in LoopPolicy], default=options.loop.value, help="when the audio outlasts the video")
    render.add_argument("--blend", choices=[b.value for b in BlendMode], default=options.blend.value)
    render.add_argument("--feather", type=float, default=options.feather, help="soft edge, fraction of the face box")
    render.add_argument("--restore-weight", type=float, default=options.restore_weight,
                        help="share of restored pixels in the re-synced area, 0-1 (default: %(default)s)")
    render.add_argument("--crf", type=int, default=options.crf, help="x264 quality, lower is better (default: %(default)s)")
    render.add_argument("--preset", default=options.preset, help="x264 preset (default: %(default)s)")
    render.add_argument("--still-fps", type=float, default=options.still_fps, help="frame rate for still-image templates")
    parser.set_defaults(func=run)


def _ints(count: int):
    def parse(text: str) -> tuple[int, ...]:
        parts = text.replace(" ", "").split(",")
        if len(parts) != count:
            raise argparse.ArgumentTypeError(f"expected {count} comma-separated integers, got {text!r}")
        try:
            return tuple(int(p) for p in parts)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected integers, got {text!r}") from None

    return parse


def run(args: argparse.Namespace) -> int:
    try:
        settings = EngineSettings(
            checkpoint=args.checkpoint,
            detector=args.detector,
            detector_checkpoint=args.detector_checkpoint,
            device=args.device,
            batch_size=args.batch_size,
            detector_batch_size=args.detector_batch_size,
            detect_max_side=args.detect_max_side,
            detect_stride=args.detect_stride,
            face_cache_dir=args.face_cache,
            encoder=args.encoder,
            restorer=args.restorer,
            restorer_checkpoint=args.restorer_checkpoint,
            restorer_batch_size=args.restorer_batch_size,
            half_precision=not args.full_precision,
            dry_run=args.dry_run,
        )
        options = RenderOptions(
            fixed_box=args.fixed_box,
            pads=args.pads,
            loop=args.loop,
            blend=args.blend,
            feather=args.feather,
            restore_weight=args.restore_weight,
            crf=args.crf,
            preset=args.preset,
            still_fps=args.still_fps,
        )
    except ValidationError as err:
        for problem in err.errors():
            _error(f"--{'-'.join(str(p) for p in problem['loc']).replace('_', '-')}: {problem['msg']}")
        return EXIT_USAGE

    outputs = output_paths(args.video, args.out)
    problems = [_collision(video, out, args) for video, out in outputs.items()]
    if any(problems):
        for problem in filter(None, problems):
            _error(problem)
        return EXIT_USAGE

    from heygemd.engine.engine import LipSyncEngine  # torch loads here, not for --help

    try:
        engine = LipSyncEngine(settings)
    except EngineError as err:
        _error(str(err))
        return EXIT_ENGINE

    try:
        audio = engine.prepare_audio(args.audio)
    except EngineError as err:
        _error(str(err))
        return EXIT_SOME_FAILED

    with audio:  # every video gets the sound decoded once above, whatever happens to the file meanwhile
        failures = sum(not _render_and_report(engine, audio, video, output, options, args) for video, output in outputs.items())
    return EXIT_SOME_FAILED if failures else EXIT_OK


def _render_and_report(engine, audio, video: Path, output: Path, options: RenderOptions, args: argparse.Namespace) -> bool:
    """Render one video, write its sidecar and print its line; False if it failed (the error is printed)."""
    try:
        report = _render_one(engine, audio, video, output, options, show_progress=not args.quiet and sys.stderr.isatty())
    except EngineError as err:
        _error(str(err))
        return False
    _write_sidecar(output.with_suffix(".json"), report.model_dump_json(indent=2))
    print(f"{output}  ({report.output.duration_s:.2f} s, {report.output.frame_count} frames, {report.timings.total:.1f} s)")
    for warning in report.warnings:
        print(f"  warning: {warning}", file=sys.stderr)
    return True


def output_paths(videos: list[Path], out: Path) -> dict[Path, Path]:
    """DIR/<stem>.mp4 per video; a repeated stem gets -2, -3... (a.mp4 and a.mov both render)."""
    paths: dict[Path, Path] = {}
    taken: set[str] = set()
    for video in videos:
        name, suffix = video.stem, 2
        while name in taken:
            name, suffix = f"{video.stem}-{suffix}", suffix + 1
        taken.add(name)
        paths[video] = out / f"{name}.mp4"
    return paths


def _collision(video: Path, output: Path, args: argparse.Namespace) -> str | None:
    inputs = {p.resolve() for p in [args.audio, *args.video]}
    for path in (output, output.with_suffix(".json")):
        if path.resolve() in inputs:
            return f"{path}: would overwrite an input file; choose another --out folder"
        if path.exists() and not args.overwrite:
            return f"{path}: already exists (use --overwrite to replace it)"
    return None


def _render_one(engine, audio, video: Path, output: Path, options: RenderOptions, *, show_progress: bool):
    if not show_progress:
        return engine.render(audio, video, output, options)
    from tqdm import tqdm

    with tqdm(total=0, desc=video.name, unit="frame", leave=True, dynamic_ncols=True) as bar:

        def on_progress(progress) -> None:
            if bar.total != progress.frames_total or bar.desc != f"{video.name} [{progress.stage}]":
                bar.reset(total=progress.frames_total)
                bar.set_description(f"{video.name} [{progress.stage}]")
            bar.update(progress.frames_done - bar.n)

        return engine.render(audio, video, output, options, progress=on_progress)


def _write_sidecar(path: Path, text: str) -> None:
    from heygemd.atomic import write_atomic

    write_atomic(path, text + "\n", durable=False)


def _error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
