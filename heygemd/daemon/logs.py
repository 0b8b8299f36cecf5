"""Logging with structlog, to stderr.

Formats: ``console`` (colours, for a terminal), ``journal`` (one concise line with a syslog
``<N>`` priority prefix; journald adds time and host), ``logfmt`` (time + key=value) and
``json``. ``auto`` picks console on a terminal, journal under systemd ($JOURNAL_STREAM), else
logfmt. Lines logged while a job is handled carry ``job=<name>`` (bound with
``structlog.contextvars``); records from the standard ``logging`` module (the engine, libraries)
go through the same renderer.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import structlog

from heygemd.daemon.config import LogConfig, LogFormat
from heygemd.names import displayable

_SYSLOG_PRIORITY = {"critical": 2, "error": 3, "warning": 4, "info": 6, "debug": 7}


def choose_format(configured: LogFormat, stream: Any = None) -> LogFormat:
    stream = stream or sys.stderr
    if configured is not LogFormat.AUTO:
        return configured
    if stream.isatty():
        return LogFormat.CONSOLE
    if os.environ.get("JOURNAL_STREAM"):
        return LogFormat.JOURNAL
    return LogFormat.LOGFMT


def _display_names(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Every text of the line as it can be written: a file name that is not UTF-8 shows its bytes as ``\\xNN``."""
    return {key: displayable(value) for key, value in event_dict.items()}


def _journal_renderer(_: Any, method: str, event_dict: dict[str, Any]) -> str:
    level = event_dict.pop("level", method)
    event = event_dict.pop("event", "")
    event_dict.pop("timestamp", None)
    exception = event_dict.pop("exception", None)
    pairs = " ".join(f"{key}={_quote(value)}" for key, value in event_dict.items())
    line = f"<{_SYSLOG_PRIORITY.get(level, 6)}>{event}" + (f" {pairs}" if pairs else "")
    if exception:
        line += "\n" + "\n".join(f"<{_SYSLOG_PRIORITY.get(level, 6)}>  {row}" for row in str(exception).splitlines())
    return line


def _quote(value: Any) -> str:
    text = str(value)
    if not text or any(char in text for char in ' ="\n'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


def configure_logging(config: LogConfig, stream: Any = None) -> LogFormat:
    stream = stream or sys.stderr
    chosen = choose_format(config.format, stream)
    level = logging.getLevelName(config.level.upper())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
    ]
    if chosen is not LogFormat.JOURNAL:
        shared.append(structlog.processors.TimeStamper(fmt="iso", utc=chosen is not LogFormat.CONSOLE))
    renderer: Any
    if chosen is LogFormat.CONSOLE:
        shared.append(_display_names)
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty())
    elif chosen is LogFormat.JSON:
        shared += [structlog.processors.format_exc_info, _display_names]
        renderer = structlog.processors.JSONRenderer(ensure_ascii=False)
    elif chosen is LogFormat.JOURNAL:
        shared += [structlog.processors.format_exc_info, _display_names]
        renderer = _journal_renderer
    else:
        shared += [structlog.processors.format_exc_info, _display_names]
        renderer = structlog.processors.LogfmtRenderer(key_order=["timestamp", "level", "event"], drop_missing=True)

    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared[:1], structlog.stdlib.add_logger_name, *shared[1:]],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("urllib3", "PIL", "matplotlib", "numba"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    # watchdog logs shutdown races of its emitter threads as errors; the periodic rescan covers any real loss.
    logging.getLogger("watchdog").setLevel(logging.CRITICAL)
    return chosen


def get_logger(name: str = "heygemd") -> structlog.stdlib.BoundLogger:
    return structlog.stdlib.get_logger(name)
