"""`heygemd web` as a process: it imports nothing heavy, never logs its token, and stops promptly with streams open."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
from service_harness import toml_text
from webserver import WebProcess, free_port

HEAVY = ("torch", "torchvision", "cv2", "numpy", "scipy", "librosa", "face_alignment", "skimage", "numba", "imageio_ffmpeg")
TOKEN = "s3cret-token-for-the-web-page"

# Runs the real command in a thread of a fresh interpreter, asks for every kind of page, then reports what got imported.
PROBE = """
import json, os, sys, threading, time, urllib.request
from heygemd.cli import main
config, port = sys.argv[1], sys.argv[2]
threading.Thread(target=main, args=(["web", "--config", config, "--port", port],), daemon=True).start()
base = f"http://127.0.0.1:{port}"
started = time.monotonic()
while True:
    try:
        urllib.request.urlopen(base + "/healthz", timeout=1)
        break
    except OSError:
        if time.monotonic() - started > 60:
            sys.exit("heygemd web never answered")
        time.sleep(0.02)
up = time.monotonic() - started
for path in ("/", "/upload", "/api/status", "/metrics", "/openapi.json", "/jobs/none", "/api/jobs/none"):
    try:
        urllib.request.urlopen(base + path, timeout=10)
    except OSError:
        pass
print(json.dumps({"modules": sorted(sys.modules), "up_seconds": up}))
sys.stdout.flush()
os._exit(0)
"""


def write_config(root: Path) -> Path:
    for folder in ("inbox", "outbox", "quarantine", "state"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    config = root / "heygemd.toml"
    config.write_text(toml_text({"paths": {name: str(root / name) for name in ("inbox", "outbox", "quarantine", "state")}}))
    return config


def test_the_web_process_imports_nothing_heavy(tmp_path):
    config = write_config(tmp_path)
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(config), str(free_port())],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    heavy = [name for name in report["modules"] if name.split(".")[0] in HEAVY]
    assert heavy == [], heavy
    assert "heygemd.engine.engine" not in report["modules"] and "heygemd.daemon.service" not in report["modules"]
    print(f"heygemd web answered {report['up_seconds']:.2f} s after its start")  # a figure, not an assertion


def test_the_token_is_never_logged_and_a_stop_does_not_wait_for_open_streams(tmp_path):
    config = write_config(tmp_path)
    web = WebProcess(tmp_path, config, env={"HEYGEMD_WEB__TOKEN": TOKEN}).start()
    try:
        with httpx.Client(base_url=web.url, timeout=10) as client:
            assert client.get("/api/status").status_code == 401
            assert client.get("/api/status", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
            client.get("/login")
            client.post("/login", data={"token": TOKEN, "csrf_token": client.cookies["heygemd_csrf"], "next": "/"})
            assert client.get("/").status_code == 200
            opened = threading.Event()

            def listen() -> None:
                with httpx.stream(
                    "GET", f"{web.url}/api/events", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60
                ) as stream:
                    for _ in stream.iter_lines():
                        opened.set()

            reader = threading.Thread(target=listen, daemon=True)
            reader.start()
            assert opened.wait(30)
        assert web.process is not None
        web.process.send_signal(signal.SIGTERM)
        assert web.process.wait(timeout=30) in (0, -signal.SIGTERM)  # uvicorn ends by the signal it was sent
        web.process = None
    finally:
        web.stop()
    log = web.log()
    assert "sign-in on" in log and TOKEN not in log
