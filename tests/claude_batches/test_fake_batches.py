"""The fake's Message Batches, driven by the real SDK's `client.messages.batches`:
the API's shapes, processing after a delay, mixed results from the control,
cancel and delete, paging, refusals, and one store shared by every app (and
process) given the same folder."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path

import anthropic
import pytest

from claude.fake import create_fake_app
from tests.claude_files.conftest import make_client

MODEL = "claude-haiku-5-5"
BATCH_ID = re.compile(r"msgbatch_01[A-Za-z0-9]{22}")


def request(custom_id: str, text: str = "Summarise: we ship on Friday.") -> dict:
    return {
        "custom_id": custom_id,
        "params": {
            "model": MODEL,
            "max_tokens": 256,
            "messages": [{"role": "user", "content": text}],
        },
    }


@pytest.fixture
def batches_dir(tmp_path: Path) -> Path:
    return tmp_path / "fake-claude-batches"


@pytest.fixture
def client(batches_dir: Path) -> anthropic.AsyncAnthropic:
    return make_client(create_fake_app(batches_dir=batches_dir))


async def _results(client, batch_id: str) -> dict[str, dict]:
    decoder = await client.messages.batches.results(batch_id)
    return {line.custom_id: line.result.model_dump() async for line in decoder}


async def test_create_answers_the_api_message_batch(client) -> None:
    response = await client.messages.batches.with_raw_response.create(
        requests=[request("a"), request("b")]
    )
    assert response.status_code == 200
    assert response.headers["request-id"].startswith("req_01")
    raw = json.loads(await response.read())
    assert set(raw) == {
        "id",
        "type",
        "processing_status",
        "request_counts",
        "created_at",
        "expires_at",
        "ended_at",
        "archived_at",
        "cancel_initiated_at",
        "results_url",
    }
    assert BATCH_ID.fullmatch(raw["id"])
    assert raw["type"] == "message_batch"
    assert raw["processing_status"] == "in_progress"
    assert raw["request_counts"] == {
        "processing": 2,
        "succeeded": 0,
        "errored": 0,
        "canceled": 0,
        "expired": 0,
    }
    assert raw["results_url"] is None and raw["ended_at"] is None
    batch = await client.messages.batches.retrieve(raw["id"])
    assert (batch.expires_at - batch.created_at).total_seconds() == pytest.approx(86400, abs=1)


async def test_a_batch_ends_after_its_delay_and_only_then_has_results(batches_dir) -> None:
    client = make_client(create_fake_app(batches_dir=batches_dir, batch_seconds=0.3))
    batch = await client.messages.batches.create(requests=[request("only")])
    early = await client.messages.batches.retrieve(batch.id)
    assert early.processing_status == "in_progress"
    assert early.request_counts.processing == 1 and early.results_url is None
    with pytest.raises(anthropic.AnthropicError, match="No `results_url`"):
        await client.messages.batches.results(batch.id)
    await asyncio.sleep(0.35)
    ended = await client.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended"
    assert ended.ended_at is not None
    assert ended.request_counts.succeeded == 1 and ended.request_counts.processing == 0
    # An absolute URL back at the server the request came to.
    assert ended.results_url == f"http://fake/v1/messages/batches/{batch.id}/results"
    results = await _results(client, batch.id)
    message = results["only"]["message"]
    assert results["only"]["type"] == "succeeded"
    assert message["type"] == "message" and message["role"] == "assistant"
    assert message["model"] == MODEL and message["stop_reason"] == "end_turn"
    assert message["usage"]["input_tokens"] > 0 and message["usage"]["output_tokens"] > 0
    assert message["content"][0]["type"] == "text" and message["content"][0]["text"]


async def test_the_control_makes_requests_error_expire_or_wait_for_a_cancel(client) -> None:
    batch = await client.messages.batches.create(
        requests=[
            request("ok"),
            request("bad", "[[fake error=invalid_request_error]] Summarise."),
            request("late", "[[fake expire=1]] Summarise."),
            request("held", "[[fake hold=1]] Summarise."),
            {
                "custom_id": "nomodel",
                "params": {
                    "model": "claude-nope",
                    "max_tokens": 5,
                    "messages": [{"role": "user", "content": "x"}],
                },
            },
        ]
    )
    # The held request keeps the batch running past its delay ...
    assert (await client.messages.batches.retrieve(batch.id)).processing_status == "in_progress"
    canceling = await client.messages.batches.cancel(batch.id)
    assert canceling.processing_status == "canceling"
    assert canceling.cancel_initiated_at is not None
    # ... until a cancel: what was done stays done, the held one is canceled.
    ended = await client.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended"
    assert ended.request_counts.model_dump() == {
        "processing": 0,
        "succeeded": 1,
        "errored": 2,
        "canceled": 1,
        "expired": 1,
    }
    results = await _results(client, batch.id)
    assert {k: v["type"] for k, v in results.items()} == {
        "ok": "succeeded",
        "bad": "errored",
        "late": "expired",
        "held": "canceled",
        "nomodel": "errored",
    }
    error = results["bad"]["error"]
    assert error["type"] == "error" and error["request_id"].startswith("req_01")
    assert error["error"]["type"] == "invalid_request_error"
    assert results["nomodel"]["error"]["error"] == {
        "type": "not_found_error",
        "message": "model: claude-nope",
    }


async def test_a_cancel_before_the_delay_cancels_everything(batches_dir) -> None:
    client = make_client(create_fake_app(batches_dir=batches_dir, batch_seconds=30))
    batch = await client.messages.batches.create(requests=[request("a"), request("b")])
    await client.messages.batches.cancel(batch.id)
    ended = await client.messages.batches.retrieve(batch.id)
    assert ended.request_counts.canceled == 2 and ended.processing_status == "ended"


async def test_delete_only_once_ended(batches_dir) -> None:
    client = make_client(create_fake_app(batches_dir=batches_dir, batch_seconds=30))
    batch = await client.messages.batches.create(requests=[request("a")])
    with pytest.raises(anthropic.BadRequestError, match="cancel it first"):
        await client.messages.batches.delete(batch.id)
    await client.messages.batches.cancel(batch.id)
    deleted = await client.messages.batches.delete(batch.id)
    assert (deleted.id, deleted.type) == (batch.id, "message_batch_deleted")
    with pytest.raises(anthropic.NotFoundError):
        await client.messages.batches.retrieve(batch.id)
    with pytest.raises(anthropic.NotFoundError):
        await client.messages.batches.retrieve("msgbatch_01" + "x" * 22)
    with pytest.raises(anthropic.NotFoundError):
        await client.messages.batches.retrieve("../../etc/passwd")


async def test_list_is_newest_first_and_pages_with_the_sdk(client) -> None:
    made = [(await client.messages.batches.create(requests=[request("a")])).id for _ in range(5)]
    page = await client.messages.batches.list(limit=2)
    assert [b.id for b in page.data] == made[::-1][:2]
    assert page.has_more is True and page.first_id == made[4] and page.last_id == made[3]
    walked = [b.id async for b in client.messages.batches.list(limit=2)]
    assert walked == made[::-1]
    before = await client.messages.batches.list(limit=2, before_id=made[1])
    assert [b.id for b in before.data] == [made[3], made[2]]
    with pytest.raises(anthropic.BadRequestError, match="less than or equal to 1000"):
        await client.messages.batches.list(limit=1001)


@pytest.mark.parametrize(
    ("requests", "message"),
    [
        ([], "at least 1 item"),
        ([request("a"), request("a")], "Duplicate custom_id 'a'"),
        ([request("has space")], "String should match pattern"),
        ([{"custom_id": "a"}], "requests.0.params: Field required"),
        ([{**request("a"), "params": {**request("a")["params"], "stream": True}}], "streaming"),
    ],
)
async def test_create_refuses_what_the_api_refuses(client, requests, message) -> None:
    with pytest.raises(anthropic.BadRequestError, match=message):
        await client.messages.batches.create(requests=requests)


async def test_results_come_in_no_particular_order_but_all_come(client) -> None:
    batch = await client.messages.batches.create(requests=[request(f"r{i}") for i in range(1500)])
    await client.messages.batches.retrieve(batch.id)
    decoder = await client.messages.batches.results(batch.id)
    order = [line.custom_id async for line in decoder]
    assert sorted(order) == sorted(f"r{i}" for i in range(1500))
    assert order != [f"r{i}" for i in range(1500)]


def test_a_batch_one_process_submits_is_seen_by_another(batches_dir) -> None:
    """Another Python process (its own fake, the same folder) retrieves and reads it."""
    client = make_client(create_fake_app(batches_dir=batches_dir))
    batch = asyncio.run(client.messages.batches.create(requests=[request("shared")]))
    script = (
        "import asyncio, sys\n"
        "from claude.fake import create_fake_app\n"
        "from tests.claude_files.conftest import make_client\n"
        "async def main():\n"
        "    c = make_client(create_fake_app(batches_dir=sys.argv[1]))\n"
        "    b = await c.messages.batches.retrieve(sys.argv[2])\n"
        "    lines = [l.custom_id async for l in await c.messages.batches.results(b.id)]\n"
        "    print(b.processing_status, ','.join(lines))\n"
        "asyncio.run(main())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(batches_dir), batch.id],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.stdout.split() == ["ended", "shared"]
