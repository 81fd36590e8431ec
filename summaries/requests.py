"""What one conversation's summary request is: its prompt, its size, its estimate.

Pure functions over plain values (no database), so the estimate shown before a
job starts and the request the job sends are built by the same rules.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from claude.pricing import Usage, cost

# The fake (and, roughly, the API) counts about four characters a token; the
# budget hold counts three, the conservative side (as usage.estimates does).
CHARS_PER_TOKEN = 4
HOLD_CHARS_PER_TOKEN = 3
TURN_OVERHEAD_TOKENS = 4
HOLD_TURN_OVERHEAD_TOKENS = 16
# The framing around the transcript (tags, labels, the closing line).
FRAME_CHARS = 160
_CLOSING = "Summarise the conversation above as instructed."


@dataclass(frozen=True)
class ConversationSize:
    """What the estimate reads of one conversation."""

    conversation_id: object
    title: str
    chars: int
    turns: int


def _clip(transcript: str, limit: int) -> str:
    """A transcript past `limit` characters keeps its opening quarter and its end,
    where decisions and action items usually are."""
    if len(transcript) <= limit:
        return transcript
    head = limit // 4
    tail = limit - head
    left_out = len(transcript) - head - tail
    return f"{transcript[:head]}\n\n[… {left_out:,} characters left out …]\n\n{transcript[-tail:]}"


def request_params(
    *,
    model: str,
    instruction: str,
    title: str,
    turns: Sequence[tuple[str, str]],
    max_tokens: int,
    max_input_chars: int,
) -> dict:
    """The Messages API parameters that summarise one conversation.

    `turns`: (role, text) in order. The instruction is the system prompt; the
    conversation is one user message, as a transcript, so a summary is one
    cheap, uncached call."""
    lines = [
        f"{'User' if role == 'user' else 'Assistant'}: {text.strip()}"
        for role, text in turns
        if text.strip()
    ]
    transcript = _clip("\n\n".join(lines), max_input_chars)
    safe_title = title.replace('"', "'")
    content = f'<conversation title="{safe_title}">\n{transcript}\n</conversation>\n\n{_CLOSING}'
    return {
        "model": model,
        "max_tokens": max_tokens,
        "system": instruction,
        "messages": [{"role": "user", "content": content}],
    }


def request_bytes(custom_id: str, params: dict) -> int:
    """What one request adds to a batch's body (JSON, with its separator)."""
    return len(json.dumps({"custom_id": custom_id, "params": params}).encode()) + 2


@dataclass(frozen=True)
class Estimate:
    """What a job over some conversations is expected to cost, and its worst case."""

    conversations: int
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal  # at the batch price
    standard_cost_usd: Decimal  # the same calls made one by one
    hold_usd: Decimal  # the worst case, held against the budget
    per_conversation_input: tuple[int, ...] = ()

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def saving_usd(self) -> Decimal:
        return self.standard_cost_usd - self.cost_usd


def estimate(
    *,
    model: str,
    instruction: str,
    sizes: Sequence[ConversationSize],
    max_tokens: int,
    expected_output_tokens: int,
    max_input_chars: int,
    at=None,
) -> Estimate:
    """Price each conversation's request as the job will send it (each one on its
    own: a prompt-size tier applies per request), at the batch price and at the
    standard one; the hold prices every prompt at three characters a token and
    every answer at its full `max_tokens`."""
    instruction_chars = len(instruction)
    inputs: list[int] = []
    total_in = total_out = 0
    batch_cost = standard_cost = hold = Decimal(0)
    output = min(expected_output_tokens, max_tokens)
    for size in sizes:
        chars = min(size.chars, max_input_chars) + FRAME_CHARS + len(size.title)
        tokens = (
            math.ceil(chars / CHARS_PER_TOKEN)
            + math.ceil(instruction_chars / CHARS_PER_TOKEN)
            + TURN_OVERHEAD_TOKENS * (size.turns + 1)
        )
        worst = (
            math.ceil((chars + size.turns * 12) / HOLD_CHARS_PER_TOKEN)
            + math.ceil(instruction_chars / HOLD_CHARS_PER_TOKEN)
            + HOLD_TURN_OVERHEAD_TOKENS * (size.turns + 1)
        )
        inputs.append(tokens)
        total_in += tokens
        total_out += output
        usage = Usage(input_tokens=tokens, output_tokens=output)
        batch_cost += cost(model, usage, at=at, batch=True).usd
        standard_cost += cost(model, usage, at=at).usd
        hold += cost(
            model, Usage(input_tokens=worst, output_tokens=max_tokens), at=at, batch=True
        ).usd
    return Estimate(
        conversations=len(sizes),
        input_tokens=total_in,
        output_tokens=total_out,
        cost_usd=batch_cost,
        standard_cost_usd=standard_cost,
        hold_usd=hold,
        per_conversation_input=tuple(inputs),
    )
