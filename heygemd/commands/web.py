"""`heygemd web`: start the page (uvicorn) with the configuration `heygemd run` reads. Nothing heavy is imported."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import sys

from heygemd.commands.config_file import add_config_argument, load_or_report
from heygemd.exitcodes import ExitCode

# uvicorn waits this long for open event streams before it stops (they never end by themselves).
GRACEFUL_SHUTDOWN_SECONDS = 3
log = logging.getLogger("heygemd.web")


def register(subparsers: argparse._SubParsersAction) -> None:
    text = "serve the web page and JSON API for the people who drop the folders (reads what `heygemd run` writes)"
    parser = subparsers.add_parser("web", help=text, description=text)
    add_config_argument(parser)
    parser.add_argument("--host", default=None, help="listen on this address (default: web.host, 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="listen on this port (default: web.port, 8765; 0: any free)")
    parser.set_defaults(func=run_web)


def run_web(args: argparse.Namespace) -> int:
    import uvicorn

    from heygemd.web.app import create_app
    from heygemd.web.settings import WebSettings
    from heygemd.web.upload import remove_stale_staging

    loaded = load_or_report(args.config)
    if isinstance(loaded, ExitCode):
        return loaded
    settings = WebSettings.from_config(loaded.config)
    host = args.host or settings.web.host
    port = settings.web.port if args.port is None else args.port
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for name in remove_stale_staging(settings.paths.inbox):
        log.info("removed the staging folder of an interrupted upload: %s", name)
    for name in remove_stale_staging(settings.paths.presenter_library, final=None):
        log.info("removed the folder of an interrupted presenter upload or deletion: %s", name)
    folders = ", ".join(str(folder) for folder in settings.state_folders())
    sign_in = "on (web.token)" if settings.token else "off"
    log.info(
        "heygemd web %s: state folders %s; inbox %s; sign-in %s",
        loaded.source or "(defaults)",
        folders,
        settings.paths.inbox,
        sign_in,
    )
    if settings.token is None and not _loopback(host):
        log.warning(
            "listening on %s without a token: anyone who reaches this address can upload and cancel; "
            "set web.token (or HEYGEMD_WEB__TOKEN)",
            host,
        )
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="info",
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        proxy_headers=False,
    )

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: object) -> None:
            app.state.stopping.set()  # open event streams end now instead of holding the stop up
            super().handle_exit(sig, frame)  # type: ignore[arg-type]

    server = Server(config)
    server.run()
    return ExitCode.OK if server.started else ExitCode.FAILURE


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
