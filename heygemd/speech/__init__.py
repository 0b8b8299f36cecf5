"""Speech from a script: a typed ``Voice`` port, espeak-ng (always there) and Kokoro-82M (when its files are).

Engine level: it knows nothing of folders, jobs or the daemon; the daemon imports it, never the reverse.
Typical use::

    voice = open_voice(VoiceChoice(engine="espeak-ng"), KokoroFiles(...))
    result = speak_to_wav("Hello. How are you?", voice, "en", 1.0, Path("speech.wav"))
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from heygemd.speech.catalog import open_voice, usable_voices
    from heygemd.speech.choice import KokoroFiles, VoiceChoice
    from heygemd.speech.errors import SpeechError
    from heygemd.speech.synthesis import SpeechResult, speak_to_wav
    from heygemd.speech.text import check_script, resolve_language, split_sentences
    from heygemd.speech.voice import Voice, VoiceInfo

# The package's names are imported on first use (PEP 562), so that the config, the web page and the CLI's
# light commands can import the light modules here (choice) without numpy or the engines.
_HOMES = {
    "KokoroFiles": "heygemd.speech.choice",
    "SpeechError": "heygemd.speech.errors",
    "SpeechResult": "heygemd.speech.synthesis",
    "Voice": "heygemd.speech.voice",
    "VoiceChoice": "heygemd.speech.choice",
    "VoiceInfo": "heygemd.speech.voice",
    "check_script": "heygemd.speech.text",
    "open_voice": "heygemd.speech.catalog",
    "resolve_language": "heygemd.speech.text",
    "speak_to_wav": "heygemd.speech.synthesis",
    "split_sentences": "heygemd.speech.text",
    "usable_voices": "heygemd.speech.catalog",
}


def __getattr__(name: str) -> object:
    import importlib

    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)


__all__ = [
    "KokoroFiles",
    "SpeechError",
    "SpeechResult",
    "Voice",
    "VoiceChoice",
    "VoiceInfo",
    "check_script",
    "open_voice",
    "resolve_language",
    "speak_to_wav",
    "split_sentences",
    "usable_voices",
]
