"""Fixtures for usage and budgets, on top of the demo world (tests/conftest.py).

alice owns Acme (bob is a member), carol owns Globex; `admin` is staff.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from usage.budgets import budget_limit_set


@pytest.fixture
def acme(alice):
    return alice.teams.get(slug="acme")


@pytest.fixture
def set_budget():
    def set_(*, team=None, user=None, usd: str):
        return budget_limit_set(team=team, user=user, limit_usd=Decimal(usd))

    return set_


@pytest.fixture(autouse=True)
def _fresh_channel_layer():
    """Each test gets its own channel layer object: channels_redis keeps asyncio
    locks bound to the event loop that first used them, and every async test has
    its own loop (a reply's cancelled stop-listener leaves one behind)."""
    from channels.layers import DEFAULT_CHANNEL_LAYER, channel_layers

    channel_layers.backends.pop(DEFAULT_CHANNEL_LAYER, None)
    yield
    channel_layers.backends.pop(DEFAULT_CHANNEL_LAYER, None)
