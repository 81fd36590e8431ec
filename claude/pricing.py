"""Prices of Claude models, as data, and the one function that turns usage into USD.

Rows carry an effective date so that a price change never rewrites history:
the ledger stores the cost computed when a call was made and the key of the row
it used. Source: section 13 of the shared API reference (USD per million tokens).

The ledger (`ApiCall.cost_usd`), the budget reservations, the composer's
estimate and `manage.py price` all call `cost()`: there is no second
implementation to drift from it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from claude.catalog import model_info

MILLION = Decimal(1_000_000)
MICRO_DOLLAR = Decimal("0.000001")
# Message Batches: 50% of every rate (the reference: "Batch = 50% of input and
# output for every model"; cache rates are discounted alike, as the API does).
BATCH_DISCOUNT = Decimal("0.5")
# A regional endpoint (Bedrock/Vertex regional, or `inference_geo`) costs 1.1x.
REGIONAL_PREMIUM = Decimal("1.1")


@dataclass(frozen=True)
class PromptTier:
    """Dearer rates for the whole request once its prompt passes `above_tokens`.

    The prompt is input + cache writes + cache reads (the reference: "cache reads
    and writes counted"). Only input and output prices are published for the
    tiers; we assume the cache rates scale by the same multiplier as input
    (tier input / base input), which is how the published base cache rates
    relate to input (1.25x, 2x, 0.1x) and how Anthropic priced Sonnet 4.5's
    long-context tier ($7.50 / $12 / $0.60 against $6 input).
    """

    above_tokens: int
    input: Decimal
    output: Decimal


@dataclass(frozen=True)
class PriceRow:
    """Per-million-token prices for one model from one date on."""

    models: tuple[str, ...]
    effective_from: dt.date
    input: Decimal
    cache_write_5m: Decimal
    cache_write_1h: Decimal
    cache_read: Decimal
    output: Decimal
    tier: PromptTier | None = None

    @property
    def key(self) -> str:
        """What a ledger row stores to say which price it used."""
        return f"{self.models[0]}@{self.effective_from.isoformat()}"


@dataclass(frozen=True)
class Rates:
    """The per-million rates one call was actually billed at (tier applied)."""

    input: Decimal
    cache_write_5m: Decimal
    cache_write_1h: Decimal
    cache_read: Decimal
    output: Decimal


@dataclass(frozen=True)
class Usage:
    """Token counts of one call, in the API's terms."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    cache_read_tokens: int = 0

    @property
    def prompt_tokens(self) -> int:
        """Everything the model read: what the prompt-size tiers are decided on."""
        return (
            self.input_tokens
            + self.cache_write_5m_tokens
            + self.cache_write_1h_tokens
            + self.cache_read_tokens
        )


@dataclass(frozen=True)
class Cost:
    usd: Decimal
    price_key: str
    priced: bool  # False when the model was unknown and the fallback row was used
    # What the cache reads saved against paying full input price for those tokens,
    # and what the batch discount saved; both at this call's tier/regional rates.
    cache_savings_usd: Decimal = Decimal(0)
    batch_savings_usd: Decimal = Decimal(0)
    # What the regional endpoint's premium added (0 when not `regional`).
    regional_premium_usd: Decimal = Decimal(0)
    tier: bool = False
    rates: Rates | None = None


_ORIGIN = dt.date(2024, 1, 1)


def _row(
    models: tuple[str, ...],
    inp: str,
    w5: str,
    w1: str,
    read: str,
    out: str,
    since: dt.date = _ORIGIN,
    tier: PromptTier | None = None,
) -> PriceRow:
    return PriceRow(
        models,
        since,
        Decimal(inp),
        Decimal(w5),
        Decimal(w1),
        Decimal(read),
        Decimal(out),
        tier,
    )


PRICE_ROWS: tuple[PriceRow, ...] = (
    _row(("claude-fable-5-1", "claude-mythos-5-1"), "10", "12.50", "20", "0.25", "50"),
    _row(("claude-fable-5", "claude-mythos-5"), "10", "12.50", "20", "1.00", "50"),
    _row(("claude-opus-5-5",), "4", "5.00", "8", "0.20", "20"),
    _row(
        (
            "claude-opus-5",
            "claude-opus-4-8",
            "claude-opus-4-7",
            "claude-opus-4-6",
            "claude-opus-4-5",
        ),
        "5",
        "6.25",
        "10",
        "0.50",
        "25",
    ),
    _row(("claude-sonnet-5-5",), "2", "2.50", "4", "0.20", "10"),
    _row(("claude-sonnet-5-5",), "2", "2.50", "4", "0.10", "10", since=dt.date(2026, 10, 7)),
    _row(("claude-sonnet-5",), "2", "2.50", "4", "0.20", "10"),
    # Sonnet 4.6 has 1M context at the base price (no long-context surcharge).
    _row(("claude-sonnet-4-6",), "3", "3.75", "6", "0.30", "15"),
    _row(
        ("claude-sonnet-4-5", "claude-sonnet-4"),
        "3",
        "3.75",
        "6",
        "0.30",
        "15",
        tier=PromptTier(200_000, Decimal("6"), Decimal("22.50")),
    ),
    _row(
        ("claude-haiku-5-5",),
        "0.10",
        "0.125",
        "0.20",
        "0.01",
        "0.50",
        tier=PromptTier(100_000, Decimal("0.50"), Decimal("2.50")),
    ),
    _row(("claude-haiku-4-5",), "1", "1.25", "2", "0.10", "5"),
    _row(("claude-opus-4-1", "claude-opus-4"), "15", "18.75", "30", "1.50", "75"),
    _row(("claude-3-5-haiku",), "0.80", "1", "1.60", "0.08", "4"),
    _row(("claude-3-haiku",), "0.25", "0.30", "0.50", "0.03", "1.25"),
)

# An unknown model is priced at the dearest row we know, never at $0, and is
# flagged so the admin can see it as unpriced.
FALLBACK_ROW = PriceRow(
    ("unpriced-fallback",),
    _ORIGIN,
    Decimal("15"),
    Decimal("18.75"),
    Decimal("30"),
    Decimal("1.50"),
    Decimal("75"),
)


def price_row_for(model: str, *, at: dt.date) -> PriceRow | None:
    """The row in force for `model` (or its alias) on `at`, or None if unknown."""
    info = model_info(model)
    canonical = info.id if info else model
    candidates = [row for row in PRICE_ROWS if canonical in row.models and row.effective_from <= at]
    if not candidates:
        return None
    return max(candidates, key=lambda row: row.effective_from)


def rates_for(row: PriceRow, usage: Usage) -> tuple[Rates, bool]:
    """The rates a call with this usage is billed at, and whether a tier applied."""
    tier = row.tier
    if tier is None or usage.prompt_tokens <= tier.above_tokens:
        return (
            Rates(row.input, row.cache_write_5m, row.cache_write_1h, row.cache_read, row.output),
            False,
        )
    scale = tier.input / row.input
    return (
        Rates(
            tier.input,
            row.cache_write_5m * scale,
            row.cache_write_1h * scale,
            row.cache_read * scale,
            tier.output,
        ),
        True,
    )


def _micro(value: Decimal) -> Decimal:
    return value.quantize(MICRO_DOLLAR, rounding=ROUND_HALF_UP)


def cost(
    model: str,
    usage: Usage,
    *,
    at: dt.date | None = None,
    batch: bool = False,
    regional: bool = False,
) -> Cost:
    """The USD cost of one call, rounded to the micro-dollar.

    `at` picks the price row in force that day (a call is priced by the day it
    was made, so later price changes never touch it). Past a prompt-size tier
    the whole request is billed at the tier's rates. `batch` halves every rate
    (Message Batches); `regional` adds the 10% premium of a regional endpoint or
    `inference_geo`. Savings are reported beside the cost for the usage report.
    """
    when = at or dt.date.today()
    row = price_row_for(model, at=when)
    priced = row is not None
    row = row or FALLBACK_ROW
    rates, tiered = rates_for(row, usage)
    list_price = (
        Decimal(usage.input_tokens) * rates.input
        + Decimal(usage.output_tokens) * rates.output
        + Decimal(usage.cache_write_5m_tokens) * rates.cache_write_5m
        + Decimal(usage.cache_write_1h_tokens) * rates.cache_write_1h
        + Decimal(usage.cache_read_tokens) * rates.cache_read
    ) / MILLION
    cache_savings = Decimal(usage.cache_read_tokens) * (rates.input - rates.cache_read) / MILLION
    multiplier = Decimal(1)
    if regional:
        multiplier *= REGIONAL_PREMIUM
    undiscounted = list_price * multiplier
    if batch:
        multiplier *= BATCH_DISCOUNT
    total = list_price * multiplier
    premium = (
        list_price * (REGIONAL_PREMIUM - 1) * (BATCH_DISCOUNT if batch else 1)
        if regional
        else Decimal(0)
    )
    key = row.key + ("+tier" if tiered else "")
    return Cost(
        usd=_micro(total),
        price_key=key,
        priced=priced,
        cache_savings_usd=_micro(cache_savings * multiplier),
        batch_savings_usd=_micro(undiscounted - total) if batch else Decimal(0),
        regional_premium_usd=_micro(premium),
        tier=tiered,
        rates=rates,
    )


def worst_case_cost(
    model: str,
    *,
    prompt_tokens: int,
    max_output_tokens: int,
    at: dt.date | None = None,
    regional: bool = False,
) -> Decimal:
    """An upper bound on one chat call's cost, for a budget reservation.

    Every prompt token is priced as a 5-minute cache write (the dearest way the
    chat's prompt can be billed: it asks for caching) and every possible output
    token at the output rate; a tier is applied when the prompt passes it.
    """
    usage = Usage(cache_write_5m_tokens=prompt_tokens, output_tokens=max_output_tokens)
    return cost(model, usage, at=at, regional=regional).usd
