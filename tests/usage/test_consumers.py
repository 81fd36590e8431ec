"""Budget frames on the conversation websocket."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async

from conversations.models import Message
from tests.conftest import receive_frames
from usage.budgets import budget_limit_set
from usage.models import BudgetCounter
from usage.periods import month_start

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.real_backends]


@sync_to_async
def budget(user, *, limit: str, spent: str) -> None:
    budget_limit_set(user=user, limit_usd=Decimal(limit))
    BudgetCounter.objects.update_or_create(
        scope=f"user:{user.pk}", month=month_start(), defaults={"spent_usd": Decimal(spent)}
    )


async def test_warning_on_connect_and_after_each_reply(alice, make_conversation, socket_for):
    """At 85% of her budget alice's chat opens with a warning, and each reply is
    followed by her updated status."""
    await budget(alice, limit="10", spent="8.50")
    conversation = await sync_to_async(make_conversation)()
    socket, connected = await socket_for(alice, conversation.id)
    assert connected
    first = await socket.receive_json_from(timeout=5)
    assert (first["type"], first["level"], first["percent"]) == ("budget.status", "warning", 85)
    assert "85% of your monthly budget" in first["message"]
    await socket.send_json_to({"type": "message.send", "text": "hi", "client_id": "c1"})
    frames = await receive_frames(socket, until=lambda f: f["type"] == "budget.status")
    completed = next(f for f in frames if f["type"] == "message.completed")
    status = frames[-1]
    assert Decimal(status["spent_usd"]) == Decimal("8.50") + Decimal(completed["cost_usd"])


async def test_send_over_budget_is_an_error_frame_for_that_message(
    alice, make_conversation, socket_for
):
    """Refused: an `error` frame with code budget_exceeded and the client id; nothing stored."""
    await budget(alice, limit="1", spent="1")
    conversation = await sync_to_async(make_conversation)()
    socket, _ = await socket_for(alice, conversation.id)
    assert (await socket.receive_json_from(timeout=5))["level"] == "exceeded"
    client_id = uuid.uuid4().hex
    await socket.send_json_to({"type": "message.send", "text": "hi", "client_id": client_id})
    error = await socket.receive_json_from(timeout=5)
    assert (error["type"], error["code"], error["client_id"]) == (
        "error",
        "budget_exceeded",
        client_id,
    )
    assert (
        "personal monthly budget of $1.00" in error["message"] and "00:00 UTC" in error["message"]
    )
    assert await sync_to_async(Message.objects.count)() == 0


async def test_no_budget_no_frame(alice, make_conversation, socket_for):
    """People without a budget get no budget frames at all."""
    conversation = await sync_to_async(make_conversation)()
    socket, _ = await socket_for(alice, conversation.id)
    assert await socket.receive_nothing(timeout=0.2)
