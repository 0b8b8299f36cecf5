"""Files that appear whole or not at all, under the one temporary-name convention, and the clean-up of leftovers."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from heygemd.atomic import (
    FOREIGN_TEMPORARY_SECONDS,
    atomic_output,
    find_temporaries,
    remove_leftover_temporaries,
    write_atomic,
)
from heygemd.names import NAME_MAX_BYTES, download_name, machine_tag, temporary_name


def visible_and_hidden(folder):
    return sorted(entry.name for entry in folder.iterdir())


def test_write_atomic_text_and_bytes_with_a_255_byte_name(tmp_path):
    longest = "名" * 85
    write_atomic(tmp_path / longest, "first\n")
    write_atomic(tmp_path / longest, b"\x00second", durable=False)
    assert (tmp_path / longest).read_bytes() == b"\x00second"
    assert visible_and_hidden(tmp_path) == [longest]


def test_write_atomic_without_creating_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        write_atomic(tmp_path / "gone" / "record.json", "{}", create_parent=False)
    assert not (tmp_path / "gone").exists()
    write_atomic(tmp_path / "made" / "record.json", "{}")
    assert (tmp_path / "made" / "record.json").read_text() == "{}"


def test_atomic_output_appears_whole_or_not_at_all(tmp_path):
    target = tmp_path / ("x" * 251 + ".mp4")
    with atomic_output(target) as temporary:
        assert temporary.parent == tmp_path and len(os.fsencode(temporary.name)) <= NAME_MAX_BYTES
        temporary.write_bytes(b"video")
        assert not target.exists()
    assert target.read_bytes() == b"video"
    with pytest.raises(RuntimeError), atomic_output(target, durable=True) as temporary:
        temporary.write_bytes(b"half")
        raise RuntimeError("encoder died")
    assert target.read_bytes() == b"video" and visible_and_hidden(tmp_path) == [target.name]


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _make(folder, name, *, is_dir: bool = False):
    path = folder / name
    if is_dir:
        path.mkdir()
        (path / "inside").write_text("x")
    else:
        path.write_text("x")
    return path


def test_leftovers_are_removed_and_live_files_kept(tmp_path):
    dead = _dead_pid()
    tag = machine_tag()
    crashed = _make(tmp_path, f".job.heygemd-{tag}-{dead}-abcdef.tmp")
    crashed_folder = _make(tmp_path, f".job (2).heygemd-{tag}-{dead}-abcdef.tmp", is_dir=True)
    # written by a live process (the test's parent), and one of ours written after the start
    live = _make(tmp_path, f".other.heygemd-{tag}-{os.getppid()}-abcdef.tmp")
    mine = tmp_path / temporary_name("out.mp4")
    mine.write_text("x")
    download = _make(tmp_path, download_name("wav2lip_gan.pth"))
    foreign_fresh = _make(tmp_path, f".a.heygemd-0badc0de-{dead}-abcdef.tmp")
    legacy_old = _make(tmp_path, ".job.zip.heygemd-partial")
    content = _make(tmp_path, "voice.wav")
    hidden_content = _make(tmp_path, ".DS_Store")
    time.sleep(0.01)  # ``mine`` (our own pid) now predates the "start": a reused pid, a leftover
    assert len(find_temporaries(tmp_path)) == 7

    result = remove_leftover_temporaries([tmp_path, tmp_path / "missing"], time.time())
    assert sorted(result.removed) == sorted([crashed, crashed_folder, mine]) and result.failed == []
    for kept in (live, download, foreign_fresh, legacy_old, content, hidden_content):
        assert kept.exists(), kept.name


def test_a_foreign_leftover_goes_once_unchanged_for_a_day(tmp_path):
    from heygemd.atomic import FoundTemporary, is_leftover
    from heygemd.names import parse_temporary_name

    name = ".job.heygemd-0badc0de-12-abcdef.tmp"
    parsed = parse_temporary_name(name)
    assert parsed is not None and not parsed.checkable
    now = time.time()
    old = FoundTemporary(tmp_path / name, parsed, now - FOREIGN_TEMPORARY_SECONDS - 1)
    fresh = FoundTemporary(tmp_path / name, parsed, now - 60)
    assert is_leftover(old, now, now) and not is_leftover(fresh, now, now)
