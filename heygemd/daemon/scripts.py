"""A job whose words are a script: checked when the job is planned, spoken as the first stage of its render.

The speech is written into the job's results folder as ``speech.wav`` with ``speech.json`` (the voice, its model
file's hash, the text's sha256, the speech's length), so it is published with the videos and a restarted service
finds it and does not speak it again. The daemon knows nothing of the voices' insides: heygemd.speech does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from heygemd.atomic import write_atomic
from heygemd.codes import ErrorCode
from heygemd.daemon.config import HeygemdConfig
from heygemd.daemon.contract import ContractViolation, JobPlan, SpokenScript
from heygemd.daemon.reports import SpeechReport
from heygemd.names import display_json
from heygemd.resultfiles import SPEECH_AUDIO, SPEECH_REPORT
from heygemd.speech import SpeechError, VoiceChoice, check_script, open_voice, resolve_language, speak_to_wav
from heygemd.speech.synthesis import SpeechResult, text_sha256
from heygemd.speech.voice import Voice

SPEECH_RESULT_NAMES = frozenset({SPEECH_AUDIO, SPEECH_REPORT})


def read_script(path: Path) -> str:
    """The script's text (UTF-8, a byte-order mark allowed). Raises ContractViolation (input.undecodable)."""
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ContractViolation(
            f'The script "{path.name}" is not UTF-8 text (byte {err.start}): save it as UTF-8 and drop the folder again.',
            code=ErrorCode.INPUT_UNDECODABLE,
        ) from None


def _settings(spoken: SpokenScript, config: HeygemdConfig, text: str) -> tuple[VoiceChoice, str, float]:
    speech = config.speech
    try:
        choice = VoiceChoice.parse(spoken.voice or speech.voice)
    except ValueError as err:
        raise ContractViolation(f"job.toml: {err}.", code=ErrorCode.JOB_TOML_INVALID) from None
    return choice, resolve_language(spoken.language or speech.language, text), spoken.speed or speech.speed


def voice_for(plan: JobPlan, config: HeygemdConfig) -> tuple[Voice, str, str, float]:
    """(voice, text, language, speed) of a script job, with the script checked.

    Raises ContractViolation: an unreadable, empty or too long script, a language the voice cannot speak, a voice
    that is not usable here. Loads the voice (once per process for Kokoro).
    """
    assert plan.speech is not None
    text = read_script(plan.audio)
    choice, language, speed = _settings(plan.speech, config, text)
    try:
        voice = open_voice(choice, language, config.speech.kokoro_files())
        info = voice.info
        check_script(text, plan.audio.name, language, info.languages, info.name, config.limits.max_script_chars)
    except SpeechError as err:
        raise ContractViolation(err.reason, err.details, code=err.code) from None
    return voice, text, language, speed


def check_speech(plan: JobPlan, config: HeygemdConfig) -> None:
    """At planning: refuse a script that cannot be spoken (any of a job's scripts), before anything is rendered."""
    if plan.speech is not None:
        for source_plan in plan.per_source():
            voice_for(source_plan, config)


def spoken_already(output_dir: Path, text: str) -> bool:
    """speech.wav is there from an earlier run, made from this very text."""
    report = read_speech_report(output_dir)
    if report is None:
        return False
    return report.text_sha256 == text_sha256(text) and (output_dir / SPEECH_AUDIO).is_file()


def speak_job(
    plan: JobPlan,
    config: HeygemdConfig,
    output_dir: Path,
    progress: Callable[[int, int], None],
    cancel: threading.Event,
) -> Path:
    """Speak the job's script into ``output_dir``/speech.wav (unless already done) and return its path.

    Raises ContractViolation (the script or the voice) or SpeechError (speech.failed, cancelled).
    """
    voice, text, language, speed = voice_for(plan, config)
    if not spoken_already(output_dir, text):
        result = speak_to_wav(text, voice, language, speed, output_dir / SPEECH_AUDIO, progress=progress, cancel=cancel)
        write_atomic(output_dir / SPEECH_REPORT, display_json(_report(plan.audio.name, text, result)) + "\n")
    return output_dir / SPEECH_AUDIO


def _report(script: str, text: str, result: SpeechResult) -> SpeechReport:
    return SpeechReport(
        script=script,
        text_sha256=result.text_sha256,
        characters=len(text),
        voice=result.voice.name,
        voice_licence=result.voice.licence,
        model_file=result.voice.model_file,
        model_sha256=result.voice.model_sha256,
        language=result.language,
        speed=result.speed,
        sentences=result.sentences,
        sample_rate=result.voice.sample_rate,
        duration_s=round(result.duration_seconds, 3),
    )


def speech_result_names(output_stems: Iterable[str]) -> set[str]:
    """The speech files a results folder may hold: ``speech.wav``, or ``<script>/speech.wav`` with several scripts."""
    subfolders = {stem.split("/")[0] + "/" for stem in output_stems if "/" in stem} or {""}
    return {f"{subfolder}{name}" for subfolder in subfolders for name in SPEECH_RESULT_NAMES}


def read_speech_reports(output_dir: Path, output_stems: list[str]) -> list[SpeechReport]:
    """Every script's speech.json in a results folder, as job.json lists them (``audio``: its path in the folder)."""
    subfolders = sorted({stem.split("/")[0] for stem in output_stems if "/" in stem}) or [""]
    reports = []
    for subfolder in subfolders:
        report = read_speech_report(output_dir / subfolder)
        if report is not None:
            reports.append(report.model_copy(update={"audio": f"{subfolder}/{SPEECH_AUDIO}" if subfolder else SPEECH_AUDIO}))
    return reports


def read_speech_report(output_dir: Path) -> SpeechReport | None:
    """speech.json of a results folder, as job.json embeds it; None for a job spoken from audio."""
    try:
        return SpeechReport.model_validate_json((output_dir / SPEECH_REPORT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
