"""Prices of Claude models, as data, and the one function that turns usage into USD.

Rows carry an effective date so that a price change never rewrites history:
the ledger stores the cost computed when a call was made and the key of the row
it used. Source: section 13 of the shared API reference (USD per million tokens).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from conversations.claude.catalog import model_info

MILLION = Decimal(1_000_000)
MICRO_DOLLAR = Decimal("0.000001")
BATCH_DISCOUNT = Decimal("0.5")
REGIONAL_PREMIUM = Decimal("1.1")


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

    @property
    def key(self) -> str:
        """What a ledger row stores to say which price it used."""
        return f"{self.models[0]}@{self.effective_from.isoformat()}"


@dataclass(frozen=True)
class Usage:
    """Token counts of one call, in the API's terms."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    cache_read_tokens: int = 0


@dataclass(frozen=True)
class Cost:
    usd: Decimal
    price_key: str
    priced: bool  # False when the model was unknown and the fallback row was used


_ORIGIN = dt.date(2024, 1, 1)


def _row(
    models: tuple[str, ...],
    inp: str,
    w5: str,
    w1: str,
    read: str,
    out: str,
    since: dt.date = _ORIGIN,
) -> PriceRow:
    return PriceRow(
        models, since, Decimal(inp), Decimal(w5), Decimal(w1), Decimal(read), Decimal(out)
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
    _row(
        ("claude-sonnet-4-6", "claude-sonnet-4-5", "claude-sonnet-4"),
        "3",
        "3.75",
        "6",
        "0.30",
        "15",
    ),
    _row(("claude-haiku-5-5",), "0.10", "0.125", "0.20", "0.01", "0.50"),
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


def cost(
    model: str,
    usage: Usage,
    *,
    at: dt.date | None = None,
    batch: bool = False,
    regional: bool = False,
) -> Cost:
    """The USD cost of one call, rounded to the micro-dollar.

    `batch` halves every rate (Message Batches); `regional` adds the 10% premium
    of a regional endpoint or `inference_geo`.
    """
    when = at or dt.date.today()
    row = price_row_for(model, at=when)
    priced = row is not None
    row = row or FALLBACK_ROW
    total = (
        Decimal(usage.input_tokens) * row.input
        + Decimal(usage.output_tokens) * row.output
        + Decimal(usage.cache_write_5m_tokens) * row.cache_write_5m
        + Decimal(usage.cache_write_1h_tokens) * row.cache_write_1h
        + Decimal(usage.cache_read_tokens) * row.cache_read
    ) / MILLION
    if batch:
        total *= BATCH_DISCOUNT
    if regional:
        total *= REGIONAL_PREMIUM
    return Cost(
        usd=total.quantize(MICRO_DOLLAR, rounding=ROUND_HALF_UP), price_key=row.key, priced=priced
    )
