"""The price table against hand-computed costs, to the micro-dollar, and `manage.py price`."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.management import call_command

from claude.pricing import Usage, cost

NOV = dt.date(2026, 11, 1)

# (what, model, usage, at, batch, regional, expected USD, expected price row, cache savings)
EXAMPLES = [
    # 1000*2 + 500*10 = 7,000 micro
    (
        "plain",
        "claude-sonnet-5-5",
        Usage(1000, 500),
        NOV,
        False,
        False,
        "0.007000",
        "claude-sonnet-5-5@2026-10-07",
        "0",
    ),
    # 100*2 + 10,000*2.50 + 200*10 = 27,200
    (
        "cache write 5m",
        "claude-sonnet-5-5",
        Usage(100, 200, cache_write_5m_tokens=10_000),
        NOV,
        False,
        False,
        "0.027200",
        "claude-sonnet-5-5@2026-10-07",
        "0",
    ),
    # 50*4 + 20,000*8 + 1,000*20 = 180,200
    (
        "cache write 1h",
        "claude-opus-5-5",
        Usage(50, 1000, cache_write_1h_tokens=20_000),
        NOV,
        False,
        False,
        "0.180200",
        "claude-opus-5-5@2024-01-01",
        "0",
    ),
    # 300*1 + 50,000*0.10 + 700*5 = 8,800; saved 50,000*(1-0.10) = 45,000
    (
        "cache read",
        "claude-haiku-4-5",
        Usage(300, 700, cache_read_tokens=50_000),
        NOV,
        False,
        False,
        "0.008800",
        "claude-haiku-4-5@2024-01-01",
        "0.045000",
    ),
    # thinking tokens are output tokens: 2,000*5 + 12,345*25 = 318,625
    (
        "thinking",
        "claude-opus-4-6",
        Usage(2000, 12_345),
        NOV,
        False,
        False,
        "0.318625",
        "claude-opus-5@2024-01-01",
        "0",
    ),
    # (10,000*3 + 2,000*15) * 0.5 = 30,000
    (
        "batch",
        "claude-sonnet-4-6",
        Usage(10_000, 2000),
        NOV,
        True,
        False,
        "0.030000",
        "claude-sonnet-4-6@2024-01-01",
        "0",
    ),
    # Haiku 5.5 at exactly 100,000 prompt tokens: base. 40,000*0.10 + 60,000*0.01 + 1,000*0.50 = 5,100
    (
        "haiku 5.5 at 100K",
        "claude-haiku-5-5",
        Usage(40_000, 1000, cache_read_tokens=60_000),
        NOV,
        False,
        False,
        "0.005100",
        "claude-haiku-5-5@2024-01-01",
        "0.005400",
    ),
    # one more token: all at the tier. 40,001*0.50 + 60,000*0.05 + 1,000*2.50 = 25,500.5 -> 25,501
    (
        "haiku 5.5 over 100K",
        "claude-haiku-5-5",
        Usage(40_001, 1000, cache_read_tokens=60_000),
        NOV,
        False,
        False,
        "0.025501",
        "claude-haiku-5-5@2024-01-01+tier",
        "0.027000",
    ),
    # Sonnet 4.5 at 200,000: 200,000*3 + 1,000*15 = 615,000
    (
        "sonnet 4.5 at 200K",
        "claude-sonnet-4-5",
        Usage(200_000, 1000),
        NOV,
        False,
        False,
        "0.615000",
        "claude-sonnet-4-5@2024-01-01",
        "0",
    ),
    # 200,001*6 + 1,000*22.50 = 1,222,506
    (
        "sonnet 4.5 over 200K",
        "claude-sonnet-4-5",
        Usage(200_001, 1000),
        NOV,
        False,
        False,
        "1.222506",
        "claude-sonnet-4-5@2024-01-01+tier",
        "0",
    ),
    # Sonnet 4 past 200K counting cache writes: 150,001*6 + 50,000*7.50 = 1,275,006
    (
        "sonnet 4 over 200K with cache writes",
        "claude-sonnet-4-20250514",
        Usage(150_001, 0, cache_write_5m_tokens=50_000),
        NOV,
        False,
        False,
        "1.275006",
        "claude-sonnet-4-5@2024-01-01+tier",
        "0",
    ),
    # Sonnet 4.6 has no long-context tier: 300,000*3 = 900,000
    (
        "sonnet 4.6 no tier",
        "claude-sonnet-4-6",
        Usage(300_000, 0),
        NOV,
        False,
        False,
        "0.900000",
        "claude-sonnet-4-6@2024-01-01",
        "0",
    ),
    # Sonnet 5.5 cache reads: 0.20 the day before the change, 0.10 from 2026-10-07
    (
        "before the price change",
        "claude-sonnet-5-5",
        Usage(0, 0, cache_read_tokens=1_000_000),
        dt.date(2026, 10, 6),
        False,
        False,
        "0.200000",
        "claude-sonnet-5-5@2024-01-01",
        "1.800000",
    ),
    (
        "after the price change",
        "claude-sonnet-5-5",
        Usage(0, 0, cache_read_tokens=1_000_000),
        dt.date(2026, 10, 7),
        False,
        False,
        "0.100000",
        "claude-sonnet-5-5@2026-10-07",
        "1.900000",
    ),
    # regional: (1,000*5 + 1,000*25) * 1.1 = 33,000
    (
        "regional",
        "claude-opus-4-6",
        Usage(1000, 1000),
        NOV,
        False,
        True,
        "0.033000",
        "claude-opus-5@2024-01-01",
        "0",
    ),
    # batch and regional: (1,234*3 + 567*15) * 1.1 * 0.5 = 6,713.85 -> 6,714
    (
        "batch + regional",
        "claude-sonnet-4-6",
        Usage(1234, 567),
        NOV,
        True,
        True,
        "0.006714",
        "claude-sonnet-4-6@2024-01-01",
        "0",
    ),
    # a dated id prices like its alias
    (
        "dated alias",
        "claude-haiku-4-5-20251001",
        Usage(1_000_000, 0),
        NOV,
        False,
        False,
        "1.000000",
        "claude-haiku-4-5@2024-01-01",
        "0",
    ),
]


@pytest.mark.parametrize(
    "what,model,usage,at,batch,regional,usd,key,saved", EXAMPLES, ids=[e[0] for e in EXAMPLES]
)
def test_cost_matches_hand_computed_value(what, model, usage, at, batch, regional, usd, key, saved):
    """Each example costs exactly the hand-computed amount and names the row it used."""
    result = cost(model, usage, at=at, batch=batch, regional=regional)
    assert result.usd == Decimal(usd)
    assert result.price_key == key
    assert result.priced
    assert result.cache_savings_usd == Decimal(saved)


def test_batch_savings_are_what_the_discount_took_off():
    """A batch call reports the half it did not pay as batch savings."""
    result = cost("claude-sonnet-4-6", Usage(10_000, 2000), at=NOV, batch=True)
    assert result.batch_savings_usd == Decimal("0.030000")
    assert cost("claude-sonnet-4-6", Usage(10_000, 2000), at=NOV).batch_savings_usd == 0


def test_unknown_model_uses_the_flagged_fallback_never_zero():
    """An unknown model is priced at the dearest known rates and flagged unpriced."""
    result = cost("claude-nova-9", Usage(1000, 1000), at=NOV)
    assert result.usd == Decimal("0.090000")  # 1,000*15 + 1,000*75
    assert not result.priced and result.price_key.startswith("unpriced-fallback")


def test_price_command_prints_the_ledger_cost_and_row(capsys):
    """`manage.py price` prints the same cost as the ledger function and the row it used."""
    call_command(
        "price",
        "--model",
        "claude-haiku-5-5",
        "--input",
        "40001",
        "--output",
        "1000",
        "--cache-read",
        "60000",
        "--at",
        "2026-11-01",
    )
    out = capsys.readouterr().out
    assert "cost_usd: 0.025501" in out
    assert "price_row: claude-haiku-5-5@2024-01-01+tier" in out
    assert "input 0.5, output 2.5" in out


def test_price_command_on_each_side_of_the_price_change(capsys):
    """`--at` picks the row in force that day."""
    for day, expected in (("2026-10-06", "0.200000"), ("2026-10-07", "0.100000")):
        call_command(
            "price", "--model", "claude-sonnet-5-5", "--cache-read", "1000000", "--at", day
        )
        assert f"cost_usd: {expected}" in capsys.readouterr().out


# --- A regional call per provider (the premium as the providers decide it) ------------------


@pytest.mark.parametrize(
    ("provider", "region", "profile", "model", "usd", "premium_usd"),
    [
        # Bedrock's EU profile, Sonnet 4.5: (10,000*3 + 2,000*15) * 1.1 = 66,000 micro,
        # of which 6,000 is the premium.
        ("bedrock", "eu-west-1", "eu", "claude-sonnet-4-5", "0.066000", "0.006000"),
        # Vertex in us-east5, Opus 5.5: (10,000*4 + 2,000*20) * 1.1 = 88,000; 8,000 premium.
        ("vertex", "us-east5", "", "claude-opus-5-5", "0.088000", "0.008000"),
        # Sonnet 4 predates the premium: (10,000*3 + 2,000*15) = 60,000, none.
        ("bedrock", "us-east-1", "us", "claude-sonnet-4", "0.060000", "0.000000"),
        # The global endpoints: list price.
        ("bedrock", "us-west-2", "global", "claude-sonnet-4-5", "0.060000", "0.000000"),
        ("vertex", "global", "", "claude-opus-5-5", "0.080000", "0.000000"),
    ],
)
def test_a_regional_call_is_priced_with_the_premium_per_provider(
    claude_on, provider, region, profile, model, usd, premium_usd
):
    from claude.providers import regional_premium

    claude_on(provider, region=region, endpoint=profile or "global")
    result = cost(model, Usage(10_000, 2_000), at=NOV, regional=regional_premium(model))
    assert result.usd == Decimal(usd)
    assert result.regional_premium_usd == Decimal(premium_usd)


def test_the_premium_is_halved_with_the_batch_discount():
    # (1,234*3 + 567*15) = 12,207 -> * 0.1 * 0.5 = 610.35 -> 610 micro.
    result = cost("claude-sonnet-4-5", Usage(1234, 567), at=NOV, batch=True, regional=True)
    assert result.regional_premium_usd == Decimal("0.000610")
    assert result.usd == Decimal("0.006714")
