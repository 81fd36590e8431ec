"""The worst case of the next chat call: what a budget hold takes before it starts.

Counted without asking the API (it runs on every send): the last chat call's
reported prompt and answer, plus what was written since, at a conservative
three characters a token, and the files sent since at what each costs
(`Attachment.tokens`), priced at the call's whole `max_tokens` of output.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from decimal import Decimal
from typing import Protocol

from django.utils import timezone

from claude.catalog import model_info
from claude.pricing import worst_case_cost
from claude.providers import regional_premium
from infra.rows import rows_values
from usage.models import ApiCall

# Tokens are about four characters of English; three is the conservative side.
CHARS_PER_TOKEN = 3
# Per-message framing the API adds around each turn, generously.
TURN_OVERHEAD_TOKENS = 16


class StoredText(Protocol):
    """What the estimate reads of each stored message (a `conversations.Message`).

    A message may also carry `attachment_tokens` (int): what its files cost in a
    request. The sender notes it; a message without it counts no files."""

    text: str
    created_at: dt.datetime


_LAST_CALL_COLUMNS = (
    "input_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "cache_read_tokens",
    "output_tokens",
    "created_at",
)


def _last_chat_call_usage(conversation_id) -> tuple[int, int, dt.datetime] | None:
    """(prompt tokens, output tokens, when) of the conversation's last chat call that
    reported its prompt. Plain SQL: it runs on every send (see `infra/rows.py`)."""
    rows = rows_values(
        ApiCall,
        _LAST_CALL_COLUMNS,
        where={"conversation_uuid": conversation_id, "purpose": ApiCall.Purpose.CHAT},
        # A call that failed before the API reported its prompt tells nothing.
        any_of={"input_tokens__gt": 0, "cache_read_tokens__gt": 0, "cache_write_5m_tokens__gt": 0},
        order_by="-created_at",
        limit=1,
    )
    if not rows:
        return None
    fresh, write_5m, write_1h, cache_read, output, created_at = rows[0]
    return fresh + write_5m + write_1h + cache_read, output, created_at


def call_prompt_tokens_estimate(
    *,
    conversation_id,
    system_prompt: str,
    messages: Sequence[StoredText],
    new_text: str,
    new_attachment_tokens: int = 0,
) -> int:
    """A conservative count of the next call's prompt, without asking the API.

    The last chat call's reported prompt plus its answer (which the next call
    sends back), plus the new text at three characters a token and the new
    message's files (`new_attachment_tokens`). With no call yet, the stored
    messages and the system prompt are counted the same way. `messages`: the
    conversation's stored messages (`text`, `created_at` and, if set,
    `attachment_tokens` are read); the files of those the last call sent are in
    its reported prompt already.
    """
    last = _last_chat_call_usage(conversation_id)
    if last is not None:
        prompt_tokens, output_tokens, called_at = last
        base = prompt_tokens + output_tokens + TURN_OVERHEAD_TOKENS * 2
        # Messages stored after that call (none in the usual flow, some after a failure).
        later = [m for m in messages if m.created_at > called_at]
    else:
        base = math.ceil(len(system_prompt) / CHARS_PER_TOKEN) + TURN_OVERHEAD_TOKENS
        later = list(messages)
    chars = sum(len(m.text) for m in later)
    files = sum(getattr(m, "attachment_tokens", 0) for m in later)
    turns = len(later) if chars or files else 0
    return (
        base
        + math.ceil((chars + len(new_text)) / CHARS_PER_TOKEN)
        + files
        + new_attachment_tokens
        + TURN_OVERHEAD_TOKENS * (turns + 1)
    )


def call_worst_case_usd(
    *,
    model: str,
    conversation_id,
    system_prompt: str,
    messages: Sequence[StoredText],
    new_text: str,
    max_output_tokens: int,
    new_attachment_tokens: int = 0,
) -> Decimal:
    """What the next chat call could cost at most: the amount a reservation holds.

    `max_output_tokens`: the `max_tokens` the chat request carries (thinking
    budget included), taken from the request the caller built.
    `new_attachment_tokens`: what the new message's files cost (`Attachment.tokens`).
    """
    info = model_info(model)
    return worst_case_cost(
        info.id if info else model,
        prompt_tokens=call_prompt_tokens_estimate(
            conversation_id=conversation_id,
            system_prompt=system_prompt,
            messages=messages,
            new_text=new_text,
            new_attachment_tokens=new_attachment_tokens,
        ),
        max_output_tokens=max_output_tokens,
        at=timezone.now().date(),
        regional=regional_premium(model),
    )
