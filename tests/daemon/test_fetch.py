"""`heygemd fetch-models` against a local HTTP server serving generated files (never the internet)."""

from __future__ import annotations

import hashlib
import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from service_harness import toml_text

from heygemd.atomic import find_temporaries
from heygemd.names import download_name


class _Files(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    ranges: list[str] = []
    cut_after: dict[str, int] = {}  # serve only this many bytes, then drop the connection

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        data = self.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        start = 0
        header = self.headers.get("Range")
        if header:
            self.ranges.append(header)
            start = int(header.split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        limit = self.cut_after.pop(self.path, None)
        body = data[start:]
        self.wfile.write(body if limit is None else body[:limit])

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, type[_Files]]]:
    handler = type("Handler", (_Files,), {"files": {}, "ranges": [], "cut_after": {}})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    httpd.shutdown()
    httpd.server_close()


WEIGHTS = os.urandom(300_000)
DETECTOR = os.urandom(120_000)
KOKORO_MODEL = os.urandom(50_000)
KOKORO_VOICES = os.urandom(20_000)


def setup(tmp_path: Path, base: str, handler, *, weights_sha: str | None = None, kokoro_base: str | None = None) -> Path:
    handler.files.update(
        {"/w2l.pth": WEIGHTS, "/s3fd.pth": DETECTOR, "/kokoro.onnx": KOKORO_MODEL, "/voices.bin": KOKORO_VOICES}
    )
    kokoro_base = kokoro_base or base
    config = tmp_path / "heygemd.toml"
    config.write_text(
        toml_text(
            {
                "engine": {"checkpoint": "checkpoints/wav2lip_gan.pth", "detector_checkpoint": "checkpoints/s3fd.pth"},
                "models": {
                    "checkpoint_url": f"{base}/w2l.pth",
                    "checkpoint_sha256": weights_sha or hashlib.sha256(WEIGHTS).hexdigest(),
                    "detector_url": f"{base}/s3fd.pth",
                    "detector_sha256": hashlib.sha256(DETECTOR).hexdigest()[:10],  # a prefix, like s3fd-619a316812.pth
                },
                "speech": {  # never the real Kokoro files from the tests
                    "kokoro_model_url": f"{kokoro_base}/kokoro.onnx",
                    "kokoro_model_sha256": hashlib.sha256(KOKORO_MODEL).hexdigest(),
                    "kokoro_voices_url": f"{kokoro_base}/voices.bin",
                    "kokoro_voices_sha256": hashlib.sha256(KOKORO_VOICES).hexdigest(),
                },
            }
        )
    )
    return config


def fetch(tmp_path: Path, config: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEYGEMD_")}
    return subprocess.run(
        [sys.executable, "-m", "heygemd", "fetch-models", "--config", str(config)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_downloads_checks_and_renames(tmp_path, server):
    base, handler = server
    config = setup(tmp_path, base, handler)
    result = fetch(tmp_path, config)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "checkpoints" / "wav2lip_gan.pth").read_bytes() == WEIGHTS
    assert (tmp_path / "checkpoints" / "s3fd.pth").read_bytes() == DETECTOR
    assert (tmp_path / "checkpoints" / "kokoro-v1.0.onnx").read_bytes() == KOKORO_MODEL
    assert (tmp_path / "checkpoints" / "voices-v1.0.bin").read_bytes() == KOKORO_VOICES
    assert find_temporaries(tmp_path / "checkpoints") == []
    again = fetch(tmp_path, config)
    assert again.returncode == 0 and again.stdout.count("is present") == 4


def test_kokoro_offline_is_optional_and_says_what_to_place_where(tmp_path, server):
    base, handler = server
    config = setup(tmp_path, base, handler, kokoro_base="http://127.0.0.1:9")  # discard port: connection refused
    result = fetch(tmp_path, config)
    assert result.returncode == 0, result.stderr  # espeak-ng speaks scripts meanwhile
    assert result.stderr.count("optional") == 2 and "espeak-ng speaks the scripts" in result.stderr
    assert str((tmp_path / "checkpoints" / "kokoro-v1.0.onnx").resolve()) in result.stderr
    assert str((tmp_path / "checkpoints" / "voices-v1.0.bin").resolve()) in result.stderr


def test_resumes_a_broken_download(tmp_path, server):
    base, handler = server
    config = setup(tmp_path, base, handler)
    handler.cut_after["/w2l.pth"] = 100_000
    first = fetch(tmp_path, config)
    assert first.returncode == 69
    partial = tmp_path / "checkpoints" / download_name("wav2lip_gan.pth")
    assert partial.stat().st_size == 100_000 and not (tmp_path / "checkpoints" / "wav2lip_gan.pth").exists()
    assert "again to resume" in first.stderr
    second = fetch(tmp_path, config)
    assert second.returncode == 0, second.stderr
    assert handler.ranges == ["bytes=100000-"]
    assert (tmp_path / "checkpoints" / "wav2lip_gan.pth").read_bytes() == WEIGHTS and not partial.exists()


def test_resumes_from_a_part_file_of_an_earlier_version(tmp_path, server):
    base, handler = server
    config = setup(tmp_path, base, handler)
    (tmp_path / "checkpoints").mkdir(exist_ok=True)
    (tmp_path / "checkpoints" / "wav2lip_gan.pth.part").write_bytes(WEIGHTS[:1000])
    result = fetch(tmp_path, config)
    assert result.returncode == 0, result.stderr
    assert handler.ranges == ["bytes=1000-"]
    assert (tmp_path / "checkpoints" / "wav2lip_gan.pth").read_bytes() == WEIGHTS
    assert (
        find_temporaries(tmp_path / "checkpoints") == [] and not (tmp_path / "checkpoints" / "wav2lip_gan.pth.part").exists()
    )


def test_a_wrong_hash_keeps_nothing(tmp_path, server):
    base, handler = server
    config = setup(tmp_path, base, handler, weights_sha="0" * 64)
    result = fetch(tmp_path, config)
    assert result.returncode == 69
    assert "not the expected" in result.stderr
    assert not list((tmp_path / "checkpoints").glob("wav2lip_gan.pth*"))


def test_offline_says_which_file_goes_where(tmp_path, server):
    base, handler = server
    config = setup(tmp_path, "http://127.0.0.1:9", handler)  # discard port: connection refused
    result = fetch(tmp_path, config)
    assert result.returncode == 69
    expected_path = str((tmp_path / "checkpoints" / "wav2lip_gan.pth").resolve())
    assert "Place it by hand" in result.stderr and expected_path in result.stderr
    assert "http://127.0.0.1:9/w2l.pth" in result.stderr
