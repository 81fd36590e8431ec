"""Services on the real database: what is stored when people chat."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from claude.pricing import Usage, cost
from claude.stream import ChatRequest, request_params
from conversations import services
from conversations.models import Conversation, Message
from usage.models import ApiCall

pytestmark = [pytest.mark.django_db, pytest.mark.real_backends]


def test_send_stores_the_question_and_a_streaming_reply_and_titles_the_chat(alice, make_conversation):
    conversation = make_conversation()
    result = services.message_send(
        conversation=conversation,
        author=alice,
        text="  How do I brew good coffee at home with a French press?  ",
        client_id="abc",
    )
    assert result.created
    assert (result.user_message.position, result.assistant_message.position) == (0, 1)
    assert result.user_message.content == [
        {"type": "text", "text": "How do I brew good coffee at home with a French press?"}
    ]
    assert result.assistant_message.status == Message.Status.STREAMING
    conversation.refresh_from_db()
    assert conversation.title == "How do I brew good coffee at home with a French press?"


def test_title_leaves_out_the_fake_claude_directive():
    assert services.title_from_text("[[fake tokens=40 tps=20]] Plan the offsite") == "Plan the offsite"


def test_long_first_message_gives_a_short_title():
    title = services.title_from_text("word " * 40)
    assert title.endswith("…") and len(title) <= services.TITLE_MAX_CHARS + 1


def test_same_client_id_twice_stores_one_message(alice, make_conversation):
    conversation = make_conversation()
    first = services.message_send(
        conversation=conversation, author=alice, text="hi", client_id="x1"
    )
    Message.objects.filter(id=first.assistant_message.id).update(status="complete", text="hello")
    again = services.message_send(
        conversation=conversation, author=alice, text="hi", client_id="x1"
    )
    assert not again.created and again.user_message.id == first.user_message.id
    assert conversation.messages.count() == 2


def test_second_send_while_replying_is_refused(alice, make_conversation):
    conversation = make_conversation()
    services.message_send(conversation=conversation, author=alice, text="one", client_id="1")
    with pytest.raises(services.ChatInputError) as info:
        services.message_send(conversation=conversation, author=alice, text="two", client_id="2")
    assert info.value.code == "generation_in_progress"
    assert conversation.messages.count() == 2


def test_history_is_the_api_multi_turn_shape(alice, make_conversation):
    """Alternating roles, full history; empty failed replies are skipped and the
    questions around them merged, so the API accepts it."""
    conversation = make_conversation()
    rows = [
        ("user", "complete", "first question"),
        ("assistant", "complete", "first answer"),
        ("user", "complete", "second question"),
        ("assistant", "error", ""),
        ("user", "complete", "third question"),
        ("assistant", "streaming", ""),
    ]
    for position, (role, status, text) in enumerate(rows):
        Message.objects.create(
            conversation=conversation,
            position=position,
            role=role,
            status=status,
            text=text,
            content=[{"type": "text", "text": text}] if role == "user" else [],
        )
    history = services.api_turns(conversation.messages.filter(position__lt=5))
    assert [turn["role"] for turn in history] == ["user", "assistant", "user"]
    assert history[2]["content"] == [
        {"type": "text", "text": "second question"},
        {"type": "text", "text": "third question"},
    ]
    params = request_params(
        ChatRequest(model="claude-sonnet-5-5", system="Be kind.", messages=history, max_tokens=100)
    )
    # Prompt caching on by default: the system prompt and the last block are breakpoints.
    assert params["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert params["messages"][-1]["content"][-1]["cache_control"] == {"type": "ephemeral"}
    assert "cache_control" not in params["messages"][0]["content"][0]


def test_thinking_effort_becomes_adaptive_thinking_or_a_budget():
    adaptive = request_params(
        ChatRequest(model="claude-opus-5-5", messages=[], max_tokens=1000, thinking_effort="low")
    )
    assert adaptive["thinking"] == {"type": "adaptive"} and adaptive["output_config"] == {
        "effort": "low"
    }
    budget = request_params(
        ChatRequest(
            model="claude-sonnet-4-5", messages=[], max_tokens=1000, thinking_effort="medium"
        )
    )
    assert budget["thinking"] == {"type": "enabled", "budget_tokens": 4096}
    assert budget["max_tokens"] > 4096


def test_retry_replaces_only_the_last_failed_reply(alice, make_conversation):
    conversation = make_conversation()
    sent = services.message_send(conversation=conversation, author=alice, text="hi", client_id="1")
    failed = sent.assistant_message
    with pytest.raises(services.ChatInputError):
        services.message_retry(conversation=conversation, message_id=failed.id)  # still streaming
    Message.objects.filter(id=failed.id).update(status="error")
    removed, reply, job = services.message_retry(conversation=conversation, message_id=failed.id)
    assert removed == failed.id and reply.position == 1 and reply.status == "streaming"
    assert job.message_id == reply.id and job.request.messages[-1]["role"] == "user"
    assert list(conversation.messages.values_list("role", flat=True)) == ["user", "assistant"]


def test_stop_request_only_touches_a_running_reply(alice, make_conversation):
    conversation = make_conversation()
    sent = services.message_send(conversation=conversation, author=alice, text="hi", client_id="1")
    assert services.reply_stop_request(
        conversation=conversation, message_id=sent.assistant_message.id
    )
    assert not services.reply_stop_request(
        conversation=conversation, message_id=sent.user_message.id
    )


def test_reaper_marks_orphans_interrupted_and_keeps_their_text(alice, make_conversation):
    conversation = make_conversation()
    sent = services.message_send(conversation=conversation, author=alice, text="hi", client_id="1")
    orphan = sent.assistant_message
    Message.objects.filter(id=orphan.id).update(
        status="streaming",
        text="half an ans",
        seq=4,
        heartbeat_at=timezone.now() - dt.timedelta(minutes=5),
    )
    live_conversation = make_conversation()
    live = services.message_send(
        conversation=live_conversation, author=alice, text="yo", client_id="2"
    )
    Message.objects.filter(id=live.assistant_message.id).update(
        status="streaming", heartbeat_at=timezone.now()
    )

    assert services.generation_reap() == 1
    orphan.refresh_from_db()
    assert (orphan.status, orphan.text, orphan.seq) == ("interrupted", "half an ans", 4)
    assert Message.objects.get(id=live.assistant_message.id).status == "streaming"


def test_deleting_a_conversation_keeps_its_cost_rows(alice, make_conversation):
    conversation = make_conversation()
    call = ApiCall.objects.create(
        user=alice,
        conversation=conversation,
        conversation_uuid=conversation.id,
        model="claude-sonnet-5-5",
        input_tokens=10,
        output_tokens=10,
        cost_usd=Decimal("0.000120"),
    )
    conversation_id = conversation.id
    services.conversation_delete(conversation=conversation)
    call.refresh_from_db()
    assert call.conversation_id is None and call.conversation_uuid == conversation_id
    assert call.cost_usd == Decimal("0.000120")
    assert not Conversation.objects.filter(id=conversation_id).exists()


@pytest.mark.parametrize(
    ("model", "usage", "when", "expected"),
    [
        # Sonnet 5.5: $2 in, $10 out, $2.50 5m write, $4 1h write, $0.20 read (0.10 from 2026-10-07).
        ("claude-sonnet-5-5", Usage(1000, 500), dt.date(2026, 11, 1), "0.007000"),
        (
            "claude-sonnet-5-5",
            Usage(10, 20, cache_write_5m_tokens=2000),
            dt.date(2026, 11, 1),
            "0.005220",
        ),
        (
            "claude-sonnet-5-5",
            Usage(10, 20, cache_write_1h_tokens=2000),
            dt.date(2026, 11, 1),
            "0.008220",
        ),
        (
            "claude-sonnet-5-5",
            Usage(10, 20, cache_read_tokens=3000),
            dt.date(2026, 10, 6),
            "0.000820",
        ),
        (
            "claude-sonnet-5-5",
            Usage(10, 20, cache_read_tokens=3000),
            dt.date(2026, 10, 7),
            "0.000520",
        ),
        # Haiku 5.5: $0.10 in, $0.50 out: 7 input tokens cost 0.7 micro-dollars, rounded half up.
        ("claude-haiku-5-5", Usage(7, 1), dt.date(2026, 11, 1), "0.000001"),
        ("claude-opus-5-5-dated-unknown", Usage(1000, 0), dt.date(2026, 11, 1), "0.015000"),
        (
            "claude-haiku-4-5-20251001",
            Usage(1_000_000, 1_000_000),
            dt.date(2026, 11, 1),
            "6.000000",
        ),
    ],
)
def test_cost_matches_the_price_table_to_the_micro_dollar(model, usage, when, expected):
    assert cost(model, usage, at=when).usd == Decimal(expected)


def test_unknown_model_is_priced_by_the_flagged_fallback_never_zero():
    result = cost("claude-made-up", Usage(1000, 1000))
    assert not result.priced and result.price_key.startswith("unpriced") and result.usd > 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.real_backends
def test_two_sends_at_once_to_one_conversation_get_one_reply_slot(alice, make_conversation):
    """Two tabs send at the same moment: the conversation's lock lets one store its
    pair; the other sees the reply streaming and is told so (not a clash of positions)."""
    import threading

    from django.db import connection

    conversation = make_conversation()
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def send(text: str) -> None:
        try:
            barrier.wait()
            services.message_send(conversation=conversation, author=alice, text=text)
            outcomes.append("sent")
        except services.ChatInputError as exc:
            outcomes.append(exc.code)
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(t,)) for t in ("first tab", "second tab")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(outcomes) == ["generation_in_progress", "sent"]
    assert list(
        Message.objects.filter(conversation=conversation).values_list("position", flat=True)
    ) == [0, 1]
