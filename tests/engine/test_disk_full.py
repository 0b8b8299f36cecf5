"""A disk that fills during an encode: a real full filesystem (tmpfs), not a simulated error.

The encoder's failure must carry the transient code disk.full, and no partial file may stay
behind to hold the space the disk lacks.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from media_factory import make_audio, make_video
from small_fs import mounted_tmpfs

from heygemd.codes import ErrorCode
from heygemd.engine.errors import MediaError
from heygemd.engine.media import VideoWriter

SIZE = (160, 160)
TINY_FS = 256 * 1024  # a lossless encode of noise passes this within a few frames


@pytest.fixture(scope="module")
def voice(tmp_path_factory) -> Path:
    return make_audio(tmp_path_factory.mktemp("voice") / "voice.wav", seconds=2.0)


def noise(index: int) -> np.ndarray:
    return np.random.default_rng(index).integers(0, 256, (SIZE[1], SIZE[0], 3), dtype=np.uint8)


def test_the_writer_reports_a_full_disk_as_disk_full_and_removes_its_file(tmp_path, voice):
    with mounted_tmpfs(tmp_path / "small", TINY_FS) as small:
        output = small / "out.mp4"
        with pytest.raises(MediaError) as caught:
            with VideoWriter(
                output, SIZE[0], SIZE[1], Fraction(25), voice, crf=0, preset="ultrafast", pixel_format="bgr24"
            ) as writer:
                for index in range(50):
                    writer.write(noise(index))
        assert caught.value.code is ErrorCode.DISK_FULL and ErrorCode.DISK_FULL.transient
        assert "the disk is full" in str(caught.value)
        assert list(small.iterdir()) == [], "the partial output must be removed"


def test_a_render_onto_a_full_disk_fails_with_disk_full_and_leaves_nothing(tmp_path, voice):
    from heygemd.engine import EngineSettings, LipSyncEngine
    from heygemd.engine.settings import RenderOptions

    template = make_video(tmp_path / "presenter.mp4", seconds=2.0, size=SIZE)
    engine = LipSyncEngine(EngineSettings(dry_run=True, device="cpu"))
    with mounted_tmpfs(tmp_path / "small", 64 * 1024) as small:
        with pytest.raises(MediaError) as caught:
            engine.render(voice, template, small / "result.mp4", RenderOptions(crf=0, preset="ultrafast"))
        assert caught.value.code is ErrorCode.DISK_FULL
        assert list(small.iterdir()) == [], "the hidden temporary output must be removed too"
        assert caught.value.path == small / "result.mp4", "the error names the result, not its hidden temporary"
        assert str(caught.value).endswith("the disk is full")
