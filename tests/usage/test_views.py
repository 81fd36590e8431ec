"""My usage and the team owner's budget page."""

from __future__ import annotations

from decimal import Decimal

import pytest

from usage.ledger import ledger_record
from usage.models import ApiCall, Budget

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
    ledger_record(call=call)


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
