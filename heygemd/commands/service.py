"""Sub-commands of the service: run, status, pause, resume, cancel, doctor, init, fetch-models."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from heygemd.atomic import write_atomic
from heygemd.commands.config_file import add_config_argument, load_or_report
from heygemd.daemon.config import (
    CONFIG_ENV_VAR,
    DEFAULT_SEARCH_PATHS,
    LoadedConfig,
    default_config_text,
)
from heygemd.exitcodes import ExitCode

if TYPE_CHECKING:
    from heygemd.daemon.render_port import Renderer, RendererStart


def register(subparsers: argparse._SubParsersAction) -> None:
    def add(name: str, help_text: str, func) -> argparse.ArgumentParser:
        parser = subparsers.add_parser(name, help=help_text, description=help_text)
        add_config_argument(parser)
        parser.set_defaults(func=func)
        return parser

    add("run", "run the service in the foreground (under systemd: Type=notify)", _run)
    status = add("status", "show the queue, the current job and recent results of the service", _status)
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    status.add_argument("--recent", type=int, default=10, help="how many recent results to show (default 10)")
    add("pause", "take no new jobs (the current one finishes); works whether or not the service runs", _pause)
    add("resume", "take new jobs again after `heygemd pause`", _resume)
    cancel = add(
        "cancel", "cancel a job that is queued or rendering: it goes to quarantine as dropped (code cancelled)", _cancel
    )
    cancel.add_argument("job", metavar="JOB", help="the job folder's name (as dropped) or its job id")
    doctor = add("doctor", "check ffmpeg, torch/CUDA, checkpoints, folders and the watch mode", _doctor)
    doctor.add_argument("--json", action="store_true", help="print the checks as JSON")
    add("init", "create the folders and a commented config file (never overwrites)", _init)
    fetch = add("fetch-models", "download missing checkpoints (resumable, sha256-checked)", _fetch_models)
    fetch.add_argument("--no-progress", action="store_true", help="no progress bar")


def _load(args: argparse.Namespace) -> LoadedConfig | int:
    return load_or_report(args.config)


def _run(args: argparse.Namespace) -> int:
    from heygemd.daemon.service import run_service

    return run_service(args.config, choose_renderer)


def choose_renderer(start: RendererStart) -> Renderer | None:
    """The service's render step: the cluster's workers when a broker is configured (once this process is the
    queue's coordinator; None if it was stopped while standing by), else the warm engine in this process."""
    if start.config.cluster.broker_url is not None:
        from heygemd.cluster.coordinator import become_coordinator

        return become_coordinator(start)
    from heygemd.daemon.local_render import LocalRenderer

    return LocalRenderer(start.engine)


def _init(args: argparse.Namespace) -> int:
    target = args.config
    if target is None:
        target = Path(os.environ[CONFIG_ENV_VAR]) if os.environ.get(CONFIG_ENV_VAR) else DEFAULT_SEARCH_PATHS[0]
    if target.exists():
        print(f"kept     {target} (already there)")
    else:
        try:
            write_atomic(target, default_config_text(), durable=False)
        except OSError as err:
            print(f"heygemd: cannot write {target}: {err.strerror}", file=sys.stderr)
            return ExitCode.CANT_CREATE
        print(f"created  {target}")
    loaded = load_or_report(target)
    if isinstance(loaded, ExitCode):
        return loaded
    config = loaded.config
    folders = [getattr(config.paths, key) for key in ("inbox", "outbox", "quarantine", "work", "archive", "state")]
    folders.append(config.paths.presenter_library)
    folders += sorted({config.engine.checkpoint.parent, config.engine.detector_checkpoint.parent})
    for folder in folders:
        if folder.is_dir():
            print(f"kept     {folder}/")
            continue
        try:
            folder.mkdir(parents=True)
        except OSError as err:
            print(f"heygemd: cannot create {folder}: {err.strerror}", file=sys.stderr)
            return ExitCode.CANT_CREATE
        print(f"created  {folder}/")
    return ExitCode.OK


def _fetch_models(args: argparse.Namespace) -> int:
    from heygemd.commands.fetch import Outcome, fetch_model, wanted_models

    loaded = _load(args)
    if isinstance(loaded, int):
        return loaded
    failed = False
    for model in wanted_models(loaded.config):
        result = fetch_model(model, show_progress=False if args.no_progress else None)
        if result.outcome is Outcome.FAILED and model.optional:
            print(f"{'optional':10} {result.message} (until then, espeak-ng speaks the scripts)", file=sys.stderr)
            continue
        print(
            f"{result.outcome.value:10} {result.message}",
            file=sys.stdout if result.outcome is not Outcome.FAILED else sys.stderr,
        )
        failed |= result.outcome is Outcome.FAILED
    return ExitCode.MISSING_WEIGHTS if failed else ExitCode.OK


def _doctor(args: argparse.Namespace) -> int:
    from heygemd.commands.doctor import Level, format_checks, run_checks

    loaded = _load(args)
    if isinstance(loaded, int):
        return loaded
    checks = run_checks(loaded)
    if args.json:
        print(json.dumps([{"check": c.name, "level": c.level.value, "detail": c.detail} for c in checks], indent=2))
    else:
        print(format_checks(checks))
    return ExitCode.FAILURE if any(check.level is Level.FAIL for check in checks) else ExitCode.OK


def _service_state(args: argparse.Namespace):
    """(loaded config, status, whether the service runs) or an exit code."""
    from heygemd.daemon.status import STOPPED, process_alive, read_status

    loaded = _load(args)
    if isinstance(loaded, int):
        return loaded
    status = read_status(loaded.config.paths.state)
    running = status is not None and status.state != STOPPED and process_alive(status.pid)
    return loaded, status, running


def _write_control(state: Path, change) -> int | None:
    try:
        change()
    except OSError as err:
        print(
            f"heygemd: cannot write {state / 'control.json'}: {err.strerror} (run it as the service's user)", file=sys.stderr
        )
        return ExitCode.CANT_CREATE
    return None


def _pause(args: argparse.Namespace, paused: bool = True) -> int:
    from heygemd.control import read_control, request_pause

    found = _service_state(args)
    if isinstance(found, int):
        return found
    loaded, status, running = found
    state = loaded.config.paths.state
    if read_control(state).paused == paused:
        print("already paused: no new jobs are taken (`heygemd resume` to go on)" if paused else "not paused")
        return ExitCode.OK
    failed = _write_control(state, lambda: request_pause(state, paused))
    if failed is not None:
        return failed
    if not running:
        print(
            "paused: the service is not running; when it starts it takes no new jobs until `heygemd resume`"
            if paused
            else "resumed: the service takes new jobs when it starts"
        )
    elif paused:
        current = f'the current job ("{status.current.job}") finishes first; ' if status.current else ""
        print(f"paused: heygemd (pid {status.pid}) takes no new jobs; {current}`heygemd resume` to go on")
    else:
        print(f"resumed: heygemd (pid {status.pid}) takes new jobs again")
    return ExitCode.OK


def _resume(args: argparse.Namespace) -> int:
    return _pause(args, paused=False)


def _cancel(args: argparse.Namespace) -> int:
    from heygemd.control import read_control, request_cancel
    from heygemd.daemon.control_reader import cancel_outlook
    from heygemd.daemon.journal import Journal

    found = _service_state(args)
    if isinstance(found, int):
        return found
    loaded, status, running = found
    state = loaded.config.paths.state
    journal = Journal(state, loaded.config.service.history_size)
    outlook = cancel_outlook(
        args.job,
        running=running,
        status=status,
        claimed=journal.records(),
        inbox=loaded.config.paths.inbox,
        recent=journal.history(loaded.config.service.history_size),
    )
    if not outlook.request:
        print(f"heygemd: {outlook.message}", file=sys.stderr)
        return ExitCode.FAILURE
    already = read_control(state).wants_cancelled(args.job)
    failed = _write_control(state, lambda: request_cancel(state, args.job, by=_who()))
    if failed is not None:
        return failed
    print(("cancel already requested; " if already else "cancel requested: ") + outlook.message)
    return ExitCode.OK


def _totals(metrics) -> str:
    """One line of the counters: "12 jobs (10 ok, 1 partial, 1 failed), 340 s of video"."""
    jobs = metrics.counters.jobs
    if not jobs:
        return ""
    by_status: dict[str, int] = {}
    for key, count in jobs.items():
        by_status[key.split("/")[0]] = by_status.get(key.split("/")[0], 0) + count
    parts = ", ".join(f"{count} {status}" for status, count in sorted(by_status.items()))
    total = sum(jobs.values())
    return f"{total} {'job' if total == 1 else 'jobs'} ({parts}), {metrics.counters.video_seconds_produced:.0f} s of video produced"


def _no_config_hint() -> str:
    searched = ", ".join(str(path) for path in DEFAULT_SEARCH_PATHS)
    return (
        f"heygemd: no configuration file was found from {Path.cwd()} (looked for {searched}), so the built-in "
        f"defaults were used: run it in the service's folder, or give --config PATH (or set ${CONFIG_ENV_VAR})"
    )


def _who() -> str:
    import getpass

    try:
        user = os.environ.get("SUDO_USER") or getpass.getuser()
    except (KeyError, OSError):
        user = ""
    return f"{user} (command line)" if user else "the command line"


def _status(args: argparse.Namespace) -> int:
    from heygemd.daemon.journal import Journal
    from heygemd.metrics import read_metrics

    found = _service_state(args)
    if isinstance(found, int):
        return found
    loaded, status, running = found
    state = loaded.config.paths.state
    journal = Journal(state)
    claimed = journal.records()
    recent = journal.history(args.recent)
    if args.json:
        print(
            json.dumps(
                {
                    "running": running,
                    "status": status.model_dump(mode="json") if status else None,
                    "claimed": [record.model_dump(mode="json") for record in claimed],
                    "recent": [entry.model_dump(mode="json") for entry in recent],
                    "metrics": read_metrics(state).model_dump(mode="json"),
                },
                indent=2,
                ensure_ascii=False,
            )
        )
        return ExitCode.OK if running else ExitCode.NOT_RUNNING
    if status is None:
        print(f"heygemd: no status in {state.resolve()} (the service never ran with this state folder)")
        if loaded.source is None:
            print(_no_config_hint(), file=sys.stderr)
    elif running:
        age = (datetime.now(UTC) - status.updated_at).total_seconds()
        name = status.name or status.host
        print(f"running    {name}: pid {status.pid} on {status.host}, since {status.started_at:%Y-%m-%d %H:%M:%S} UTC")
        if status.owner:
            print(f"owner      {status.owner} (this process; in cluster mode, the coordinator lock's holder)")
        print(f"state      {status.summary()} (updated {age:.0f} s ago)")
        if status.inbox_missing:
            print(f"inbox      {status.inbox} is MISSING (share unmounted?); the service waits for it")
        else:
            print(f"inbox      {status.inbox} ({status.filesystem}, {status.watch_mode} watching)")
        if status.dry_run:
            print("engine     DRY RUN (no model: template fitted to the audio)")
        if status.model_files:
            print("model      WAITING for the model files: jobs stay queued; the service loads the files the moment")
            print("           they are valid, with no restart (`heygemd fetch-models` where there is internet):")
            for file in status.model_files:
                print(f"  wanted   {file.describe()}")
        if status.queued:
            print("queued     " + ", ".join(status.queued))
        for task in status.tasks:
            print(f"task       {task.describe()}")
        if status.cluster and status.no_worker_online:
            print("workers    no worker online: jobs wait; start `heygemd worker` on a GPU host")
        for worker in status.workers:
            print(f"worker     {worker.describe()}")
        for name in status.arriving:
            waits_for = status.waiting_for.get(name)
            print(f"arriving   {name}" + (f": {waits_for}" if waits_for else ""))
        for waiting in status.waiting_jobs:
            print("waiting    " + waiting.describe())
        for shortage in status.waiting_for_disk:
            print(f"no space   {shortage.describe()}")
    else:
        print(
            f"stopped    {status.name or status.host} (last seen pid {status.pid}, state {status.state!r}, "
            f"at {status.updated_at:%Y-%m-%d %H:%M:%S} UTC)"
        )
    for record in claimed:
        done = sum(video.status.value != "pending" for video in record.videos)
        print(f"claimed    {record.name} [{record.job_id}] {record.phase.value}, {done}/{len(record.videos)} videos")
    totals = _totals(read_metrics(state))
    if totals:
        print(f"totals     {totals}")
    if recent:
        print("recent:")
        for entry in reversed(recent):
            where = entry.outbox or entry.quarantine or ""
            print(
                f"  {entry.finished_at:%Y-%m-%d %H:%M:%S}  {entry.status.value:7}  {entry.job}  ({entry.videos_ok} ok, "
                f"{entry.videos_failed} failed, {entry.seconds:.0f} s)  {where}"
            )
            if entry.reason:
                print(f"      reason: [{entry.code.value if entry.code else '?'}] {entry.reason}")
                for detail in entry.details:
                    print(f"        {detail}")
    return ExitCode.OK if running else ExitCode.NOT_RUNNING
