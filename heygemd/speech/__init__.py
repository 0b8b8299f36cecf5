"""Speech from a script: a typed ``Voice`` port, espeak-ng (always there) and Kokoro-82M (when its files are).

Engine level: it knows nothing of folders, jobs or the daemon; the daemon imports it, never the reverse.
Typical use::

    voice = open_voice(VoiceChoice(engine="espeak-ng"), KokoroFiles(...))
    result = speak_to_wav("Hello. How are you?", voice, "en", 1.0, Path("speech.wav"))
"""

from heygemd.speech.catalog import KokoroFiles, VoiceChoice, open_voice, usable_voices
from heygemd.speech.errors import SpeechError
from heygemd.speech.synthesis import SpeechResult, speak_to_wav
from heygemd.speech.text import check_script, resolve_language, split_sentences
from heygemd.speech.voice import Voice, VoiceInfo

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
