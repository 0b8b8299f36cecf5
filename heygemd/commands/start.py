"""`heygemd start` (what `make start` runs): the service and the web page together, in the foreground.

It fetches the weights that are missing (offline that fails, and the service then waits for the files
instead of stopping), starts `heygemd run` and `heygemd web` as two child processes, prints the page's
address and how to sign in, and stops both on one Ctrl-C (or SIGTERM). The children run in their own
process group, so a Ctrl-C reaches them once, from here (a second stop signal to `heygemd run` means
"abandon the current video now"); on Linux they also stop if this process dies.

A command rather than a shell script: it reads the same configuration as the two (address, port, token)
and its own tests drive it like any other command.
"""

from __future__ import annotations

import argparse
import ctypes
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from types import FrameType

from heygemd.commands.config_file import add_config_argument, load_or_report
from heygemd.daemon.config import HeygemdConfig
from heygemd.exitcodes import ExitCode

POLL_SECONDS = 0.2
PR_SET_PDEATHSIG = 1  # linux/prctl.h: the signal a child gets when its parent dies
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


@dataclass(frozen=True)
class Child:
    name: str
    process: subprocess.Popen


def register(subparsers: argparse._SubParsersAction) -> None:
    text = "run the service and the web page together in the foreground (one Ctrl-C stops both): `make start`"
    parser = subparsers.add_parser("start", help=text, description=text)
    add_config_argument(parser)
    parser.add_argument("--host", default=None, help="the page listens on this address (default: web.host)")
    parser.add_argument("--port", type=int, default=None, help="the page's port (default: web.port; 0: any free)")
    parser.add_argument("--no-fetch", action="store_true", help="do not try to download missing weights first")
    parser.set_defaults(func=run_start)


def run_start(args: argparse.Namespace) -> int:
    loaded = load_or_report(args.config)
    if isinstance(loaded, ExitCode):
        return loaded
    config = loaded.config
    if not args.no_fetch:
        _fetch_missing(config)
    host = args.host or config.web.host
    port = (args.port if args.port is not None else config.web.port) or _free_port(host)
    common = ["--config", str(args.config)] if args.config is not None else []
    children = [
        _spawn("service", ["run", *common]),
        _spawn("web page", ["web", *common, "--host", host, "--port", str(port)]),
    ]
    stops = _StopSignals()
    print(_banner(config, host, port, children), flush=True)
    try:
        return _supervise(children, stops)
    finally:
        stops.restore()


def _fetch_missing(config: HeygemdConfig) -> None:
    """Download the weight files that are not there; offline, say that the service waits for them."""
    from heygemd.commands.fetch import Outcome, fetch_model, wanted_models

    if config.engine.dry_run:
        return
    for model in wanted_models(config):
        if model.path.exists():
            continue  # a present file is the service's to check (a damaged one is waited on, and named)
        result = fetch_model(model)
        if result.outcome is Outcome.FAILED:
            print(f"heygemd: {result.message}", file=sys.stderr)
            print("heygemd: starting anyway: the service waits for the file and loads it once it is there", file=sys.stderr)
        else:
            print(f"{result.outcome.value:10} {result.message}")


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when `heygemd start` dies (Linux; elsewhere nothing)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def _spawn(name: str, arguments: list[str]) -> Child:
    process = subprocess.Popen(
        [sys.executable, "-m", "heygemd", *arguments], start_new_session=True, preexec_fn=_die_with_parent
    )
    return Child(name, process)


def _banner(config: HeygemdConfig, host: str, port: int, children: list[Child]) -> str:
    shown = "localhost" if host in LOOPBACK_HOSTS else socket.gethostname() if host in ("0.0.0.0", "::") else host
    token = config.web.token.get_secret_value() if config.web.token is not None else ""
    if token:
        sign_in = "with the password set as web.token (or $HEYGEMD_WEB__TOKEN); the API takes it as a bearer token"
    elif host in LOOPBACK_HOSTS:
        sign_in = "none needed (web.token is unset; the page answers on this machine only)"
    else:
        sign_in = "none: web.token is unset, so anyone who reaches this address can upload and cancel; set web.token"
    pids = ", ".join(f"{child.name} pid {child.process.pid}" for child in children)
    return "\n".join(
        [
            f"heygemd start: {pids}",
            f"  page      http://{shown}:{port}/",
            f"  sign in   {sign_in}",
            f"  inbox     {config.paths.inbox.resolve()} (drop job folders here, or upload on the page)",
            "  stop      Ctrl-C (once: the current video may finish; twice: stop now)",
        ]
    )


class _StopSignals:
    """SIGINT and SIGTERM counted here; the loop forwards each one to the children as SIGTERM."""

    def __init__(self) -> None:
        self.count = 0
        self._previous = {signum: signal.signal(signum, self._note) for signum in (signal.SIGINT, signal.SIGTERM)}

    def _note(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def _supervise(children: list[Child], stops: _StopSignals) -> int:
    """Until both children ended: forward each stop signal; when one ends by itself, stop the other.

    The exit code: that of a child that ended by itself with a failure, else the first failure, else 0."""
    forwarded = 0
    ended_by_itself: int | None = None
    while any(child.process.poll() is None for child in children):
        ended = next((child for child in children if child.process.poll() is not None), None)
        if ended is not None and not stops.count:
            ended_by_itself = ended.process.returncode
            print(f"heygemd start: the {ended.name} exited ({ended_by_itself}); stopping the other", file=sys.stderr)
            stops.count += 1
        while forwarded < stops.count:
            forwarded += 1
            for child in children:
                if child.process.poll() is None:
                    child.process.send_signal(signal.SIGTERM)
        time.sleep(POLL_SECONDS)
    if ended_by_itself:
        return ended_by_itself if ended_by_itself > 0 else ExitCode.FAILURE
    # uvicorn re-raises the stop signal once it has shut down: ended by the SIGTERM sent here is a clean stop
    failed = [child.process.returncode for child in children if child.process.returncode not in (0, -signal.SIGTERM)]
    return (failed[0] if failed[0] > 0 else ExitCode.FAILURE) if failed else ExitCode.OK
