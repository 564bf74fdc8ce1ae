"""The ``chatserver`` command: ``serve`` (the default), ``token``, ``membership`` and ``client``."""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence

from chatserver.auth import mint_token
from chatserver.broker.base import BrokerUnavailable
from chatserver.protocol import MembershipAction, MembershipChange
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
    elif command == "membership":
        _membership(args, settings)
    elif command == "client":
        _client(args)
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
    membership = commands.add_parser(
        "membership",
        help="tell every replica that a player left or joined a clan",
        description="Publishes on Redis when REDIS_URL is set; otherwise POSTs to --url's /internal/membership "
        "with CHAT_INTERNAL_TOKEN.",
    )
    membership.add_argument("action", choices=[a.value for a in MembershipAction])
    membership.add_argument("--player-id", required=True)
    membership.add_argument("--clan-id", required=True)
    membership.add_argument("--url", help="a server's base URL, used when REDIS_URL is not set")
    client = commands.add_parser(
        "client",
        help="the reference client: print every frame as a JSON line, reconnecting and resuming",
        description="Stays connected as README's 'Staying connected' describes; Ctrl-C stops it.",
    )
    client.add_argument("--url", action="append", required=True, help="a /ws/chat URL; repeat for several replicas")
    client.add_argument("--token", required=True)
    client.add_argument("--since", help="resume from this updatedAt")
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


def _membership(args: argparse.Namespace, settings: Settings) -> None:
    change = MembershipChange(player_id=args.player_id, action=args.action, clan_id=args.clan_id)
    if settings.redis_url is not None:
        asyncio.run(_publish_on_redis(settings, change))
    elif args.url:
        _post_to_server(args.url, settings, change)
    else:
        sys.exit("chatserver membership: set REDIS_URL, or pass --url of a running server (with CHAT_INTERNAL_TOKEN)")
    print(change.model_dump_json())


async def _publish_on_redis(settings: Settings, change: MembershipChange) -> None:
    from chatserver.broker.redis import RedisBroker

    assert settings.redis_url is not None
    broker = RedisBroker(settings.redis_url, settings.redis_prefix)
    try:
        await broker.publish_membership(change)
    except BrokerUnavailable as error:
        sys.exit(f"chatserver membership: {error}")
    finally:
        await broker.close_client()


def _post_to_server(base_url: str, settings: Settings, change: MembershipChange) -> None:
    request = urllib.request.Request(
        base_url.rstrip("/") + "/internal/membership",
        data=change.model_dump_json().encode(),
        headers={"Authorization": f"Bearer {settings.internal_token or ''}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10):
            pass
    except urllib.error.HTTPError as error:
        sys.exit(f"chatserver membership: {error.code} {error.read().decode(errors='replace')}")
    except OSError as error:
        sys.exit(f"chatserver membership: {error}")


def _client(args: argparse.Namespace) -> None:
    from chatserver.client import ChatClient, ClientStopped

    client = ChatClient(args.url, lambda: args.token, since=args.since)
    try:
        asyncio.run(client.run(lambda frame: print(json.dumps(frame, ensure_ascii=False), flush=True)))
    except ClientStopped as stopped:
        sys.exit(f"chatserver client: {stopped.reason}")
    except KeyboardInterrupt:
        pass


def _serve(args: argparse.Namespace, settings: Settings) -> None:
    from chatserver.app import create_app
    from chatserver.logs import configure_logging
    from chatserver.server import serve

    if args.workers > 1 and (settings.redis_url is None or settings.mongodb_url is None):
        sys.exit(
            "chatserver: --workers above 1 needs REDIS_URL and MONGODB_URL: separate processes with the "
            "in-process broker and memory store would not see each other's rooms or history"
        )
    configure_logging(args.log_level, replica=f"{socket.gethostname()}:{args.port}")
    app: object = "chatserver.app:app_from_env" if args.workers > 1 else create_app(settings)
    serve(app, settings, host=args.host, port=args.port, workers=args.workers, log_level=args.log_level)
