"""Refusals of the web service: an HTTP status, a ``kind`` that picks the page's sentence, the English sentence."""

from __future__ import annotations

from heygemd.codes import ErrorCode


class WebError(Exception):
    """A request that cannot be served. ``params`` fill in the translated sentence of ``kind``."""

    def __init__(self, status: int, kind: str, message: str, *, code: ErrorCode | None = None, **params: object) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message
        self.code = code
        self.params = {key: str(value) for key, value in params.items()}
