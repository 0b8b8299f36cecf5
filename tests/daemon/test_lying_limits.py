"""Limits that the header or the disk could fool, on the real `heygemd run`.

- An MP3 whose header (its Xing frame count) says 2 s but that decodes to 20 s: the decoded
  snapshot's exact length is checked before the first frame (``limit.audio_too_long``).
- A template over ``limits.max_file_bytes`` on a share with less free space than the job needs:
  refused at once (``limit.file_too_large``), not left "waiting for disk space" for ever.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from service_harness import drop_job, service_config
from small_fs import PAGE, fill, mounted_tmpfs

from heygemd.engine.ffmpeg_tools import ffmpeg_path, ffprobe_path

pytestmark = pytest.mark.slow

XING = b"Xing"
INFO = b"Info"  # the same header, written by LAME for a constant bitrate


def lying_mp3(folder: Path, seconds: float, claimed_fraction: int) -> Path:
    """A real MP3 of ``seconds`` whose header claims ``1/claimed_fraction`` of its frames."""
    honest = folder / "honest.mp3"
    subprocess.run(
        [ffmpeg_path(), "-v", "error", "-y", "-f", "lavfi", "-i", f"sine=frequency=300:duration={seconds}"]
        + ["-c:a", "libmp3lame", "-b:a", "64k", str(honest)],
        check=True,
    )
    data = bytearray(honest.read_bytes())
    at = data.find(XING) if XING in data else data.find(INFO)
    assert at > 0, "LAME writes a Xing/Info header"
    frames = int.from_bytes(data[at + 8 : at + 12], "big")
    data[at + 8 : at + 12] = (frames // claimed_fraction).to_bytes(4, "big")
    lying = folder / "voice.mp3"
    lying.write_bytes(bytes(data))
    return lying


def header_seconds(path: Path) -> float:
    probed = subprocess.run(
        [ffprobe_path(), "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(probed.stdout)


def test_an_audio_whose_header_lies_about_its_length_is_refused_by_its_decoded_length(daemon_factory, media, tmp_path):
    audio = lying_mp3(tmp_path, seconds=20.0, claimed_fraction=10)
    assert header_seconds(audio) < 5.0
    daemon = daemon_factory()
    daemon.write_config(service_config(daemon.root, limits={"max_audio_seconds": 10.0}))
    daemon.start()
    daemon.wait_ready()
    drop_job(daemon.inbox, "liar", {"voice.mp3": audio, "presenter.mp4": media["video"]})
    error = daemon.wait_quarantine("liar")
    assert error["code"] == "limit.audio_too_long", error
    assert "voice.mp3" in error["reason"]
    assert not daemon.logged("rendering"), "refused before the first frame"
    assert daemon.stop() == 0


def test_a_template_over_the_file_limit_and_the_free_disk_is_refused_at_once(daemon_factory, media, tmp_path):
    template = tmp_path / "big.mp4"
    template.write_bytes(media["video"].read_bytes() * 8)  # its size is all that matters: refused before any read
    share_size = 2 << 20
    with mounted_tmpfs(tmp_path / "share", share_size) as share:
        folders = {name: share / name for name in ("inbox", "work", "outbox", "quarantine", "archive")}
        for folder in folders.values():
            folder.mkdir()
        daemon = daemon_factory()
        paths = {name: str(folder) for name, folder in folders.items()} | {"state": str(daemon.state)}
        limit = template.stat().st_size // 2
        daemon.write_config(service_config(daemon.root, paths=paths, limits={"max_file_bytes": limit}))
        daemon.start()
        daemon.wait_ready()
        fill(share, template.stat().st_size + media["audio"].stat().st_size + 8 * PAGE)  # room for the drop only
        drop_job(folders["inbox"], "huge", {"speech.wav": media["audio"], "big.mp4": template})
        error_file = folders["quarantine"] / "huge" / "error.json"
        daemon.wait_for(error_file.exists, "the job to be refused")
        assert '"code": "limit.file_too_large"' in error_file.read_text()
        assert not daemon.logged("not enough disk space for the job's results; it stays in the inbox until space is freed")
        assert daemon.stop() == 0
