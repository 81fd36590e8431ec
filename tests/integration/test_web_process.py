"""The real web process (daphne on uvloop) answering frames a test client cannot
reach through Channels' test communicator: over-sized websocket messages."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from tests.integration.servers import (
    create_conversation,
    login_cookie,
    manage,
    site_env,
    start_daphne,
)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("web")
    env = site_env(
        DATABASE_URL=f"sqlite:///{log_dir}/db.sqlite3", CHAT_VAR_DIR=str(log_dir / "var")
    )
    for command in (("migrate", "--noinput"), ("collectstatic", "--noinput"), ("seed_demo",)):
        manage(*command, env=env)
    web = start_daphne(log_dir, env=env)
    cookie = login_cookie(web, "alice", env["DEMO_PASSWORD"])
    yield web, cookie, create_conversation(web, cookie)
    web.stop()


async def send_text_of(site, size: int):
    web, cookie, conversation_id = site
    async with websockets.connect(
        f"ws://127.0.0.1:{web.port}/ws/c/{conversation_id}/",
        additional_headers={"Cookie": cookie, "Origin": web.url},
        max_size=None,
    ) as socket:
        await socket.send(json.dumps({"type": "message.send", "text": "x" * size, "client_id": "big"}))
        try:
            reply = json.loads(await asyncio.wait_for(socket.recv(), 10))
        except websockets.ConnectionClosed as closed:
            return None, closed.rcvd.code if closed.rcvd else None
        await socket.send('{"type":"ping"}')
        assert json.loads(await asyncio.wait_for(socket.recv(), 10)) == {"type": "pong"}
        return reply, None


async def test_a_large_frame_under_a_mebibyte_gets_frame_too_large(site):
    reply, closed = await send_text_of(site, 300_000)
    assert closed is None and reply["type"] == "error" and reply["code"] == "frame_too_large"


@pytest.mark.parametrize("size", [1_100_000, 5_000_000])
async def test_a_frame_over_the_limit_gets_a_clean_1009_close(site, size):
    reply, closed = await send_text_of(site, size)
    assert reply is None and closed == 1009
