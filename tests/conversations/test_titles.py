"""Titles from a small model after the first exchange, billed as `title` calls."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async

from claude.pricing import cost
from claude.titles import title_clean
from conversations import tasks
from conversations.models import Conversation, Message
from conversations.services import conversation_rename, title_from_text
from conversations.titles import conversation_title_generate
from tests.conftest import completed, generations_settled, receive_frames
from tests.conversations.sockets import send_frame
from usage.budgets import budget_for_team, budget_limit_set
from usage.models import ApiCall, BudgetReservation

TITLE_MODEL = "claude-haiku-5-5"


@pytest.fixture(autouse=True)
def _titles_on(settings):
    settings.CHAT_TITLE_MODEL = TITLE_MODEL


def _exchange(conversation: Conversation, question: str) -> None:
    """A first exchange as the chat stores it: the local title, two messages."""
    conversation.title = title_from_text(question)
    conversation.save(update_fields=["title"])
    Message.objects.create(
        conversation=conversation,
        position=0,
        role="user",
        status="complete",
        text=question,
        content=[{"type": "text", "text": question}],
    )
    Message.objects.create(
        conversation=conversation,
        position=1,
        role="assistant",
        status="complete",
        text="Use reversed() or slicing.",
        content=[{"type": "text", "text": "Use slicing."}],
    )


@pytest.mark.django_db
def test_the_first_exchange_gets_a_short_title_billed_as_a_title_call(make_conversation):
    conversation = make_conversation()
    _exchange(conversation, "How do I reverse a list in Python without copying it?")

    title = conversation_title_generate(conversation_id=conversation.id)

    assert title == "How do I reverse a list"
    conversation.refresh_from_db()
    assert conversation.title == "How do I reverse a list"
    call = ApiCall.objects.get(conversation_uuid=conversation.id)
    assert (call.purpose, call.model, call.error_type) == ("title", TITLE_MODEL, "")
    assert call.input_tokens > 0 and call.output_tokens > 0
    assert call.cost_usd == cost(TITLE_MODEL, _usage(call), at=call.created_at.date()).usd > 0
    # Settled against the budget like any call: nothing left held, the cost spent.
    assert not BudgetReservation.objects.filter(status="open").exists()
    assert budget_for_team(team=conversation.team).spent_usd == call.cost_usd


def _usage(call: ApiCall):
    from claude.pricing import Usage

    return Usage(
        input_tokens=call.input_tokens,
        output_tokens=call.output_tokens,
        cache_write_5m_tokens=call.cache_write_5m_tokens,
        cache_write_1h_tokens=call.cache_write_1h_tokens,
        cache_read_tokens=call.cache_read_tokens,
    )


@pytest.mark.django_db
def test_a_renamed_conversation_keeps_its_name_and_no_call_is_made(make_conversation):
    conversation = make_conversation()
    _exchange(conversation, "How do I reverse a list?")
    conversation_rename(conversation=conversation, title="Lists")

    assert conversation_title_generate(conversation_id=conversation.id) is None
    conversation.refresh_from_db()
    assert conversation.title == "Lists"
    assert not ApiCall.objects.exists()


@pytest.mark.django_db
def test_a_failed_title_call_keeps_the_local_title_and_costs_nothing(make_conversation):
    conversation = make_conversation()
    _exchange(conversation, "Tell me about queues [[fake error=overloaded_error]]")

    assert conversation_title_generate(conversation_id=conversation.id) is None
    conversation.refresh_from_db()
    assert conversation.title == "Tell me about queues"
    call = ApiCall.objects.get(conversation_uuid=conversation.id)
    assert (call.purpose, call.error_type, call.cost_usd) == ("title", "overloaded_error", 0)
    assert not BudgetReservation.objects.filter(status="open").exists()


@pytest.mark.django_db
def test_a_used_up_budget_makes_no_title_call(make_conversation):
    conversation = make_conversation()
    _exchange(conversation, "How do I reverse a list?")
    budget_limit_set(team=conversation.team, limit_usd=Decimal("0"))

    assert conversation_title_generate(conversation_id=conversation.id) is None
    assert conversation.title == Conversation.objects.get(id=conversation.id).title
    assert not ApiCall.objects.exists()


@pytest.mark.django_db
def test_running_the_task_twice_calls_once(make_conversation):
    conversation = make_conversation()
    _exchange(conversation, "How do I reverse a list?")
    tasks.conversation_title_task(str(conversation.id))
    tasks.conversation_title_task(str(conversation.id))
    assert ApiCall.objects.filter(purpose="title").count() == 1


def test_a_title_is_cleaned_to_one_plain_line():
    assert title_clean('**"Reversing lists in Python."**\nMore text') == "Reversing lists in Python"
    assert title_clean("Title: `Queues` and _workers_") == "Queues and workers"
    assert len(title_clean("word " * 40)) <= 80
    assert title_clean("  \n ") == ""


@pytest.mark.django_db(transaction=True)
async def test_the_chat_queues_a_title_after_the_first_answer_only(
    alice, make_conversation, signed_in, monkeypatch
):
    queued: list[str] = []
    monkeypatch.setattr(
        tasks.conversation_title_task,
        "delay",
        lambda conversation_id, reply_id: queued.append(conversation_id),
    )
    conversation = await sync_to_async(make_conversation)()
    session = await signed_in(alice)
    socket, _ = await session.socket(conversation.id)
    await socket.send_json_to(send_frame("How do I reverse a list?"))
    await receive_frames(socket, until=completed, timeout=20)
    await generations_settled()
    assert queued == [str(conversation.id)]

    # The worker's run reaches every open tab as a rename.
    await sync_to_async(conversation_title_generate)(conversation_id=conversation.id)
    frames = await receive_frames(
        socket, until=lambda f: f["type"] == "conversation.updated", timeout=5
    )
    assert frames[-1]["title"] == "How do I reverse a list"

    await socket.send_json_to(send_frame("And a tuple?"))
    await receive_frames(socket, until=completed, timeout=20)
    await generations_settled()
    await asyncio.sleep(0.1)
    assert queued == [str(conversation.id)]
