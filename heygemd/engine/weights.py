"""The published weights heygemd knows, in one table: the engine names a checkpoint it loads by it, and
``heygemd fetch-models`` downloads and checks the default files from it. Free of torch (the daemon's
configuration reads it).

One row per file, whatever it is for (``WeightsRole``): the next model's files and the voices are
rows here too.

GFPGAN: TencentARC's release pages publish no hashes. These digests are the ones independent public
download scripts pin for the release assets and all agree on (e.g. AbdBarho/stable-diffusion-webui-docker,
services/download/checksums.sha256, for v1.4; web-UI Docker entrypoints and model managers for both).
Each file is one float32 state_dict of the network (under "params_ema") and its zip framing.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class WeightsRole(StrEnum):
    LIP_SYNC = "lip sync"
    FACE_DETECTOR = "face detector"
    FACE_RESTORER = "face restorer"
    VOICE = "voice"  # a speech model and its voices (heygemd/speech)


@dataclass(frozen=True)
class PublishedWeights:
    file_name: str
    sha256: str  # the whole digest, or the first digits its publisher puts in the file's name
    role: WeightsRole
    url: str = ""  # where `heygemd fetch-models` downloads it by default ("": not downloaded)

    def matches(self, digest: str) -> bool:
        return digest.lower().startswith(self.sha256.lower())


WAV2LIP = PublishedWeights(
    "wav2lip.pth", "b78b681b68ad9fe6c6fb1debc6ff43ad05834a8af8a62ffc4167b7b34ef63c37", WeightsRole.LIP_SYNC
)
WAV2LIP_GAN = PublishedWeights(
    "wav2lip_gan.pth",
    "ca9ab7b7b812c0e80a6e70a5977c545a1e8a365a6c49d5e533023c034d7ac3d8",
    WeightsRole.LIP_SYNC,
    url="https://huggingface.co/camenduru/Wav2Lip/resolve/main/checkpoints/wav2lip_gan.pth",  # a community mirror
)
# face-alignment publishes S3FD under torch-hub naming: the file name carries the sha256's first digits.
S3FD = PublishedWeights(
    "s3fd-619a316812.pth",
    "619a316812",
    WeightsRole.FACE_DETECTOR,
    url="https://www.adrianbulat.com/downloads/python-fan/s3fd-619a316812.pth",
)
GFPGAN_V13 = PublishedWeights(
    "GFPGANv1.3.pth",
    "c953a88f2727c85c3d9ae72e2bd4846bbaf59fe6972ad94130e23e7017524a70",
    WeightsRole.FACE_RESTORER,
    url="https://github.com/TencentARC/GFPGAN/releases/download/v1.3.0/GFPGANv1.3.pth",
)
GFPGAN_V14 = PublishedWeights(
    "GFPGANv1.4.pth",
    "e2cd4703ab14f4d01fd1383a8a8b266f9a5833dacee8e6a79d3bf21a1b6be5ad",
    WeightsRole.FACE_RESTORER,
    # The address TencentARC's own inference script downloads v1.4 from (the asset sits in the v1.3.0 release).
    url="https://github.com/TencentARC/GFPGAN/releases/download/v1.3.0/GFPGANv1.4.pth",
)
# Kokoro-82M (hexgrad, Apache-2.0 weights) as kokoro-onnx (MIT) publishes its ONNX export and voices archive.
_KOKORO_RELEASE = "https://github.com/thewh1teagle/kokoro-onnx/releases/download/model-files-v1.0"
KOKORO_MODEL = PublishedWeights(
    "kokoro-v1.0.onnx",
    "7d5df8ecf7d4b1878015a32686053fd0eebe2bc377234608764cc0ef3636a6c5",
    WeightsRole.VOICE,
    url=f"{_KOKORO_RELEASE}/kokoro-v1.0.onnx",
)
KOKORO_MODEL_INT8 = PublishedWeights(
    "kokoro-v1.0.int8.onnx",
    "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb",
    WeightsRole.VOICE,
    url=f"{_KOKORO_RELEASE}/kokoro-v1.0.int8.onnx",
)
KOKORO_VOICES = PublishedWeights(
    "voices-v1.0.bin",
    "bca610b8308e8d99f32e6fe4197e7ec01679264efed0cac9140fe9c29f1fbf7d",
    WeightsRole.VOICE,
    url=f"{_KOKORO_RELEASE}/voices-v1.0.bin",
)
PUBLISHED: tuple[PublishedWeights, ...] = (
    WAV2LIP,
    WAV2LIP_GAN,
    S3FD,
    GFPGAN_V13,
    GFPGAN_V14,
    KOKORO_MODEL,
    KOKORO_MODEL_INT8,
    KOKORO_VOICES,
)


def known_name(sha256: str) -> str | None:
    """The public file name for a digest, or None when the file is not a known release."""
    return next((weights.file_name for weights in PUBLISHED if weights.matches(sha256)), None)


# MuseTalk 1.5 (engine.model = "musetalk"): the files its download script fetches, by their place under
# engine.musetalk_dir. No digest is recorded: heygemd found no two public sources agreeing on these files'
# sha256, so they are not recognised by hash (sha256 ""); the engine checks every key and shape when it loads.
# All seven are the lip-sync model's parts (the whisper encoder turns the audio into MuseTalk's features).
# Kept out of PUBLISHED, whose rows name a file by its digest.
HUGGING_FACE = "https://huggingface.co"
MUSETALK_UNET = PublishedWeights(
    "musetalkV15/unet.pth",
    "",
    WeightsRole.LIP_SYNC,
    url=f"{HUGGING_FACE}/TMElyralab/MuseTalk/resolve/main/musetalkV15/unet.pth",
)
MUSETALK_UNET_CONFIG = PublishedWeights(
    "musetalkV15/musetalk.json",
    "",
    WeightsRole.LIP_SYNC,
    url=f"{HUGGING_FACE}/TMElyralab/MuseTalk/resolve/main/musetalkV15/musetalk.json",
)
SD_VAE_CONFIG = PublishedWeights(
    "sd-vae/config.json", "", WeightsRole.LIP_SYNC, url=f"{HUGGING_FACE}/stabilityai/sd-vae-ft-mse/resolve/main/config.json"
)
SAFETENSORS_SUFFIX = ".safetensors"  # the VAE may be placed as diffusion_pytorch_model.safetensors instead
SD_VAE = PublishedWeights(
    "sd-vae/diffusion_pytorch_model.bin",
    "",
    WeightsRole.LIP_SYNC,
    url=f"{HUGGING_FACE}/stabilityai/sd-vae-ft-mse/resolve/main/diffusion_pytorch_model.bin",
)
WHISPER_TINY_CONFIG = PublishedWeights(
    "whisper/config.json", "", WeightsRole.LIP_SYNC, url=f"{HUGGING_FACE}/openai/whisper-tiny/resolve/main/config.json"
)
WHISPER_TINY = PublishedWeights(
    "whisper/pytorch_model.bin",
    "",
    WeightsRole.LIP_SYNC,
    url=f"{HUGGING_FACE}/openai/whisper-tiny/resolve/main/pytorch_model.bin",
)
WHISPER_TINY_PREPROCESSOR = PublishedWeights(
    "whisper/preprocessor_config.json",
    "",
    WeightsRole.LIP_SYNC,
    url=f"{HUGGING_FACE}/openai/whisper-tiny/resolve/main/preprocessor_config.json",
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
