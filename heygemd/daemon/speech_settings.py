"""The ``[speech]`` section: the voice, language and speed a script is spoken with when its job.toml says nothing,
and where Kokoro's files are (``heygemd fetch-models`` downloads them from the URLs below)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from heygemd.engine.weights import KOKORO_MODEL, KOKORO_VOICES
from heygemd.speech.choice import MAX_SPEED, MIN_SPEED, KokoroFiles, VoiceChoice

DEFAULT_MAX_SCRIPT_CHARS = 20_000  # about 25 minutes of speech: a long talk; longer is almost always the wrong file


class SpeechConfig(BaseModel):
    """How scripts are spoken. A job's job.toml may set voice, language and speed for its own scripts."""

    model_config = ConfigDict(extra="forbid")

    voice: str = Field(
        "auto",
        description='auto (Kokoro when its files are present, else espeak-ng), espeak-ng, kokoro or "kokoro:<speaker>"',
    )
    language: str = Field("auto", description="en, zh, fr ... or auto (from the script's writing system)")
    speed: float = Field(1.0, ge=MIN_SPEED, le=MAX_SPEED, description="1.0 is the voice's natural rate")
    kokoro_model: Path = Field(Path("checkpoints") / KOKORO_MODEL.file_name, description="Kokoro-82M ONNX model")
    kokoro_voices: Path = Field(Path("checkpoints") / KOKORO_VOICES.file_name, description="Kokoro voices archive")
    kokoro_english_speaker: str = Field("af_heart", description="the Kokoro speaker for en when the job names none")
    kokoro_mandarin_speaker: str = Field("zf_xiaobei", description="the Kokoro speaker for zh when the job names none")
    kokoro_model_url: str = Field(KOKORO_MODEL.url, description="what fetch-models downloads for kokoro_model")
    kokoro_model_sha256: str = Field(KOKORO_MODEL.sha256, min_length=8, description="its sha256 (or 8+ first digits)")
    kokoro_voices_url: str = Field(KOKORO_VOICES.url, description="what fetch-models downloads for kokoro_voices")
    kokoro_voices_sha256: str = Field(KOKORO_VOICES.sha256, min_length=8, description="its sha256 (or 8+ first digits)")

    @field_validator("voice")
    @classmethod
    def _known_voice(cls, voice: str) -> str:
        VoiceChoice.parse(voice)
        return voice

    def kokoro_files(self) -> KokoroFiles:
        return KokoroFiles(
            self.kokoro_model,
            self.kokoro_voices,
            default_speakers=(("en", self.kokoro_english_speaker), ("zh", self.kokoro_mandarin_speaker)),
        )
