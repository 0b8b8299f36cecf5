"""A script's text: languages, writing systems, checks and sentences.

Languages are named by ISO 639-1 codes (``en``, ``zh``, ``fr`` ...). ``auto`` takes the language from
the writing system most of the script's letters are in (Han: ``zh``, Latin: ``en``, ...).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

from heygemd.codes import ErrorCode
from heygemd.speech.errors import SpeechError

AUTO_LANGUAGE = "auto"
LATIN, HAN, KANA, HANGUL, CYRILLIC, GREEK, ARABIC, HEBREW, DEVANAGARI, THAI = (
    "Latin", "Han", "Kana", "Hangul", "Cyrillic", "Greek", "Arabic", "Hebrew", "Devanagari", "Thai",
)  # fmt: skip
# The language ``auto`` picks for a script's dominant writing system.
LANGUAGE_OF_SCRIPT: dict[str, str] = {
    LATIN: "en", HAN: "zh", KANA: "ja", HANGUL: "ko", CYRILLIC: "ru", GREEK: "el", ARABIC: "ar", HEBREW: "he",
    DEVANAGARI: "hi", THAI: "th",
}  # fmt: skip
# The writing systems each language is written in; any other language is taken as written in Latin letters.
SCRIPTS_OF_LANGUAGE: dict[str, frozenset[str]] = {
    "zh": frozenset({HAN}),
    "ja": frozenset({HAN, KANA}),
    "ko": frozenset({HANGUL, HAN}),
    "ru": frozenset({CYRILLIC}), "uk": frozenset({CYRILLIC}), "bg": frozenset({CYRILLIC}), "sr": frozenset({CYRILLIC, LATIN}),
    "el": frozenset({GREEK}), "ar": frozenset({ARABIC}), "fa": frozenset({ARABIC}), "he": frozenset({HEBREW}),
    "hi": frozenset({DEVANAGARI}), "mr": frozenset({DEVANAGARI}), "ne": frozenset({DEVANAGARI}), "th": frozenset({THAI}),
}  # fmt: skip
# A script is in a language's writing system when at least this share of its letters are.
MIN_SHARE_IN_SCRIPT = 0.5
# A sentence longer than this is cut at a comma or a space: a voice's model takes a bounded input.
MAX_SENTENCE_CHARS = 300
_UNICODE_NAME_PREFIXES: tuple[tuple[str, str], ...] = (
    ("CJK UNIFIED", HAN), ("CJK COMPATIBILITY IDEOGRAPH", HAN), ("HIRAGANA", KANA), ("KATAKANA", KANA),
    ("HANGUL", HANGUL), ("LATIN", LATIN), ("CYRILLIC", CYRILLIC), ("GREEK", GREEK), ("ARABIC", ARABIC),
    ("HEBREW", HEBREW), ("DEVANAGARI", DEVANAGARI), ("THAI", THAI),
)  # fmt: skip
# A sentence ends at . ! ? … followed by a space (or the end), or at the CJK full stops, which need no space.
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|(?<=[。！？；])|\n\s*\n")
_SOFT_BREAK = re.compile(r"(?<=[,;:，、；：])\s*|\s+")


def writing_system(char: str) -> str | None:
    """The writing system of one letter (``Han``, ``Latin`` ...); None for digits, punctuation, spaces, symbols."""
    if not char.isalpha():
        return None
    name = unicodedata.name(char, "")
    for prefix, system in _UNICODE_NAME_PREFIXES:
        if name.startswith(prefix):
            return system
    return "Other"


def letter_counts(text: str) -> Counter[str]:
    """How many letters of each writing system ``text`` has."""
    return Counter(system for system in map(writing_system, text) if system is not None)


def resolve_language(language: str, text: str) -> str:
    """``language``, or for ``auto`` the language of the script's dominant writing system (Latin: ``en``)."""
    if language != AUTO_LANGUAGE:
        return language.lower()
    counts = letter_counts(text)
    if not counts:
        return LANGUAGE_OF_SCRIPT[LATIN]
    dominant = counts.most_common(1)[0][0]
    return LANGUAGE_OF_SCRIPT.get(dominant, LANGUAGE_OF_SCRIPT[LATIN])


def check_script(
    text: str, name: str, language: str, voice_languages: tuple[str, ...], voice_name: str, max_chars: int
) -> None:
    """Refuse a script that cannot be spoken well: empty, too long, or in a language the voice does not speak.

    ``max_chars`` 0: no limit. Raises SpeechError with its code.
    """
    if not letter_counts(text) and not any(char.isdigit() for char in text):
        raise SpeechError(f'The script "{name}" has no words to speak.', code=ErrorCode.SCRIPT_EMPTY)
    if max_chars and len(text) > max_chars:
        raise SpeechError(
            f'The script "{name}" has {len(text)} characters; this service accepts scripts of up to {max_chars}. '
            "Split it into several scripts, or ask the operator to raise limits.max_script_chars.",
            [f"{name}: {len(text)} characters (limits.max_script_chars = {max_chars})"],
            code=ErrorCode.LIMIT_SCRIPT_TOO_LONG,
        )
    if language not in voice_languages:
        raise SpeechError(
            f'The voice {voice_name} cannot speak the language "{language}" of the script "{name}" '
            f"(it speaks {', '.join(voice_languages)}). Choose another voice or language in job.toml.",
            code=ErrorCode.SCRIPT_LANGUAGE_UNSUPPORTED,
        )
    counts = letter_counts(text)
    expected = SCRIPTS_OF_LANGUAGE.get(language, frozenset({LATIN}))
    in_expected = sum(count for system, count in counts.items() if system in expected)
    total = sum(counts.values())
    if total and in_expected / total < MIN_SHARE_IN_SCRIPT:
        found = ", ".join(f"{system} {count}" for system, count in counts.most_common(3))
        raise SpeechError(
            f'The script "{name}" is not written in the language "{language}" asked for: most of its letters are '
            f"{counts.most_common(1)[0][0]} ({found}), which {voice_name} would speak as gibberish. Set language "
            'in job.toml to the script\'s language (or "auto").',
            code=ErrorCode.SCRIPT_LANGUAGE_UNSUPPORTED,
        )


def split_sentences(text: str, max_chars: int = MAX_SENTENCE_CHARS) -> list[str]:
    """The script's sentences, in order, each at most ``max_chars`` long, none empty.

    Sentences end at ``. ! ? …`` before a space, at ``。！？；`` and at blank lines; single line breaks are spaces.
    A longer sentence is cut after a comma, else at a space, else anywhere.
    """
    sentences: list[str] = []
    for part in _SENTENCE_END.split(text):
        sentence = " ".join(part.split())
        if sentence:
            sentences.extend(_cut(sentence, max_chars))
    return sentences


def _cut(sentence: str, max_chars: int) -> list[str]:
    pieces: list[str] = []
    while len(sentence) > max_chars:
        window = sentence[: max_chars + 1]
        breaks = [match.end() for match in _SOFT_BREAK.finditer(window) if 0 < match.end() <= max_chars]
        comma_breaks = [
            end for end in breaks if window[end - 1] in ",;:，、；：" or window[:end].rstrip()[-1:] in ",;:，、；："
        ]
        cut = (comma_breaks or breaks or [max_chars])[-1]
        pieces.append(sentence[:cut].strip())
        sentence = sentence[cut:].strip()
    if sentence:
        pieces.append(sentence)
    return [piece for piece in pieces if piece]
