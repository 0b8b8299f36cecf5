"""Is a file still open for writing? Real files, real writers in other processes, the real kernel."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from as_user import (
    REPO,
    give_to_unprivileged,
    run_unprivileged,
    shared_temp_dir,
    unprivileged_prefix,
)

from heygemd.daemon.openfiles import (
    OpenFileProbe,
    OpenState,
    ProbeMethod,
    probe_capability,
    read_proc_writers,
)

WAIT_SECONDS = 60.0


def local_probe() -> OpenFileProbe:
    return OpenFileProbe(network=False)


class Writer:
    """Another process that opens a file (for writing, by default) and keeps it open until stopped."""

    def __init__(self, path: Path, mode: str = "ab", *, user_prefix: list[str] | None = None) -> None:
        code = f"import sys; handle = open({str(path)!r}, {mode!r}); print('open', flush=True); sys.stdin.read()"
        self.process = subprocess.Popen(
            [*(user_prefix or []), sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout.readline().strip() == "open"

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=WAIT_SECONDS)


def test_a_file_another_process_writes_is_open_until_it_closes(tmp_path):
    path = tmp_path / "voice.wav"
    path.write_bytes(b"RIFF")
    probe = local_probe()
    assert probe.probe(path).state is OpenState.CLOSED
    writer = Writer(path)
    try:
        seen = probe.probe(path)
        assert seen.state is OpenState.OPEN and seen.method is ProbeMethod.LEASE
    finally:
        writer.close()
    assert probe.probe(path).state is OpenState.CLOSED


@pytest.mark.parametrize(("mode", "state"), [("rb", OpenState.CLOSED), ("r+b", OpenState.OPEN), ("wb", OpenState.OPEN)])
def test_readers_do_not_count_read_write_does(tmp_path, mode, state):
    path = tmp_path / "v.mp4"
    path.write_bytes(b"video")
    writer = Writer(path, mode)
    try:
        assert local_probe().probe(path).state is state
    finally:
        writer.close()


def test_full_size_set_first_is_still_open(tmp_path):
    # Windows' copy engine sets the final size, then writes the content: size and mtime look finished.
    path = tmp_path / "big.mp4"
    with open(path, "wb") as handle:
        handle.truncate(10_000_000)
        handle.flush()
        assert local_probe().probe(path).open
    assert local_probe().probe(path).closed


def test_a_vanished_file_is_closed_and_a_network_mount_cannot_tell(tmp_path):
    assert local_probe().probe(tmp_path / "gone.wav").state is OpenState.CLOSED
    path = tmp_path / "a.wav"
    path.write_bytes(b"a")
    seen = OpenFileProbe(network=True).probe(path)
    assert seen.state is OpenState.UNKNOWN and seen.method is ProbeMethod.NONE


def test_a_lease_break_never_kills_the_prober(tmp_path):
    # While the lease is held, a writer's open() waits and the holder is signalled (SIGIO by default,
    # which kills). Hold it on purpose in a child process, let a writer hit it, then release.
    path = tmp_path / "f.wav"
    path.write_bytes(b"x")
    code = textwrap.dedent(
        f"""
        import fcntl, threading, time
        from heygemd.daemon.openfiles import open_for_lease, take_read_lease
        descriptor = open_for_lease({str(path)!r})
        assert take_read_lease(descriptor)
        writer = threading.Thread(target=lambda: open({str(path)!r}, "ab").close())
        writer.start()
        deadline = time.monotonic() + {WAIT_SECONDS}
        while "BREAKING" not in open("/proc/locks").read():
            assert time.monotonic() < deadline, "the lease was never broken"
            time.sleep(0.01)
        fcntl.fcntl(descriptor, fcntl.F_SETLEASE, fcntl.F_UNLCK)
        writer.join()
        print("alive")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        timeout=WAIT_SECONDS,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0 and result.stdout.strip() == "alive", (result.returncode, result.stderr)


def test_proc_lists_the_writers_it_can_see(tmp_path):
    path = tmp_path / "a.wav"
    path.write_bytes(b"a")
    info = path.stat()
    writer = Writer(path)
    try:
        writers = read_proc_writers()
        assert writers.readable and (info.st_dev, info.st_ino) in writers.files
    finally:
        writer.close()
    assert (info.st_dev, info.st_ino) not in read_proc_writers().files


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as two users (the file's owner and the service)")
def test_without_lease_rights_proc_is_asked_and_says_unknown_for_what_it_cannot_see():
    # An unprivileged service may not lease another user's file; /proc then shows only its own user's processes.
    folder = shared_temp_dir()
    try:
        foreign, own = folder / "foreign.wav", folder / "own.wav"
        foreign.write_bytes(b"root's")
        foreign.chmod(0o666)
        own.write_bytes(b"the service's")
        give_to_unprivileged(own)
        code = textwrap.dedent(
            """
            import json, sys
            from pathlib import Path
            from heygemd.daemon.openfiles import OpenFileProbe
            probe = OpenFileProbe(network=False)
            print(json.dumps({name: [p.state.value, p.method.value] for name in sys.argv[1:]
                              for p in [probe.probe(Path(name))]}))
            """
        )
        idle = run_unprivileged(code, str(foreign), str(own))
        writer = Writer(foreign, user_prefix=unprivileged_prefix())  # a process the service may inspect
        try:
            written = run_unprivileged(code, str(foreign))
        finally:
            writer.close()
    finally:
        subprocess.run(["rm", "-rf", str(folder)], check=True)
    assert idle[str(own)] == ["closed", "lease"]
    assert idle[str(foreign)] == ["unknown", "proc"]  # root's processes cannot be inspected: never "closed"
    assert written[str(foreign)] == ["open", "proc"]


def test_capability_of_a_local_folder(tmp_path):
    capability = probe_capability(tmp_path)
    assert capability.available and capability.method in (ProbeMethod.LEASE, ProbeMethod.PROC)
    assert capability.filesystem and not list(tmp_path.iterdir())  # the test file is gone


@pytest.mark.skipif(os.geteuid() != 0, reason="the case of root with its capabilities bounded")
def test_root_without_cap_lease_is_told_the_true_reason_proc_is_incomplete(tmp_path):
    folder = shared_temp_dir()
    writer = Writer(folder / "other-user.wav", user_prefix=unprivileged_prefix())  # another user's process
    try:
        bounded = subprocess.run(
            ["setpriv", "--bounding-set=-lease,-sys_ptrace", "--", sys.executable, "-c",
             "import sys; from pathlib import Path; from heygemd.daemon.openfiles import probe_capability; "
             "print(probe_capability(Path(sys.argv[1])).detail)", str(tmp_path)],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout  # fmt: skip
    finally:
        writer.close()
        subprocess.run(["rm", "-rf", str(folder)], check=True)
    assert "hides other users' processes" not in bounded, bounded
    assert "root without CAP_SYS_PTRACE" in bounded and "CAP_LEASE" in bounded, bounded
