"""Two daphne processes, one site: PostgreSQL, Redis and the standalone fake Claude.

Runs in the PostgreSQL + Redis pass of `make test` (it needs DATABASE_URL and
REDIS_URL). Each server is a real subprocess with the settings a deployment
uses; the test talks to them over HTTP and websockets, as browsers would.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from websockets.asyncio.client import connect

from tests.conftest import assistant_id, streamed_text
from tests.integration.servers import (
    create_conversation,
    drop_database,
    login_cookie,
    prepare_site_database,
    site_env,
    start_daphne,
    start_fake_claude,
)

pytestmark = [
    pytest.mark.real_backends,
    pytest.mark.skipif(
        not os.environ.get("REDIS_URL")
        or not os.environ.get("DATABASE_URL", "").startswith("postgres"),
        reason="runs in the PostgreSQL + Redis pass of make test",
    ),
]

PASSWORD = "integration-pw-123"


def _database_url(name: str) -> str:
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    """A fake Claude and two web processes sharing a fresh database and Redis."""
    log_dir: Path = tmp_path_factory.mktemp("servers")
    db_name = f"teamchat_it_{os.getpid()}"
    admin_url = os.environ["DATABASE_URL"]
    fake = start_fake_claude(log_dir, tps=50, ttft_ms=20)
    env = site_env(
        DATABASE_URL=_database_url(db_name),
        REDIS_URL=os.environ["REDIS_URL"],
        CHANNEL_LAYER_PREFIX=f"it{uuid.uuid4().hex[:8]}",
        ANTHROPIC_BASE_URL=fake.url,
        CHAT_VAR_DIR=str(log_dir / "var"),
        CHAT_CHECKPOINT_SECONDS="0.5",
        CHAT_SHUTDOWN_GRACE_SECONDS="8",
    )
    prepare_site_database(admin_url, db_name, env)
    servers = {
        "fake": fake,
        "a": start_daphne(log_dir, env=env, name="web-a"),
        "b": start_daphne(log_dir, env=env, name="web-b"),
    }
    servers["db"] = _database_url(db_name)
    servers["env"] = env
    servers["log_dir"] = log_dir
    try:
        yield servers
    finally:
        for key in ("a", "b", "fake"):
            servers[key].stop()
        drop_database(admin_url, db_name)


def _ws(server, conversation_id: str, cookie: str):
    return connect(
        f"ws://127.0.0.1:{server.port}/ws/c/{conversation_id}/",
        origin=f"http://127.0.0.1:{server.port}",
        additional_headers={"Cookie": cookie},
        open_timeout=10,
    )


async def _frames_until(ws, predicate, timeout: float = 30.0) -> list[dict]:
    frames: list[dict] = []
    async with asyncio.timeout(timeout):
        while True:
            frame = json.loads(await ws.recv())
            frames.append(frame)
            if predicate(frame):
                return frames


def _stored(db_url: str, message_id: str) -> tuple[str, str]:
    with psycopg.connect(db_url) as conn:
        return conn.execute(
            "SELECT status, text FROM conversations_message WHERE id = %s", (uuid.UUID(message_id),)
        ).fetchone()


def _send(text: str) -> str:
    return json.dumps({"type": "message.send", "text": text, "client_id": uuid.uuid4().hex})


def _completed(frame: dict) -> bool:
    return frame["type"] == "message.completed"


async def test_a_stream_started_on_one_process_is_watched_live_on_the_other(deployment):
    a, b = deployment["a"], deployment["b"]
    cookie = login_cookie(a, "alice", PASSWORD)
    conversation_id = create_conversation(a, cookie)
    async with (
        _ws(a, conversation_id, cookie) as sender,
        _ws(b, conversation_id, cookie) as watcher,
    ):
        await sender.send(_send("watch me [[fake tokens=80 tps=100]]"))
        sent, watched = await asyncio.gather(
            _frames_until(sender, _completed), _frames_until(watcher, _completed)
        )
    reply_id = assistant_id(sent)
    assert [f["type"] for f in watched][:2] == ["message.created", "message.created"]
    deltas = [f for f in watched if f["type"] == "message.delta"]
    assert len(deltas) >= 3, "the watcher saw the answer arrive in pieces, live"
    assert streamed_text(watched, reply_id) == streamed_text(sent, reply_id) == watched[-1]["text"]
    assert _stored(deployment["db"], reply_id) == ("complete", watched[-1]["text"])


async def test_disconnect_from_one_process_and_resume_on_the_other(deployment):
    a, b = deployment["a"], deployment["b"]
    cookie = login_cookie(a, "alice", PASSWORD)
    conversation_id = create_conversation(a, cookie)
    async with _ws(a, conversation_id, cookie) as first:
        await first.send(_send("keep going [[fake tokens=150 tps=60]]"))
        before = await _frames_until(
            first, lambda f: f.get("type") == "message.delta" and f["seq"] >= 4
        )
    reply_id = assistant_id(before)
    last_seq = max(f["seq"] for f in before if f["type"] == "message.delta")
    await asyncio.sleep(0.5)  # the answer goes on with no socket open
    async with _ws(b, conversation_id, cookie) as second:
        await second.send(
            json.dumps({"type": "resume", "message_id": reply_id, "last_seq": last_seq})
        )
        after = await _frames_until(second, _completed)
    seqs = [f["seq"] for f in after if f["type"] == "message.delta"]
    assert seqs == list(range(last_seq + 1, last_seq + 1 + len(seqs))), "no gap, no duplicate"
    whole = streamed_text(before, reply_id) + streamed_text(after, reply_id)
    assert whole == after[-1]["text"]
    assert _stored(deployment["db"], reply_id) == ("complete", whole)


async def test_stop_sent_through_the_other_process_stops_the_reply(deployment):
    a, b = deployment["a"], deployment["b"]
    cookie = login_cookie(a, "alice", PASSWORD)
    conversation_id = create_conversation(a, cookie)
    async with _ws(a, conversation_id, cookie) as sender, _ws(b, conversation_id, cookie) as other:
        await sender.send(_send("long [[fake tokens=2000 tps=50]]"))
        frames = await _frames_until(sender, lambda f: f.get("type") == "message.delta")
        reply_id = assistant_id(frames)
        await other.send(json.dumps({"type": "generation.stop", "message_id": reply_id}))
        frames += await _frames_until(sender, _completed, timeout=5)
    assert frames[-1]["status"] == "stopped"
    status, text = _stored(deployment["db"], reply_id)
    assert status == "stopped" and text == frames[-1]["text"] and 0 < len(text.split()) < 2000


async def test_sigterm_lets_running_replies_finish_then_exits(deployment, tmp_path):
    """A web process told to stop finishes its running reply within the grace period."""
    cookie_server = deployment["b"]
    cookie = login_cookie(cookie_server, "alice", PASSWORD)
    conversation_id = create_conversation(cookie_server, cookie)
    doomed = start_daphne(tmp_path, env=deployment["env"], name="web-doomed")
    try:
        async with _ws(doomed, conversation_id, cookie) as ws:
            await ws.send(_send("finish me [[fake tokens=100 tps=50]]"))
            frames = await _frames_until(ws, lambda f: f.get("type") == "message.delta")
            reply_id = assistant_id(frames)
            doomed.process.send_signal(signal.SIGTERM)
            exit_code = await asyncio.to_thread(doomed.process.wait, 20)
    finally:
        doomed.stop()
    status, text = _stored(deployment["db"], reply_id)
    assert status == "complete", doomed.log()
    assert len(text.split()) > 20
    assert exit_code is not None


async def test_sigterm_past_the_grace_period_saves_the_reply_as_interrupted(deployment, tmp_path):
    cookie_server = deployment["b"]
    cookie = login_cookie(cookie_server, "alice", PASSWORD)
    conversation_id = create_conversation(cookie_server, cookie)
    env = {**deployment["env"], "CHAT_SHUTDOWN_GRACE_SECONDS": "0.5"}
    doomed = start_daphne(tmp_path, env=env, name="web-short-grace")
    try:
        async with _ws(doomed, conversation_id, cookie) as ws:
            await ws.send(_send("too long [[fake tokens=3000 tps=50]]"))
            frames = await _frames_until(
                ws, lambda f: f.get("type") == "message.delta" and f["seq"] >= 3
            )
            reply_id = assistant_id(frames)
            seen = streamed_text(frames, reply_id)
            doomed.process.send_signal(signal.SIGTERM)
            await asyncio.to_thread(doomed.process.wait, 20)
    finally:
        doomed.stop()
    status, text = _stored(deployment["db"], reply_id)
    assert status == "interrupted", doomed.log()
    assert text.startswith(seen) and len(text) >= len(seen)
