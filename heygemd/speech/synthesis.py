"""A whole script to one WAV: spoken sentence by sentence, written as it goes (memory: one sentence)."""

from __future__ import annotations

import hashlib
import threading
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from heygemd.atomic import atomic_output
from heygemd.codes import ErrorCode
from heygemd.speech.errors import SpeechError
from heygemd.speech.text import split_sentences
from heygemd.speech.voice import Voice, VoiceInfo

SENTENCE_PAUSE_SECONDS = 0.3  # silence between two sentences
SAMPLE_WIDTH_BYTES = 2  # int16
SILENT_PEAK = 64  # int16 peak (-54 dBFS) below which a sentence made no sound (espeak-ng "speaks" symbols as silence)
# progress(sentences done, sentences in all)
SpeechProgress = Callable[[int, int], None]


@dataclass(frozen=True)
class SpeechResult:
    path: Path
    voice: VoiceInfo
    language: str
    speed: float
    sentences: int
    samples: int
    text_sha256: str

    @property
    def duration_seconds(self) -> float:
        return self.samples / self.voice.sample_rate


class SpeechCancelled(SpeechError):
    code = ErrorCode.CANCELLED


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def speak_to_wav(
    text: str,
    voice: Voice,
    language: str,
    speed: float,
    output: Path,
    *,
    progress: SpeechProgress | None = None,
    cancel: threading.Event | None = None,
    sentence_pause_seconds: float = SENTENCE_PAUSE_SECONDS,
) -> SpeechResult:
    """Speak ``text`` into ``output`` (mono 16-bit WAV at the voice's rate), written under a temporary name.

    The caller has checked the script (text.check_script). Raises SpeechError (``speech.failed`` when no
    sentence made a sound; ``cancelled`` when ``cancel`` was set).
    """
    sentences = split_sentences(text)
    rate = voice.info.sample_rate
    pause = np.zeros(int(round(sentence_pause_seconds * rate)), np.int16)
    written = 0
    voiced = False
    with atomic_output(output) as partial:
        with wave.open(str(partial), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(SAMPLE_WIDTH_BYTES)
            wav.setframerate(rate)
            for index, sentence in enumerate(sentences):
                if cancel is not None and cancel.is_set():
                    raise SpeechCancelled("The speech was cancelled.")
                samples = voice.speak(sentence, language, speed)
                if samples.size:
                    if written:
                        wav.writeframes(pause.tobytes())
                        written += pause.size
                    wav.writeframes(np.ascontiguousarray(samples, dtype="<i2").tobytes())
                    written += samples.size
                    voiced = voiced or int(np.abs(samples.astype(np.int32)).max()) > SILENT_PEAK
                if progress is not None:
                    progress(index + 1, len(sentences))
        if not voiced:
            raise SpeechError(
                f"The voice {voice.info.name} produced no sound for the script ({len(sentences)} sentences).",
                code=ErrorCode.SPEECH_FAILED,
            )
    return SpeechResult(
        path=output,
        voice=voice.info,
        language=language,
        speed=speed,
        sentences=len(sentences),
        samples=written,
        text_sha256=text_sha256(text),
    )
