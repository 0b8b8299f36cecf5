"""`heygemd worker`: registered on the `heygemd` command."""

from __future__ import annotations

import argparse

from heygemd.commands.config_file import add_config_argument


def register(subparsers: argparse._SubParsersAction) -> None:
    help_text = "render videos for a cluster coordinator (`heygemd run` with cluster.broker_url): a Celery worker"
    parser = subparsers.add_parser("worker", help=help_text, description=help_text)
    add_config_argument(parser)
    parser.add_argument(
        "--device",
        default=None,
        help="the device of this worker's engine: cpu, cuda, cuda:N (default: engine.device); run one worker per GPU",
    )
    parser.set_defaults(func=_worker)


def _worker(args: argparse.Namespace) -> int:
    from heygemd.cluster.worker import run_worker

    return run_worker(args.config, args.device)
