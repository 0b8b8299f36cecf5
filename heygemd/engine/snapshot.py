"""The audio a job is rendered with, taken once: the file's bytes read one time, decoded one time.

An upload that is still running keeps changing the audio file while a job renders. So the engine
never reads the file twice: ``take_snapshot`` copies its bytes into a private temporary folder
(hashing them on the way, so the sha256 is that of exactly the bytes decoded), decodes the copy
once into a lossless WAV at the stream's own sample rate, channels and sample format, and removes
the copy. The mel features come from that WAV and every render muxes that same WAV, so the sound
of an output is the sound that was analysed, whatever became of the file since.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import tempfile
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

import numpy as np

from heygemd.codes import ErrorCode, code_for_os_error
from heygemd.engine.errors import AudioError, EngineError, MediaError
from heygemd.engine.files import HASH_CHUNK_BYTES, NotAFile, open_regular, sha256_file
from heygemd.engine.media import decode_audio, decode_audio_to_wav
from heygemd.engine.probe import AudioInfo, _check_readable, _ffprobe, probe_audio

SNAPSHOT_PREFIX = "heygemd-audio-"  # every private folder's name starts so: leftovers of a crash are easy to find
SNAPSHOT_NAME = "snapshot.wav"
# Where a long-running service keeps its snapshots when engine.temp_dir is unset: in a folder of its own (under
# its state folder), not the system's temporary folder, so that a killed run's leftovers are its own to clean.
SERVICE_SNAPSHOTS_FOLDER = "audio-snapshots"
# The decoder's own sample format, kept: lossless, and no larger than it needs to be.
PCM_CODECS = {"u8": "pcm_u8", "s16": "pcm_s16le", "s32": "pcm_s32le", "flt": "pcm_f32le", "dbl": "pcm_f64le"}
FALLBACK_PCM = "pcm_f32le"  # a format WAV cannot hold (s64): 32-bit float


def pcm_codec(sample_format: str) -> str:
    """The WAV codec that holds samples of ffmpeg's ``sample_format`` (planar or packed) without loss."""
    return PCM_CODECS.get(sample_format.removesuffix("p"), FALLBACK_PCM)


class TempFolder:
    """A private temporary folder: removed by ``close``, at the latest when garbage-collected or at exit."""

    def __init__(self, parent: Path | None, prefix: str) -> None:
        if parent is not None:
            parent.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
        self._finalizer = weakref.finalize(self, shutil.rmtree, self.path, ignore_errors=True)

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def close(self) -> None:
        self._finalizer()


@dataclasses.dataclass(frozen=True, eq=False)
class AudioSnapshot:
    """An audio file's first audio stream as decoded at one moment, held in a private lossless WAV."""

    source: Path  # the file it was taken from; never read again
    source_sha256: str  # of exactly the bytes that were decoded
    source_size: int
    source_info: AudioInfo  # the source's stream as probed
    path: Path  # the WAV
    sha256: str  # of the WAV
    sample_rate: int
    channels: int
    num_samples: int  # per channel
    _folder: TempFolder = dataclasses.field(repr=False)

    @property
    def duration(self) -> float:
        return self.num_samples / self.sample_rate

    @property
    def duration_fraction(self) -> Fraction:
        return Fraction(self.num_samples, self.sample_rate)

    @property
    def closed(self) -> bool:
        return self._folder.closed

    def close(self) -> None:
        """Remove the WAV (idempotent)."""
        self._folder.close()

    def decode(self, sample_rate: int) -> np.ndarray:
        """The snapshot mixed down to mono float32 at ``sample_rate``: (n_samples,). Errors name the source."""
        self.check_open()
        with _named_as(self.source, self.path):
            return decode_audio(self.path, sample_rate)

    def check_open(self) -> None:
        if self.closed:
            raise EngineError("its prepared audio was closed before this render used it", self.source)


def take_snapshot(source: Path, temp_dir: Path | None = None) -> AudioSnapshot:
    """Read ``source`` once and decode it once into a WAV in a new folder under ``temp_dir`` (None: the system's).

    Raises MediaError (or AudioError) naming ``source``; nothing is left behind when it does.
    """
    _check_readable(source)
    try:
        folder = TempFolder(temp_dir, SNAPSHOT_PREFIX)
    except OSError as err:
        raise _temp_error(source, err) from None
    try:
        copy = folder.path / source.name
        source_sha256, source_size = _copy_hashing(source, copy)
        wav = folder.path / SNAPSHOT_NAME
        with _named_as(source, copy, wav):
            info = dataclasses.replace(probe_audio(copy), path=source)
            decode_audio_to_wav(copy, wav, pcm_codec(info.sample_format))
        copy.unlink()
        sample_rate, channels, num_samples = _wav_layout(wav, source)
        return AudioSnapshot(
            source=source,
            source_sha256=source_sha256,
            source_size=source_size,
            source_info=info,
            path=wav,
            sha256=sha256_file(wav),
            sample_rate=sample_rate,
            channels=channels,
            num_samples=num_samples,
            _folder=folder,
        )
    except BaseException:
        folder.close()
        raise


def remove_leftovers(temp_dir: Path) -> int:
    """Remove the snapshot folders a killed process left in ``temp_dir``; how many there were.

    Only for a folder no other running heygemd uses (a service's own, once it holds its state lock):
    a live process's snapshot looks just the same.
    """
    removed = 0
    for folder in temp_dir.glob(f"{SNAPSHOT_PREFIX}*"):
        if folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed


def _wav_layout(wav: Path, source: Path) -> tuple[int, int, int]:
    """(sample rate, channels, samples per channel) of the snapshot."""
    with _named_as(source, wav):
        document = _ffprobe(wav, ["-select_streams", "a:0", "-show_entries", "stream=sample_rate,channels,duration_ts"])
    streams = document.get("streams") or [{}]
    stream = streams[0]
    sample_rate, channels = int(stream.get("sample_rate") or 0), int(stream.get("channels") or 0)
    num_samples = int(stream.get("duration_ts") or 0)
    if sample_rate <= 0 or channels <= 0 or num_samples <= 0:
        raise AudioError("audio lasts 0 seconds", source)
    return sample_rate, channels, num_samples


def _copy_hashing(source: Path, target: Path) -> tuple[str, int]:
    """Copy ``source`` to ``target`` reading it once; (sha256, size) of the bytes copied."""
    digest = hashlib.sha256()
    size = 0
    try:
        with open(target, "xb") as writer:
            for chunk in _chunks(source):
                digest.update(chunk)
                writer.write(chunk)
                size += len(chunk)
    except OSError as err:  # the writer's: the source's errors come out of _chunks as MediaError
        raise _temp_error(source, err) from None
    return digest.hexdigest(), size


def _chunks(source: Path) -> Iterator[bytes]:
    try:
        with open_regular(source, follow_links=True) as reader:  # a pipe put in its place never blocks the service
            while chunk := reader.read(HASH_CHUNK_BYTES):
                yield chunk
    except OSError as err:
        raise _source_error(source, err) from None


def _source_error(source: Path, err: OSError) -> MediaError:
    if isinstance(err, NotAFile):
        return MediaError(f"is not a file but {err.kind}; it was not read", source, code=ErrorCode.INPUT_REPLACED)
    code = code_for_os_error(err)
    if code is ErrorCode.INPUT_UNREADABLE:
        return MediaError("cannot be read by the service (permission denied): give its user read access", source, code=code)
    return MediaError(f"could not be read ({err.strerror or err})", source, code=code)


def _temp_error(source: Path, err: OSError) -> MediaError:
    """The temporary folder failed: full (transient), or not usable at all (the operator's to fix)."""
    code = ErrorCode.DISK_FULL if code_for_os_error(err) is ErrorCode.DISK_FULL else ErrorCode.INTERNAL
    return MediaError(
        f"could not be copied to the temporary folder ({err.strerror or err}); see engine.temp_dir", source, code=code
    )


@contextmanager
def _named_as(source: Path, *private: Path) -> Iterator[None]:
    """Errors about the private copies name ``source`` instead, and never the private folder."""
    try:
        yield
    except EngineError as err:
        reason = err.reason
        for path in private:
            reason = reason.replace(str(path), source.name)
        raise type(err)(reason, source, code=err.code) from None
