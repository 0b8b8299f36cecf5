"""`heygemd demo`: a first result in a minute, with nothing downloaded.

It makes a sample job: a presenter (scikit-image's astronaut portrait, a NASA photograph in the public
domain, shipped with a dependency) and a spoken sample (heygemd.speech: Kokoro-82M when its files are
there, else espeak-ng, shipped; should neither speak, a synthetic voice-like sample of vowel syllables,
made here: not words). Then it runs the job end to end:
through the running service of this configuration when there is one (dropped into its inbox, the result
waited for in its outbox), else in this process with the engine. It says what was real: the picture, the
voice, the model (the published Wav2Lip weights, other weights, or no model at all: a dry run).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import time
import wave
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from heygemd.commands.config_file import add_config_argument, load_or_report
from heygemd.daemon.config import HeygemdConfig
from heygemd.daemon.speech_settings import SpeechConfig
from heygemd.exitcodes import ExitCode
from heygemd.names import temporary_name

SAMPLE_RATE = 16000
SAMPLE_TEXT = "Hello! This is heygemd. I say what you write, with your presenter's face."
PRESENTER_FILE = "presenter.png"
SPEECH_FILE = "speech.wav"
JOB_PREFIX = "heygemd demo"
SERVICE_WAIT_SECONDS = 15 * 60.0  # a job through a CPU service may take minutes; never forever
POLL_SECONDS = 0.5
SAMPLE_LANGUAGE = "en"
# The synthetic sample: syllables of a voice-like source through vowel formants (Hz), with pauses.
VOWEL_FORMANTS = ((730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (570, 840, 2410), (530, 1840, 2480))
SYLLABLE_SECONDS = 0.28
PAUSE_SECONDS = 0.09
SYLLABLES = 14

if TYPE_CHECKING:  # numpy is imported when a demo runs: `heygemd web` and the others load this module too
    import numpy as np


@dataclass(frozen=True)
class SampleJob:
    folder: Path
    voice: str  # where the voice came from, for the person


def register(subparsers: argparse._SubParsersAction) -> None:
    text = "make a sample presenter and voice and run one job end to end (nothing is downloaded)"
    parser = subparsers.add_parser("demo", help=text, description=text)
    add_config_argument(parser)
    parser.add_argument("--folder", type=Path, default=Path("demo"), help="where the sample and the result go (./demo)")
    parser.add_argument("--no-service", action="store_true", help="render in this process even when the service is running")
    parser.set_defaults(func=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    loaded = load_or_report(args.config)
    if isinstance(loaded, ExitCode):
        return loaded
    config = loaded.config
    try:
        job = make_sample_job(args.folder / "job", config.speech)
    except OSError as err:
        print(f"heygemd: cannot write the sample into {args.folder}: {err.strerror or err}", file=sys.stderr)
        return ExitCode.CANT_CREATE
    print(f"sample     {job.folder}: {PRESENTER_FILE} (scikit-image's astronaut, NASA, public domain), {SPEECH_FILE}")
    print(f"voice      {job.voice}")
    if not args.no_service and _service_takes_jobs(config):
        return _through_the_service(config, job)
    return _in_this_process(config, job, args.folder / "result")


# ---------------------------------------------------------------------------- the sample


def make_sample_job(folder: Path, speech: SpeechConfig) -> SampleJob:
    """``folder/presenter.png`` and ``folder/speech.wav`` (made again each time)."""
    from skimage import data, io

    folder.mkdir(parents=True, exist_ok=True)
    io.imsave(folder / PRESENTER_FILE, data.astronaut(), check_contrast=False)
    voice = _speak(folder / SPEECH_FILE, speech)
    if voice is None:
        _write_wav(folder / SPEECH_FILE, synthetic_voice())
        voice = (
            "a synthetic voice-like sample (vowel syllables made by heygemd, not words): no voice of heygemd.speech "
            "could speak here (`heygemd doctor` says why)"
        )
    return SampleJob(folder, voice)


def _speak(target: Path, speech: SpeechConfig) -> str | None:
    """SAMPLE_TEXT spoken into ``target`` by the best voice here (Kokoro when its files are there, else espeak-ng)."""
    from heygemd.speech import SpeechError, VoiceChoice, open_voice, speak_to_wav

    try:
        voice = open_voice(VoiceChoice(), SAMPLE_LANGUAGE, speech.kokoro_files())
        spoken = speak_to_wav(SAMPLE_TEXT, voice, SAMPLE_LANGUAGE, 1.0, target)
    except (SpeechError, OSError):
        return None
    return f'{spoken.voice.name} speaking "{SAMPLE_TEXT}" (a real, synthetic voice)'


def synthetic_voice(seed: int = 0) -> np.ndarray:
    """A few seconds of voice-like sound, float32 in [-1, 1] at SAMPLE_RATE: (samples,).

    Each syllable is a glottal-like pulse train (a falling pitch around 120 Hz) through three vowel formant
    resonators, with a soft attack and release, then a pause: enough for a mouth to open and close on.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    pieces = []
    for index in range(SYLLABLES):
        count = int(SYLLABLE_SECONDS * SAMPLE_RATE)
        t = np.arange(count) / SAMPLE_RATE
        pitch = 125.0 - 25.0 * t / SYLLABLE_SECONDS + rng.uniform(-8, 8)
        phase = 2 * math.pi * np.cumsum(pitch) / SAMPLE_RATE
        source = np.sign(np.sin(phase)) * 0.5 + 0.02 * rng.standard_normal(count)
        syllable = sum(_resonate(source, frequency) for frequency in VOWEL_FORMANTS[index % len(VOWEL_FORMANTS)])
        envelope = np.minimum(1.0, np.minimum(t, SYLLABLE_SECONDS - t) / 0.04)
        pieces += [syllable * envelope, np.zeros(int(PAUSE_SECONDS * SAMPLE_RATE))]
    signal = np.concatenate(pieces)
    return (0.8 * signal / max(1e-9, float(np.abs(signal).max()))).astype(np.float32)


def _resonate(source: np.ndarray, frequency: float, bandwidth: float = 90.0) -> np.ndarray:
    """A two-pole resonator at ``frequency`` (Hz), done in the frequency domain: (samples,) -> (samples,)."""
    import numpy as np

    spectrum = np.fft.rfft(source)
    bins = np.fft.rfftfreq(len(source), 1 / SAMPLE_RATE)
    response = 1.0 / (1.0 + ((bins - frequency) / (bandwidth / 2)) ** 2)
    return np.fft.irfft(spectrum * response, n=len(source))


def _write_wav(target: Path, samples: np.ndarray) -> None:
    import numpy as np

    with wave.open(str(target), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())


# ---------------------------------------------------------------------------- through the running service


def _service_takes_jobs(config: HeygemdConfig) -> bool:
    from heygemd.daemon.status import IDLE, process_alive, read_status

    status = read_status(config.paths.state)
    return status is not None and status.state in (IDLE, "working") and process_alive(status.pid)


def _through_the_service(config: HeygemdConfig, job: SampleJob) -> int:
    """Drop a copy of the job into the inbox (complete at once: copied under a hidden name, then renamed)."""
    name = f"{JOB_PREFIX} {datetime.now(UTC):%Y%m%d-%H%M%S}"
    inbox = config.paths.inbox
    staging = inbox / temporary_name(name)
    shutil.copytree(job.folder, staging)
    os.rename(staging, inbox / name)
    print(f"job        dropped into {inbox / name}: the running service renders it (heygemd status shows it)")
    outbox, quarantine = config.paths.outbox / name, config.paths.quarantine / name
    deadline = time.monotonic() + SERVICE_WAIT_SECONDS
    while time.monotonic() < deadline:
        if (outbox / "job.json").is_file():
            return _report_service_result(outbox)
        if (quarantine / "error.json").is_file():
            print(f"heygemd: the job went to quarantine: {quarantine / 'error.json'} says why", file=sys.stderr)
            return ExitCode.FAILURE
        time.sleep(POLL_SECONDS)
    print(f"heygemd: no result after {SERVICE_WAIT_SECONDS / 60:.0f} minutes; it may still come: {outbox}", file=sys.stderr)
    return ExitCode.FAILURE


def _report_service_result(outbox: Path) -> int:
    from heygemd.daemon.reports import JobReport

    report = JobReport.model_validate_json((outbox / "job.json").read_text(encoding="utf-8"))
    engine = report.engine
    checkpoint = engine.checkpoint if engine else None
    print(f"model      {_model_words(report.dry_run, checkpoint.known_name if checkpoint else None, checkpoint)}")
    print(f"result     {outbox.resolve()} (open {outbox.resolve() / 'index.html'})")
    return ExitCode.OK


# ---------------------------------------------------------------------------- in this process


def _in_this_process(config: HeygemdConfig, job: SampleJob, results: Path) -> int:
    from heygemd.engine import CheckpointError, EngineError, LipSyncEngine

    settings = config.engine
    try:
        engine = LipSyncEngine(settings)
    except CheckpointError as err:
        print(f"weights    {err}: rendering as a DRY RUN (`heygemd doctor` says which file goes where)")
        engine = LipSyncEngine(settings.model_copy(update={"dry_run": True}))
    except EngineError as err:
        print(f"heygemd: the engine cannot start: {err}", file=sys.stderr)
        return ExitCode.MISSING_WEIGHTS
    results.mkdir(parents=True, exist_ok=True)
    output = results / "presenter.mp4"
    print(f"rendering  {job.folder / PRESENTER_FILE} to {job.folder / SPEECH_FILE} in this process ...", flush=True)
    try:
        with engine.prepare_audio(job.folder / SPEECH_FILE) as audio:
            report = engine.render(audio, job.folder / PRESENTER_FILE, output, config.render)
    except EngineError as err:
        print(f"heygemd: the demo render failed: {err}", file=sys.stderr)
        return ExitCode.FAILURE
    (results / "presenter.json").write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
    checkpoint = report.checkpoint
    print(f"model      {_model_words(report.dry_run, checkpoint.known_name if checkpoint else None, checkpoint)}")
    print(
        f"result     {output.resolve()} ({report.output.duration_s:.1f} s; its report: {results.resolve() / 'presenter.json'})"
    )
    return ExitCode.OK


def _model_words(dry_run: bool, known_name: str | None, checkpoint: object) -> str:
    if dry_run:
        return (
            "NOT REAL: a dry run, no model ran: the picture is shown still over the voice (the mouth does not move); "
            "place the Wav2Lip weights and run `heygemd demo` again for a real lip-sync"
        )
    if known_name is None:
        sha256 = getattr(checkpoint, "sha256", "")[:16]
        return (
            f"the Wav2Lip network ran, with weights that are not a published release (sha256 {sha256}…): "
            "the mouth is what those weights draw (random test weights draw noise)"
        )
    return f"REAL: the published Wav2Lip weights ({known_name}) re-synced the mouth"
