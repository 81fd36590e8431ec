"""Running one assistant reply: an asyncio task per reply, owned by no socket.

The task reads Claude's stream, coalesces tokens into numbered frames (one per
`CHAT_COALESCE_SECONDS` window, not one per token), records each frame in the
replay buffer before delivering it to the conversation's sockets, checkpoints the partial
text to the database every `CHAT_CHECKPOINT_SECONDS` (with a heartbeat, and a
look at the stop flag another process may have set), and on the end writes the
final message and its one `ApiCall` row in one transaction.

Closing a socket never cancels a reply. A stop does (`reply_stop`): the stop
flag is set in the database, and the reply stops at once if it runs in this
process, else the stop is relayed to the conversation's sockets, the one in
the reply's process stops it, and the checkpoint reads the database flag
should no socket there relay it. The partial answer is kept as `stopped`. A server shutting down gives running replies a grace period, then
saves what they have as `interrupted`.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import logging
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction
from django.utils import timezone, translation

from claude.errors import INTERRUPTED_CODE, INTERRUPTED_MESSAGE
from claude.pricing import Usage
from claude.stream import (
    ChatRequest,
    ClaudeError,
    ReplyFinished,
    ReplyStream,
    SummaryWritten,
    TextDelta,
    ThinkingDelta,
    summary_write,
)
from conversations.context import system_with_summary
from conversations.models import Conversation, Message
from conversations.rendering import markdown_to_html
from conversations.services import ReplyJob, reply_stop_request
from conversations.streaming.frames import (
    conversation_group,
    message_completed,
    message_condensed,
)
from conversations.streaming.publisher import FramePublisher, broadcast
from conversations.titles import title_queue_after_commit
from infra.db_threads import db_async
from infra.rows import rows_insert, rows_update
from usage.budgets import budget_status
from usage.ledger import api_call_priced, ledger_record_in_transaction
from usage.models import ApiCall

logger = logging.getLogger(__name__)

# Strong references: the event loop keeps only weak ones to tasks.
_running: dict[uuid.UUID, asyncio.Task[None]] = {}
# Per running reply: set to stop it (by a socket of this process, or the checkpoint).
_stop_flags: dict[uuid.UUID, asyncio.Event] = {}


def reply_start(job: ReplyJob) -> asyncio.Task[None]:
    """Start generating a reply in this process's event loop: once per job, by the
    process whose `message_send` or `message_retry` returned it."""
    _shutdown_hook_install()
    # A fresh context: the reply must not inherit the socket's (asgiref ties
    # thread-sensitive database calls to the consumer that started them, and
    # that consumer may be long gone while the reply still streams).
    # Only the language is carried over: the reply's frames (its stop note, the
    # budget note after it) speak the language of the person who asked.
    message_id = job.message_id
    task = asyncio.get_running_loop().create_task(
        _generate_in(job, translation.get_language()),
        name=f"reply-{message_id}",
        context=contextvars.Context(),
    )
    _running[message_id] = task
    task.add_done_callback(lambda _: _running.pop(message_id, None))
    return task


async def reply_stop(*, conversation: Conversation, message_id: uuid.UUID) -> None:
    """Stop a running reply: its stop flag in the database (what a checkpoint reads,
    in whichever process runs it), then at once if it runs here, else through the
    conversation's sockets, one of which may live in the reply's process
    (`reply_stop_local` there). A reply not running: nothing happens."""
    if not await db_async(reply_stop_request)(conversation=conversation, message_id=message_id):
        return
    if not reply_stop_local(message_id):
        await get_channel_layer().group_send(
            conversation_group(conversation.id),
            {"type": "chat.stop", "message_id": str(message_id)},
        )


def reply_stop_local(message_id: uuid.UUID | str) -> bool:
    """Stop the reply now if this process runs it; False if it runs elsewhere (or
    not at all)."""
    stop_flag = _stop_flags.get(uuid.UUID(str(message_id)))
    if stop_flag is None:
        return False
    stop_flag.set()
    return True


async def replies_shutdown(grace_seconds: float | None = None) -> None:
    """Let running replies finish for a grace period, then cancel the rest, which
    save their text as `interrupted`."""
    grace = settings.CHAT_SHUTDOWN_GRACE_SECONDS if grace_seconds is None else grace_seconds
    tasks = [task for task in _running.values() if not task.done()]
    if not tasks:
        return
    logger.info("Shutting down: waiting up to %ss for %d replies", grace, len(tasks))
    _, pending = await asyncio.wait(tasks, timeout=grace)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=10)


_shutdown_hook_installed = False


def _shutdown_hook_install() -> None:
    """Under daphne (Twisted), run `replies_shutdown` before the reactor stops on
    SIGTERM/SIGINT: Twisted waits for the Deferred a "before shutdown" trigger returns."""
    global _shutdown_hook_installed
    if _shutdown_hook_installed or "twisted.internet.reactor" not in sys.modules:
        return
    from twisted.internet import defer, reactor

    if not reactor.running:
        return
    reactor.addSystemEventTrigger(
        "before",
        "shutdown",
        lambda: defer.Deferred.fromFuture(asyncio.ensure_future(replies_shutdown())),
    )
    _shutdown_hook_installed = True


@db_async
def _checkpoint(message_id: uuid.UUID, *, seq: int, text: str, thinking: str) -> bool:
    """Write the partial reply and a heartbeat in one UPDATE; return True if the reply
    should stop (a stop was requested, or the row is gone or no longer streaming)."""
    updated = rows_update(
        Message,
        {"seq": seq, "text": text, "thinking": thinking, "heartbeat_at": timezone.now()},
        where={"id": message_id, "status": Message.Status.STREAMING, "stop_requested_at": None},
    )
    return updated == 0


@dataclass
class _Outcome:
    status: str
    seq: int
    text: str
    thinking: str
    stop_reason: str = ""
    model: str = ""
    content: list[dict[str, Any]] | None = None
    usage: Usage | None = None
    usage_estimated: bool = False
    error: ClaudeError | None = None
    request_id: str = ""
    ttft_ms: int | None = None
    duration_ms: int | None = None
    stop_details: dict[str, Any] | None = None


@db_async
def _finalise(job: ReplyJob, outcome: _Outcome) -> tuple[Message, ApiCall]:
    """Write the final reply and its ledger row together, exactly once.

    Returns the reply as written (in memory: the row may be gone) and the ledger row."""
    content = outcome.content
    if content is None:
        content = []
        if outcome.thinking:
            content.append({"type": "thinking", "thinking": outcome.thinking, "signature": ""})
        if outcome.text:
            content.append({"type": "text", "text": outcome.text})
    elif job.prefill_text:
        content = _continued_content(job.prefill_content, content, job.prefill_text)
    error = outcome.error
    usage = outcome.usage or Usage()
    model = outcome.model or job.request.model
    now = timezone.now()
    html = markdown_to_html(outcome.text) if outcome.text else ""
    if error is not None:
        error_code, error_message = error.code, error.human_message
    elif outcome.status == Message.Status.INTERRUPTED:
        error_code, error_message = INTERRUPTED_CODE, INTERRUPTED_MESSAGE
    else:
        error_code, error_message = "", ""
    message = Message(
        id=job.message_id,
        role=Message.Role.ASSISTANT,
        status=outcome.status,
        seq=outcome.seq,
        text=outcome.text,
        thinking=outcome.thinking,
        content=content,
        html=html,
        model=model,
        stop_reason=outcome.stop_reason,
        stop_details=outcome.stop_details or {},
        error_code=error_code,
        error_message=error_message,
    )
    with transaction.atomic():
        # Finalised once (the status guard), settled once (the reservation's).
        updated = rows_update(
            Message,
            {
                "status": message.status,
                "seq": message.seq,
                "text": message.text,
                "thinking": message.thinking,
                "content": message.content,
                "html": message.html,
                "model": message.model,
                "stop_reason": message.stop_reason,
                "stop_details": message.stop_details,
                "error_code": message.error_code,
                "error_message": message.error_message,
                "heartbeat_at": None,
                "updated_at": now,
            },
            where={"id": job.message_id, "status": Message.ACTIVE_STATUSES},
        )
        # The conversation or reply may have been deleted meanwhile: the ledger row
        # is written all the same, pointing at nothing but keeping the ids.
        conversation_exists = (
            rows_update(Conversation, {"updated_at": now}, where={"id": job.conversation_id}) == 1
        )
        call = api_call_priced(
            model=model,
            usage=usage,
            on=now.date(),
            user_id=job.owner_id,
            team_id=job.team_id,
            conversation_id=job.conversation_id if conversation_exists else None,
            conversation_uuid=job.conversation_id,
            message_id=job.message_id if updated else None,
            purpose=ApiCall.Purpose.CHAT,
            usage_estimated=outcome.usage_estimated,
            request_id=outcome.request_id or (error.request_id if error else ""),
            time_to_first_token_ms=outcome.ttft_ms,
            duration_ms=outcome.duration_ms,
            stop_reason=outcome.stop_reason,
            error_type=error.api_error_type if error else "",
        )
        rows_insert(call)
        # A reply that failed before the stream started costs 0: settling to 0 is
        # the release.
        ledger_record_in_transaction(call=call, reservation_id=job.reservation_id)
        if updated and message.status == Message.Status.COMPLETE:
            title_queue_after_commit(conversation_id=job.conversation_id, reply_id=job.message_id)
    return message, call


# How many times in a row a paused turn is sent back before it is left as it is.
MAX_PAUSED_ROUNDS = 5
# What of a block goes back to the API (stored blocks may carry deltas kept aside).
_SENT_BACK_KEYS = {
    "text": ("type", "text"),
    "thinking": ("type", "thinking", "signature"),
    "redacted_thinking": ("type", "data"),
    "compaction": ("type", "content", "encrypted_content", "signature", "tool_changes"),
}


def _blocks_to_send_back(content: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A paused turn's blocks as the API takes them back: unchanged, but an empty
    text block dropped and the last text without trailing white space (a final
    assistant turn may not end in it)."""
    blocks = []
    for block in content:
        keys = _SENT_BACK_KEYS.get(block.get("type"))
        kept = {k: v for k, v in block.items() if keys is None or k in keys}
        if kept.get("type") == "text" and not kept.get("text"):
            continue
        blocks.append(kept)
    if blocks and blocks[-1].get("type") == "text":
        blocks[-1] = {**blocks[-1], "text": blocks[-1]["text"].rstrip()}
    return blocks


def _after_pause(
    finished: ReplyFinished, before: list[dict[str, Any]], usage: Usage
) -> ReplyFinished:
    """The rounds of a paused turn as one answer: blocks joined, usage summed."""
    prefix_blocks = _blocks_to_send_back(before)
    prefix = (
        prefix_blocks[-1]["text"] if prefix_blocks and prefix_blocks[-1]["type"] == "text" else ""
    )
    content = (
        _continued_content(prefix_blocks, finished.content, prefix)
        if prefix
        else [*prefix_blocks, *finished.content]
    )
    return dataclasses.replace(finished, content=content, usage=_usage_sum(usage, finished.usage))


def _usage_sum(first: Usage, second: Usage) -> Usage:
    return Usage(
        **{
            f.name: getattr(first, f.name) + getattr(second, f.name)
            for f in dataclasses.fields(Usage)
        }
    )


def _continued_content(
    before: list[dict[str, Any]], after: list[dict[str, Any]], prefix: str
) -> list[dict[str, Any]]:
    """A continued answer's blocks: the earlier ones with the new text written on
    after the prefix, then any further blocks of the continuation."""
    merged = [dict(block) for block in before if block.get("type") != "text"]
    rest = list(after)
    text = prefix
    if rest and rest[0].get("type") == "text":
        text += rest.pop(0).get("text", "")
    merged.append({"type": "text", "text": text})
    return merged + rest


async def _condense(job: ReplyJob) -> ChatRequest:
    """Write the summary of a long branch's older turns (conversations/context.py),
    keep it, and return the answer's request with it. Should the summary fail, the
    answer is asked with the whole branch, as before."""
    plan = job.condense
    try:
        written = await summary_write(plan.summary_request)
    except ClaudeError as exc:
        logger.warning("Condensing older turns failed: %s; sending them all", exc.api_error_type)
        return job.request
    if not written.text:
        return job.request
    await _summary_store(job, written)
    try:
        await broadcast(job.conversation_id, message_condensed(plan.message_id, written.text))
    except Exception:  # stored: a page reload shows it
        logger.exception("Announcing condensed turns failed")
    return dataclasses.replace(
        plan.answer_request, system=system_with_summary(plan.base_system, written.text)
    )


@db_async
def _summary_store(job: ReplyJob, written: SummaryWritten) -> None:
    """The summary on its message and its call on the ledger, together."""
    now = timezone.now()
    with transaction.atomic():
        rows_update(Message, {"summary": written.text}, where={"id": job.condense.message_id})
        call = api_call_priced(
            model=written.model,
            usage=written.usage,
            on=now.date(),
            user_id=job.owner_id,
            team_id=job.team_id,
            conversation_id=job.conversation_id,
            conversation_uuid=job.conversation_id,
            # Billed with the answer it was written for.
            message_id=job.message_id,
            purpose=ApiCall.Purpose.CONDENSE,
            request_id=written.request_id,
            stop_reason="end_turn",
        )
        rows_insert(call)
        ledger_record_in_transaction(call=call)


@db_async
def _budget_frame(job: ReplyJob) -> dict | None:
    """The owner's budget after this call, when they have one to watch."""
    status = budget_status(user_id=job.owner_id, team_id=job.team_id)
    return None if status.level == "none" else status.as_frame()


async def _checkpoints(
    publisher: FramePublisher, job: ReplyJob, stop_flag: asyncio.Event, ended: asyncio.Event
) -> None:
    """Every `CHAT_CHECKPOINT_SECONDS`: save the text so far with a heartbeat, and
    stop the reply if the database says so (a stop set through another process).

    Never cancelled (a database call cancelled half-way can hang): `ended` makes
    it return after its current step.
    """
    every = settings.CHAT_CHECKPOINT_SECONDS
    while True:
        try:
            async with asyncio.timeout(every):
                await ended.wait()
            return
        except TimeoutError:
            pass
        # The text of frames 1..seq exactly: both are updated together, before any await.
        stop_requested = await _checkpoint(
            job.message_id, seq=publisher.seq, text=publisher.text, thinking=publisher.thinking
        )
        if stop_requested:
            stop_flag.set()


async def _stream_reply(
    publisher: FramePublisher, job: ReplyJob, reply: ReplyStream, stop_flag: asyncio.Event
) -> ReplyFinished | None:
    async for event in reply:
        if stop_flag.is_set():
            return None
        if isinstance(event, TextDelta):
            publisher.add(text=event.text)
        elif isinstance(event, ThinkingDelta):
            publisher.add(thinking=event.thinking)
        elif isinstance(event, ReplyFinished):
            return event
    return None


async def _generate_in(job: ReplyJob, language: str | None) -> None:
    with translation.override(language):
        await _generate(job)


async def _generate(job: ReplyJob) -> None:
    message_id = job.message_id
    stop_flag = _stop_flags[message_id] = asyncio.Event()
    publisher = FramePublisher(
        message_id=job.message_id,
        conversation_id=job.conversation_id,
        text=job.prefill_text,
        thinking=job.prefill_thinking,
    )
    ended = asyncio.Event()
    checkpoints = asyncio.create_task(_checkpoints(publisher, job, stop_flag, ended))
    started = time.monotonic()
    request = job.request
    reply = ReplyStream(request)
    outcome_status = Message.Status.COMPLETE
    finished: ReplyFinished | None = None
    error: ClaudeError | None = None
    # A paused turn's earlier rounds: their blocks and usage, one answer with them.
    paused_content: list[dict[str, Any]] = []
    paused_usage: Usage | None = None
    try:
        if job.condense is not None:
            request = await _condense(job)
        for round_number in range(MAX_PAUSED_ROUNDS + 1):
            reply = ReplyStream(request)
            finished = None
            async with reply:
                stream_task = asyncio.ensure_future(_stream_reply(publisher, job, reply, stop_flag))
                stop_wait = asyncio.ensure_future(stop_flag.wait())
                try:
                    await asyncio.wait(
                        {stream_task, stop_wait}, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    stop_wait.cancel()
                if stream_task.done():
                    finished = stream_task.result()
                else:
                    # Stopped (by a socket, or the checkpoint saw the database flag):
                    # end the upstream call now.
                    stream_task.cancel()
                    await asyncio.gather(stream_task, return_exceptions=True)
            if finished is None:
                outcome_status = Message.Status.STOPPED
                break
            if paused_usage is not None:
                finished = _after_pause(finished, paused_content, paused_usage)
            if finished.stop_reason != "pause_turn" or round_number == MAX_PAUSED_ROUNDS:
                break
            # The API paused a long turn: send what it wrote back, unchanged, and it
            # goes on (one answer on the page and in the ledger).
            paused_content, paused_usage = finished.content, finished.usage
            request = dataclasses.replace(
                request,
                messages=[
                    *request.messages,
                    {"role": "assistant", "content": _blocks_to_send_back(finished.content)},
                ],
            )
    except ClaudeError as exc:
        error = exc
        outcome_status = Message.Status.ERROR
        logger.warning(
            "Claude call failed: %s (request %s)", exc.api_error_type, exc.request_id or "-"
        )
    except asyncio.CancelledError:
        # Only a shutting-down server cancels a reply task.
        outcome_status = Message.Status.INTERRUPTED
    except Exception:
        logger.exception("Reply %s failed unexpectedly", message_id)
        error = ClaudeError("upstream", api_error_type="internal_error")
        outcome_status = Message.Status.ERROR
    finally:
        _stop_flags.pop(message_id, None)
        ended.set()
        await asyncio.wait({checkpoints})

    try:
        await publisher.drain()
    except Exception:  # what was not published is still saved below
        logger.exception("Reply %s: publishing its last frames failed", message_id)
    elapsed_ms = int((time.monotonic() - started) * 1000)
    ttft_ms = int((reply.first_token_at - started) * 1000) if reply.first_token_at else None
    outcome = _Outcome(
        status=outcome_status,
        seq=publisher.seq + 1,
        text=publisher.text,
        thinking=publisher.thinking,
        error=error,
        request_id=reply.request_id,
        ttft_ms=ttft_ms,
        duration_ms=elapsed_ms,
    )
    if finished is not None:
        outcome.stop_reason = finished.stop_reason
        outcome.model = finished.model
        outcome.content = finished.content
        outcome.usage = finished.usage
        outcome.request_id = finished.request_id or reply.request_id
        outcome.stop_details = finished.stop_details
        if paused_usage is not None:
            # The rounds' text as joined (what streamed may repeat a space at the seam).
            outcome.text = "".join(
                b.get("text", "") for b in finished.content if b.get("type") == "text"
            )
    else:
        outcome.usage = reply.partial_usage()
        if paused_usage is not None:  # a paused turn's earlier rounds were billed too
            outcome.usage = _usage_sum(paused_usage, outcome.usage)
        outcome.usage_estimated = True
        if outcome_status == Message.Status.STOPPED:
            outcome.stop_reason = "user_stop"
    message, call = await _finalise(job, outcome)
    try:
        await publisher.finish(message_completed(message, call))
        budget = await _budget_frame(job) if job.budget_limited else None
        if budget is not None:
            await broadcast(job.conversation_id, budget, owner_only=True)
    except Exception:  # saved and billed: sockets read the end from the row
        logger.exception("Reply %s: publishing its end failed", message_id)
