"""The service harness for the daemon, web and cluster tests: a service folder, `heygemd run` as a real process, Samba-like drops."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from heygemd.daemon.config import toml_value

WAIT_SECONDS = 150.0  # generous: outcomes are waited for, never timed
TEMPLATE_SIZE = (160, 160)

# Short timings so the flow tests run in seconds; the settle logic itself is the same.
FAST_WATCH = {
    "settle_seconds": 1.5,
    "network_settle_seconds": 1.5,
    "scan_interval_seconds": 0.25,
    "rescan_interval_seconds": 3.0,
    "poll_interval_seconds": 0.3,
    "abandon_after_seconds": 6.0,
}


def toml_text(config: dict[str, dict[str, Any]]) -> str:
    lines = []
    for section, values in config.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {toml_value(value)}" for key, value in values.items() if value is not None]
        lines.append("")
    return "\n".join(lines)


def service_config(root: Path, *, checkpoint: Path | None = None, **sections: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A config for a service rooted at ``root``: dry run unless a checkpoint is given (then the real model, LBP)."""
    engine: dict[str, Any] = {"dry_run": True, "device": "cpu"}
    if checkpoint is not None:
        engine = {
            "dry_run": False,
            "checkpoint": str(checkpoint),
            "detector": "lbp",
            "device": "cpu",
            "batch_size": 16,
            "detect_max_side": 320,
        }
    config: dict[str, dict[str, Any]] = {
        "watch": dict(FAST_WATCH),
        "service": {"stop_grace_seconds": 20.0},
        "log": {"format": "json", "level": "debug"},
        "engine": engine,
        "render": {"preset": "ultrafast"},
    }
    for section, values in sections.items():
        config.setdefault(section, {}).update(values)
    return config


class Daemon:
    """`python -m heygemd run` in ``root`` (its working directory), logs to a file."""

    def __init__(self, root: Path, env: dict[str, str] | None = None) -> None:
        self.root = root
        self.config_path = root / "config" / "heygemd.toml"
        self.log_path = root / "daemon.log"
        self.extra_env = env or {}
        self.process: subprocess.Popen | None = None
        self.command_prefix: list[str] = []  # e.g. setpriv ... to run the service as another user
        self._log_offset = 0

    def write_config(self, config: dict[str, dict[str, Any]]) -> None:
        self.config_path.parent.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(toml_text(config), encoding="utf-8")

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def outbox(self) -> Path:
        return self.root / "outbox"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    @property
    def archive(self) -> Path:
        return self.root / "archive"

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def state(self) -> Path:
        return self.root / "state"

    def start(self) -> Daemon:
        for folder in (self.inbox, self.outbox, self.quarantine):
            folder.mkdir(parents=True, exist_ok=True)
        env = {key: value for key, value in os.environ.items() if not key.startswith(("HEYGEMD_", "NOTIFY_", "WATCHDOG_"))}
        env.update(self.extra_env)
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [*self.command_prefix, sys.executable, "-m", "heygemd", "run", "--config", str(self.config_path)],
            cwd=self.root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        return self

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for raw in self.log_path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                lines.append(json.loads(raw))
            except ValueError:
                lines.append({"event": raw, "unparsed": True})
        return lines

    def logged(self, event: str) -> list[dict[str, Any]]:
        return [line for line in self.log_lines() if line.get("event") == event]

    def wait_for(self, condition: Callable[[], Any], what: str, timeout: float = WAIT_SECONDS) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = condition()
            if result:
                return result
            if self.process is not None and self.process.poll() is not None:
                result = condition()
                if result:
                    return result
                raise AssertionError(f"heygemd exited ({self.process.returncode}) while waiting for {what}:\n{self.tail()}")
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}:\n{self.tail()}")

    def wait_ready(self) -> None:
        self.wait_for(lambda: self.logged("ready"), "the service to be ready")

    def wait_outbox(self, name: str) -> Path:
        return self.wait_for(lambda: (self.outbox / name / "job.json").exists() and self.outbox / name, f"outbox/{name}")

    def wait_quarantine(self, name: str) -> dict[str, Any]:
        path = self.quarantine / name / "error.json"
        self.wait_for(path.exists, f"quarantine/{name}")
        return json.loads(path.read_text(encoding="utf-8"))

    def send(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def stop(self, timeout: float = WAIT_SECONDS) -> int:
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self.process = None

    def kill9(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=30)
        self.process = None

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def heygemd_cli(daemon: Daemon, *args: str) -> subprocess.CompletedProcess:
    """``heygemd ARGS --config <the daemon's>`` as an operator runs it beside the service (no HEYGEMD_* variables)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("HEYGEMD_")}
    return subprocess.run(
        [sys.executable, "-m", "heygemd", *args, "--config", str(daemon.config_path)],
        cwd=daemon.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    started: list[Daemon] = []

    def make(root: Path | None = None, env: dict[str, str] | None = None) -> Daemon:
        daemon = Daemon(root or tmp_path / "service", env)
        daemon.root.mkdir(parents=True, exist_ok=True)
        started.append(daemon)
        return daemon

    yield make
    for daemon in started:
        if daemon.process is not None and daemon.process.poll() is None:
            daemon.process.kill()
            daemon.process.wait(timeout=30)


def copy_slowly(source: Path | bytes, target: Path, chunk: int = 32 * 1024, pause: float = 0.02) -> None:
    """Write like a Samba client: the file appears under its final name, then grows chunk by chunk."""
    data = source if isinstance(source, bytes) else source.read_bytes()
    with open(target, "wb") as handle:
        for start in range(0, max(len(data), 1), chunk):
            handle.write(data[start : start + chunk])
            handle.flush()
            time.sleep(pause)


def drop_job(inbox: Path, name: str, files: dict[str, Path | bytes], *, staging: Path | None = None) -> Path:
    """Create ``inbox/name`` and copy ``files`` into it slowly, one after the other."""
    folder = inbox / name
    folder.mkdir(parents=True)
    for file_name, source in files.items():
        copy_slowly(source, folder / file_name)
    return folder


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny generated media shared by the daemon tests."""
    from media_factory import make_audio, make_video

    folder = tmp_path_factory.mktemp("daemon-media")
    audio = make_audio(folder / "speech.wav", seconds=1.2)
    video = make_video(folder / "presenter.mp4", seconds=1.0, fps="25", size=TEMPLATE_SIZE)
    truncated = folder / "truncated.mp4"
    truncated.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    return {"audio": audio, "video": video, "truncated": truncated}


class NotifySocket:
    """A real unix datagram socket standing in for systemd's $NOTIFY_SOCKET, read continuously like systemd."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="hgn", dir="/tmp"))  # AF_UNIX paths are short
        self.path = self.folder / "notify"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.sock.settimeout(0.2)
        self.messages: list[str] = []
        self._closed = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while not self._closed.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.messages.extend(data.decode().split("\n"))

    def drain(self) -> list[str]:
        """Every message sent so far (call once the sender is done): the reader stops, the rest is read here."""
        self._closed.set()
        self._reader.join(timeout=5)
        self.sock.setblocking(False)
        while True:
            try:
                data = self.sock.recv(4096)
            except (BlockingIOError, OSError):
                return list(self.messages)
            self.messages.extend(data.decode().split("\n"))

    def close(self) -> None:
        self._closed.set()
        self._reader.join(timeout=5)
        self.sock.close()
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture
def notify_socket() -> Iterator[NotifySocket]:
    sock = NotifySocket()
    yield sock
    sock.close()


@pytest.fixture(scope="session")
def samba(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One real smbd for the session (see smb_server.py), with an SMB session of smbprotocol registered to it."""
    from smb_server import start_samba

    server = start_samba(tmp_path_factory.mktemp("samba"))
    try:
        server.register()
        yield server
    finally:
        import smbclient

        smbclient.reset_connection_cache()
        server.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One real redis-server for the session (redis_server.py), on a free loopback port, stopped by its PID."""
    from redis_server import RedisServer, redis_binary

    server = RedisServer(tmp_path_factory.mktemp("redis"), redis_binary()).start()
    try:
        yield server
    finally:
        server.stop()
