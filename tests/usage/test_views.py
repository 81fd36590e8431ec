"""My usage, the team owner's budget page, and the composer's cost estimate."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from conversations.models import ApiCall
from usage.models import Budget
from usage.services import usage_record

pytestmark = [pytest.mark.django_db, pytest.mark.real_backends]


def bill(user, conversation, usd: str) -> None:
    call = ApiCall.objects.create(
        user=user,
        team=conversation.team,
        conversation=conversation,
        conversation_uuid=conversation.id,
        model=conversation.model,
        cost_usd=Decimal(usd),
    )
    usage_record(call=call)


def test_my_usage_shows_only_my_spend_budget_and_conversations(
    client, alice, carol, make_conversation, set_budget
):
    """Alice sees her month, her remaining budget and her conversations' costs; none of carol's."""
    mine = make_conversation(alice)
    mine.title = "Coffee plans"
    mine.save()
    theirs = make_conversation(carol)
    theirs.title = "Globex secrets"
    theirs.save()
    bill(alice, mine, "1.250000")
    bill(carol, theirs, "7.000000")
    set_budget(user=alice, usd="10")
    client.force_login(alice)
    response = client.get("/usage/")
    body = response.content.decode()
    assert response.status_code == 200
    assert "$1.25" in body and "$8.75" in body and "Coffee plans" in body
    assert "Globex secrets" not in body and "$7.00" not in body
    assert "<svg" in body


def test_deleted_conversation_still_counts_on_my_usage(client, alice, make_conversation):
    conversation = make_conversation(alice)
    bill(alice, conversation, "0.500000")
    conversation.delete()
    client.force_login(alice)
    body = client.get("/usage/").content.decode()
    assert "(deleted conversation)" in body and "$0.5000" in body


def test_team_owner_sets_the_budget_others_get_404(client, alice, bob, carol):
    """alice owns Acme and may set its budget; bob (member) and carol (other team) get 404."""
    url = "/usage/team/acme/budget/"
    for outsider in (bob, carol):
        client.force_login(outsider)
        assert client.get(url).status_code == 404
        assert client.post(url, {"monthly_limit_usd": "1"}).status_code == 404
    assert not Budget.objects.exists()
    client.force_login(alice)
    assert client.post(url, {"monthly_limit_usd": "25.50"}).status_code == 302
    assert Budget.objects.get(team__slug="acme").monthly_limit_usd == Decimal("25.50")
    assert "$25.50" in client.get(url).content.decode()
    client.post(url, {"monthly_limit_usd": ""})
    assert not Budget.objects.exists()


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


def test_estimate_is_owner_only(client, bob, make_conversation):
    """Someone else's conversation, or one that does not exist, is a 404."""
    conversation = make_conversation()
    client.force_login(bob)
    assert client.post(f"/c/{conversation.id}/estimate/", {"text": "hi"}).status_code == 404
    assert client.post(f"/c/{uuid.uuid4()}/estimate/", {"text": "hi"}).status_code == 404
    assert not ApiCall.objects.exists()
