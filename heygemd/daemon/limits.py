"""The operator's limit that needs a look inside a file: the audio's length.

``contract.plan_job`` checks the template count and the file sizes (the folder listing says them);
the audio's length comes from ffprobe's reading of its header (the engine's probe module: no
decoding, no torch), right after planning and before anything is rendered.

Only the daemon has limits: `heygemd render` renders what the person running it chose.
"""

from __future__ import annotations

from heygemd.daemon.config import LimitsConfig
from heygemd.daemon.contract import JobPlan, audio_too_long
from heygemd.engine.errors import MediaError
from heygemd.engine.probe import probe_audio


def check_limits(plan: JobPlan, limits: LimitsConfig) -> None:
    """Raise ContractViolation (limit.audio_too_long) if the plan's audio is longer than the limit."""
    if not limits.max_audio_seconds or plan.speech is not None:  # a script's length is checked when it is spoken
        return
    for audio in plan.sources or (plan.audio,):
        try:
            seconds = probe_audio(audio).duration
        except MediaError:
            continue  # an unusable audio is reported by the render step, with its own code and reason
        if round(seconds, 2) > limits.max_audio_seconds:
            raise audio_too_long(audio.name, seconds, limits.max_audio_seconds)
