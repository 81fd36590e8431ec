"""The Message Batches API: submit many Messages requests at half price, poll, read results.

Small typed functions over the SDK's `client.messages.batches`; nothing
outside this package sees an SDK object. They are synchronous: Celery tasks
and management commands call them. Each call runs the async SDK on a loop of
its own (asgiref's `async_to_sync`) with a client of its own that it closes,
as `claude.files` does.

Results are streamed: `batch_results_read` hands them to the caller a chunk at
a time while the JSONL body is still arriving, so a batch of 100,000 results
is never in memory at once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import anthropic
from asgiref.sync import async_to_sync, sync_to_async

from claude.client import batches_available, batches_unavailable_message, build_client
from claude.errors import ClaudeError, claude_error_from_sdk
from claude.pricing import Usage
from claude.stream import _usage_from_dict

# The API's limits on one batch (section 4 of the shared reference).
MAX_BATCH_REQUESTS = 100_000
MAX_BATCH_BYTES = 256 * 1024 * 1024

# Bedrock and Vertex AI have batch jobs of their own (over S3 / Cloud Storage),
# not this API: batches run on the Anthropic API and the fake only.


def _require_batches() -> None:
    if not batches_available():
        raise ClaudeError("bad_request", detail=batches_unavailable_message())


@dataclass(frozen=True)
class BatchStatus:
    """Where a batch stands at the API."""

    id: str
    processing_status: str  # in_progress | canceling | ended
    processing: int
    succeeded: int
    errored: int
    canceled: int
    expired: int
    created_at: dt.datetime
    ended_at: dt.datetime | None

    @property
    def ended(self) -> bool:
        return self.processing_status == "ended"

    @property
    def total(self) -> int:
        return self.processing + self.succeeded + self.errored + self.canceled + self.expired

    def counts(self) -> dict[str, int]:
        return {
            "processing": self.processing,
            "succeeded": self.succeeded,
            "errored": self.errored,
            "canceled": self.canceled,
            "expired": self.expired,
        }


@dataclass(frozen=True)
class BatchResult:
    """One request's outcome, matched to its request by `custom_id`.

    `kind` is succeeded, errored, canceled or expired. A succeeded one carries
    the reply (`text`, `usage`, `model`, `stop_reason`, the message id in
    `message_id`); an errored one the API's error type and message.
    """

    custom_id: str
    kind: str
    text: str = ""
    usage: Usage | None = None
    model: str = ""
    stop_reason: str = ""
    message_id: str = ""
    error_type: str = ""
    error_message: str = ""
    request_id: str = ""


def _status(batch: Any) -> BatchStatus:
    counts = batch.request_counts
    return BatchStatus(
        id=batch.id,
        processing_status=batch.processing_status,
        processing=counts.processing,
        succeeded=counts.succeeded,
        errored=counts.errored,
        canceled=counts.canceled,
        expired=counts.expired,
        created_at=batch.created_at,
        ended_at=batch.ended_at,
    )


def _result(line: Any) -> BatchResult:
    result = line.result
    kind = result.type
    if kind == "succeeded":
        message = result.message
        text = "".join(
            getattr(block, "text", "") for block in message.content if block.type == "text"
        )
        usage = message.usage.model_dump() if hasattr(message.usage, "model_dump") else {}
        return BatchResult(
            custom_id=line.custom_id,
            kind=kind,
            text=text,
            usage=_usage_from_dict(usage),
            model=message.model,
            stop_reason=message.stop_reason or "",
            message_id=message.id,
        )
    if kind == "errored":
        body = result.error
        error = getattr(body, "error", None)
        return BatchResult(
            custom_id=line.custom_id,
            kind=kind,
            error_type=str(getattr(error, "type", "") or "api_error"),
            error_message=str(getattr(error, "message", "") or ""),
            request_id=str(getattr(body, "request_id", "") or ""),
        )
    return BatchResult(custom_id=line.custom_id, kind=kind)


async def _create(requests: list[dict[str, Any]], headers: dict[str, str]) -> BatchStatus:
    async with build_client() as client:
        batch = await client.messages.batches.create(
            requests=requests, extra_headers=headers or None
        )
    return _status(batch)


def batch_create(
    requests: Iterable[dict[str, Any]], *, headers: dict[str, str] | None = None
) -> BatchStatus:
    """Submit one batch of `{"custom_id", "params"}` requests; the API's status of it.

    The caller keeps within MAX_BATCH_REQUESTS and MAX_BATCH_BYTES. Raises
    ClaudeError (a refused key, a malformed request, the API unreachable).
    `headers` go with the request (the fake's control travels there).
    """
    _require_batches()
    try:
        return async_to_sync(_create)(list(requests), dict(headers or {}))
    except anthropic.APIError as exc:
        raise claude_error_from_sdk(exc) from exc


async def _retrieve(batch_id: str) -> BatchStatus:
    async with build_client() as client:
        return _status(await client.messages.batches.retrieve(batch_id))


def batch_retrieve(batch_id: str) -> BatchStatus:
    """A batch's status at the API now. Free: polling bills nothing.

    Raises ClaudeError (`not_found` for a batch the API does not know)."""
    _require_batches()
    try:
        return async_to_sync(_retrieve)(batch_id)
    except anthropic.APIError as exc:
        raise claude_error_from_sdk(exc) from exc


async def _cancel(batch_id: str) -> BatchStatus:
    async with build_client() as client:
        return _status(await client.messages.batches.cancel(batch_id))


def batch_cancel(batch_id: str) -> BatchStatus:
    """Ask the API to stop a batch: it goes `canceling`, then ends with the requests it
    had not done marked canceled. Cancelling an ended batch changes nothing."""
    _require_batches()
    try:
        return async_to_sync(_cancel)(batch_id)
    except anthropic.APIError as exc:
        raise claude_error_from_sdk(exc) from exc


async def _delete(batch_id: str) -> None:
    async with build_client() as client:
        await client.messages.batches.delete(batch_id)


def batch_delete(batch_id: str) -> None:
    """Delete an ended batch and its results at the API; one already gone counts as deleted."""
    _require_batches()
    try:
        async_to_sync(_delete)(batch_id)
    except anthropic.NotFoundError:
        return
    except anthropic.APIError as exc:
        raise claude_error_from_sdk(exc) from exc


async def _created_since(since: dt.datetime) -> list[BatchStatus]:
    found: list[BatchStatus] = []
    async with build_client() as client:
        # Newest first: stop at the first batch older than `since`.
        async for batch in client.messages.batches.list(limit=100):
            if batch.created_at < since:
                break
            found.append(_status(batch))
    return found


def batch_list_created_since(since: dt.datetime) -> list[BatchStatus]:
    """The workspace's batches created at or after `since`, newest first: how a
    submit that died before it stored its batch id finds the batch it made."""
    _require_batches()
    try:
        return async_to_sync(_created_since)(since)
    except anthropic.APIError as exc:
        raise claude_error_from_sdk(exc) from exc


async def _results(
    batch_id: str, on_chunk: Callable[[list[BatchResult]], Any], chunk_size: int
) -> int:
    count = 0
    chunk: list[BatchResult] = []
    async with build_client() as client:
        decoder = await client.messages.batches.results(batch_id)
        try:
            async for line in decoder:
                chunk.append(_result(line))
                if len(chunk) >= chunk_size:
                    await on_chunk(chunk)
                    count += len(chunk)
                    chunk = []
        finally:
            await decoder.close()
    if chunk:
        await on_chunk(chunk)
        count += len(chunk)
    return count


def batch_results_read(
    batch_id: str, *, on_chunk: Callable[[list[BatchResult]], None], chunk_size: int = 500
) -> int:
    """Stream an ended batch's results, calling `on_chunk(results)` (in the caller's
    thread, so it may use the database) for every `chunk_size` of them; returns how
    many there were. Results come in no particular order: match them by custom_id.

    Raises ClaudeError; an exception from `on_chunk` stops the read and is raised
    as it is (what was handed over before it stays handed over).
    """
    _require_batches()
    try:
        return async_to_sync(_results)(batch_id, sync_to_async(on_chunk), chunk_size)
    except anthropic.APIError as exc:
        raise claude_error_from_sdk(exc) from exc
    except anthropic.AnthropicError as exc:  # no results_url: not ended yet
        raise ClaudeError("bad_request", detail=str(exc)) from exc
