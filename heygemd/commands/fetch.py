"""`heygemd fetch-models`: download the checkpoints the configuration names, safely.

A download goes to a hidden ``.<file>.heygemd-download.tmp`` beside the target (heygemd.names),
resumes from what is there (HTTP Range), is checked for size and sha256, and only then renamed to its final name. When a
file cannot be downloaded (offline machine), the command says exactly which file to place
at which path.
"""

from __future__ import annotations

import http.client
import os
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from tqdm import tqdm

from heygemd.atomic import fsync_directory
from heygemd.daemon.config import HeygemdConfig
from heygemd.engine.files import sha256_file
from heygemd.names import download_name

CHUNK_BYTES = 1 << 16
TIMEOUT_SECONDS = 30
LEGACY_PARTIAL_SUFFIX = ".part"  # where earlier versions kept a download: resumed from there
KOKORO_MODEL_LABEL = "Kokoro-82M voice model"
KOKORO_VOICES_LABEL = "Kokoro-82M voices"


@dataclass(frozen=True)
class ModelFile:
    label: str
    path: Path
    url: str
    sha256: str  # whole hash or a prefix of at least 8 hex digits; "": no published digest to check against
    optional: bool = False  # the service works without it (Kokoro: espeak-ng speaks scripts meanwhile)

    def matches(self, digest: str) -> bool:
        return digest.lower().startswith(self.sha256.lower())

    @property
    def verified(self) -> bool:
        return bool(self.sha256)


class Outcome(StrEnum):
    PRESENT = "present"
    DOWNLOADED = "downloaded"
    FAILED = "failed"


@dataclass(frozen=True)
class FetchResult:
    model: ModelFile
    outcome: Outcome
    message: str


def wanted_models(config: HeygemdConfig) -> list[ModelFile]:
    """The weight files the engine settings name, each with where `fetch-models` downloads it from, and the
    speech's voice files (optional: espeak-ng speaks scripts without them)."""
    models = [ModelFile(file.label, file.path, *config.models.source(file)) for file in config.engine.weight_files()]
    speech = config.speech
    models.append(
        ModelFile(
            KOKORO_MODEL_LABEL, speech.kokoro_model, speech.kokoro_model_url, speech.kokoro_model_sha256, optional=True
        )
    )
    models.append(
        ModelFile(
            KOKORO_VOICES_LABEL, speech.kokoro_voices, speech.kokoro_voices_url, speech.kokoro_voices_sha256, optional=True
        )
    )
    return models


def place_by_hand(model: ModelFile) -> str:
    if not model.verified:
        return (
            f"Place it by hand: download {model.url} on a machine with internet access and save it as {model.path.resolve()}"
        )
    return (
        f"Place it by hand: download {model.url} on a machine with internet access (or take any copy whose "
        f"sha256 starts with {model.sha256}) and save it as {model.path.resolve()}"
    )


UNVERIFIED = "no published sha256 to check it against: the engine checks every key and shape when it loads it"


def fetch_model(model: ModelFile, *, show_progress: bool | None = None) -> FetchResult:
    if model.path.exists():
        digest = sha256_file(model.path)
        if not model.verified:
            return FetchResult(model, Outcome.PRESENT, f"{model.path} is present, sha256 {digest[:16]}… ({UNVERIFIED})")
        if model.matches(digest):
            return FetchResult(model, Outcome.PRESENT, f"{model.path} is present, sha256 {digest[:16]}… matches")
        return FetchResult(
            model,
            Outcome.FAILED,
            f"{model.path} exists but its sha256 {digest} does not match the expected {model.sha256}; "
            "move it away and run fetch-models again",
        )
    model.path.parent.mkdir(parents=True, exist_ok=True)
    partial = _partial_path(model.path)
    try:
        _download(model, partial, show_progress)
    except _IncompleteDownload as err:
        return FetchResult(model, Outcome.FAILED, f"{model.label}: {err} Run fetch-models again to resume.")
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", None) or err
        return FetchResult(
            model,
            Outcome.FAILED,
            f"{model.label} could not be downloaded from {model.url} ({reason}). {place_by_hand(model)}",
        )
    digest = sha256_file(partial)
    if not model.matches(digest):
        partial.unlink(missing_ok=True)
        return FetchResult(
            model,
            Outcome.FAILED,
            f"{model.label} from {model.url} has sha256 {digest}, not the expected {model.sha256} "
            "(a web page instead of the file, or a different file); nothing was kept. " + place_by_hand(model),
        )
    os.replace(partial, model.path)
    fsync_directory(model.path.parent)
    checked = "matches" if model.verified else f"({UNVERIFIED})"
    return FetchResult(model, Outcome.DOWNLOADED, f"{model.path} downloaded, sha256 {digest[:16]}… {checked}")


def _partial_path(path: Path) -> Path:
    partial = path.with_name(download_name(path.name))
    legacy = path.with_name(path.name + LEGACY_PARTIAL_SUFFIX)
    if legacy.is_file() and not partial.exists():
        os.replace(legacy, partial)
    return partial


class _IncompleteDownload(Exception):
    pass


def _download(model: ModelFile, partial: Path, show_progress: bool | None) -> None:
    offset = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(model.url, headers={"User-Agent": "heygemd-fetch-models"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:  # the partial file is already whole: let the hash decide
            return
        raise
    with response:
        if offset and response.status != 206:
            offset = 0  # the server ignored the range: start again
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        mode = "ab" if offset else "wb"
        with (
            open(partial, mode) as handle,
            tqdm(
                total=total,
                initial=offset,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=model.path.name,
                disable=(not sys.stderr.isatty()) if show_progress is None else not show_progress,
                file=sys.stderr,
            ) as bar,
        ):
            try:
                while chunk := response.read(CHUNK_BYTES):
                    handle.write(chunk)
                    bar.update(len(chunk))
            except (http.client.HTTPException, ConnectionError, TimeoutError) as err:
                handle.flush()
                raise _IncompleteDownload(
                    f"the connection broke after {handle.tell()} bytes ({type(err).__name__}); {partial} kept."
                ) from None
            finally:
                handle.flush()
                os.fsync(handle.fileno())
    size = partial.stat().st_size
    if total is not None and size != total:
        raise _IncompleteDownload(f"the download stopped at {size} of {total} bytes ({partial} kept).")
