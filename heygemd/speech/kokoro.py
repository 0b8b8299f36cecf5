"""Kokoro-82M through kokoro-onnx (MIT code; Apache-2.0 weights), when its model and voices files are present.

The model file is the ONNX export (``kokoro-v1.0.onnx``, or its int8 build): inputs ``tokens`` (int64,
1 x n phoneme ids), ``style`` (float32, 1 x 256) and ``speed`` (float32, 1); output the waveform, float32,
24 kHz. The voices file is a numpy archive of style tables, one per speaker, shape (510, 1, 256). A
speaker's name starts with its language: ``a``/``b`` English (American/British), ``z`` Mandarin.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from heygemd.codes import ErrorCode
from heygemd.speech.choice import KOKORO, MAX_SPEED, MIN_SPEED, KokoroFiles
from heygemd.speech.errors import SpeechError
from heygemd.speech.files import sha256_of
from heygemd.speech.voice import VoiceInfo

ENGINE = KOKORO
LICENCE = "Apache-2.0 (Kokoro-82M weights), MIT (kokoro-onnx)"
SAMPLE_RATE = 24_000
STYLE_SHAPE = (510, 1, 256)
# A speaker's first letter -> (our language code, the phonemizer's language for kokoro-onnx). English and Mandarin only:
# the other prefixes' phonemes come from espeak-ng in kokoro-onnx and are not what those voices were trained on.
LANGUAGE_OF_PREFIX: dict[str, tuple[str, str]] = {"a": ("en", "en-us"), "b": ("en", "en-gb"), "z": ("zh", "cmn")}


def speaker_language(speaker: str) -> tuple[str, str] | None:
    """(language code, phonemizer language) of a speaker name, or None for a prefix heygemd does not speak."""
    return LANGUAGE_OF_PREFIX.get(speaker[:1].lower()) if "_" in speaker else None


class _LoadedModel:
    """kokoro-onnx's ``Kokoro`` over one model and voices file; shared by every speaker of those files."""

    def __init__(self, files: KokoroFiles) -> None:
        missing = files.missing()
        if missing:
            raise SpeechError(
                f"The Kokoro voice needs {' and '.join(str(path) for path in missing)}: run heygemd fetch-models, or "
                'choose voice = "espeak-ng".',
                code=ErrorCode.SPEECH_VOICE_UNAVAILABLE,
            )
        from kokoro_onnx import Kokoro

        try:
            self.kokoro = Kokoro(str(files.model), str(files.voices))
        except Exception as err:  # onnxruntime and numpy raise many kinds for a damaged file
            raise SpeechError(
                f"The Kokoro files {files.model.name} / {files.voices.name} cannot be loaded: {err}",
                code=ErrorCode.SPEECH_VOICE_UNAVAILABLE,
            ) from None
        styles: Any = self.kokoro.voices  # a numpy archive (NpzFile), typed by kokoro-onnx as an array
        self.speakers = tuple(sorted(styles.keys()))
        for speaker in self.speakers:
            shape = tuple(styles[speaker].shape)
            if shape != STYLE_SHAPE:
                raise SpeechError(
                    f"{files.voices.name}: the style table of {speaker} has shape {shape}, not {STYLE_SHAPE}: "
                    "this is not a Kokoro-82M voices file.",
                    code=ErrorCode.SPEECH_VOICE_UNAVAILABLE,
                )
        self.model_sha256 = sha256_of(files.model)
        self.lock = threading.Lock()  # one inference at a time: onnxruntime uses every core already


_models: dict[tuple[Path, Path, int, int], _LoadedModel] = {}
_models_lock = threading.Lock()


def load_model(files: KokoroFiles) -> _LoadedModel:
    """The loaded model for these files, loaded once while they do not change (a warm voice for every job)."""
    missing = files.missing()
    key = (
        files.model.resolve(),
        files.voices.resolve(),
        0 if missing else files.model.stat().st_mtime_ns,
        0 if missing else files.voices.stat().st_mtime_ns,
    )
    with _models_lock:
        if key not in _models:
            _models[key] = _LoadedModel(files)
        return _models[key]


class KokoroVoice:
    """One Kokoro speaker (``af_heart``, ``zf_xiaobei`` ...), speaking its own language at 24 kHz."""

    def __init__(self, files: KokoroFiles, speaker: str) -> None:
        model = load_model(files)
        if speaker not in model.speakers:
            raise SpeechError(
                f"{files.voices.name} has no Kokoro speaker {speaker!r} (it has {', '.join(model.speakers)}).",
                code=ErrorCode.SPEECH_VOICE_UNAVAILABLE,
            )
        language = speaker_language(speaker)
        self._model = model
        self._speaker = speaker
        self._info = VoiceInfo(
            engine=ENGINE,
            speaker=speaker,
            sample_rate=SAMPLE_RATE,
            languages=(language[0],) if language else (),
            licence=LICENCE,
            model_file=files.model.name,
            model_sha256=model.model_sha256,
        )

    @property
    def info(self) -> VoiceInfo:
        return self._info

    def speak(self, sentence: str, language: str, speed: float) -> np.ndarray:
        spoken = speaker_language(self._speaker)
        if spoken is None or spoken[0] != language:
            raise SpeechError(
                f'The Kokoro speaker {self._speaker} cannot speak the language "{language}".',
                code=ErrorCode.SCRIPT_LANGUAGE_UNSUPPORTED,
            )
        with self._model.lock:
            try:
                samples, rate = self._model.kokoro.create(
                    sentence, voice=self._speaker, speed=min(max(speed, MIN_SPEED), MAX_SPEED), lang=spoken[1]
                )
            except ValueError:  # kokoro-onnx: the sentence gave no phonemes of its vocabulary
                return np.zeros(0, np.int16)
        if rate != SAMPLE_RATE:
            raise SpeechError(f"Kokoro returned {rate} Hz, not {SAMPLE_RATE} Hz.", code=ErrorCode.SPEECH_FAILED)
        return to_int16(np.asarray(samples, dtype=np.float32).ravel())


def to_int16(samples: np.ndarray) -> np.ndarray:
    """float samples in [-1, 1] (clipped) -> int16. Shape (n,) -> (n,)."""
    return (np.clip(np.nan_to_num(samples), -1.0, 1.0) * 32767.0).astype(np.int16)
