"""Arrival-to-claim latency: from an upload's last close to `heygemd run` claiming the job.

For each way a job arrives:

* ``native``: a local copy into the inbox, seen through inotify (watch.mode = native);
* ``polling``: the same copy, seen by the polling observer (watch.mode = polling, as on NFS/SMB mounts);
* ``samba``: an upload through a real smbd on 127.0.0.1 (smbprotocol client), the inbox being the share;

and for each group of settings (the defaults, and the fast ones of the tests), a real dry-run
service takes a few jobs one after the other. The latency of a job is the timestamp of the
service's JSON log line "job claimed" minus the wall-clock time right after the client closed
its last file (one machine, one clock). Each job is finished before the next one is uploaded.

    .venv/bin/python bench/arrival_latency.py                      # writes bench/results/arrival-latency.json
    .venv/bin/python bench/arrival_latency.py --jobs 1 --settings fast --out /tmp/latency.json

The Samba rows need root and smbd (Debian package samba); without them they are left out, saying why.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "daemon"))  # the test suite's service runner and smbd

import pytest  # noqa: E402  (smb_server reports an unusable smbd as a pytest skip)
from conftest import FAST_WATCH, Daemon, service_config  # noqa: E402

from heygemd.daemon.config import WatchConfig  # noqa: E402

UPLOADS = ("native", "polling", "samba")
SETTINGS = ("default", "fast")
CHUNK_BYTES = 64 * 1024
WAIT_SECONDS = 300.0


def watch_settings(settings: str, upload: str) -> dict:
    watch = dict(FAST_WATCH) if settings == "fast" else {}
    watch["mode"] = "polling" if upload == "polling" else "native"
    return watch


def effective(watch: dict) -> dict:
    defaults = WatchConfig().model_dump(mode="json")
    return {
        key: watch.get(key, defaults[key])
        for key in ("mode", "settle_seconds", "scan_interval_seconds", "poll_interval_seconds", "rescan_interval_seconds")
    }


def local_writer(inbox: Path) -> Callable[[str, dict[str, bytes]], None]:
    def upload(job: str, files: dict[str, bytes]) -> None:
        folder = inbox / job
        folder.mkdir()
        for name, data in files.items():
            with open(folder / name, "wb") as handle:
                for start in range(0, len(data), CHUNK_BYTES):
                    handle.write(data[start : start + CHUNK_BYTES])

    return upload


def samba_writer(server, daemon: Daemon) -> Callable[[str, dict[str, bytes]], None]:
    import smbclient

    def upload(job: str, files: dict[str, bytes]) -> None:
        folder = server.unc(daemon.root.name, "inbox", job)
        smbclient.mkdir(folder, **server.client_options)
        for name, data in files.items():
            with smbclient.open_file(f"{folder}\\{name}", mode="wb", **server.client_options) as handle:
                for start in range(0, len(data), CHUNK_BYTES):
                    handle.write(data[start : start + CHUNK_BYTES])

    return upload


def claimed_at(daemon: Daemon, job: str) -> float | None:
    for line in daemon.logged("job claimed"):
        if line.get("job") == job:
            return datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00")).timestamp()
    return None


def measure(root: Path, upload_kind: str, settings: str, jobs: int, files: dict[str, bytes], samba) -> dict:
    watch = watch_settings(settings, upload_kind)
    daemon = Daemon(root)
    root.mkdir(parents=True)
    config = service_config(root)
    config["watch"] = watch  # the tests' config has the fast timings: replace them, not update them
    daemon.write_config(config)
    daemon.start()
    try:
        daemon.wait_ready()
        upload = samba_writer(samba, daemon) if upload_kind == "samba" else local_writer(daemon.inbox)
        latencies = []
        for number in range(jobs):
            job = f"{upload_kind}-{settings}-{number}"
            upload(job, files)
            closed = time.time()
            claimed = daemon.wait_for(lambda job=job: claimed_at(daemon, job), f"{job} claimed", WAIT_SECONDS)
            daemon.wait_outbox(job)  # idle again before the next upload
            latencies.append(round(claimed - closed, 3))
            print(f"{upload_kind:8} {settings:8} job {number + 1}/{jobs}: {latencies[-1]:.2f} s", flush=True)
    finally:
        daemon.stop()
    return {
        "upload": upload_kind,
        "settings": settings,
        "watch": effective(watch),
        "latencies_s": latencies,
        "median_s": round(statistics.median(latencies), 3),
        "min_s": min(latencies),
        "max_s": max(latencies),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=3, help="jobs per upload kind and settings")
    parser.add_argument("--uploads", nargs="+", default=list(UPLOADS), choices=UPLOADS)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=SETTINGS)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "arrival-latency.json")
    args = parser.parse_args()

    from media_factory import make_audio, make_video

    results: list[dict] = []
    skipped: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="heygemd-arrival-bench-") as scratch_name:
        scratch = Path(scratch_name)
        files = {
            "presenter.mp4": make_video(scratch / "presenter.mp4", seconds=1.0, fps="25", size=(160, 160)).read_bytes(),
            "speech.wav": make_audio(scratch / "speech.wav", seconds=1.2).read_bytes(),
        }
        samba = None
        if "samba" in args.uploads:
            from smb_server import start_samba

            try:
                samba = start_samba(scratch / "samba")
                samba.register()
            except (pytest.skip.Exception, pytest.fail.Exception) as why:
                skipped["samba"] = str(why)
                samba = None
        try:
            for settings in args.settings:
                for upload_kind in args.uploads:
                    if upload_kind == "samba" and samba is None:
                        continue
                    base = samba.share if upload_kind == "samba" else scratch
                    results.append(
                        measure(base / f"{upload_kind}-{settings}", upload_kind, settings, args.jobs, files, samba)
                    )
        finally:
            if samba is not None:
                samba.stop()

    document = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "kernel": platform.release()},
        "measure": "seconds from the client's last close to the service's 'job claimed' log line (dry-run engine; "
        "each job finished before the next upload)",
        "files": {name: len(data) for name, data in files.items()},
        "results": results,
        "left_out": skipped,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"\n{'upload':8} {'settings':8} {'settle':>7} {'median':>8} {'min':>7} {'max':>7}")
    for row in results:
        print(
            f"{row['upload']:8} {row['settings']:8} {row['watch']['settle_seconds']:>6}s "
            f"{row['median_s']:>7.2f}s {row['min_s']:>6.2f}s {row['max_s']:>6.2f}s"
        )
    for upload_kind, why in skipped.items():
        print(f"{upload_kind}: left out: {why}")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
