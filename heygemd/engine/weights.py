"""The published weights heygemd knows, in one table: the engine names a checkpoint it loads by it, and
``heygemd fetch-models`` downloads and checks the default files from it. Free of torch."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PublishedWeights:
    file_name: str
    sha256: str  # the whole digest, or the first digits its publisher puts in the file's name
    url: str = ""  # where `heygemd fetch-models` downloads it by default ("": not downloaded)

    def matches(self, digest: str) -> bool:
        return digest.lower().startswith(self.sha256.lower())


WAV2LIP = PublishedWeights("wav2lip.pth", "b78b681b68ad9fe6c6fb1debc6ff43ad05834a8af8a62ffc4167b7b34ef63c37")
WAV2LIP_GAN = PublishedWeights(
    "wav2lip_gan.pth",
    "ca9ab7b7b812c0e80a6e70a5977c545a1e8a365a6c49d5e533023c034d7ac3d8",
    url="https://huggingface.co/camenduru/Wav2Lip/resolve/main/checkpoints/wav2lip_gan.pth",  # a community mirror
)
# face-alignment publishes S3FD under torch-hub naming: the file name carries the sha256's first digits.
S3FD = PublishedWeights(
    "s3fd-619a316812.pth", "619a316812", url="https://www.adrianbulat.com/downloads/python-fan/s3fd-619a316812.pth"
)
PUBLISHED: tuple[PublishedWeights, ...] = (WAV2LIP, WAV2LIP_GAN, S3FD)


def known_name(sha256: str) -> str | None:
    """The public file name for a digest, or None when the file is not a known release."""
    return next((weights.file_name for weights in PUBLISHED if weights.matches(sha256)), None)


# MuseTalk 1.5 (engine.model = "musetalk"): the files its download script fetches, by their place under
# engine.musetalk_dir. No digest is recorded: heygemd found no two public sources agreeing on these files'
# sha256, so they are not recognised by hash (sha256 ""); the engine checks every key and shape when it loads.
# Kept out of PUBLISHED, whose rows name a file by its digest.
HUGGING_FACE = "https://huggingface.co"
MUSETALK_UNET = PublishedWeights(
    "musetalkV15/unet.pth", "", url=f"{HUGGING_FACE}/TMElyralab/MuseTalk/resolve/main/musetalkV15/unet.pth"
)
MUSETALK_UNET_CONFIG = PublishedWeights(
    "musetalkV15/musetalk.json", "", url=f"{HUGGING_FACE}/TMElyralab/MuseTalk/resolve/main/musetalkV15/musetalk.json"
)
SD_VAE_CONFIG = PublishedWeights(
    "sd-vae/config.json", "", url=f"{HUGGING_FACE}/stabilityai/sd-vae-ft-mse/resolve/main/config.json"
)
SD_VAE = PublishedWeights(
    "sd-vae/diffusion_pytorch_model.bin",
    "",
    url=f"{HUGGING_FACE}/stabilityai/sd-vae-ft-mse/resolve/main/diffusion_pytorch_model.bin",
)
WHISPER_TINY_CONFIG = PublishedWeights(
    "whisper/config.json", "", url=f"{HUGGING_FACE}/openai/whisper-tiny/resolve/main/config.json"
)
WHISPER_TINY = PublishedWeights(
    "whisper/pytorch_model.bin", "", url=f"{HUGGING_FACE}/openai/whisper-tiny/resolve/main/pytorch_model.bin"
)
WHISPER_TINY_PREPROCESSOR = PublishedWeights(
    "whisper/preprocessor_config.json", "", url=f"{HUGGING_FACE}/openai/whisper-tiny/resolve/main/preprocessor_config.json"
)
MUSETALK_FILES: tuple[PublishedWeights, ...] = (
    MUSETALK_UNET,
    MUSETALK_UNET_CONFIG,
    SD_VAE_CONFIG,
    SD_VAE,
    WHISPER_TINY_CONFIG,
    WHISPER_TINY,
    WHISPER_TINY_PREPROCESSOR,
)
