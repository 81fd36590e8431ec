"""The Files API: upload a prepared attachment once, then reference it by `file_id`.

Called from Celery workers through asgiref's `async_to_sync`, which runs each
call on a new event loop. The per-loop client of `claude_client()` would then
be built for every call and dropped unclosed when its loop goes (its
connection pool open until garbage collection), so each call here uses a
client of its own and closes it. Uploads are rare, one per attachment; a call
through `async_to_sync` to the in-process fake takes about 10 ms in all.
"""

from __future__ import annotations

from typing import Any

import anthropic

from claude.client import build_client, claude_provider
from claude.errors import ClaudeError, claude_error_from_sdk

# Bedrock and Vertex AI serve Messages only: no Files API, no `file` sources.
_FILES_PROVIDERS = ("anthropic", "fake")


def files_api_available() -> bool:
    """Whether this site's Claude provider has the Files API (Anthropic or the fake)."""
    return claude_provider() in _FILES_PROVIDERS


def _require_files_api() -> None:
    if not files_api_available():
        raise ClaudeError(
            "bad_request", detail=f"The Files API is not available on {claude_provider()}"
        )


async def file_upload(data: bytes, *, filename: str, media_type: str) -> str:
    """Upload a file; returns its `file_id` (`file_…`) for image and document blocks.

    Raises ClaudeError like a chat call does (`context_too_long` over 500 MB,
    `bad_request` when the provider has no Files API).
    """
    _require_files_api()
    try:
        async with build_client() as client:
            metadata: Any = await client.files.upload(file=(filename, data, media_type))
    except anthropic.APIError as exc:
        raise claude_error_from_sdk(exc) from exc
    return str(metadata.id)


async def file_delete(file_id: str) -> None:
    """Delete an uploaded file. A file already gone counts as deleted, so a task that
    runs twice (or after someone else's clean-up) does not fail."""
    _require_files_api()
    try:
        async with build_client() as client:
            await client.files.delete(file_id)
    except anthropic.NotFoundError:
        return
    except anthropic.APIError as exc:
        raise claude_error_from_sdk(exc) from exc
