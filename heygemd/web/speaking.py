"""The voices the page offers and the preview of a script: its first sentence(s) spoken as the job would speak them.

The speech engines (numpy, espeak-ng, onnxruntime) are imported on the first request that needs them, never
when the web process starts.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from pydantic import BaseModel, Field

from heygemd.speech.choice import AUTO_VOICE, MAX_SPEED, MIN_SPEED, VoiceChoice
from heygemd.web.errors import WebError
from heygemd.web.settings import WebSettings

PREVIEW_MAX_CHARS = 200  # the first sentences up to this many characters: a few seconds of speech
MAX_PREVIEW_INPUT_CHARS = 20_000  # what the page may send (the whole script); only the start is spoken
AUTO_LANGUAGE = "auto"


class VoiceOption(BaseModel):
    engine: str = Field(description="espeak-ng or kokoro: the voice = value of job.toml (kokoro:<speaker> for one)")
    usable: bool
    languages: list[str] = Field(description="the languages it speaks")
    detail: str = Field(description="its files, or what is missing (as heygemd doctor says)")


class VoiceList(BaseModel):
    voices: list[VoiceOption]
    default_voice: str = Field(description="[speech] voice: what a job that names none is spoken with")
    default_language: str
    min_speed: float = MIN_SPEED
    max_speed: float = MAX_SPEED


class PreviewRequest(BaseModel):
    text: str = Field(max_length=MAX_PREVIEW_INPUT_CHARS, description="the script; its first sentence(s) are spoken")
    voice: str = Field(AUTO_VOICE, description="auto, espeak-ng, kokoro or kokoro:<speaker>")
    language: str = Field(AUTO_LANGUAGE, description="en, zh, ... or auto (from the script's writing system)")
    speed: float = Field(1.0, ge=MIN_SPEED, le=MAX_SPEED)


def voice_list(settings: WebSettings) -> VoiceList:
    from heygemd.speech import usable_voices

    statuses = usable_voices(settings.speech.kokoro_files())
    return VoiceList(
        voices=[
            VoiceOption(engine=s.engine, usable=s.usable, languages=list(s.languages), detail=s.detail) for s in statuses
        ],
        default_voice=settings.speech.voice,
        default_language=settings.speech.language,
    )


def preview_text(text: str, split: list[str]) -> str:
    """The first sentences of ``split`` (the script's sentences) that fit PREVIEW_MAX_CHARS; the first one always."""
    chosen: list[str] = []
    for sentence in split:
        if chosen and len(" ".join([*chosen, sentence])) > PREVIEW_MAX_CHARS:
            break
        chosen.append(sentence[:PREVIEW_MAX_CHARS])
    return " ".join(chosen) if chosen else text.strip()[:PREVIEW_MAX_CHARS]


def speak_preview(settings: WebSettings, wanted: PreviewRequest) -> bytes:
    """A WAV of the script's start, spoken with the chosen voice. Raises WebError speech.preview_failed (400)."""
    from heygemd.speech import SpeechError, open_voice, resolve_language, speak_to_wav, split_sentences

    try:
        choice = VoiceChoice.parse(wanted.voice)
    except ValueError as err:
        raise WebError(400, "speech.bad_voice", str(err), voice=wanted.voice) from None
    text = preview_text(wanted.text, split_sentences(wanted.text))
    if not text:
        raise WebError(400, "speech.nothing_to_say", "Type a script first.")
    try:
        language = resolve_language(wanted.language, text)
        voice = open_voice(choice, language, settings.speech.kokoro_files())
        with tempfile.TemporaryDirectory() as scratch:
            result = speak_to_wav(text, voice, language, wanted.speed, Path(scratch) / "preview.wav")
            return result.path.read_bytes()
    except SpeechError as err:
        raise WebError(400, "speech.preview_failed", err.reason, code=err.code, reason=err.reason) from None
