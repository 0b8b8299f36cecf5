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
# Kokoro-82M (hexgrad, Apache-2.0 weights) as kokoro-onnx (MIT) publishes its ONNX export and voices archive.
_KOKORO_RELEASE = "https://github.com/thewh1teagle/kokoro-onnx/releases/download/model-files-v1.0"
KOKORO_MODEL = PublishedWeights(
    "kokoro-v1.0.onnx",
    "7d5df8ecf7d4b1878015a32686053fd0eebe2bc377234608764cc0ef3636a6c5",
    url=f"{_KOKORO_RELEASE}/kokoro-v1.0.onnx",
)
KOKORO_MODEL_INT8 = PublishedWeights(
    "kokoro-v1.0.int8.onnx",
    "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb",
    url=f"{_KOKORO_RELEASE}/kokoro-v1.0.int8.onnx",
)
KOKORO_VOICES = PublishedWeights(
    "voices-v1.0.bin",
    "bca610b8308e8d99f32e6fe4197e7ec01679264efed0cac9140fe9c29f1fbf7d",
    url=f"{_KOKORO_RELEASE}/voices-v1.0.bin",
)
PUBLISHED: tuple[PublishedWeights, ...] = (WAV2LIP, WAV2LIP_GAN, S3FD, KOKORO_MODEL, KOKORO_MODEL_INT8, KOKORO_VOICES)


def known_name(sha256: str) -> str | None:
    """The public file name for a digest, or None when the file is not a known release."""
    return next((weights.file_name for weights in PUBLISHED if weights.matches(sha256)), None)
