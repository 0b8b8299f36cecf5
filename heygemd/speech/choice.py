"""What a job or the config asks of a voice, in light types the config can import without numpy or the engines.

The names of the engines, the speaking-rate range, a parsed voice choice and where Kokoro's files are.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ESPEAK = "espeak-ng"
KOKORO = "kokoro"
AUTO_VOICE = "auto"
ENGINES = (AUTO_VOICE, ESPEAK, KOKORO)

# The speaking rates a script may ask for (1.0: the voice's natural rate); Kokoro accepts exactly this range.
MIN_SPEED, MAX_SPEED = 0.5, 2.0


@dataclass(frozen=True)
class VoiceChoice:
    """``engine`` and, for Kokoro, optionally the speaker (``kokoro:af_bella``)."""

    engine: str = AUTO_VOICE
    speaker: str | None = None

    @classmethod
    def parse(cls, text: str) -> VoiceChoice:
        """``"kokoro:af_heart"`` -> VoiceChoice("kokoro", "af_heart"). Raises ValueError for an unknown engine."""
        engine, _, speaker = text.strip().partition(":")
        engine = engine.lower()
        if engine not in ENGINES:
            raise ValueError(
                f"voice {text!r}: the engine must be one of {', '.join(ENGINES)} (kokoro:<speaker> for one speaker)"
            )
        if speaker and engine != KOKORO:
            raise ValueError(f"voice {text!r}: only kokoro takes a speaker (kokoro:af_heart)")
        return cls(engine, speaker or None)

    def __str__(self) -> str:
        return f"{self.engine}:{self.speaker}" if self.speaker else self.engine


@dataclass(frozen=True)
class KokoroFiles:
    """Where Kokoro's two files are, and the speaker used for each language when the job names none."""

    model: Path
    voices: Path
    default_speakers: tuple[tuple[str, str], ...] = (("en", "af_heart"), ("zh", "zf_xiaobei"))

    def missing(self) -> list[Path]:
        return [path for path in (self.model, self.voices) if not path.is_file()]
