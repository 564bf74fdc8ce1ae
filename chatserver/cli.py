"""The ``chatserver`` command: ``serve`` (the default) and ``token`` for development tokens."""

from __future__ import annotations

import argparse
import json
import socket
import sys
from collections.abc import Sequence

from chatserver.auth import mint_token
from chatserver.settings import Settings, SettingsError


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        sys.exit(f"chatserver: {error}")
    command = args.command or "serve"
    if command == "token":
        _token(args, settings)
    else:
        _serve(args, settings)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chatserver", description="Altzone chat server")
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="run the server (the default)")
    _serve_options(serve)
    _serve_options(parser)
    token = commands.add_parser("token", help="print a signed development token")
    token.add_argument("--player-id", required=True)
    token.add_argument("--name")
    token.add_argument("--clan-id")
    token.add_argument("--profile-id")
    token.add_argument("--avatar", type=json.loads, help="avatar claim as a JSON object")
    token.add_argument("--ttl", type=float, default=30 * 24 * 3600, help="seconds until expiry (default 30 days)")
    return parser


def _serve_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--log-level", default="info")


def _token(args: argparse.Namespace, settings: Settings) -> None:
    print(
        mint_token(
            settings,
            args.player_id,
            name=args.name,
            clan_id=args.clan_id,
            profile_id=args.profile_id,
            avatar=args.avatar,
            ttl_seconds=args.ttl,
        )
    )


def _serve(args: argparse.Namespace, settings: Settings) -> None:
    import uvicorn

    from chatserver.app import create_app
    from chatserver.logs import configure_logging

    if args.workers > 1 and (settings.redis_url is None or settings.mongodb_url is None):
        sys.exit(
            "chatserver: --workers above 1 needs REDIS_URL and MONGODB_URL: separate processes with the "
            "in-process broker and memory store would not see each other's rooms or history"
        )
    configure_logging(args.log_level, replica=f"{socket.gethostname()}:{args.port}")
    app: object = "chatserver.app:app_from_env" if args.workers > 1 else create_app(settings)
    uvicorn.run(
        app,
        factory=args.workers > 1,
        host=args.host,
        port=args.port,
        workers=args.workers,
        ws="websockets-sansio",
        ws_max_size=settings.transport_max_bytes,
        log_config=None,
        log_level=args.log_level,
        access_log=False,
        lifespan="on",
    )
