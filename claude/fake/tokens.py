"""Token estimates shared by `/v1/messages` and `/v1/messages/count_tokens`.

The fake has no tokenizer; what matters is that the numbers are deterministic,
plausible (about four characters a token) and that both endpoints agree, so a
test can compare `count_tokens` with the usage of a real call. Prompt caching
needs the same count block by block, so the request is flattened into
`PromptBlock`s in prompt order (system first, then messages).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# What the API charges for media we cannot measure.
IMAGE_TOKENS = 1_500
DOCUMENT_TOKENS = 1_500
# Role markers and turn separators each message adds to the prompt.
MESSAGE_OVERHEAD_TOKENS = 4


def estimate_tokens(text: str) -> int:
    """About one token per four characters, at least 1 for non-empty text."""
    if not text:
        return 0
    return (len(text) + 3) // 4


@dataclass(frozen=True)
class PromptBlock:
    """One block of the prompt: where a cache breakpoint can sit.

    `tokens` includes the message overhead on the first block of each message,
    so the sum over all blocks is the request's input token count.
    """

    role: str  # "system", "user" or "assistant"
    block: dict[str, Any]
    tokens: int
    cache_control: dict[str, Any] | None
    # True on the first block of a message: one message of two blocks and two
    # messages of one block are different prompts.
    opens_message: bool


def _document_tokens(block: dict[str, Any]) -> int:
    source = block.get("source")
    if isinstance(source, dict):
        if source.get("type") == "text" and isinstance(source.get("data"), str):
            return max(1, estimate_tokens(source["data"]))
        if source.get("type") == "content" and isinstance(source.get("content"), list):
            return max(1, sum(block_tokens(b) for b in source["content"] if isinstance(b, dict)))
    return DOCUMENT_TOKENS


def block_tokens(block: dict[str, Any]) -> int:
    """Tokens of one content block (images and opaque documents at a flat rate).

    Earlier turns' thinking is stripped from the prompt by the API, so it counts 0.
    """
    kind = block.get("type")
    if kind == "text":
        return estimate_tokens(block.get("text", ""))
    if kind == "image":
        return IMAGE_TOKENS
    if kind == "document":
        return _document_tokens(block)
    if kind == "tool_use":
        return estimate_tokens(block.get("name", "")) + estimate_tokens(
            json.dumps(block.get("input", {}), separators=(",", ":"))
        )
    if kind == "tool_result":
        content = block.get("content", "")
        if isinstance(content, str):
            return estimate_tokens(content)
        if isinstance(content, list):
            return sum(block_tokens(b) for b in content if isinstance(b, dict))
    return 0


def prompt_blocks(
    system: str | list[dict[str, Any]] | None, messages: list[dict[str, Any]]
) -> list[PromptBlock]:
    """The prompt flattened into blocks, with the estimator applied to each.

    Expects an already validated request (see `app.validate`).
    """
    blocks: list[PromptBlock] = []
    if isinstance(system, str):
        if system:
            blocks.append(
                PromptBlock(
                    "system", {"type": "text", "text": system}, estimate_tokens(system), None, True
                )
            )
    elif system:
        for block in system:
            blocks.append(
                PromptBlock("system", block, block_tokens(block), block.get("cache_control"), False)
            )
    for message in messages:
        role = message["role"]
        content = message["content"]
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        for i, block in enumerate(content):
            overhead = MESSAGE_OVERHEAD_TOKENS if i == 0 else 0
            blocks.append(
                PromptBlock(
                    role, block, block_tokens(block) + overhead, block.get("cache_control"), i == 0
                )
            )
    return blocks
