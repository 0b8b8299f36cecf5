"""MuseTalk 1.5 on this machine: heygemd's pipeline against the reference's, same random weights, same clip, one run.

The reference is TMElyralab/MuseTalk's own code, imported from a checkout named on the command line
(heygemd ships none of it). Both run the model part of a render, with the same crops and the same audio:
whisper features and windows, the VAE encoding of every crop (masked and whole), the UNet step, the VAE
decode, in batches. The reference samples its latents where heygemd takes the mean; its crops come from
DWPose landmarks, which need mmpose, so both use the same fixed box here. heygemd's whole render (decode,
crop, model, paste, encode) of the same clip is timed as well, with and without its template cache.

    .venv/bin/pip install einops   # the reference's audio code needs it (and librosa, a test dependency)
    .venv/bin/python bench/musetalk_bench.py --reference /path/to/MuseTalk [--seconds 4] [--full]

The reference's VAE module imports torchvision only for ``transforms.Normalize``; when torchvision is
not installed, the bench provides that one transform ((x - mean) / std) so torch need not be reinstalled.
``--full`` builds the published full-size configs (a 3.4 GB UNet: minutes and ~8 GB of memory on a CPU);
by default the UNet and VAE are the small configs of the tests (same architecture, narrower).
Writes bench/results/musetalk.json.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import tempfile
import time
import types
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

FPS = 25.0
SIZE = (1280, 720)
BOX = (520, 120, 760, 400)  # the fixed face box of the presenter frames (x1, y1, x2, y2)
CHIN_MARGIN = 10
BATCH = 8
SAMPLE_RATE = 16000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", type=Path, required=True, help="a checkout of TMElyralab/MuseTalk")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--full", action="store_true", help="the published full-size UNet and VAE")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "musetalk.json")
    args = parser.parse_args()

    from media_factory import make_video, presenter_frame, speech_like
    from musetalk_factory import PUBLISHED_UNET, PUBLISHED_VAE, SMALL_UNET, SMALL_VAE, make_musetalk_dir
    from scipy.io import wavfile

    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        unet, vae = (PUBLISHED_UNET, PUBLISHED_VAE) if args.full else (SMALL_UNET, SMALL_VAE)
        models = make_musetalk_dir(scratch / "models", seed=0, unet=unet, vae=vae)
        samples = speech_like(args.seconds)
        wav = scratch / "speech.wav"
        wavfile.write(wav, SAMPLE_RATE, (np.clip(samples, -1, 1) * 32767).astype(np.int16))
        frame_count = math.floor(len(samples) / SAMPLE_RATE * FPS)
        crops = _crops([presenter_frame(index, SIZE) for index in range(frame_count)])

        reference = _run_reference(args.reference, models, wav, crops)
        ours = _run_ours(models, wav, crops)
        template = make_video(scratch / "template.mp4", seconds=args.seconds, fps="25", size=SIZE)
        render = _run_render(models, wav, template, scratch)

    with_mean = np.abs(reference.pop("first_batch_with_mean").astype(int) - ours["faces"][:BATCH].astype(int))
    difference = np.abs(reference.pop("faces").astype(int) - ours.pop("faces").astype(int))
    result = {
        "what": "MuseTalk 1.5's model pipeline (whisper windows, VAE encode of masked+whole crops, UNet step, "
        "VAE decode) on the same random weights, clip and crops: heygemd's entry point vs the reference's code",
        "configs": "published full size" if args.full else "small (tests/musetalk_factory.py SMALL_UNET, SMALL_VAE)",
        "frames": frame_count,
        "seconds_of_audio": args.seconds,
        "batch": BATCH,
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads()},
        "reference": reference,
        "heygemd": ours,
        "speed_ratio": round(reference["total_s"] / ours["total_s"], 2),
        "faces_difference": {
            "mean": round(float(difference.mean()), 2),
            "max": int(difference.max()),
            "why": "the reference samples its latents, heygemd takes their mean (random VAE weights: a wide spread)",
        },
        "faces_difference_reference_with_mean_first_batch": {
            "mean": round(float(with_mean.mean()), 4),
            "max": int(with_mean.max()),
            "equal_fraction": round(float((with_mean == 0).mean()), 4),
        },
        "heygemd_render": render,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


def _crops(frames: list[np.ndarray]) -> np.ndarray:
    """(N, 256, 256, 3) BGR: the v1.5 crop of the fixed box, as both pipelines crop it."""
    x1, y1, x2, y2 = BOX
    y2 = min(SIZE[1], y2 + CHIN_MARGIN)
    return np.stack([cv2.resize(frame[y1:y2, x1:x2], (256, 256), interpolation=cv2.INTER_LANCZOS4) for frame in frames])


def _provide_normalize() -> None:
    try:
        import torchvision  # noqa: F401
    except ImportError:

        class Normalize:
            def __init__(self, mean: list[float], std: list[float]) -> None:
                self.mean = torch.tensor(mean)[:, None, None]
                self.std = torch.tensor(std)[:, None, None]

            def __call__(self, x: torch.Tensor) -> torch.Tensor:
                return (x - self.mean) / self.std

        transforms = types.ModuleType("torchvision.transforms")
        transforms.Normalize = Normalize  # type: ignore[attr-defined]
        package = types.ModuleType("torchvision")
        package.transforms = transforms  # type: ignore[attr-defined]
        sys.modules.update({"torchvision": package, "torchvision.transforms": transforms})


def _run_reference(checkout: Path, models: Path, wav: Path, crops: np.ndarray) -> dict:
    """The reference's inference order: audio chunks, latents per crop, batches through pe, UNet and decode_latents."""
    _provide_normalize()
    sys.path.insert(0, str(checkout))
    from musetalk.models.unet import PositionalEncoding, UNet
    from musetalk.models.vae import VAE
    from musetalk.utils.audio_processor import AudioProcessor
    from musetalk.utils.utils import datagen
    from transformers import WhisperModel

    torch.manual_seed(0)
    vae = VAE(model_path=str(models / "sd-vae"))
    unet = UNet(
        unet_config=str(models / "musetalkV15/musetalk.json"),
        model_path=str(models / "musetalkV15/unet.pth"),
        device=torch.device("cpu"),
    )
    pe = PositionalEncoding(d_model=384)
    whisper = WhisperModel.from_pretrained(str(models / "whisper")).eval()
    processor = AudioProcessor(feature_extractor_path=str(models / "whisper"))
    timesteps = torch.tensor([0])

    def run() -> tuple[np.ndarray, dict]:
        started = time.perf_counter()
        features, length = processor.get_audio_feature(str(wav))
        chunks = processor.get_whisper_chunk(features, "cpu", torch.float32, whisper, length, fps=FPS)
        audio_s = time.perf_counter() - started
        started = time.perf_counter()
        latents = [vae.get_latents_for_unet(crop) for crop in crops]
        encode_s = time.perf_counter() - started
        started = time.perf_counter()
        faces = []
        with torch.no_grad():
            for whisper_batch, latent_batch in datagen(chunks, latents, BATCH, device="cpu"):
                predicted = unet.model(latent_batch, timesteps, encoder_hidden_states=pe(whisper_batch)).sample
                faces.append(vae.decode_latents(predicted))
        generate_s = time.perf_counter() - started
        return np.concatenate(faces), {"audio_s": audio_s, "vae_encode_s": encode_s, "unet_and_decode_s": generate_s}

    result = _timed(run, len(crops))
    # The same order with the latent mean instead of a draw, for the first batch: how far heygemd is from the
    # reference when only the deliberate difference is taken away.
    vae.encode_latents = lambda image: vae.scaling_factor * vae.vae.encode(image.to(vae.vae.dtype)).latent_dist.mean
    with torch.no_grad():
        latents = torch.cat([vae.get_latents_for_unet(crop) for crop in crops[:BATCH]])
        chunks = processor.get_whisper_chunk(
            *processor.get_audio_feature(str(wav))[:1],
            "cpu",
            torch.float32,
            whisper,
            processor.get_audio_feature(str(wav))[1],
            fps=FPS,
        )
        predicted = unet.model(latents, timesteps, encoder_hidden_states=pe(chunks[:BATCH])).sample
        result["first_batch_with_mean"] = vae.decode_latents(predicted)
    return result


def _run_ours(models: Path, wav: Path, crops: np.ndarray) -> dict:
    from heygemd.engine.musetalk import load_musetalk

    model = load_musetalk(models, device="cpu")

    def run() -> tuple[np.ndarray, dict]:
        started = time.perf_counter()
        feats = model.audio_features(wav, FPS)
        audio_s = time.perf_counter() - started
        encode_s = generate_s = 0.0
        faces = []
        for start in range(0, len(crops), BATCH):
            started = time.perf_counter()
            latents = model.encode(crops[start : start + BATCH])
            encode_s += time.perf_counter() - started
            started = time.perf_counter()
            faces.append(model.decode(model.inpaint(latents, feats[start : start + BATCH])))
            generate_s += time.perf_counter() - started
        return np.concatenate(faces), {"audio_s": audio_s, "vae_encode_s": encode_s, "unet_and_decode_s": generate_s}

    return _timed(run, len(crops))


def _timed(run, frames: int) -> dict:
    run()  # warm-up: first calls allocate and pick kernels
    started = time.perf_counter()
    faces, stages = run()
    total = time.perf_counter() - started
    return {
        "faces": faces,
        "total_s": round(total, 3),
        "fps": round(frames / total, 2),
        **{name: round(seconds, 3) for name, seconds in stages.items()},
    }


def _run_render(models: Path, wav: Path, template: Path, scratch: Path) -> dict:
    """heygemd's whole render of the clip at 720p (fixed box: no detection), then again with the template cache warm."""
    from heygemd.engine import EngineSettings, LipSyncEngine, RenderOptions

    engine = LipSyncEngine(
        EngineSettings(model="musetalk", musetalk_dir=models, detector="lbp", device="cpu", batch_size=BATCH)
    )
    options = RenderOptions(fixed_box=BOX, preset="ultrafast", silence_min_s=0)
    first = engine.render(wav, template, scratch / "first.mp4", options)
    second = engine.render(wav, template, scratch / "second.mp4", options)
    return {
        "size": f"{SIZE[0]}x{SIZE[1]}",
        "frames": first.output.frame_count,
        "cold_fps": round(first.output.frame_count / first.timings.total, 2),
        "cold_timings_s": first.timings.model_dump(),
        "template_cache_hits_second_render": second.lipsync.template_cache_hits,
        "warm_cache_fps": round(second.output.frame_count / second.timings.total, 2),
        "warm_cache_timings_s": second.timings.model_dump(),
    }


if __name__ == "__main__":
    sys.exit(main())
