"""The one error the speech package raises: a script that cannot be spoken, with its code (heygemd.codes)."""

from __future__ import annotations

from heygemd.codes import CodedError, ErrorCode


class SpeechError(CodedError):
    """A script cannot be spoken by the chosen voice. ``reason`` names the script or the voice; ``code`` says why."""

    code = ErrorCode.SPEECH_FAILED
