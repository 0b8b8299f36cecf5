"""espeak-ng through its shared library, as the ``espeakng-loader`` wheel ships it (library and data), with ctypes.

No binding on PyPI drives espeak-ng's *synthesis* in process and is kept up (the maintained ones phonemize
only, or run the ``espeak-ng`` program), so the few calls of its C API used here are declared below:
``espeak_Initialize`` (synchronous output: samples come back through a callback, nothing is played),
``espeak_SetVoiceByName``, ``espeak_SetParameter`` (rate), ``espeak_SetSynthCallback``, ``espeak_Synth``
and ``espeak_ListVoices``. espeak-ng keeps global state, so one lock serialises every call of the process.
"""

from __future__ import annotations

import ctypes
import threading
from functools import cache
from pathlib import Path

import numpy as np

from heygemd.codes import ErrorCode
from heygemd.speech.choice import ESPEAK
from heygemd.speech.errors import SpeechError
from heygemd.speech.files import sha256_of
from heygemd.speech.voice import VoiceInfo

ENGINE = ESPEAK
LICENCE = "GPL-3.0-or-later (espeak-ng)"
NATURAL_WORDS_PER_MINUTE = 175  # espeak-ng's default rate: speed 1.0
MIN_WORDS_PER_MINUTE, MAX_WORDS_PER_MINUTE = 80, 450
# The espeak-ng voice for a language code where the two differ.
ESPEAK_VOICE_OF_LANGUAGE: dict[str, str] = {"en": "en-us", "zh": "cmn", "yue": "yue"}

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_ESPEAK_CHARS_UTF8 = 1
_ESPEAK_PARAMETER_RATE = 1
_EE_OK = 0
_CONTINUE = 0

_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class _EspeakVoiceEntry(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_void_p),  # (priority byte, name, NUL)*, then a 0 byte
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


class _Library:
    """The loaded library, initialised once per process. Every call holds ``lock``."""

    def __init__(self, library_path: str, data_parent: str) -> None:
        self.library_path = Path(library_path)
        self.lock = threading.Lock()
        self.lib = ctypes.CDLL(library_path)
        self.lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self.lib.espeak_Initialize.restype = ctypes.c_int
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.lib.espeak_SetVoiceByName.restype = ctypes.c_int
        self.lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self.lib.espeak_SetParameter.restype = ctypes.c_int
        self.lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        self.lib.espeak_SetSynthCallback.restype = None
        self.lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
            ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p,
        ]  # fmt: skip
        self.lib.espeak_Synth.restype = ctypes.c_int
        self.lib.espeak_ListVoices.argtypes = [ctypes.c_void_p]
        self.lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_EspeakVoiceEntry))
        rate = self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_parent.encode(), 0)
        if rate <= 0:
            raise SpeechError(
                f"espeak-ng could not start with its data in {data_parent} (espeak_Initialize returned {rate}).",
                code=ErrorCode.SPEECH_VOICE_UNAVAILABLE,
            )
        self.sample_rate = rate
        self._chunks: list[np.ndarray] = []
        self._callback = _SynthCallback(self._collect)  # kept referenced: the library calls it
        self.lib.espeak_SetSynthCallback(self._callback)
        self.voice_languages = self._list_voice_languages()

    def _collect(self, wav: ctypes._Pointer, count: int, _events: int) -> int:
        if wav and count > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        return _CONTINUE

    def _list_voice_languages(self) -> dict[str, str]:
        """Every language tag the data has a voice for (``en-us``, ``cmn``, ``fr-fr`` ...) -> that voice's name."""
        languages: dict[str, str] = {}
        entries = self.lib.espeak_ListVoices(None)
        index = 0
        while entries[index]:
            entry = entries[index].contents
            address, position = entry.languages, 0
            while ctypes.string_at(address + position, 1)[0] != 0:  # a priority byte; 0 ends the list
                tag = ctypes.string_at(address + position + 1)  # the name, up to its NUL
                languages.setdefault(
                    tag.decode("ascii", "replace").lower(), (entry.identifier or entry.name or b"").decode()
                )
                position += len(tag) + 2
            index += 1
        return languages

    def synthesize(self, text: str, voice_name: str, words_per_minute: int) -> np.ndarray:
        encoded = text.encode("utf-8") + b"\0"
        with self.lock:
            if self.lib.espeak_SetVoiceByName(voice_name.encode()) != _EE_OK:
                raise SpeechError(f"espeak-ng has no voice {voice_name!r}.", code=ErrorCode.SPEECH_VOICE_UNAVAILABLE)
            self.lib.espeak_SetParameter(_ESPEAK_PARAMETER_RATE, words_per_minute, 0)
            self._chunks = []
            status = self.lib.espeak_Synth(encoded, len(encoded), 0, _POS_CHARACTER, 0, _ESPEAK_CHARS_UTF8, None, None)
            chunks, self._chunks = self._chunks, []
        if status != _EE_OK:
            raise SpeechError(f"espeak-ng failed to speak a sentence (error {status}).", code=ErrorCode.SPEECH_FAILED)
        return np.concatenate(chunks) if chunks else np.zeros(0, np.int16)


@cache
def _library() -> _Library:
    import espeakng_loader

    data = Path(espeakng_loader.get_data_path())
    return _Library(espeakng_loader.get_library_path(), str(data.parent))


def espeak_voice_for(language: str) -> str | None:
    """The espeak-ng voice that speaks ``language`` (``en`` -> ``en-us``, ``zh`` -> ``cmn``), or None."""
    languages = _library().voice_languages
    tag = ESPEAK_VOICE_OF_LANGUAGE.get(language, language)
    if tag in languages:
        return tag
    return next((name for name in languages if name.split("-")[0] == tag), None)


def espeak_languages() -> tuple[str, ...]:
    """The language codes (the part before ``-``, ``cmn`` as ``zh``) espeak-ng's data can speak, sorted."""
    chinese = {tag: code for code, tag in ESPEAK_VOICE_OF_LANGUAGE.items() if code != tag}
    codes = {chinese.get(tag.split("-")[0], tag.split("-")[0]) for tag in _library().voice_languages}
    return tuple(sorted(codes))


class EspeakVoice:
    """espeak-ng: every language of its data, formant synthesis (robotic but always there), 22,050 Hz."""

    def __init__(self, language: str) -> None:
        library = _library()
        self._library = library
        self._info = VoiceInfo(
            engine=ENGINE,
            speaker=espeak_voice_for(language) or language,
            sample_rate=library.sample_rate,
            languages=espeak_languages(),
            licence=LICENCE,
            model_file=library.library_path.name,  # formant synthesis: the library and its data are the model
            model_sha256=sha256_of(library.library_path),
        )

    @property
    def info(self) -> VoiceInfo:
        return self._info

    def speak(self, sentence: str, language: str, speed: float) -> np.ndarray:
        voice_name = espeak_voice_for(language)
        if voice_name is None:
            raise SpeechError(
                f'espeak-ng cannot speak the language "{language}".', code=ErrorCode.SCRIPT_LANGUAGE_UNSUPPORTED
            )
        words_per_minute = int(round(min(max(NATURAL_WORDS_PER_MINUTE * speed, MIN_WORDS_PER_MINUTE), MAX_WORDS_PER_MINUTE)))
        return self._library.synthesize(sentence, voice_name, words_per_minute)
