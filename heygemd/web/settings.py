"""What `heygemd web` needs to know from the shared configuration file."""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path

from heygemd.daemon.config import (
    HeygemdConfig,
    LimitsConfig,
    PathsConfig,
    Readiness,
    WebConfig,
)
from heygemd.daemon.servicelock import LOCK_FILE
from heygemd.daemon.speech_settings import SpeechConfig
from heygemd.daemon.status import STATUS_FILE
from heygemd.engine.settings import RenderOptions

# Where a job's files may come from: the request names one of these, never a path.
OUTBOX = "outbox"
QUARANTINE = "quarantine"
AREAS = (OUTBOX, QUARANTINE)
# A folder is a service's state folder once a service has used it.
SERVICE_MARKERS = (LOCK_FILE, STATUS_FILE)


@dataclass(frozen=True)
class WebSettings:
    paths: PathsConfig
    limits: LimitsConfig
    web: WebConfig
    render: RenderOptions
    marker_name: str | None  # the READY marker an upload must carry when the service waits for markers
    min_free_space: int
    speech: SpeechConfig = field(default_factory=SpeechConfig)  # the voices the page offers and previews speak with

    @classmethod
    def from_config(cls, config: HeygemdConfig) -> WebSettings:
        marker = config.watch.marker_name if config.watch.readiness is Readiness.MARKER else None
        return cls(
            config.paths, config.limits, config.web, config.render, marker, int(config.outputs.min_free_space), config.speech
        )

    def area_folder(self, area: str) -> Path:
        return self.paths.outbox if area == OUTBOX else self.paths.quarantine

    def state_folders(self) -> list[Path]:
        """The services' state folders: as configured, else paths.state and the service folders inside it."""
        if self.web.state_folders:
            return list(self.web.state_folders)
        root = self.paths.state
        found = [root] if _is_service_folder(root) else []
        try:
            found += sorted(entry for entry in root.iterdir() if entry.is_dir() and _is_service_folder(entry))
        except OSError:
            pass
        return found or [root]

    @property
    def max_upload_bytes(self) -> int:
        """The largest upload; 0 in both limits means none."""
        if self.web.max_upload_bytes:
            return int(self.web.max_upload_bytes)
        if not self.limits.max_file_bytes or not self.limits.max_templates:
            return 0
        return self.limits.max_file_bytes * (self.limits.max_templates + 1) + 1024 * 1024

    @property
    def token(self) -> str | None:
        secret = self.web.token
        return secret.get_secret_value() if secret is not None and secret.get_secret_value() else None

    def session_value(self) -> str | None:
        """The sign-in cookie's value: derived from the token, so the cookie never holds the token itself."""
        token = self.token
        return None if token is None else hmac.new(token.encode(), b"heygemd-web-session", sha256).hexdigest()


def _is_service_folder(folder: Path) -> bool:
    return any((folder / name).exists() for name in SERVICE_MARKERS)
