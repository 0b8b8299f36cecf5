"""espeak-ng through the library espeakng-loader ships: English and Mandarin speech, the script's checks and
refusals, sentence splitting, progress, cancelling and flat memory (no mocks: the real library speaks)."""

from __future__ import annotations

import threading
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from speech_factory import read_wav

from heygemd.codes import ErrorCode
from heygemd.speech import KokoroFiles, SpeechError, VoiceChoice, check_script, open_voice, resolve_language, speak_to_wav
from heygemd.speech.synthesis import SpeechCancelled
from heygemd.speech.text import split_sentences

NO_KOKORO = KokoroFiles(Path("/nonexistent/kokoro.onnx"), Path("/nonexistent/voices.bin"))
ENGLISH = (
    "Welcome to our spring campaign. This year we bring three new products to market! "
    "Each one was designed with our customers, and each one is ready today."
)  # 29 words
CHINESE = "欢迎来到我们的春季活动。今年我们推出三款新产品！每一款都是和客户一起设计的，今天就可以买到。"  # 41 Han


def espeak(language: str):
    return open_voice(VoiceChoice.parse("espeak-ng"), language, NO_KOKORO)


def loudness(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))


def test_english_is_spoken_at_a_plausible_rate(tmp_path: Path) -> None:
    result = speak_to_wav(ENGLISH, espeak("en"), "en", 1.0, tmp_path / "speech.wav")
    samples, rate = read_wav(tmp_path / "speech.wav")
    assert rate == result.voice.sample_rate == 22050
    assert samples.size == result.samples
    assert result.voice.name == "espeak-ng:en-us" and result.sentences == 3
    words_per_second = 29 / result.duration_seconds
    assert 1.5 < words_per_second < 5.0, result.duration_seconds  # people speak 2-3 words a second
    assert loudness(samples) > 500  # speech, not silence


def test_chinese_is_spoken_by_the_mandarin_voice(tmp_path: Path) -> None:
    result = speak_to_wav(CHINESE, espeak("zh"), "zh", 1.0, tmp_path / "speech.wav")
    samples, _ = read_wav(tmp_path / "speech.wav")
    assert result.voice.name == "espeak-ng:cmn" and result.sentences == 3
    syllables_per_second = 41 / result.duration_seconds  # one Han character is one syllable
    assert 2.0 < syllables_per_second < 9.0, result.duration_seconds
    assert loudness(samples) > 500


def test_speed_two_speaks_in_about_half_the_time(tmp_path: Path) -> None:
    normal = speak_to_wav(ENGLISH, espeak("en"), "en", 1.0, tmp_path / "a.wav")
    fast = speak_to_wav(ENGLISH, espeak("en"), "en", 2.0, tmp_path / "b.wav")
    assert 0.35 < fast.duration_seconds / normal.duration_seconds < 0.7


def test_the_report_fields_name_the_voice_its_library_hash_and_the_text_hash(tmp_path: Path) -> None:
    import hashlib

    result = speak_to_wav(ENGLISH, espeak("en"), "en", 1.0, tmp_path / "speech.wav")
    assert result.text_sha256 == hashlib.sha256(ENGLISH.encode()).hexdigest()
    assert result.voice.model_file == "libespeak-ng.so" and len(result.voice.model_sha256 or "") == 64
    assert "GPL" in result.voice.licence


def test_progress_is_reported_per_sentence(tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    speak_to_wav(
        ENGLISH, espeak("en"), "en", 1.0, tmp_path / "speech.wav", progress=lambda done, total: seen.append((done, total))
    )
    assert seen == [(1, 3), (2, 3), (3, 3)]


def test_a_cancelled_speech_leaves_no_file(tmp_path: Path) -> None:
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(SpeechCancelled) as caught:
        speak_to_wav(ENGLISH, espeak("en"), "en", 1.0, tmp_path / "speech.wav", cancel=cancel)
    assert caught.value.code is ErrorCode.CANCELLED
    assert list(tmp_path.iterdir()) == []


def test_a_long_script_is_spoken_with_flat_memory(tmp_path: Path) -> None:
    script = " ".join(f"This is sentence number {index}, spoken on its own." for index in range(120))
    tracemalloc.start()
    try:
        result = speak_to_wav(script, espeak("en"), "en", 1.0, tmp_path / "long.wav")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    wav_bytes = result.samples * 2
    assert result.sentences == 120 and result.duration_seconds > 200
    assert peak < wav_bytes / 10, (peak, wav_bytes)  # one sentence at a time, never the whole speech


# ------------------------------------------------------------------------- refusals


def refused(text: str, language: str = "en", max_chars: int = 1000) -> ErrorCode:
    voice = espeak(language)
    with pytest.raises(SpeechError) as caught:
        check_script(text, "script.txt", language, voice.info.languages, voice.info.name, max_chars)
    assert "script.txt" in caught.value.reason or "espeak" in caught.value.reason
    return caught.value.code


def test_an_empty_script_is_refused() -> None:
    assert refused("") is ErrorCode.SCRIPT_EMPTY
    assert refused("  \n\t ...  !!  \n") is ErrorCode.SCRIPT_EMPTY


def test_a_script_over_the_limit_is_refused_with_the_key_to_raise() -> None:
    voice = espeak("en")
    with pytest.raises(SpeechError) as caught:
        check_script("word " * 300, "long.txt", "en", voice.info.languages, voice.info.name, 1000)
    assert caught.value.code is ErrorCode.LIMIT_SCRIPT_TOO_LONG
    assert "limits.max_script_chars" in caught.value.reason and "1500" in caught.value.reason


def test_a_chinese_script_for_an_english_voice_is_refused_not_spoken_as_gibberish() -> None:
    assert refused(CHINESE, "en") is ErrorCode.SCRIPT_LANGUAGE_UNSUPPORTED
    assert refused(ENGLISH, "zh") is ErrorCode.SCRIPT_LANGUAGE_UNSUPPORTED


def test_a_language_espeak_cannot_speak_is_refused() -> None:
    with pytest.raises(SpeechError) as caught:
        espeak("xx")
    assert caught.value.code is ErrorCode.SCRIPT_LANGUAGE_UNSUPPORTED


def test_a_script_of_symbols_only_makes_no_sound_and_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SpeechError) as caught:
        speak_to_wav("— … —", espeak("en"), "en", 1.0, tmp_path / "speech.wav")
    assert caught.value.code is ErrorCode.SPEECH_FAILED
    assert not (tmp_path / "speech.wav").exists()


def test_auto_language_follows_the_writing_system() -> None:
    assert resolve_language("auto", CHINESE) == "zh"
    assert resolve_language("auto", ENGLISH) == "en"
    assert resolve_language("auto", "Привет, мир") == "ru"
    assert resolve_language("fr", ENGLISH) == "fr"


def test_auto_voice_falls_back_to_espeak_without_kokoro_files() -> None:
    assert open_voice(VoiceChoice.parse("auto"), "zh", NO_KOKORO).info.engine == "espeak-ng"


def test_a_voice_choice_of_an_unknown_engine_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="espeak-ng, kokoro"):
        VoiceChoice.parse("festival")
    assert VoiceChoice.parse("kokoro:af_bella") == VoiceChoice("kokoro", "af_bella")


# ------------------------------------------------------------------------- sentences


def test_sentences_split_at_stops_cjk_stops_and_blank_lines() -> None:
    assert split_sentences("One. Two!  Three,\nstill three.\n\nFour") == ["One.", "Two!", "Three, still three.", "Four"]
    assert split_sentences("你好。今天好吗？很好！") == ["你好。", "今天好吗？", "很好！"]
    assert split_sentences("Dr.Smith paid 3.50 dollars.") == ["Dr.Smith paid 3.50 dollars."]


def test_a_long_sentence_is_cut_after_a_comma_then_at_a_space() -> None:
    sentence = "alpha beta gamma, " * 30
    pieces = split_sentences(sentence, max_chars=100)
    assert all(len(piece) <= 100 for piece in pieces)
    assert all(piece.endswith(",") for piece in pieces[:-1])
    assert " ".join(pieces).split() == sentence.split()
    unbroken = "x" * 250
    assert split_sentences(unbroken, max_chars=100) == ["x" * 100, "x" * 100, "x" * 50]
