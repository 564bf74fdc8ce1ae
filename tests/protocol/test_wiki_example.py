"""The wiki's own JavaScript client, run under Node.js against a real server.

Node.js has a WebSocket of its own from 20.10 (``--experimental-websocket``); older ones, such as
Debian 12's 18, get ``tests/support/node_websocket.js``, which is also run everywhere so it stays honest.

The snippet below is copied from the wiki (``seed-chat-wiki.txt``, "Chat" page) line for line. Only
the placeholders are substituted (``wss://<SERVER_HOST>`` becomes the test server's ``ws://`` host
and port, ``<JWT_TOKEN>`` a real token) and the "handle incoming messages" comment gets two lines
that print each frame and close after the broadcast, so Node exits on its own.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.harness import ROOT, ServerProcess, token

NODE_TIMEOUT = 30.0
NODE_WITH_WEBSOCKET = (20, 10)  # Node's own WebSocket, with --experimental-websocket
NODE_WEBSOCKET = ROOT / "tests" / "support" / "node_websocket.js"  # for older Node.js, such as Debian 12's 18

WIKI_EXAMPLE = """\
const ws = new WebSocket('wss://<SERVER_HOST>/ws/chat?token=<JWT_TOKEN>');
ws.onopen = () => {
ws.send(JSON.stringify({
event: 'clanMessage',
data: { content: 'Hello clan!' }
}));
};
ws.onmessage = (msg) => {
const data = JSON.parse(msg.data);
// handle incoming messages
};
"""

PRINT_AND_EXIT = """\
// handle incoming messages
console.log(JSON.stringify(data));
if (data.event === 'newMessage') ws.close();
"""

OBJECT_ID = re.compile(r"^[0-9a-f]{24}$")
CREATED_AT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def wiki_script(server: ServerProcess, jwt: str) -> str:
    script = WIKI_EXAMPLE.replace("wss://<SERVER_HOST>", f"ws://127.0.0.1:{server.port}")
    script = script.replace("<JWT_TOKEN>", jwt)
    return script.replace("// handle incoming messages\n", PRINT_AND_EXIT)


def node_program() -> tuple[str, tuple[int, ...]]:
    node = shutil.which("node")
    # Never skipped: scripts/test and .ci/run install nodejs when it is missing (README, Quick start).
    assert node is not None, "Node.js runs the wiki's example: apt-get install nodejs (scripts/test does)"
    version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    return node, tuple(int(part) for part in version.lstrip("v").split(".")[:2])


async def run_node(script_path: Path, *, own_websocket: bool) -> tuple[int, str, str]:
    """Node's own WebSocket where it has one, else (or when told) the small one in ``NODE_WEBSOCKET``."""
    node, version = node_program()
    if own_websocket and version >= NODE_WITH_WEBSOCKET:
        options = ["--experimental-websocket"]
    else:
        options = ["--require", str(NODE_WEBSOCKET)]
    process = await asyncio.create_subprocess_exec(
        node,
        *options,
        str(script_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), NODE_TIMEOUT)
    except TimeoutError:
        process.kill()
        stdout, stderr = await process.communicate()
        pytest.fail(f"node did not exit within {NODE_TIMEOUT}s:\n{stdout.decode()}\n{stderr.decode()}")
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


@pytest.mark.parametrize("own_websocket", [True, False], ids=["node-websocket", "tests-node-websocket-js"])
async def test_wiki_javascript_client_gets_ready_then_its_clan_message_broadcast(
    embedded_server: ServerProcess, new_id: Callable[[], str], tmp_path: Path, own_websocket: bool
) -> None:
    player_id, clan_id = new_id(), new_id()
    script_path = tmp_path / "wiki_example.js"
    script_path.write_text(wiki_script(embedded_server, token(player_id, name="Aino", clan_id=clan_id)))

    returncode, stdout, stderr = await run_node(script_path, own_websocket=own_websocket)

    assert returncode == 0, stderr
    ready, broadcast = (json.loads(line) for line in stdout.splitlines())
    assert ready == {"event": "ready", "data": True}
    message = broadcast["message"]
    assert broadcast == {
        "chat": "clan",
        "event": "newMessage",
        "message": {
            "_id": message["_id"],
            "clan_id": clan_id,
            "sender": {"_id": player_id, "name": "Aino", "avatar": None},
            "content": "Hello clan!",
            "type": "clan",
            "reactions": [],
            "createdAt": message["createdAt"],
            "updatedAt": message["createdAt"],
        },
    }
    assert OBJECT_ID.match(message["_id"]), message["_id"]
    assert CREATED_AT.match(message["createdAt"]), message["createdAt"]
