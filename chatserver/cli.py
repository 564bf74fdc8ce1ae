"""The ``chatserver`` command: ``serve`` (default), ``token``, ``membership``, ``settings``, ``events``, ``client``.

Every mistake on the command line or in the settings ends in one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import socket
import sys
import urllib.error
import urllib.request
import warnings
from collections.abc import Sequence

from jwt.warnings import InsecureKeyLengthWarning

from chatserver import options
from chatserver.auth import mint_token
from chatserver.broker.base import BrokerUnavailable
from chatserver.protocol import MembershipAction, MembershipChange
from chatserver.settings import Settings, SettingsError, markdown_table, misspelt

LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
INTERRUPTED = 130  # what a shell reports for a program stopped by Ctrl-C
SETTINGS_POINTER = (
    "Settings are environment variables (JWT_SECRET, REDIS_URL, MONGODB_URL, CHAT_*): `chatserver settings` "
    "prints the values in effect, and README.md's Configuration table explains each."
)


def main(argv: Sequence[str] | None = None) -> None:
    # PyJWT warns on every short key in plain text, which would break the JSON log; the server
    # warns once in its own log instead, and production refuses short keys (settings.check).
    warnings.filterwarnings("ignore", category=InsecureKeyLengthWarning)
    args = _parser().parse_args(argv)
    command = args.command or "serve"
    if command == "settings" and args.markdown:
        print(markdown_table(), end="")
        return
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        sys.exit(f"chatserver: {error}")
    try:
        _run(command, args, settings)
    except KeyboardInterrupt:
        sys.exit(INTERRUPTED)  # Ctrl-C is how a terminal user stops any of these: no traceback
    except BrokenPipeError:  # the reader went away (`chatserver settings | head`): stop quietly, as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)


def _run(command: str, args: argparse.Namespace, settings: Settings) -> None:
    if command == "token":
        _token(args, settings)
    elif command == "membership":
        _membership(args, settings)
    elif command == "settings":
        _settings(settings)
    elif command == "events":
        _events(args, settings)
    elif command == "client":
        _client(args)
    else:
        _serve(args, settings)


def _parser() -> argparse.ArgumentParser:
    parser = options.Parser(
        prog="chatserver",
        description="Altzone chat server: serves /ws/chat and /chat/history.",
        epilog=SETTINGS_POINTER,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=options.Parser)
    serve = commands.add_parser("serve", help="run the server (the default command)", epilog=SETTINGS_POINTER)
    _serve_options(serve)
    _serve_options(parser)
    token = commands.add_parser(
        "token",
        help="print a token signed with JWT_SECRET, for development",
        description="Prints an HS256 token the way the game backend signs one.",
    )
    token.add_argument("--player-id", required=True, type=options.non_blank, help="the player_id claim")
    token.add_argument("--name", help="the name claim (without the game database, the name others see)")
    token.add_argument("--clan-id", type=options.non_blank, help="the clan_id claim (the clan room the player joins)")
    token.add_argument("--profile-id", type=options.non_blank, help="the profile_id claim")
    token.add_argument(
        "--avatar", type=options.json_object, help="the avatar claim, a JSON object such as '{\"hat\": 2}'"
    )
    token.add_argument(
        "--role", action="append", dest="roles", type=options.non_blank, help="a roles claim entry, e.g. moderator"
    )
    token.add_argument("--ttl", type=options.positive_seconds, default=30 * 24 * 3600, help="seconds until it expires")
    membership = commands.add_parser(
        "membership",
        help="tell every replica that a player left or joined a clan",
        description="With --url, POSTs to that server's /internal/membership with CHAT_INTERNAL_TOKEN; "
        "otherwise publishes on REDIS_URL.",
    )
    membership.add_argument("action", choices=[a.value for a in MembershipAction], help="what the player did")
    membership.add_argument("--player-id", required=True, type=options.non_blank, help="the player's id")
    membership.add_argument("--clan-id", required=True, type=options.non_blank, help="the clan left or joined")
    membership.add_argument("--url", type=options.http_url, help="a server's base URL, e.g. http://127.0.0.1:8080")
    settings = commands.add_parser(
        "settings",
        help="print the settings in effect, secrets masked",
        description="Prints every setting as NAME=value, marking those the environment set. " + SETTINGS_POINTER,
    )
    settings.add_argument("--markdown", action="store_true", help="print README.md's configuration table instead")
    events = commands.add_parser(
        "events",
        help="print the event stream, one JSON object a line",
        description="Reads the Redis Stream <CHAT_REDIS_PREFIX>events (REDIS_URL). An existing --group keeps its "
        "position; --from places a new one.",
    )
    events.add_argument("--from", dest="start", default="$", help="stream id to start after: $ (new only) or 0")
    events.add_argument(
        "--group", type=options.non_blank, help="read through this consumer group, acknowledging what was printed"
    )
    events.add_argument(
        "--consumer", type=options.non_blank, default=socket.gethostname(), help="consumer name in the group"
    )
    events.add_argument("--count", type=options.positive_int, help="stop after printing this many events")
    client = commands.add_parser(
        "client",
        help="the reference client: print every frame as a JSON line, reconnecting and resuming",
        description="Stays connected as README's 'Staying connected' describes; status lines go to stderr, "
        "frames to stdout; Ctrl-C stops it.",
    )
    client.add_argument(
        "--url",
        action="append",
        required=True,
        type=options.ws_url,
        help="a /ws/chat URL such as ws://127.0.0.1:8080/ws/chat; repeat for several replicas",
    )
    client.add_argument("--token", required=True, type=options.non_blank, help="a token, e.g. from chatserver token")
    client.add_argument(
        "--since", type=options.timestamp, help="resume from this updatedAt, e.g. 2026-11-25T18:15:33.925Z"
    )
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("altzone-chatserver")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "(not installed)"


def _serve_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 for every interface)")
    parser.add_argument("--port", type=options.port, default=8080, help="TCP port to listen on")
    parser.add_argument(
        "--workers",
        type=options.positive_int,
        default=1,
        help="worker processes; above 1 needs REDIS_URL and MONGODB_URL",
    )
    parser.add_argument(
        "--log-level", type=str.lower, choices=LOG_LEVELS, default="info", help="least severe log level"
    )


# --- the commands ------------------------------------------------------------------------------------


def _token(args: argparse.Namespace, settings: Settings) -> None:
    print(
        mint_token(
            settings,
            args.player_id,
            name=args.name,
            clan_id=args.clan_id,
            profile_id=args.profile_id,
            avatar=args.avatar,
            roles=args.roles,
            ttl_seconds=args.ttl,
        )
    )


def _settings(settings: Settings) -> None:
    for warning in (*misspelt(), *settings.deprecations):
        print(f"chatserver settings: {warning}", file=sys.stderr)
    shown = settings.shown()
    width = max(len(name) + len(value) for name, value, _ in shown) + 1
    for name, value, told in shown:
        print(f"{name}={value}".ljust(width), "  # set" if told else "  # default")


def _membership(args: argparse.Namespace, settings: Settings) -> None:
    change = MembershipChange(player_id=args.player_id, action=args.action, clan_id=args.clan_id)
    if args.url:
        _post_to_server(args.url, settings, change)
    elif settings.redis_url is not None:
        asyncio.run(_publish_on_redis(settings, change))
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
    if settings.internal_token is None:
        sys.exit("chatserver membership: --url needs CHAT_INTERNAL_TOKEN, the token the server was started with")
    request = urllib.request.Request(
        base_url.rstrip("/") + "/internal/membership",
        data=change.model_dump_json().encode(),
        headers={"Authorization": f"Bearer {settings.internal_token}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10):
            pass
    except urllib.error.HTTPError as error:
        sys.exit(f"chatserver membership: {error.code} {error.read().decode(errors='replace')}")
    except (OSError, ValueError) as error:
        sys.exit(f"chatserver membership: cannot reach {base_url}: {getattr(error, 'reason', error)}")


def _events(args: argparse.Namespace, settings: Settings) -> None:
    from chatserver.events.tail import TailRequest, tail
    from chatserver.redis_client import REDIS_FAILURES

    if settings.redis_url is None:
        sys.exit("chatserver events: set REDIS_URL; the stream lives in Redis (embedded servers offer a hook instead)")
    request = TailRequest(f"{settings.redis_prefix}events", args.start, args.group, args.consumer, args.count)
    try:
        asyncio.run(tail(settings.redis_url, request, lambda line: print(line, flush=True)))
    except BrokenPipeError:  # the reader went away (``| head``): done, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except REDIS_FAILURES as error:
        sys.exit(f"chatserver events: {error}")
    except KeyboardInterrupt:
        pass


def _client(args: argparse.Namespace) -> None:
    from chatserver.client import ChatClient, ClientStopped

    def status(line: str) -> None:
        print(f"chatserver client: {line}", file=sys.stderr, flush=True)

    client = ChatClient(args.url, lambda: args.token, since=args.since, on_status=status, must_connect_first=True)
    try:
        asyncio.run(client.run(lambda frame: print(json.dumps(frame, ensure_ascii=False), flush=True)))
    except ClientStopped as stopped:
        sys.exit(f"chatserver client: {stopped.reason}")


def _serve(args: argparse.Namespace, settings: Settings) -> None:
    from chatserver.entry import Entry
    from chatserver.logs import configure_logging
    from chatserver.server import ListenError, listen, serve

    try:
        settings.check_serving()
    except SettingsError as error:
        sys.exit(f"chatserver: {error}")
    if args.workers > 1 and (settings.redis_url is None or settings.mongodb_url is None):
        sys.exit(
            "chatserver: --workers above 1 needs REDIS_URL and MONGODB_URL: separate processes with the "
            "in-process broker and memory store would not see each other's rooms or history"
        )
    try:
        listening = listen(args.host, args.port)
    except ListenError as error:
        sys.exit(f"chatserver: {error}")
    replica = f"{socket.gethostname()}:{args.port}"
    configure_logging(args.log_level, replica)
    for warning in misspelt():
        logging.getLogger(__name__).warning(warning)
    app: Entry | str = "chatserver.app:app_from_env"  # each worker process builds its own
    if args.workers == 1:
        from chatserver.app import create_app

        try:
            app = create_app(settings)
        except SettingsError as error:
            sys.exit(f"chatserver: {error}")
    serve(
        app,
        settings,
        listening,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        replica=replica,
    )
