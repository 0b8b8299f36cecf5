"""The web upload's mark on real folders: a folder the web wrote and renamed in is ready at first sight;
a hand copy of it (mark included), or one changed after the upload, settles like any other."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from heygemd.daemon.config import Readiness
from heygemd.daemon.readiness import ReadinessTracker, WaitKind
from heygemd.uploadmark import UPLOAD_MARK, write_upload_mark

SETTLE_SECONDS = 3600.0


def tracker(readiness: Readiness) -> ReadinessTracker:
    return ReadinessTracker(
        readiness=readiness, marker_name="READY", settle_seconds=SETTLE_SECONDS, abandon_after_seconds=7200
    )


def web_upload(inbox: Path, name: str) -> Path:
    """As `heygemd web` does: files into a hidden staging folder, the mark last, one rename into the inbox."""
    staging = inbox / f".{name}.web-upload"
    staging.mkdir(parents=True)
    (staging / "voice.wav").write_bytes(b"RIFF" + bytes(200))
    (staging / "front.mp4").write_bytes(bytes(range(256)) * 8)
    write_upload_mark(staging)
    target = inbox / name
    os.rename(staging, target)
    return target


@pytest.mark.parametrize("readiness", [Readiness.SETTLE, Readiness.MARKER])
def test_a_web_upload_is_ready_at_once_and_a_hand_copy_is_not(tmp_path: Path, readiness: Readiness) -> None:
    inbox = tmp_path / "inbox"
    uploaded = web_upload(inbox, "uploaded")
    shutil.copytree(uploaded, inbox / "copied")  # by hand, mark and modification times included: new inodes
    assert (inbox / "copied" / UPLOAD_MARK).exists()
    scan = tracker(readiness).scan(inbox, 0)
    assert [item.name for item in scan.ready] == ["uploaded"]
    waiting = {item.name: item.kind for item in scan.arriving}
    assert waiting == {"copied": WaitKind.SETTLING if readiness is Readiness.SETTLE else WaitKind.NO_MARKER}


def test_a_file_added_or_changed_after_the_upload_makes_it_settle_again(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    added = web_upload(inbox, "added")
    (added / "side.mp4").write_bytes(b"v" * 100)
    changed = web_upload(inbox, "changed")
    with open(changed / "front.mp4", "ab") as handle:
        handle.write(b"more")
    scan = tracker(Readiness.SETTLE).scan(inbox, 0)
    assert scan.ready == [] and sorted(scan.waiting) == ["added", "changed"]
