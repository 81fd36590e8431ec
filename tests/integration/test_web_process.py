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
        await socket.send(
            json.dumps({"type": "message.send", "text": "x" * size, "client_id": "big"})
        )
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


def _rss_kib(pid: int, field: str = "VmRSS") -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def _post_until_answered(web, path: str, *, declared: int, sent_at_most: int, cookie: str):
    """POST `declared` bytes of body in 256 KiB pieces, stopping as soon as an
    answer arrives (or `sent_at_most` bytes went); (bytes sent, answer)."""
    import select
    import socket

    piece = b"\0" * (256 * 1024)
    with socket.create_connection(("127.0.0.1", web.port), timeout=30) as sock:
        sock.sendall(
            (
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\n"
                "Content-Type: multipart/form-data; boundary=x\r\n"
                f"Content-Length: {declared}\r\n\r\n"
            ).encode()
        )
        sent = 0
        while sent < sent_at_most:
            readable, writable, _ = select.select([sock], [sock], [], 30)
            if readable:
                break
            try:
                sent += sock.send(piece)
            except (BrokenPipeError, ConnectionResetError):
                break
        answer = b""
        sock.settimeout(10)
        while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        return sent, answer


@pytest.mark.parametrize("signed_in", [True, False])
def test_a_body_past_the_limit_is_refused_before_it_is_sent_and_never_held(site, signed_in):
    """Content-Length says 100 MiB (the limit is 30 MB): daphne answers 413 with
    the JSON reason as soon as the headers are in, while the client has sent a
    fraction of it, and the process's memory does not grow by the body. (Before,
    Twisted took all 100 MiB, daphne queued it for Django, and then it was
    refused: 302 for the anonymous, 413 for alice.)"""
    web, cookie, conversation_id = site
    body_size = 100 * 1024 * 1024
    before = _rss_kib(web.process.pid)
    sent, answer = _post_until_answered(
        web,
        f"/c/{conversation_id}/attachments/",
        declared=body_size,
        sent_at_most=body_size,
        cookie=cookie if signed_in else "",
    )
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), answer[:300]
    assert json.loads(body) == {
        "error": "This file is 100.0 MB; the limit is 30.0 MB.",
        "code": "file_too_large",
    }
    assert sent < 10 * 1024 * 1024, f"{sent} bytes went before the answer"
    grown_mib = (_rss_kib(web.process.pid) - before) / 1024
    print(f"sent {sent / 2**20:.2f} MiB before the 413; RSS grew {grown_mib:.1f} MiB")
    assert grown_mib < 20, f"the web process grew by {grown_mib:.0f} MiB"
