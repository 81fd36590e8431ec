"""Removal from a team, across two daphne processes on PostgreSQL and Redis.

bob watches alice's conversation shared with Acme through one process and has
his own Acme conversation open through the other; alice removes him from Acme
over HTTP. Both sockets must close (4403) within 2 seconds, and his pages of
the team answer 404 at once. A removal no signal announces (a plain DELETE) is
still found by the next frame, which starts nothing.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid

import httpx2
import psycopg
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.integration.servers import create_conversation, login_cookie
from tests.integration.test_multiprocess import PASSWORD, deployment  # noqa: F401 (fixture)
from tests.integration.test_multiprocess import pytestmark as _multiprocess_marks

pytestmark = _multiprocess_marks


def _ws(server, conversation_id: str, cookie: str):
    return connect(
        f"ws://127.0.0.1:{server.port}/ws/c/{conversation_id}/",
        origin=f"http://127.0.0.1:{server.port}",
        additional_headers={"Cookie": cookie},
        open_timeout=10,
    )


async def _closed_within(ws, seconds: float) -> tuple[int, float, list[dict]]:
    """Read until the server closes: (close code, seconds it took, frames before)."""
    started = time.monotonic()
    frames = []
    try:
        async with asyncio.timeout(seconds):
            while True:
                frames.append(json.loads(await ws.recv()))
    except ConnectionClosed:
        return ws.close_code, time.monotonic() - started, frames
    except TimeoutError:
        raise AssertionError(f"still open after {seconds} s; frames: {frames}") from None


def _post_form(server, cookie: str, page: str, action: str, data: dict) -> httpx2.Response:
    with httpx2.Client(base_url=server.url, headers={"Cookie": cookie}) as client:
        text = client.get(page).text
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', text).group(1)
        return client.post(
            action,
            data={**data, "csrfmiddlewaretoken": token},
            headers={"Referer": f"{server.url}{page}"},
        )


def _one(db_url: str, sql: str, *params):
    with psycopg.connect(db_url) as conn:
        return conn.execute(sql, params).fetchone()


async def test_removal_closes_the_members_sockets_on_every_process_within_2_seconds(deployment):  # noqa: F811
    a, b, db = deployment["a"], deployment["b"], deployment["db"]
    alice = login_cookie(a, "alice", PASSWORD)
    bob = login_cookie(b, "bob", PASSWORD)
    (shared_id,) = _one(
        db,
        "SELECT c.id FROM conversations_conversation c JOIN conversations_conversationshare s "
        "ON s.conversation_id = c.id WHERE s.kind = 'team' LIMIT 1",
    )
    own_id = create_conversation(a, bob)
    (bob_id,) = _one(db, "SELECT id FROM accounts_user WHERE username = 'bob'")
    with httpx2.Client(base_url=b.url, headers={"Cookie": bob}) as client:
        assert client.get("/teams/acme/").status_code == 200
    async with _ws(b, str(shared_id), bob) as watching, _ws(a, own_id, bob) as own:
        await watching.send(json.dumps({"type": "ping"}))
        assert json.loads(await watching.recv()) == {"type": "pong"}
        response = _post_form(a, alice, "/teams/acme/", f"/teams/acme/members/{bob_id}/remove/", {})
        assert response.status_code == 302, response.text[:300]
        (code_b, took_b, _), (code_a, took_a, _) = await asyncio.gather(
            _closed_within(watching, 2.0), _closed_within(own, 2.0)
        )
    assert (code_a, code_b) == (4403, 4403)
    print(f"closed after {took_a:.3f} s (same process) and {took_b:.3f} s (the other)")
    with httpx2.Client(base_url=b.url, headers={"Cookie": bob}) as client:
        assert client.get("/teams/acme/").status_code == 404
        assert client.get(f"/c/{own_id}/").status_code == 404
        assert client.get(f"/c/{shared_id}/").status_code == 404


async def test_a_frame_sent_before_the_removal_is_heard_is_refused(deployment):  # noqa: F811
    a, b, db = deployment["a"], deployment["b"], deployment["db"]
    carol = login_cookie(a, "carol", PASSWORD)
    own_id = create_conversation(a, carol)
    async with _ws(b, own_id, carol) as ws:
        await ws.send(json.dumps({"type": "ping"}))
        assert json.loads(await ws.recv()) == {"type": "pong"}
        with psycopg.connect(db, autocommit=True) as conn:  # no signal, no broadcast
            conn.execute(
                "DELETE FROM accounts_membership WHERE user_id = "
                "(SELECT id FROM accounts_user WHERE username = 'carol')"
            )
        await ws.send(
            json.dumps(
                {
                    "type": "message.send",
                    "text": "bill globex [[fake tokens=5]]",
                    "client_id": uuid.uuid4().hex,
                }
            )
        )
        code, _, frames = await _closed_within(ws, 2.0)
    assert code == 4403
    assert all(f["type"] == "error" for f in frames), frames
    (count,) = _one(
        db,
        "SELECT count(*) FROM conversations_message WHERE conversation_id = %s",
        uuid.UUID(own_id),
    )
    assert count == 0
