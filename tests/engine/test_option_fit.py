"""A render option that does not fit the template is the option's fault, never the input's."""

from __future__ import annotations

import pytest
from media_factory import make_audio, make_video

from heygemd.codes import ErrorCode
from heygemd.engine import EngineError, MediaError, RenderOptions


def test_a_fixed_box_outside_the_frame_is_render_option_unfit_not_an_input_code(engine, tmp_path):
    speech = make_audio(tmp_path / "speech.wav", seconds=0.5)
    template = make_video(tmp_path / "clip.mp4", seconds=0.5, size=(160, 160))
    with pytest.raises(EngineError) as caught:
        engine.render(speech, template, tmp_path / "out.mp4", RenderOptions(fixed_box=(400, 400, 500, 500)))
    assert caught.value.code is ErrorCode.RENDER_OPTION_UNFIT and not isinstance(caught.value, MediaError)
    failure = caught.value.failure()
    assert failure.reason.startswith("clip.mp4: the fixed box") and "160x160" in failure.reason
    assert not (tmp_path / "out.mp4").exists()
