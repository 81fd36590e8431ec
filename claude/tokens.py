"""Token counting through the API's free `POST /v1/messages/count_tokens` (on Vertex
AI its `count-tokens:rawPredict`). Bedrock has none: ask `token_counting_available()`
first."""

from __future__ import annotations

import anthropic

from claude.client import (
    claude_client,
    token_counting_available,
    token_counting_unavailable_message,
)
from claude.errors import ClaudeError, claude_error_from_sdk
from claude.stream import COMPACTION_BETA, ChatRequest

# count_tokens takes the request without these.
_NOT_COUNTED = ("max_tokens", "extra_headers", "betas", "context_management")


def _has_compaction(messages) -> bool:
    return any(
        isinstance(block, dict) and block.get("type") == "compaction"
        for message in messages
        if isinstance(message.get("content"), list)
        for block in message["content"]
    )


async def input_tokens_count(request: ChatRequest) -> int:
    """How many input tokens `request` would be billed for (system, history, new text).

    Raises ClaudeError like a chat call does (`unsupported` where the provider
    has no token counting). The call itself is free.
    """
    if not token_counting_available():
        raise ClaudeError("unsupported", detail=token_counting_unavailable_message())
    params = {k: v for k, v in request.params.items() if k not in _NOT_COUNTED}
    counter = claude_client().messages
    if _has_compaction(params["messages"]):
        # A compaction block sent back is a beta block: counted under the beta.
        counter = claude_client().beta.messages
        params["betas"] = [COMPACTION_BETA]
    try:
        result = await counter.count_tokens(**params)
    except anthropic.APIError as exc:
        raise claude_error_from_sdk(exc) from exc
    return int(result.input_tokens)
