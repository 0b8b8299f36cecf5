"""A real Samba server for the tests: Debian's smbd on 127.0.0.1, its own smb.conf, one share on a temp folder.

One smbd serves the whole test session. It runs in the foreground as a child of the tests and
is stopped by its PID. It needs root (smbd switches to the logged-in user for each file) and
the Debian package ``samba`` (``scripts/setup.sh test`` installs it when run as root). Without
them the tests skip, naming the package; under CI (``CI=true``) they fail instead.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

SMB_PACKAGE = "samba"  # Debian
SHARE = "heygemd"
USER = "root"  # smbd writes as the logged-in user; the service (root here) sees it through its lease
PASSWORD = "heygemd-test-password"
START_SECONDS = 60.0
SMBD_CANDIDATES = ("/usr/sbin/smbd", "/usr/bin/smbd")


def _under_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def unavailable(reason: str) -> None:
    """Skip, or under CI fail: a test of a system service never silently skips there."""
    if _under_ci():
        pytest.fail(f"{reason} (CI=true: tests needing a system service never skip)")
    pytest.skip(reason)


def find_smbd() -> str | None:
    return shutil.which("smbd") or next((path for path in SMBD_CANDIDATES if os.access(path, os.X_OK)), None)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _port_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def smb_conf(state: Path, share: Path, port: int) -> str:
    folders = {key: state / key for key in ("lock", "state", "cache", "private", "pid", "ncalrpc", "binddns", "log")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    return f"""[global]
    server role = standalone server
    netbios name = HEYGEMDTEST
    workgroup = WORKGROUP
    interfaces = lo
    bind interfaces only = yes
    smb ports = {port}
    disable netbios = yes
    server min protocol = SMB2_10
    lock directory = {folders["lock"]}
    state directory = {folders["state"]}
    cache directory = {folders["cache"]}
    private dir = {folders["private"]}
    pid directory = {folders["pid"]}
    ncalrpc dir = {folders["ncalrpc"]}
    binddns dir = {folders["binddns"]}
    passdb backend = tdbsam:{folders["private"]}/passdb.tdb
    log file = {folders["log"]}/smbd.log
    max log size = 0
    log level = 1
    load printers = no
    printing = bsd
    printcap name = /dev/null
    disable spoolss = yes
    map to guest = never

[{SHARE}]
    path = {share}
    read only = no
    valid users = {USER}
    create mask = 0664
    directory mask = 0775
"""


@dataclass
class SambaServer:
    """A running smbd: ``share`` is the folder it serves as ``\\\\127.0.0.1\\<SHARE>`` on ``port``."""

    share: Path
    port: int
    process: subprocess.Popen
    log: Path

    def unc(self, *parts: str) -> str:
        return "\\\\127.0.0.1\\" + "\\".join((SHARE, *parts))

    @property
    def client_options(self) -> dict[str, object]:
        """For every smbclient call: with them a dropped connection is simply opened again."""
        return {"username": USER, "password": PASSWORD, "port": self.port}

    def register(self) -> None:
        import smbclient

        smbclient.register_session("127.0.0.1", encrypt=False, **self.client_options)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)


def start_samba(root: Path) -> SambaServer:
    """Start smbd serving ``root/share``; skips (or fails under CI) where that cannot be done."""
    try:
        import smbclient  # noqa: F401
    except ImportError:
        unavailable("the SMB client library smbprotocol is not installed (pip install -e '.[test]')")
    smbd = find_smbd()
    if smbd is None:
        unavailable(f"smbd is not installed: install the Debian package {SMB_PACKAGE} (scripts/setup.sh test does, as root)")
    if os.geteuid() != 0:
        unavailable(f"smbd (Debian package {SMB_PACKAGE}) needs root to serve files as its users; run the tests as root")
    share, state = root / "share", root / "smbd"
    share.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    conf = state / "smb.conf"
    state.mkdir(parents=True, exist_ok=True)
    conf.write_text(smb_conf(state, share, port), encoding="utf-8")
    smbpasswd = shutil.which("smbpasswd") or "/usr/bin/smbpasswd"
    added = subprocess.run(
        [smbpasswd, "-c", str(conf), "-a", "-s", USER],
        input=f"{PASSWORD}\n{PASSWORD}\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if added.returncode != 0:
        pytest.fail(f"smbpasswd could not add the test user: {added.stderr or added.stdout}")
    log = state / "log" / "smbd.stdout"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [smbd, "--foreground", "--no-process-group", "--debug-stdout", "-s", str(conf)],
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # smbd signals its whole process group when it stops: not the tests'
        )
    server = SambaServer(share=share, port=port, process=process, log=log)
    deadline = time.monotonic() + START_SECONDS
    while not _port_answers(port):
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            pytest.fail(f"smbd did not start on 127.0.0.1:{port}:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.1)
    return server
