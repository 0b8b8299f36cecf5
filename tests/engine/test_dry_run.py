"""A dry-run engine runs the whole flow without the model, and without loading torch at all."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from media_factory import make_audio, make_video

pytestmark = pytest.mark.slow  # a fresh interpreter: imports and the first mel computation

HEAVY = ("torch", "face_alignment")  # the model's libraries: a dry run needs neither


def test_a_dry_run_engine_renders_without_importing_torch(tmp_path: Path) -> None:
    audio = make_audio(tmp_path / "speech.wav", seconds=0.6)
    video = make_video(tmp_path / "presenter.mp4", seconds=0.4, fps="25", size=(96, 96))
    script = textwrap.dedent(f"""
        import json, sys
        from pathlib import Path
        from heygemd.engine import EngineSettings, LipSyncEngine

        engine = LipSyncEngine(EngineSettings(dry_run=True))
        with engine.prepare_audio(Path({str(audio)!r})) as audio:
            report = engine.render(audio, Path({str(video)!r}), Path({str(tmp_path / "out.mp4")!r}))
        print(json.dumps({{
            "engine": engine.describe().model_dump(mode="json"),
            "frames": report.output.frame_count,
            "heavy": sorted(name for name in sys.modules if name.split(".")[0] in {HEAVY!r}),
        }}))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.splitlines()[-1])
    assert seen["frames"] == 15 and (tmp_path / "out.mp4").exists()
    assert seen["engine"]["dry_run"] is True and seen["engine"]["checkpoint"] is None
    assert seen["heavy"] == [], "a dry run imported the model's libraries"
