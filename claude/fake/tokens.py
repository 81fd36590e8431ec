"""Token estimates shared by `/v1/messages` and `/v1/messages/count_tokens`.

The fake has no tokenizer; what matters is that the numbers are deterministic,
plausible (about four characters a token) and that both endpoints agree, so a
test can compare `count_tokens` with the usage of a real call. Prompt caching
needs the same count block by block, so the request is flattened into
`PromptBlock`s in prompt order (system first, then messages).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# The API's own downscale before it counts an image: the long edge to at most
# 1568 px and the area to about 1.15 megapixels (its vision guide), then about
# width * height / 750 tokens.
IMAGE_LONG_EDGE = 1568
IMAGE_MAX_PIXELS = 1_150_000
PIXELS_PER_TOKEN = 750
# A block the caller has not measured (see `prompt_blocks`): the most an image costs.
IMAGE_TOKENS = 1_533
DOCUMENT_TOKENS = 1_500
# Role markers and turn separators each message adds to the prompt.
MESSAGE_OVERHEAD_TOKENS = 4


def estimate_tokens(text: str) -> int:
    """About one token per four characters, at least 1 for non-empty text."""
    if not text:
        return 0
    return (len(text) + 3) // 4


def image_tokens(width: int, height: int) -> int:
    """An image's tokens after the API's downscale (see IMAGE_LONG_EDGE)."""
    if width <= 0 or height <= 0:
        return 1
    scale = min(
        1.0,
        IMAGE_LONG_EDGE / max(width, height),
        math.sqrt(IMAGE_MAX_PIXELS / (width * height)),
    )
    scaled_width = max(1, int(width * scale))
    scaled_height = max(1, int(height * scale))
    return max(1, math.ceil(scaled_width * scaled_height / PIXELS_PER_TOKEN))


def pdf_page_tokens(width_pt: float, height_pt: float, text: str) -> int:
    """A PDF page: its extracted text plus the page seen as an image.

    The API renders each page to an image and extracts its text; how it renders
    is not documented, so this is an estimate: the page drawn with its long
    edge at 1568 px, then counted as an image (about 1,530 tokens for a letter
    or A4 page).
    """
    long_edge = max(width_pt, height_pt, 1.0)
    scale = IMAGE_LONG_EDGE / long_edge
    image = image_tokens(max(1, round(width_pt * scale)), max(1, round(height_pt * scale)))
    return image + estimate_tokens(text)


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
    """Tokens of one content block (unmeasured images and documents at a flat rate).

    Earlier turns' thinking is stripped from the prompt by the API, so it counts 0.
    """
    kind = block.get("type")
    if kind == "text":
        return estimate_tokens(block.get("text", ""))
    if kind == "image":
        return IMAGE_TOKENS
    if kind == "document":
        return _document_tokens(block)
    if kind == "compaction":
        # The summary that stands for every earlier turn (the API drops those).
        return estimate_tokens(block.get("content") or "")
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
    system: str | list[dict[str, Any]] | None,
    messages: list[dict[str, Any]],
    measured: Mapping[tuple[int, int], int] | None = None,
) -> list[PromptBlock]:
    """The prompt flattened into blocks, with the estimator applied to each.

    `measured` holds the tokens of image and document blocks that were read
    (by `media.MediaReader`), by (message index, block index); other blocks are
    estimated here. Expects an already validated request (see `app.validate`).
    """
    measured = measured or {}
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
    for m, message in enumerate(messages):
        role = message["role"]
        content = message["content"]
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        for i, block in enumerate(content):
            overhead = MESSAGE_OVERHEAD_TOKENS if i == 0 else 0
            tokens = measured.get((m, i))
            if tokens is None:
                tokens = block_tokens(block)
            blocks.append(
                PromptBlock(role, block, tokens + overhead, block.get("cache_control"), i == 0)
            )
    return after_compaction(blocks)


def after_compaction(blocks: list[PromptBlock]) -> list[PromptBlock]:
    """The prompt as the API reads it: a `compaction` block stands for everything
    before it (the system prompt stays), so the blocks before the last one go."""
    last = None
    for index, block in enumerate(blocks):
        if block.block.get("type") == "compaction":
            last = index
    if last is None:
        return blocks
    system = [b for b in blocks[:last] if b.role == "system"]
    return system + blocks[last:]
