"""The ``Voice`` port: what the synthesis loop needs of a text-to-speech engine."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class VoiceInfo:
    """What a report says about a voice."""

    engine: str  # "espeak-ng" or "kokoro"
    speaker: str  # the engine's own voice name: "en-us", "cmn", "af_heart", "zf_xiaobei"
    sample_rate: int  # Hz of every sentence it returns
    languages: tuple[str, ...]  # language codes it can speak ("en", "zh", ...)
    licence: str
    model_file: str | None = None  # the weights file, for voices that have one
    model_sha256: str | None = None

    @property
    def name(self) -> str:
        return f"{self.engine}:{self.speaker}"


class Voice(Protocol):
    """A voice speaks one sentence at a time; the caller joins them (memory stays one sentence large)."""

    @property
    def info(self) -> VoiceInfo: ...

    def speak(self, sentence: str, language: str, speed: float) -> np.ndarray:
        """Samples of ``sentence`` spoken in ``language``: shape (n,), int16, at ``info.sample_rate``.

        ``speed`` 1.0 is the voice's natural rate; 2.0 twice as fast.
        """
        ...
