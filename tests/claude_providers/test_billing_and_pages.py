"""What a person and an admin see of the provider: a regional call billed with its
premium and stored with where it went (ledger, rollup, admin report), the picker
offering what the provider serves, and the composer's estimate on Bedrock (a
local count, said so) and on Vertex (the provider's count)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from claude.pricing import Usage, cost
from conversations.services import ChatInputError, conversation_create
from tests.conftest import completed, receive_frames
from tests.conversations.sockets import send_frame
from usage.models import ApiCall, BudgetReservation, DailyUsage
from usage.report import usage_report

MICRO = Decimal("0.000001")


def usage_of(call: ApiCall) -> Usage:
    return Usage(
        input_tokens=call.input_tokens,
        output_tokens=call.output_tokens,
        cache_write_5m_tokens=call.cache_write_5m_tokens,
        cache_write_1h_tokens=call.cache_write_1h_tokens,
        cache_read_tokens=call.cache_read_tokens,
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.real_backends
@pytest.mark.parametrize(
    ("provider", "region", "profile", "model", "premium", "where"),
    [
        ("bedrock", "eu-west-1", "eu", "claude-sonnet-4-5", True,
         "Amazon Bedrock, regional (eu-west-1)"),
        ("vertex", "us-east5", "", "claude-opus-5-5", True,
         "Google Vertex AI, regional (us-east5)"),
        # Models before Sonnet 4.5 keep their old pricing on a regional endpoint.
        ("bedrock", "us-east-1", "us", "claude-sonnet-4", False,
         "Amazon Bedrock, regional (us-east-1)"),
    ],
)
async def test_a_regional_call_is_billed_and_reported_with_its_premium(
    alice, make_conversation, socket_for, claude_on, provider, region, profile, model, premium,
    where,
):
    claude_on(provider, region=region, endpoint=profile or "global")
    conversation = await sync_to_async(make_conversation)(model=model)
    socket, _ = await socket_for(alice, conversation.id)
    await socket.send_json_to(send_frame("[[fake tokens=80]] price me, please"))
    frames = await receive_frames(socket, until=completed)
    assert frames[-1]["status"] == "complete"

    call = await sync_to_async(ApiCall.objects.get)(conversation_id=conversation.id)
    assert (call.provider, call.region, call.endpoint) == (provider, region, "regional")
    assert call.regional is premium
    today = timezone.now().date()
    at_global = cost(call.model, usage_of(call), at=today).usd
    expected = cost(call.model, usage_of(call), at=today, regional=premium)
    assert call.cost_usd == expected.usd == Decimal(frames[-1]["cost_usd"])
    if premium:
        assert abs(call.cost_usd - at_global * Decimal("1.1")) <= 2 * MICRO
        assert call.regional_premium_usd == expected.regional_premium_usd > 0
        assert abs(call.cost_usd - at_global - call.regional_premium_usd) <= 2 * MICRO
    else:
        assert call.cost_usd == at_global and call.regional_premium_usd == 0
    # The budget hold priced the worst case at this endpoint, and settled to the cost.
    hold = await sync_to_async(BudgetReservation.objects.get)(message_id=call.message_id)
    assert hold.actual_usd == call.cost_usd

    day = await sync_to_async(DailyUsage.objects.get)(user_id=alice.pk)
    assert (day.provider, day.region, day.endpoint) == (provider, region, "regional")
    assert day.regional_premium_usd == call.regional_premium_usd
    report = await sync_to_async(usage_report)(start=today - dt.timedelta(days=1), end=today)
    [row] = report.by_endpoint
    assert row.name == where and row.calls == 1
    assert row.regional_premium_usd == call.regional_premium_usd
    assert report.total.regional_premium_usd == call.regional_premium_usd
    await socket.disconnect()


@pytest.mark.django_db
def test_the_admin_shows_where_each_call_went(client, world, claude_on):
    ApiCall.objects.create(
        model="claude-sonnet-4-5", provider="bedrock", region="eu-west-1", endpoint="regional",
        regional=True, cost_usd=Decimal("0.011"), regional_premium_usd=Decimal("0.001"),
    )
    ApiCall.objects.create(model="claude-sonnet-5-5", provider="anthropic")
    client.force_login(world["admin"])
    listing = client.get("/admin/usage/apicall/").content.decode()
    assert "Amazon Bedrock, regional (eu-west-1)" in listing
    assert "+10% ($0.001000)" in listing
    assert "Anthropic API, global" in listing
    filtered = client.get("/admin/usage/apicall/", {"provider": "bedrock"}).content.decode()
    assert "Anthropic API, global" not in filtered
    ApiCall.objects.all().delete()


@pytest.mark.django_db
def test_the_picker_offers_only_what_the_provider_serves(client, alice, claude_on):
    claude_on("bedrock", region="ap-northeast-1", endpoint="jp")
    client.force_login(alice)
    page = client.get("/").content.decode()
    assert 'value="claude-sonnet-4-5"' in page
    assert 'value="claude-opus-4-5"' not in page  # no Japan profile for Opus 4.5
    response = client.post("/c/new/", {"model": "claude-opus-4-5"})
    assert response.status_code == 400
    with pytest.raises(ChatInputError, match="not offered on Amazon Bedrock"):
        conversation_create(owner=alice, model="claude-opus-4-5")


@pytest.mark.django_db
@pytest.mark.real_backends
def test_the_estimate_on_bedrock_is_local_and_says_so(client, alice, make_conversation, claude_on):
    claude_on("bedrock")
    conversation = make_conversation(alice, model="claude-haiku-4-5")
    client.force_login(alice)
    response = client.post(f"/c/{conversation.id}/estimate/", {"text": "word " * 2000})
    assert response.status_code == 200
    data = response.json()
    assert data["method"] == "local"
    assert "Amazon Bedrock has no token counting" in data["note"]
    # 10,000 characters at a conservative 3 a token, and the turn's framing.
    assert 3333 < data["input_tokens"] < 3500
    assert Decimal(data["estimated_cost_usd"]) == Decimal(data["input_tokens"]) / 1_000_000
    assert not ApiCall.objects.exists()  # no call was made, none is logged


@pytest.mark.django_db
@pytest.mark.real_backends
def test_the_estimate_on_vertex_is_its_count(client, alice, make_conversation, claude_on):
    claude_on("vertex", region="us-east5")
    conversation = make_conversation(alice, model="claude-haiku-4-5")
    client.force_login(alice)
    data = client.post(f"/c/{conversation.id}/estimate/", {"text": "word " * 2000}).json()
    assert data["method"] == "count_tokens" and data["input_tokens"] > 2000
    # Haiku 4.5 at a regional endpoint: $1.10 per million input tokens.
    assert Decimal(data["estimated_cost_usd"]) == (
        Decimal(data["input_tokens"]) * Decimal("1.1") / 1_000_000
    ).quantize(MICRO)
    call = ApiCall.objects.get(purpose="count_tokens")
    assert (call.provider, call.region, call.endpoint) == ("vertex", "us-east5", "regional")
