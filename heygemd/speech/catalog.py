"""Which voice speaks a script: the job's choice (``auto``, ``espeak-ng``, ``kokoro`` or ``kokoro:<speaker>``)."""

from __future__ import annotations

from dataclasses import dataclass

from heygemd.codes import ErrorCode
from heygemd.speech.choice import AUTO_VOICE, ENGINES, ESPEAK, KOKORO, KokoroFiles, VoiceChoice
from heygemd.speech.errors import SpeechError
from heygemd.speech.espeak import EspeakVoice, espeak_languages, espeak_voice_for
from heygemd.speech.kokoro import KokoroVoice, load_model, speaker_language
from heygemd.speech.voice import Voice

__all__ = ["AUTO_VOICE", "ENGINES", "KokoroFiles", "VoiceChoice", "VoiceStatus", "open_voice", "usable_voices"]


def _default_speaker(files: KokoroFiles, language: str) -> str | None:
    return dict(files.default_speakers).get(language)


def open_voice(choice: VoiceChoice, language: str, kokoro: KokoroFiles) -> Voice:
    """The voice that speaks ``language`` for this choice.

    ``auto``: Kokoro when its files are present and it speaks the language, else espeak-ng. Raises SpeechError:
    ``speech.voice_unavailable`` (Kokoro's files missing or damaged, unknown speaker) or
    ``script.language_unsupported``.
    """
    if choice.engine == AUTO_VOICE:
        speaker = _default_speaker(kokoro, language)
        if speaker is not None and not kokoro.missing():
            return KokoroVoice(kokoro, speaker)
        return _espeak(language)
    if choice.engine == ESPEAK:
        return _espeak(language)
    speaker = choice.speaker or _default_speaker(kokoro, language)
    spoken = speaker_language(speaker) if speaker else None
    if speaker is None or spoken is None or spoken[0] != language:
        raise SpeechError(
            f'The Kokoro voice {speaker or "(no speaker)"} cannot speak the language "{language}" '
            "(Kokoro speaks en with a*/b* speakers and zh with z* speakers).",
            code=ErrorCode.SCRIPT_LANGUAGE_UNSUPPORTED,
        )
    return KokoroVoice(kokoro, speaker)


def _espeak(language: str) -> Voice:
    if espeak_voice_for(language) is None:
        raise SpeechError(
            f'espeak-ng cannot speak the language "{language}" (it speaks {", ".join(espeak_languages())}).',
            code=ErrorCode.SCRIPT_LANGUAGE_UNSUPPORTED,
        )
    return EspeakVoice(language)


@dataclass(frozen=True)
class VoiceStatus:
    """One engine as the doctor shows it."""

    engine: str
    usable: bool
    languages: tuple[str, ...]
    detail: str  # the files and hash, or what is missing


def usable_voices(kokoro: KokoroFiles) -> list[VoiceStatus]:
    """espeak-ng and Kokoro: usable or not, and why. Loads each once (a warm voice afterwards)."""
    statuses: list[VoiceStatus] = []
    try:
        languages = espeak_languages()
        statuses.append(VoiceStatus(ESPEAK, True, languages, "the library and data shipped by espeakng-loader"))
    except (OSError, SpeechError) as err:
        statuses.append(VoiceStatus(ESPEAK, False, (), f"cannot load: {err}"))
    missing = kokoro.missing()
    if missing:
        detail = "missing " + " and ".join(str(path) for path in missing) + " (heygemd fetch-models)"
        statuses.append(VoiceStatus(KOKORO, False, (), detail))
        return statuses
    try:
        model = load_model(kokoro)
    except (SpeechError, ImportError) as err:
        statuses.append(VoiceStatus(KOKORO, False, (), str(err)))
        return statuses
    languages = tuple(sorted({spoken[0] for s in model.speakers if (spoken := speaker_language(s)) is not None}))
    detail = f"{kokoro.model} (sha256 {model.model_sha256[:12]}…), {len(model.speakers)} speakers"
    statuses.append(VoiceStatus(KOKORO, bool(languages), languages, detail))
    return statuses
