"""Pages: who may see what, and what a page costs in queries."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from django.urls import reverse

from conversations.models import Conversation, Message
from usage.models import ApiCall

pytestmark = pytest.mark.django_db


def add_turns(conversation: Conversation, pairs: int) -> None:
    rows = []
    for i in range(pairs):
        rows.append(
            Message(
                conversation=conversation,
                position=2 * i,
                role="user",
                text=f"question {i}",
                content=[{"type": "text", "text": f"question {i}"}],
            )
        )
        rows.append(
            Message(
                conversation=conversation,
                position=2 * i + 1,
                role="assistant",
                text=f"answer **{i}**",
                html=f"<p>answer <strong>{i}</strong></p>",
            )
        )
    Message.objects.bulk_create(rows)


def test_pages_need_a_sign_in(client, make_conversation):
    conversation = make_conversation()
    for url in [reverse("home"), reverse("conversation_detail", args=[conversation.id])]:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_owner_sees_the_conversation(client, alice, make_conversation):
    conversation = make_conversation()
    add_turns(conversation, 2)
    client.force_login(alice)
    response = client.get(reverse("conversation_detail", args=[conversation.id]))
    assert response.status_code == 200
    body = response.content.decode()
    assert "question 1" in body and "<strong>1</strong>" in body
    assert f"/ws/c/{conversation.id}/" in body


@pytest.mark.parametrize("who", ["bob", "carol"])
def test_someone_else_gets_404_on_every_conversation_url(client, world, make_conversation, who):
    """Bob (same team) and carol (other team) get 404 for alice's conversation."""
    conversation = make_conversation()
    client.force_login(world[who])
    assert client.get(reverse("conversation_detail", args=[conversation.id])).status_code == 404
    assert (
        client.post(
            reverse("conversation_rename", args=[conversation.id]), {"title": "mine"}
        ).status_code
        == 404
    )
    assert client.post(reverse("conversation_delete", args=[conversation.id])).status_code == 404
    conversation.refresh_from_db()
    assert conversation.title == ""


def test_unknown_conversation_is_404(client, alice):
    client.force_login(alice)
    assert client.get(reverse("conversation_detail", args=[uuid.uuid4()])).status_code == 404


def test_page_with_200_messages_runs_a_fixed_number_of_queries(
    client, alice, make_conversation, django_assert_max_num_queries
):
    conversation = make_conversation()
    add_turns(conversation, 100)
    for _ in range(5):
        make_conversation()
    client.force_login(alice)
    url = reverse("conversation_detail", args=[conversation.id])
    # session, user, conversation, messages, their API calls, the sidebar: the
    # person's teams (switcher), their conversations, and those shared with them;
    # the conversation's latest summary (summaries' template tag)
    with django_assert_max_num_queries(10):
        response = client.get(url)
    assert response.status_code == 200
    assert response.content.decode().count('data-message-id="') == 200


def test_create_rename_and_delete(client, alice):
    client.force_login(alice)
    response = client.post(
        reverse("conversation_create"),
        {"model": "claude-opus-5-5", "system_prompt": "Be brief.", "thinking_effort": "medium"},
    )
    conversation = Conversation.objects.get(owner=alice)
    assert response.status_code == 302 and response["Location"] == f"/c/{conversation.id}/"
    assert (conversation.model, conversation.system_prompt, conversation.thinking_effort) == (
        "claude-opus-5-5",
        "Be brief.",
        "medium",
    )
    assert conversation.team.slug == "acme"

    response = client.post(
        reverse("conversation_rename", args=[conversation.id]),
        {"title": "  Plans  for Q3 "},
        HTTP_ACCEPT="application/json",
    )
    assert response.json()["title"] == "Plans for Q3"
    response = client.post(
        reverse("conversation_delete", args=[conversation.id]), HTTP_ACCEPT="application/json"
    )
    assert response.json() == {"deleted": True}
    assert not Conversation.objects.filter(id=conversation.id).exists()


def test_unknown_model_is_refused_with_a_message(client, alice):
    client.force_login(alice)
    response = client.post(reverse("conversation_create"), {"model": "claude-nonexistent"})
    assert response.status_code == 400
    assert not Conversation.objects.exists()


def test_sidebar_lists_only_my_conversations_newest_first(client, alice, bob, make_conversation):
    old = make_conversation()
    add_turns(old, 1)
    old.title = "Older chat"
    old.save()
    new = make_conversation()
    add_turns(new, 1)
    new.title = "Newer chat"
    new.save()
    bobs = make_conversation(bob)
    add_turns(bobs, 1)
    bobs.title = "Bob private chat"
    bobs.save()
    client.force_login(alice)
    body = client.get(reverse("home")).content.decode()
    assert body.index("Newer chat") < body.index("Older chat")
    assert "Bob private chat" not in body


def test_offline_fake_is_announced(client, alice):
    client.force_login(alice)
    assert "fake model" in client.get(reverse("home")).content.decode()


def test_home_lists_current_models_first(client, alice):
    client.force_login(alice)
    body = client.get(reverse("home")).content.decode()
    positions = [
        body.index(f'value="{m}"')
        for m in ("claude-opus-5-5", "claude-sonnet-5-5", "claude-haiku-5-5", "claude-haiku-4-5")
    ]
    assert positions == sorted(positions)


def test_pages_send_a_strict_content_security_policy(client, alice):
    client.force_login(alice)
    policy = client.get(reverse("home"))["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy


# --- The composer's cost estimate ---------------------------------------------------


@pytest.mark.real_backends
def test_estimate_counts_tokens_prices_them_and_logs_a_free_call(client, alice, make_conversation):
    """The composer's estimate comes from count_tokens, is priced with the ledger's
    function, and the count is logged as a $0 count_tokens call."""
    conversation = make_conversation(alice, model="claude-haiku-4-5")
    client.force_login(alice)
    response = client.post(f"/c/{conversation.id}/estimate/", {"text": "word " * 2000})
    assert response.status_code == 200
    data = response.json()
    assert data["input_tokens"] > 1000
    # Haiku 4.5 input at $1/M; the worst case adds 8,192 output tokens at $5/M.
    assert Decimal(data["estimated_cost_usd"]) == Decimal(data["input_tokens"]) / 1_000_000
    assert Decimal(data["max_cost_usd"]) > Decimal("0.04096")
    call = ApiCall.objects.get(purpose="count_tokens")
    assert (call.cost_usd, call.conversation_uuid, call.user_id) == (0, conversation.id, alice.pk)


@pytest.mark.real_backends
def test_estimate_is_owner_only(client, bob, make_conversation):
    """Someone else's conversation, or one that does not exist, is a 404."""
    conversation = make_conversation()
    client.force_login(bob)
    assert client.post(f"/c/{conversation.id}/estimate/", {"text": "hi"}).status_code == 404
    assert client.post(f"/c/{uuid.uuid4()}/estimate/", {"text": "hi"}).status_code == 404
    assert not ApiCall.objects.exists()
