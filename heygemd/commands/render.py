"""`heygemd render`: lip-sync one audio onto one or more template videos, once, from a terminal."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pydantic import ValidationError

from heygemd.commands.model_flags import add_model_flags, flag_name, model_from_flags
from heygemd.engine.errors import EngineError
from heygemd.engine.settings import EngineSettings, RenderOptions
from heygemd.exitcodes import ExitCode
from heygemd.names import display_json

# The flag names kept from before the flags were generated (the field is face_cache_dir).
RENAMED_ENGINE_FLAGS = {"face_cache_dir": "--face-cache"}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "render",
        help="render videos once and exit",
        description="Re-sync the presenter's mouth in each template video to AUDIO. Writes DIR/<stem>.mp4 and "
        "DIR/<stem>.json per video. Exit code 0 only if every video succeeded.",
    )
    parser.add_argument("--audio", required=True, type=Path, help="the new speech (any audio or video file ffmpeg reads)")
    parser.add_argument(
        "--video", required=True, type=Path, action="append", help="a template video or still image; repeat for more"
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder (created if missing)")
    parser.add_argument("--overwrite", action="store_true", help="replace outputs that already exist")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")

    # Every engine setting and render option, generated from the models: the CLI cannot drift from them.
    add_model_flags(parser.add_argument_group("engine"), EngineSettings, renamed=RENAMED_ENGINE_FLAGS)
    add_model_flags(parser.add_argument_group("render"), RenderOptions)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        settings = model_from_flags(EngineSettings, args)
        options = model_from_flags(RenderOptions, args)
    except ValidationError as err:
        for error in err.errors():
            field = str(error["loc"][0]) if error["loc"] else ""
            _error(f"{RENAMED_ENGINE_FLAGS.get(field, flag_name(field))}: {error['msg']}")
        return ExitCode.USAGE

    outputs = output_paths(args.video, args.out)
    problems = [_collision(video, out, args) for video, out in outputs.items()]
    if any(problems):
        for problem in filter(None, problems):
            _error(problem)
        return ExitCode.USAGE

    from heygemd.engine.engine import LipSyncEngine  # torch loads here, not for --help

    try:
        engine = LipSyncEngine(settings)
    except EngineError as err:
        _error(str(err))
        return ExitCode.MISSING_WEIGHTS

    try:
        audio = engine.prepare_audio(args.audio)
    except EngineError as err:
        _error(str(err))
        return ExitCode.FAILURE

    with audio:  # every video gets the sound decoded once above, whatever happens to the file meanwhile
        failures = sum(
            not _render_and_report(engine, audio, video, output, options, args) for video, output in outputs.items()
        )
    return ExitCode.FAILURE if failures else ExitCode.OK


def _render_and_report(engine, audio, video: Path, output: Path, options: RenderOptions, args: argparse.Namespace) -> bool:
    """Render one video, write its sidecar and print its line; False if it failed (the error is printed)."""
    try:
        report = _render_one(engine, audio, video, output, options, show_progress=not args.quiet and sys.stderr.isatty())
    except EngineError as err:
        _error(str(err))
        return False
    _write_sidecar(output.with_suffix(".json"), display_json(report))
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
