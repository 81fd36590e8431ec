"""How an amount of USD is shown to a person."""

from __future__ import annotations

from decimal import Decimal

MICRO_DOLLAR = Decimal("0.000001")


def usd_display(value: Decimal) -> str:
    """Cents from $1 up; below that, enough digits that a small spend is not $0.00."""
    if value >= 1:
        return f"${value:,.2f}"
    if value == 0:
        return "$0"
    return f"${value:.4f}".rstrip("0").rstrip(".") if value >= Decimal("0.0001") else "< $0.0001"
