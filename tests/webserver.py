"""`heygemd web` for the tests: as a real process beside a real `heygemd run`, or uvicorn in a thread."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

WAIT_SECONDS = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen | None = None, log: Path | None = None) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"heygemd web exited ({process.returncode}):\n{log.read_text() if log else ''}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"heygemd web did not answer at {url}")


class WebProcess:
    """`python -m heygemd web --config ...` in the service's folder, logging to web.log."""

    def __init__(self, root: Path, config: Path, env: dict[str, str] | None = None) -> None:
        self.root = root
        self.config = config
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = root / "web.log"
        self.extra_env = env or {}
        self.process: subprocess.Popen | None = None

    def start(self) -> WebProcess:
        env = {key: value for key, value in os.environ.items() if not key.startswith("HEYGEMD_")}
        env.update(self.extra_env)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "heygemd", "web", "--config", str(self.config), "--port", str(self.port)],
                cwd=self.root,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until_up(self.url, self.process, self.log_path)
        return self

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> int:
        if self.process is None:
            return 0
        self.process.terminate()
        try:
            return self.process.wait(timeout=30)
        finally:
            self.process = None


class WebThread:
    """The application under uvicorn in a thread of the test process (for the route tests: fast)."""

    def __init__(self, app) -> None:
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", timeout_graceful_shutdown=1)
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> WebThread:
        self.thread.start()
        wait_until_up(self.url)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


# A job long enough, and encoded slowly enough (its job.toml sets the preset), that a dry-run render lasts
# several seconds even on a fast machine: its progress is seen moving, and it can be cancelled while it renders.
LONG_AUDIO_SECONDS = 40.0
SLOW_RENDER = '[render]\npreset = "fast"\n'


def make_long_job(folder: Path) -> tuple[Path, Path]:
    from media_factory import make_audio, make_video

    return (
        make_audio(folder / "speech.wav", seconds=LONG_AUDIO_SECONDS),
        make_video(folder / "presenter.mp4", size=(480, 480)),
    )


@contextmanager
def serving(daemon_factory: Callable[..., Any], **sections: dict[str, Any]) -> Iterator[tuple[Any, WebProcess]]:
    """A real `heygemd run` (dry run, the tests' fast settings, ``sections`` over them) and a real `heygemd web` beside it."""
    from service_harness import service_config

    daemon = daemon_factory()
    daemon.write_config(service_config(daemon.root, **sections))
    daemon.start()
    daemon.wait_ready()
    web = WebProcess(daemon.root, daemon.config_path).start()
    try:
        yield daemon, web
    finally:
        web.stop()
