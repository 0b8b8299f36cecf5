"""The service's configuration: pydantic-settings over a TOML file, with HEYGEMD_* environment overrides.

Priority, highest first: HEYGEMD_* environment variables (nested keys joined by ``__``,
e.g. ``HEYGEMD_WATCH__MODE=polling``), then the TOML file, then the defaults below.

Which TOML file: ``--config PATH``, else ``$HEYGEMD_CONFIG``, else the first that exists of
``./config/heygemd.toml`` and ``/etc/heygemd/heygemd.toml``; with none, the defaults. A file
named by flag or variable must exist. Relative paths in the file are relative to the working
directory of the process (the systemd unit sets ``WorkingDirectory=``).
"""

from __future__ import annotations

import os
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import (
    BaseModel,
    ByteSize,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from heygemd.daemon.fsutil import human_size
from heygemd.daemon.speech_settings import DEFAULT_MAX_SCRIPT_CHARS, SpeechConfig
from heygemd.engine.settings import EngineSettings, RenderOptions, WeightFile
from heygemd.engine.weights import GFPGAN_V13, GFPGAN_V14, S3FD, WAV2LIP_GAN, WeightsRole

CONFIG_ENV_VAR = "HEYGEMD_CONFIG"
DEFAULT_SEARCH_PATHS: tuple[Path, ...] = (Path("config/heygemd.toml"), Path("/etc/heygemd/heygemd.toml"))


class ConfigError(Exception):
    """The configuration cannot be used. ``str(err)`` is the whole message for the operator."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PathsConfig(_Section):
    """Folders. inbox, work, outbox and quarantine should be on one filesystem (the share) so that
    claiming and publishing are single renames; state may be on local disk."""

    inbox: Path = Field(Path("inbox"), description="where job folders are dropped")
    outbox: Path = Field(Path("outbox"), description="finished jobs appear here, each complete or not at all")
    quarantine: Path = Field(Path("quarantine"), description="jobs (or videos) that could not be done, with error.json")
    work: Path = Field(
        Path("work"),
        description="claimed jobs while they run; must be on the inbox's filesystem (a claim is one rename)",
    )
    archive: Path = Field(Path("archive"), description='inputs of finished jobs, when outputs.after_success = "archive"')
    state: Path = Field(Path("state"), description="journal, live status and history of this service (local disk is fine)")
    presenters: Path | None = Field(
        None, description="the presenter library, one folder per presenter (default: presenters/ beside the inbox)"
    )

    @property
    def presenter_library(self) -> Path:
        return self.presenters if self.presenters is not None else self.inbox.parent / "presenters"


class WatchMode(StrEnum):
    AUTO = "auto"  # native events, or polling when the inbox is on a network filesystem
    NATIVE = "native"
    POLLING = "polling"


class Readiness(StrEnum):
    SETTLE = "settle"  # ready when nothing in the folder changed for settle_seconds
    MARKER = "marker"  # ready when the marker file appears


class WatchConfig(_Section):
    """How new job folders are seen and when one counts as complete."""

    mode: WatchMode = Field(WatchMode.AUTO, description="auto, native or polling (auto polls on nfs/cifs/smb3/fuse)")
    poll_interval_seconds: float = Field(5.0, gt=0, description="how often the polling observer looks at the inbox")
    scan_interval_seconds: float = Field(
        1.0, gt=0, description="how often folders that are still arriving are looked at again"
    )
    rescan_interval_seconds: float = Field(
        300.0, gt=0, description="full rescan of the inbox as a safety net against missed events"
    )
    readiness: Readiness = Field(Readiness.SETTLE, description="settle or marker")
    marker_name: str = Field("READY", min_length=1, description="marker file name in marker mode (case-insensitive)")
    settle_seconds: float = Field(
        15.0, ge=0, description="a folder is ready once its files, sizes and times are unchanged this long"
    )
    network_settle_seconds: float = Field(
        65.0, ge=0, description="settle time on a network filesystem (NFS caches file attributes up to 60 s)"
    )
    abandon_after_seconds: float = Field(
        900.0,
        gt=0,
        description="a folder that stays empty, or keeps an empty or temporary file, this long goes to quarantine",
    )
    max_input_changes: int = Field(
        3,
        ge=0,
        description="an input that changes after the claim (an upload still running) makes its videos "
        "render again once the folder settles; after this many changes the job goes to quarantine",
    )


class AfterSuccess(StrEnum):
    ARCHIVE = "archive"
    DELETE = "delete"


class Language(StrEnum):
    """The language of what a job leaves for people to read (its index.html)."""

    EN = "en"  # English
    ZH = "zh"  # Simplified Chinese


class OutputsConfig(_Section):
    """What is left behind when a job ends."""

    after_success: AfterSuccess = Field(AfterSuccess.ARCHIVE, description="archive or delete the inputs of a done job")
    zip_bundle: bool = Field(False, description="also write outbox/<job>.zip with the job's results")
    min_free_space: ByteSize = Field(
        ByteSize(1 << 30),
        description="kept free on every filesystem receiving results; a job is claimed only if its estimated results "
        'fit above it (bytes, or "500MiB", "2GB")',
    )
    keep_days: int = Field(
        0,
        ge=0,
        description="remove outbox, quarantine and archive entries older than this (days; hourly, oldest first); 0 keeps all",
    )
    language: Language = Field(
        Language.EN, description='language of the results page (index.html): en or zh; a job.toml\'s language = "zh" wins'
    )


GIB = 1024**3


class LimitsConfig(_Section):
    """What one job may ask for: a job over a limit goes to quarantine at once (0: no limit)."""

    max_audio_seconds: float = Field(
        3600.0,
        ge=0,
        description="longest audio, in seconds (a render lasts about the audio's length times the templates, "
        "divided by the engine's speed)",
    )
    max_templates: int = Field(50, ge=0, description="most template videos (or stills) in one job")
    max_script_chars: int = Field(DEFAULT_MAX_SCRIPT_CHARS, ge=0, description="longest script (characters) a job may speak")
    max_file_bytes: int = Field(
        20 * GIB, ge=0, description="largest audio or template file, in bytes (21474836480 = 20 GiB)"
    )


RETIRED_SERVICE_KEYS = frozenset({"lease_seconds"})  # the lease protocol, replaced by cluster mode (issue 11)


class ServiceConfig(_Section):
    """The long-running process."""

    name: str = Field(
        "",
        max_length=100,
        description="the service's name in `heygemd status`, the logs and the web page (empty: the host's name, "
        'with the state folder\'s name after it when that is not "state")',
    )
    stop_grace_seconds: float = Field(
        30.0, ge=0, description="on SIGTERM, let the current video finish this long, then abandon it (it is resumed)"
    )
    history_size: int = Field(50, ge=1, description="recent results kept for `heygemd status`")
    retry_attempts: int = Field(
        6,
        ge=1,
        description="a job hit by transient errors (share gone, disk full, ffmpeg killed) is tried this many times "
        "in a row, then quarantined with the last reason; a video that succeeds ends the streak",
    )
    retry_budget_seconds: float = Field(
        3600.0, gt=0, description="...and for at most this long from the first failure of the streak"
    )
    retry_first_delay_seconds: float = Field(
        30.0, gt=0, description="wait before the first retry; each further one waits twice as long"
    )
    retry_max_delay_seconds: float = Field(600.0, gt=0, description="the longest wait between two retries")
    stall_seconds: float = Field(
        120.0,
        gt=0,
        description="a render that reports no progress this long (a stalled share, a hung GPU) is "
        "cancelled and retried; keep it below the unit's WatchdogSec",
    )

    @model_validator(mode="before")
    @classmethod
    def _drop_retired_keys(cls, data: Any) -> Any:
        # Configs copied from an older shipped heygemd.toml still start (the key did nothing since).
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if key not in RETIRED_SERVICE_KEYS}
        return data


class ClusterConfig(_Section):
    """Cluster mode (Celery on Redis): `heygemd run` coordinates, `heygemd worker` processes render one video each."""

    broker_url: SecretStr | None = Field(
        None,
        description="redis://[:password@]host:port/db; unset: heygemd run renders in its own process (embedded). "
        "Never logged (it may carry a password)",
    )
    queue: str = Field("heygemd", min_length=1, description="the Celery queue of this inbox's render tasks (one per inbox)")
    path_map: dict[str, str] = Field(
        default_factory=dict,
        description="on a worker whose share is mounted elsewhere: the coordinator's path prefix "
        'to this host\'s, e.g. {"/srv/share" = "/mnt/nas"}',
    )
    heartbeat_seconds: float = Field(
        10.0,
        ge=1,
        le=300,
        description="a worker refreshes each running task's heartbeat key (TTL this long) every "
        "third of it; a task whose key expired is rendered again elsewhere: the bound on noticing a dead worker",
    )
    coordinator_lock_seconds: float = Field(
        15.0,
        ge=2,
        description="TTL of the one-coordinator-per-queue lock in Redis (renewed every third of it); a "
        "standby coordinator takes over this long after the active one stops",
    )
    poll_seconds: float = Field(0.5, gt=0, description="how often the coordinator looks at its tasks' state in Redis")


class LogFormat(StrEnum):
    AUTO = "auto"  # console on a terminal, journal lines under systemd, logfmt otherwise
    CONSOLE = "console"
    JOURNAL = "journal"
    LOGFMT = "logfmt"
    JSON = "json"


class LogConfig(_Section):
    """Logging to stderr (journald adds the time under systemd)."""

    format: LogFormat = Field(LogFormat.AUTO, description="auto, console, journal, logfmt or json")
    level: str = Field("info", pattern=r"(?i)^(debug|info|warning|error)$", description="debug, info, warning or error")


class ModelsConfig(_Section):
    """Where `heygemd fetch-models` downloads engine.checkpoint, engine.detector_checkpoint and (with the
    restorer on) engine.restorer_checkpoint from. A sha256 may be a whole hash or its first digits (at least 8)."""

    checkpoint_url: str = Field(
        WAV2LIP_GAN.url, description="Wav2Lip weights (a community mirror; no official direct link exists)"
    )
    checkpoint_sha256: str = Field(
        WAV2LIP_GAN.sha256, pattern=r"^[0-9a-fA-F]{8,64}$", description="expected sha256 of the Wav2Lip weights"
    )
    detector_url: str = Field(S3FD.url, description="S3FD face detector weights (face-alignment project)")
    detector_sha256: str = Field(
        S3FD.sha256, pattern=r"^[0-9a-fA-F]{8,64}$", description="expected sha256 (prefix) of the S3FD weights"
    )
    restorer_url: str = Field(
        GFPGAN_V14.url, description=f"GFPGAN v1.4 face restorer weights (TencentARC's release; v1.3: {GFPGAN_V13.url})"
    )
    restorer_sha256: str = Field(
        GFPGAN_V14.sha256,
        pattern=r"^[0-9a-fA-F]{8,64}$",
        description=f"expected sha256 of the restorer weights (v1.3: {GFPGAN_V13.sha256})",
    )

    def source(self, file: WeightFile) -> tuple[str, str]:
        """(url, sha256) of a weight file: the weights table's for a file it fixes (MuseTalk's), else this
        section's for the file's role."""
        if file.published is not None:
            return file.published.url, file.published.sha256
        sources = {
            WeightsRole.LIP_SYNC: (self.checkpoint_url, self.checkpoint_sha256),
            WeightsRole.FACE_DETECTOR: (self.detector_url, self.detector_sha256),
            WeightsRole.FACE_RESTORER: (self.restorer_url, self.restorer_sha256),
        }
        return sources[file.role]


HTTP_URL_PATTERN = r"^https?://[^\s]+$"
HttpUrlText = Annotated[str, StringConstraints(pattern=HTTP_URL_PATTERN)]


class NotifyConfig(_Section):
    """Webhooks: after a job is published or quarantined, a signed JSON event is POSTed to each URL."""

    webhook_urls: list[HttpUrlText] = Field(
        default_factory=list,
        description='where events go, e.g. ["https://ci.example.org/hooks/heygemd"] (none: no webhooks)',
    )
    webhook_secret: SecretStr | None = Field(
        None,
        description="key of the X-Heygemd-Signature HMAC-SHA256 (better: the HEYGEMD_NOTIFY__WEBHOOK_SECRET "
        "environment variable); never logged",
    )
    timeout_seconds: float = Field(10.0, gt=0, description="each delivery attempt waits this long for an answer")
    attempts: int = Field(5, ge=1, description="tries per event and URL (a 5xx answer, a timeout, no connection)")
    backoff_seconds: float = Field(2.0, gt=0, description="wait before the second try; each further one waits twice as long")


DEFAULT_WEB_PORT = 8765


class WebConfig(_Section):
    """`heygemd web`, the page for the people who drop the folders."""

    host: str = Field(
        "127.0.0.1", min_length=1, description='address the page listens on ("0.0.0.0" for the LAN: then set a token)'
    )
    port: int = Field(DEFAULT_WEB_PORT, ge=0, le=65535, description="TCP port of the page")
    token: SecretStr | None = Field(
        None,
        description="password of the page and bearer token of its API (better: the HEYGEMD_WEB__TOKEN environment "
        "variable); unset: no sign-in; never logged",
    )
    state_folders: list[Path] = Field(
        default_factory=list,
        description="state folders of the services to show (several heygemd services on this host); "
        "empty: paths.state, and each folder in it that a service uses (state/gpu0, state/gpu1...)",
    )
    public_url: str | None = Field(
        None,
        pattern=HTTP_URL_PATTERN,
        description="the page's address as people reach it (links in webhook events point there); unset: no links",
    )
    max_upload_bytes: ByteSize = Field(
        ByteSize(0),
        description='largest upload (all files of one job together; bytes, or "50GiB"); 0: '
        "limits.max_file_bytes for each file, times the files a job may have",
    )


class HeygemdConfig(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="HEYGEMD_", env_nested_delimiter="__", extra="forbid", nested_model_default_partial_update=True
    )

    paths: PathsConfig = PathsConfig()
    watch: WatchConfig = WatchConfig()
    outputs: OutputsConfig = OutputsConfig()
    limits: LimitsConfig = LimitsConfig()
    service: ServiceConfig = ServiceConfig()
    log: LogConfig = LogConfig()
    engine: EngineSettings = EngineSettings()
    render: RenderOptions = RenderOptions()
    models: ModelsConfig = ModelsConfig()
    notify: NotifyConfig = NotifyConfig()
    web: WebConfig = WebConfig()
    cluster: ClusterConfig = ClusterConfig()
    speech: SpeechConfig = SpeechConfig()

    # Set on the per-load subclass made by load_config; None means defaults + environment only.
    _toml_file: ClassVar[Path | None] = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if cls._toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=cls._toml_file))
        return tuple(sources)


class LoadedConfig(BaseModel):
    """A validated configuration and the file it came from (None: defaults and environment only)."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    config: HeygemdConfig
    source: Path | None


def find_config_file(explicit: Path | None, environ: dict[str, str] | None = None) -> Path | None:
    """The file to read, following the documented search order. A named file must exist."""
    environ = dict(os.environ) if environ is None else environ
    named = explicit if explicit is not None else (Path(environ[CONFIG_ENV_VAR]) if environ.get(CONFIG_ENV_VAR) else None)
    if named is not None:
        how = "--config" if explicit is not None else CONFIG_ENV_VAR
        if not named.exists():
            raise ConfigError(f"config file {named} (from {how}) does not exist")
        if not named.is_file():
            raise ConfigError(f"config file {named} (from {how}) is not a file")
        return named
    return next((candidate for candidate in DEFAULT_SEARCH_PATHS if candidate.is_file()), None)


def load_config(explicit: Path | None = None) -> LoadedConfig:
    """Read and validate the configuration; every problem becomes one ConfigError naming the file and key."""
    source = find_config_file(explicit)
    if source is not None:
        # TomlConfigSettingsSource would report a syntax error without the file name; check it here first.
        try:
            with open(source, "rb") as handle:
                tomllib.load(handle)
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"config file {source} is not valid TOML: {err}") from None
        except OSError as err:
            raise ConfigError(f"config file {source} cannot be read: {err.strerror}") from None
    settings_class = type("HeygemdConfigFromFile", (HeygemdConfig,), {"_toml_file": source})
    try:
        config = settings_class()
    except ValidationError as err:
        raise ConfigError(describe_validation_error(err, source)) from None
    except ValueError as err:  # e.g. an HEYGEMD_* variable holding malformed JSON for a list
        raise ConfigError(f"configuration ({source or 'defaults'} + HEYGEMD_* environment): {err}") from None
    return LoadedConfig(config=HeygemdConfig.model_validate(config.model_dump()), source=source)


def describe_validation_error(err: ValidationError, source: Path | None) -> str:
    """One sentence naming each wrong key and where its value came from: the environment (which wins) or the file."""
    problems, from_environment = [], 0
    for error in err.errors():
        key = ".".join(str(part) for part in error["loc"])
        env_name = "HEYGEMD_" + "__".join(str(part) for part in error["loc"]).upper()
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key (check the spelling against the shipped config/heygemd.toml)"
        got = error.get("input")
        shown = "" if error["type"] in ("extra_forbidden", "missing") or isinstance(got, dict) else f" (got {got!r})"
        if env_name in os.environ:
            from_environment += 1
            origin = f"from the environment variable {env_name}"
        else:
            origin = f"in the file, or {env_name}" if source else env_name
        problems.append(f"{key}: {message}{shown} [{origin}]")
    if from_environment == len(problems):
        where = "the HEYGEMD_* environment"
    elif source is None:
        where = "configuration"
    else:
        where = f"config file {source}" + (" and the HEYGEMD_* environment" if from_environment else "")
    plural = "s" if len(problems) > 1 else ""
    return f"{where} has {len(problems)} error{plural}: " + "; ".join(problems)


# ------------------------------------------------------------------ the shipped, documented file

_UNSET_EXAMPLES: dict[str, str] = {
    "render.fixed_box": "[x1, y1, x2, y2]",
    "engine.face_cache_dir": '"state/face-tracks"',
    "engine.temp_dir": '"/var/tmp/heygemd"',
    "notify.webhook_secret": '"a long random string"',
    "web.public_url": '"https://heygemd.example.org"',
    "web.token": '"a long random string"',
}

_SECTION_HEADERS: dict[str, str] = {
    "engine": "The lip-sync engine, loaded once at start-up (a change here reloads the model on SIGHUP).",
    "render": "Default render options; a job's job.toml may override any of them.",
}


def toml_value(value: Any) -> str:
    if isinstance(value, ByteSize):
        return f'"{human_size(value, separator="")}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, StrEnum):
        return f'"{value.value}"'
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Path | str):
        return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_value(str(key))} = {toml_value(item)}" for key, item in value.items()) + "}"
    raise TypeError(f"no TOML form for {value!r}")


def default_config_text() -> str:
    """The shipped config/heygemd.toml: every key, its default and what it means."""
    lines = [
        "# heygemd configuration. Every key is shown with its default value.",
        "# Which file is read: --config PATH, else $HEYGEMD_CONFIG, else ./config/heygemd.toml,",
        "# else /etc/heygemd/heygemd.toml, else the built-in defaults.",
        "# Any key can be overridden by an environment variable: HEYGEMD_<SECTION>__<KEY>,",
        "# e.g. HEYGEMD_WATCH__MODE=polling or HEYGEMD_ENGINE__DRY_RUN=true.",
        "# Relative paths are relative to the working directory of the service.",
        "# Reload after editing: systemctl reload heygemd (SIGHUP).",
    ]
    defaults = HeygemdConfig.model_construct()
    for section_name, section_field in HeygemdConfig.model_fields.items():
        section_model: type[BaseModel] = section_field.annotation  # type: ignore[assignment]
        section_value: BaseModel = getattr(defaults, section_name)
        header = _SECTION_HEADERS.get(section_name) or " ".join((section_model.__doc__ or "").split())
        lines += ["", f"[{section_name}]"]
        if header:
            lines += [f"# {header}"]
        for key, field in section_model.model_fields.items():
            description = field.description or key
            lines.append(f"# {description}")
            value = getattr(section_value, key)
            if value is None:
                lines.append(f"# {key} = {_UNSET_EXAMPLES.get(f'{section_name}.{key}', '...')}   (unset by default)")
            else:
                lines.append(f"{key} = {toml_value(value)}")
    return "\n".join(lines) + "\n"
