"""Audio features benchmark: the numpy module against heygemd's former librosa implementation.

For 1 s, 60 s and 600 s of a speech-like 16 kHz signal, each implementation runs in a fresh
Python process, as the first job of a new service does, and the process reports:

* ``import_s``: importing the implementation (``heygemd.engine.audio``, or the librosa oracle
  in tests/data/librosa_mel.py, which imports librosa);
* ``first_call_s``: the first ``melspectrogram`` of the process, lazy costs included;
* ``warm_call_s``: the fastest of the next ``--repeat`` calls;
* ``first_call_cpu_s``, ``warm_call_cpu_s``: the same in CPU time (all threads of the process),
  which other work on a shared machine disturbs far less than wall time;
* ``call_peak_mb``: the most memory one call holds at once (tracemalloc, which numpy reports
  its arrays to), and ``process_peak_rss_mb``: the process's peak resident memory.

librosa compiles numba kernels on first use and caches them on disk. It is measured with that
cache cold (``NUMBA_CACHE_DIR`` an empty folder: a fresh install, a read-only venv, a new
service user) and warm (the same folder again). The outputs of both implementations are
compared (``max_abs_difference``, in normalised units).

    .venv/bin/python bench/audio_features_bench.py      # writes bench/results/audio-features.json
    .venv/bin/python bench/audio_features_bench.py --seconds 1 60 --repeat 2 --out /tmp/a.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"  # the golden signal generator and the librosa oracle live with the tests
SAMPLE_RATE = 16000
SIGNAL_SEED = 20240611
NUMPY, LIBROSA_COLD, LIBROSA_WARM = "numpy", "librosa, numba cache cold", "librosa, numba cache warm"
MB = 1024 * 1024


@dataclass(frozen=True)
class Measurement:
    """One fresh process's figures for one implementation and one audio length."""

    implementation: str
    audio_seconds: float
    import_s: float
    first_call_s: float
    warm_call_s: float
    first_call_cpu_s: float
    warm_call_cpu_s: float
    first_over_warm: float
    call_peak_mb: float
    process_peak_rss_mb: float


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, nargs="+", default=[1.0, 60.0, 600.0])
    parser.add_argument("--repeat", type=int, default=3, help="warm calls after the first (>= 1); the fastest counts")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "audio-features.json")
    parser.add_argument("--child", choices=["numpy", "librosa"], help=argparse.SUPPRESS)
    parser.add_argument("--signal", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--mel-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.signal, args.mel_out, args.repeat)

    load_before = os.getloadavg()[0]
    results: list[Measurement] = []
    differences: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="heygemd-audio-bench-") as scratch:
        work = Path(scratch)
        for seconds in args.seconds:
            signal = work / f"signal-{seconds:g}s.npy"
            np.save(signal, speech_like(seconds))
            numba_cache = work / f"numba-cache-{seconds:g}s"
            numba_cache.mkdir()
            runs = [(NUMPY, "numpy", {}), (LIBROSA_COLD, "librosa", {"NUMBA_CACHE_DIR": str(numba_cache)}),
                    (LIBROSA_WARM, "librosa", {"NUMBA_CACHE_DIR": str(numba_cache)})]  # fmt: skip
            mels: dict[str, Path] = {}
            for label, implementation, env in runs:
                mels[label] = work / f"mel-{seconds:g}s-{len(mels)}.npy"
                log(f"{seconds:g} s, {label}")
                figures = run_child(implementation, signal, mels[label], args.repeat, env)
                results.append(Measurement(implementation=label, audio_seconds=seconds, **figures))
                log(f"  {figures}")
            new, old = np.load(mels[NUMPY]), np.load(mels[LIBROSA_COLD])
            differences[f"{seconds:g}"] = float(np.abs(new - old).max()) if new.shape == old.shape else float("nan")

    document = {
        "machine": machine(),
        "load_average_1min": {"before": load_before, "after": os.getloadavg()[0]},
        "signal": "speech-like (tests/data/make_mel_golden.py: gliding harmonics, syllables, noise, a clipped "
        "stretch), float32, 16 kHz",
        "timing": f"each row is one fresh process; warm_call_s is the fastest of {args.repeat} calls after the first, "
        "wall and CPU time taken separately",
        "results": [asdict(result) for result in results],
        "max_abs_difference_by_seconds": differences,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(json.dumps(document, indent=2))
    return 0


def speech_like(seconds: float) -> np.ndarray:
    """(round(seconds * SAMPLE_RATE),) float32: the golden values' speech-like signal."""
    sys.path.insert(0, str(DATA))
    from make_mel_golden import speech_like as make  # type: ignore[import-not-found]

    signal: np.ndarray = make(seconds, np.random.default_rng(SIGNAL_SEED))
    return signal


def run_child(implementation: str, signal: Path, mel_out: Path, repeat: int, env: dict[str, str]) -> dict[str, float]:
    command = [sys.executable, __file__, "--child", implementation, "--signal", str(signal),
               "--mel-out", str(mel_out), "--repeat", str(repeat)]  # fmt: skip
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(command, env={**environment, **env}, capture_output=True, text=True, check=True)
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def child(implementation: str, signal: Path, mel_out: Path, repeat: int) -> int:
    """In the fresh process: import, first call, warm calls, one traced call; one JSON line out."""
    wav = np.load(signal)
    started = time.perf_counter()
    melspectrogram = import_implementation(implementation)
    imported = time.perf_counter()
    first_wall, first_cpu = timed(melspectrogram, wav)
    warm = [timed(melspectrogram, wav) for _ in range(repeat)]
    warm_wall, warm_cpu = min(wall for wall, _ in warm), min(cpu for _, cpu in warm)
    tracemalloc.start()
    mel = melspectrogram(wav)
    call_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    np.save(mel_out, mel)
    figures = {
        "import_s": round(imported - started, 4),
        "first_call_s": round(first_wall, 4),
        "warm_call_s": round(warm_wall, 4),
        "first_call_cpu_s": round(first_cpu, 4),
        "warm_call_cpu_s": round(warm_cpu, 4),
        "first_over_warm": round(first_wall / warm_wall, 1),
        "call_peak_mb": round(call_peak / MB, 1),
        "process_peak_rss_mb": round(peak_rss_bytes() / MB, 1),
    }
    print(json.dumps(figures))
    return 0


def import_implementation(implementation: str) -> Callable[[np.ndarray], np.ndarray]:
    if implementation == "numpy":
        from heygemd.engine.audio import melspectrogram

        return melspectrogram
    sys.path.insert(0, str(DATA))
    from librosa_mel import librosa_melspectrogram  # type: ignore[import-not-found]

    oracle: Callable[[np.ndarray], np.ndarray] = librosa_melspectrogram
    return oracle


def peak_rss_bytes() -> int:
    """This process's peak resident memory.

    Linux's VmHWM, which starts afresh at exec; ru_maxrss would carry over the parent's peak,
    which here held the generated signals.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def timed(function: Callable[[np.ndarray], np.ndarray], wav: np.ndarray) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    function(wav)
    return time.perf_counter() - wall, time.process_time() - cpu


def machine() -> dict[str, object]:
    versions = {}
    for name in ("numpy", "librosa", "numba"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            versions[name] = None
    return {"cpus": os.cpu_count(), "python": platform.python_version(), **versions}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
