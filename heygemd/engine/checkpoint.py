"""Find out what a checkpoint file is, load it safely, and fit it to the Wav2Lip module.

Every problem becomes a ``CheckpointError`` naming the file and saying, in plain words,
what is wrong and what to do. The cheap checks (exists, size, magic bytes, zip directory,
sha256) run before ``torch.load``; ``torch.load`` only ever runs with ``weights_only=True``.

Accepted layouts: the public training dict ``{"state_dict", "optimizer", "global_step",
"global_epoch"}`` (only ``state_dict`` is used) or a bare state_dict; keys may carry a
``module.`` prefix (DataParallel). Both the legacy pickle format (the public files) and
the zip format (``torch.save`` since 1.6) load. ``load_network`` runs the same checks for any
network whose files wrap the state_dict under other names (GFPGAN: ``params_ema``, ``params``).
"""

from __future__ import annotations

import json
import pickle
import struct
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

import torch
from torch import nn

from heygemd.engine.errors import CheckpointError
from heygemd.engine.files import sha256_file
from heygemd.engine.model import Wav2Lip
from heygemd.engine.weights import known_name

HEAD_BYTES = 1024
ZIP_MAGIC = b"PK\x03\x04"
PICKLE_PROTO = 0x80  # pickle protocol >= 2 opens with PROTO then the protocol number
PICKLE_PROTOCOLS = range(2, 6)
HTML_MARKERS = (b"<!doctype html", b"<html", b"<head", b"<body", b"<?xml", b"<!--")
LFS_MARKER = b"version https://git-lfs"
STATE_DICT_KEY = "state_dict"
DATA_PARALLEL_PREFIX = "module."
BUFFER_DEFAULTED = "num_batches_tracked"  # absent from pre-0.4.1 checkpoints, unused in eval
EXAMPLES_SHOWN = 3
REDOWNLOAD = "download it again"

_TRUNCATION_SIGNS = ("unexpected eof", "ran out of input", "central directory", "truncated", "unpack requires a buffer")
_CORRUPTION_SIGNS = ("invalid load key", "unpickling")


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint file is, found without unpickling it."""

    path: Path
    size_bytes: int
    sha256: str
    known_name: str | None


# ---------------------------------------------------------------------------- inspection


def inspect_checkpoint(path: Path) -> CheckpointInfo:
    """Check that ``path`` looks like a complete PyTorch checkpoint, and hash it.

    Raises CheckpointError for a missing file, a directory, an empty file, a web page or
    other text, an unknown format, or a zip archive cut short.
    """
    path = Path(path)
    size = _file_size(path)
    head = _read_head(path)
    _check_not_text(path, head)
    if head.startswith(ZIP_MAGIC):
        _check_torch_zip(path, size)
    elif not _is_pickle(head):
        raise CheckpointError(
            f"is not a PyTorch checkpoint: it is neither a torch zip archive nor a pickle "
            f"(starts with {head[:8].hex(' ')}); {REDOWNLOAD}",
            path,
        )
    digest = sha256_file(path)
    return CheckpointInfo(path=path, size_bytes=size, sha256=digest, known_name=known_name(digest))


SAFETENSORS_HEADER_LENGTH_BYTES = 8  # a little-endian u64, then that many bytes of JSON header, then the data


def inspect_safetensors(path: Path) -> CheckpointInfo:
    """The same checks for a ``.safetensors`` file: exists, not a web page or LFS pointer, header whole, data whole."""
    path = Path(path)
    size = _file_size(path)
    head = _read_head(path)
    _check_not_text(path, head)
    header = _safetensors_header(path, head, size)
    data_bytes = max((int(entry["data_offsets"][1]) for key, entry in header.items() if key != "__metadata__"), default=0)
    expected = SAFETENSORS_HEADER_LENGTH_BYTES + _safetensors_header_length(head) + data_bytes
    if size < expected:
        raise CheckpointError(
            f"is truncated: its header promises {_megabytes(expected)}, {_megabytes(size)} are on disk; {REDOWNLOAD}", path
        )
    digest = sha256_file(path)
    return CheckpointInfo(path=path, size_bytes=size, sha256=digest, known_name=known_name(digest))


def _safetensors_header_length(head: bytes) -> int:
    return int(struct.unpack("<Q", head[:SAFETENSORS_HEADER_LENGTH_BYTES])[0])


def _safetensors_header(path: Path, head: bytes, size: int) -> dict[str, dict[str, list[int]]]:
    if len(head) < SAFETENSORS_HEADER_LENGTH_BYTES + 2:
        raise CheckpointError(f"is too short ({size} bytes) to be a safetensors file; {REDOWNLOAD}", path)
    length = _safetensors_header_length(head)
    if SAFETENSORS_HEADER_LENGTH_BYTES + length > size:
        raise CheckpointError(f"is not a whole safetensors file: its header runs past the end; {REDOWNLOAD}", path)
    with _open(path) as handle:
        handle.seek(SAFETENSORS_HEADER_LENGTH_BYTES)
        raw = handle.read(length)
    try:
        header = json.loads(raw)
        if not isinstance(header, dict):
            raise ValueError("not a JSON object")
    except ValueError as err:
        raise CheckpointError(f"is not a safetensors file (its header is not JSON: {err}); {REDOWNLOAD}", path) from None
    return header


def read_config(path: Path) -> dict[str, object]:
    """A model's JSON config file, with the same plain-language errors as a weights file (missing, web page, not JSON)."""
    path = Path(path)
    _file_size(path)
    head = _read_head(path)
    lowered = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if lowered.startswith(HTML_MARKERS) or lowered.startswith(LFS_MARKER):
        _check_not_text(path, head)
    try:
        with _open(path) as handle:
            loaded = json.load(handle)
    except (ValueError, UnicodeDecodeError) as err:
        raise CheckpointError(f"is not a JSON config file ({err}); {REDOWNLOAD}", path) from None
    if not isinstance(loaded, dict):
        raise CheckpointError(f"is not a JSON config object (a {type(loaded).__name__}); {REDOWNLOAD}", path)
    return loaded


def _file_size(path: Path) -> int:
    if not path.exists():
        raise CheckpointError("checkpoint file not found", path)
    if path.is_dir():
        raise CheckpointError("is a directory, not a checkpoint file", path)
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"is empty (0 bytes) — the download probably failed; {REDOWNLOAD}", path)
    return size


def _open(path: Path) -> BinaryIO:
    try:
        return path.open("rb")
    except OSError as err:
        raise CheckpointError(f"cannot be read: {err.strerror or err}", path) from err


def _read_head(path: Path) -> bytes:
    with _open(path) as f:
        return f.read(HEAD_BYTES)


def _check_not_text(path: Path, head: bytes) -> None:
    lowered = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if lowered.startswith(HTML_MARKERS) or b"<html" in lowered:
        raise CheckpointError(
            "is an HTML page, not a checkpoint — the download probably failed (a login or error "
            f"page, or a web-page link such as Hugging Face '/blob/' instead of '/resolve/'); {REDOWNLOAD}",
            path,
        )
    if lowered.startswith(LFS_MARKER):
        raise CheckpointError(
            "is a Git LFS pointer, not the checkpoint itself — fetch the real file (git lfs pull) or download it directly",
            path,
        )
    if _looks_like_text(head):
        raise CheckpointError(f"is a text file, not a checkpoint (starts {head[:40]!r}); {REDOWNLOAD}", path)


def _looks_like_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as err:
        if err.start < len(head) - 3:  # not merely a character cut at the end of the head
            return False
        text = head[: err.start].decode("utf-8")
    return all(ch.isprintable() or ch in "\t\r\n" for ch in text)


def _is_pickle(head: bytes) -> bool:
    return len(head) >= 2 and head[0] == PICKLE_PROTO and head[1] in PICKLE_PROTOCOLS


def _check_torch_zip(path: Path, size: int) -> None:
    if not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"is truncated: the zip archive's central directory (kept at the end of the file) is "
            f"missing, so the download stopped early ({_megabytes(size)} on disk); {REDOWNLOAD}",
            path,
        )
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as err:
        raise CheckpointError(f"is a damaged zip archive ({err}); {REDOWNLOAD}", path) from err
    if not any(name.endswith("data.pkl") for name in names):
        raise CheckpointError(
            f"is a zip archive but not a PyTorch checkpoint (no data.pkl among {len(names)} entries)", path
        )


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


# ---------------------------------------------------------------------------- loading


def load_state_dict(path: Path, wrappers: Sequence[str] = (STATE_DICT_KEY,)) -> dict[str, torch.Tensor]:
    """Load the tensors of a checkpoint on the CPU, without running any code from the file.

    Accepts ``{wrapper: {...}, ...}`` for the first of ``wrappers`` the file has (other entries
    ignored) or a bare state_dict, and removes a ``module.`` key prefix.
    """
    path = Path(path)
    loaded = _torch_load(path)
    state = _unwrap(path, loaded, wrappers)
    return {key.removeprefix(DATA_PARALLEL_PREFIX): value for key, value in state.items()}


def _torch_load(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises RuntimeError, EOFError, UnpicklingError, ValueError...
        raise CheckpointError(_describe_load_failure(err), path) from err


def _describe_load_failure(err: Exception) -> str:
    text = str(err).strip()
    first_line = text.splitlines()[0].split(". ")[0] if text else type(err).__name__
    lowered = text.lower()
    if "weights only load failed" in lowered:
        return (
            "holds Python objects besides tensors; heygemd loads checkpoints with weights_only=True and "
            "will not run code from a file — re-save just the state_dict"
        )
    if isinstance(err, EOFError) or any(sign in lowered for sign in _TRUNCATION_SIGNS):
        return f"is truncated — the data ends early ({first_line}); the download probably stopped; {REDOWNLOAD}"
    if isinstance(err, pickle.UnpicklingError) or any(sign in lowered for sign in _CORRUPTION_SIGNS):
        return f"is corrupt or truncated ({first_line}); {REDOWNLOAD}"
    return f"could not be read as a PyTorch checkpoint ({type(err).__name__}: {first_line})"


def _unwrap(path: Path, loaded: object, wrappers: Sequence[str]) -> Mapping[str, torch.Tensor]:
    if isinstance(loaded, Mapping):
        wrapper = next((name for name in wrappers if isinstance(loaded.get(name), Mapping)), None)
        if wrapper is not None:
            loaded = loaded[wrapper]
    if not isinstance(loaded, Mapping) or not loaded:
        expected = " or ".join(f"{{'{name}': ...}}" for name in wrappers)
        raise CheckpointError(
            f"holds no state_dict (a {type(loaded).__name__}); expected a dict of tensors or {expected}",
            path,
        )
    not_tensors = [str(key) for key, value in loaded.items() if not isinstance(value, torch.Tensor)]
    if not_tensors:
        raise CheckpointError(
            f"is not a state_dict: {_entries(len(not_tensors))} that are not tensors (e.g. {_examples(not_tensors)})",
            path,
        )
    return loaded


# ---------------------------------------------------------------------------- fitting


def fit_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], path: Path, network: str) -> None:
    """Load ``state`` strictly into ``model``, or explain in one line why it does not fit.

    The tensors are assigned, not copied, so ``model`` may be built on the meta device;
    they take the model's dtypes. Missing ``num_batches_tracked`` buffers (saved by
    PyTorch < 0.4.1, unused in eval) are filled with zero.
    """
    expected = model.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    wrong_shape = [
        f"{key} {tuple(state[key].shape)} vs {tuple(tensor.shape)}"
        for key, tensor in expected.items()
        if key in state and state[key].shape != tensor.shape
    ]
    if any(not key.endswith(BUFFER_DEFAULTED) for key in missing) or unexpected or wrong_shape:
        raise CheckpointError(_mismatch_message(network, len(expected), missing, unexpected, wrong_shape), path)
    _check_finite(state, path)
    filled = {key: state.get(key, torch.zeros((), dtype=tensor.dtype)) for key, tensor in expected.items()}
    typed = {key: value.to(expected[key].dtype) for key, value in filled.items()}
    model.load_state_dict(typed, strict=True, assign=True)


def _mismatch_message(
    network: str, expected_count: int, missing: list[str], unexpected: list[str], wrong_shape: list[str]
) -> str:
    matching = expected_count - len(missing) - len(wrong_shape)
    parts = [
        f"{len(keys)} {label} (e.g. {_examples(keys)})"
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("with the wrong shape", wrong_shape))
        if keys
    ]
    lead = f"this looks like a different network, not {network}" if matching == 0 else f"does not fit {network}"
    return f"{lead}: {expected_count} expected entries, {matching} match; " + "; ".join(parts)


def _check_finite(state: Mapping[str, torch.Tensor], path: Path) -> None:
    bad = [
        key
        for key, value in state.items()
        if value.is_floating_point() and not value.is_meta and not _all_finite(value)  # meta: a shape check, no data
    ]
    if bad:
        raise CheckpointError(f"holds NaN or infinite weights ({_entries(len(bad))}, e.g. {_examples(bad)})", path)


def _all_finite(tensor: torch.Tensor) -> bool:
    """A sum is NaN/inf when any element is; unlike isfinite() it needs no per-element temporary.

    Half-precision tensors are summed in float32 so that a large sum cannot overflow to inf.
    """
    if tensor.dtype not in (torch.float32, torch.float64):
        tensor = tensor.float()
    return bool(torch.isfinite(tensor.sum()))


def _entries(count: int) -> str:
    return f"{count} {'entry' if count == 1 else 'entries'}"


def _examples(keys: list[str]) -> str:
    shown = ", ".join(keys[:EXAMPLES_SHOWN])
    return shown + (", ..." if len(keys) > EXAMPLES_SHOWN else "")


ModelT = TypeVar("ModelT", bound=nn.Module)


def load_network(
    path: Path,
    build: Callable[[], ModelT],
    network: str,
    device: str | torch.device,
    wrappers: Sequence[str] = (STATE_DICT_KEY,),
) -> tuple[ModelT, CheckpointInfo]:
    """Inspect, load and fit the checkpoint of any network; the model comes back in eval mode on ``device``.

    ``build`` makes the empty network (on the meta device: every tensor comes from the file);
    ``network`` names it in error messages; ``wrappers``: the dict keys the file may keep the
    state_dict under, first found wins.
    """
    info = inspect_checkpoint(Path(path))
    state = load_state_dict(info.path, wrappers)
    with torch.device("meta"):
        model = build()
    fit_state_dict(model, state, info.path, network)
    return model.eval().to(device), info


def load_wav2lip(path: Path, device: str | torch.device) -> tuple[Wav2Lip, CheckpointInfo]:
    """Inspect, load and fit a Wav2Lip checkpoint; the model comes back in eval mode on ``device``."""
    return load_network(path, Wav2Lip, "Wav2Lip", device)


def load_s3fd(path: Path, device: str | torch.device) -> tuple[nn.Module, CheckpointInfo]:
    """Inspect, load and fit an S3FD face-detector checkpoint into face-alignment's network."""
    from face_alignment.detection.sfd.net_s3fd import s3fd

    info = inspect_checkpoint(Path(path))
    state = load_state_dict(info.path)
    with torch.device("meta"):
        model = s3fd()
    fit_state_dict(model, state, info.path, "S3FD")
    return model.eval().to(device), info
