"""A conversation's title from a small model after its first exchange.

The local title (the first line of the first message, `services.title_from_text`)
is what the conversation gets at once; after its first complete answer a Celery
task asks `CHAT_TITLE_MODEL` for a short title, billed like any call (a budget
hold, one `ApiCall` with purpose `title`). The local title stays when that call
fails, the budget is used up, or the owner has renamed the conversation.
"""

from __future__ import annotations

import asyncio
import uuid

from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from claude.pricing import worst_case_cost
from claude.providers import regional_premium
from claude.titles import TITLE_MAX_TOKENS, TITLE_SYSTEM_PROMPT, title_generate, title_request
from conversations.models import Conversation, Message
from conversations.services import title_from_text
from conversations.streaming.frames import conversation_updated
from conversations.streaming.publisher import broadcast_after_commit
from infra.db_threads import after_commit_on_loop
from usage.budgets import BudgetExceeded, RateLimited, budget_reserve
from usage.ledger import api_call_priced, ledger_record_in_transaction
from usage.models import ApiCall

# About three characters a token (an overestimate for English): the hold is a worst case.
_CHARS_PER_TOKEN = 3


def title_queue_after_commit(*, conversation_id: uuid.UUID, reply_id: uuid.UUID) -> None:
    """In the transaction that completes a reply: once it commits, queue the title
    task if this is the conversation's first complete answer and titles are on."""
    if not settings.CHAT_TITLE_MODEL:
        return
    earlier = (
        Message.objects.filter(
            conversation_id=conversation_id,
            role=Message.Role.ASSISTANT,
            status=Message.Status.COMPLETE,
        )
        .exclude(id=reply_id)
        .exists()
    )
    if earlier:
        return
    from conversations.tasks import conversation_title_task

    async def queue() -> None:
        # Off the database threads (on SQLite there is one, shared by every send):
        # the broker write is blocking I/O, done in the loop's default executor.
        await asyncio.to_thread(conversation_title_task.delay, str(conversation_id), str(reply_id))

    after_commit_on_loop(queue)


def _first_exchange(conversation: Conversation, reply_id) -> tuple[Message, Message] | None:
    """The answer (`reply_id`, else the earliest at position 1) and the message it
    answers (its parent: with branches, position 0 may hold several versions)."""
    replies = conversation.messages.filter(role=Message.Role.ASSISTANT)
    reply = (
        replies.filter(id=reply_id).first()
        if reply_id
        else replies.filter(position=1).order_by("created_at").first()
    )
    if reply is None or reply.status != Message.Status.COMPLETE:
        return None
    prompt = (
        reply.parent
        if reply.parent_id
        else conversation.messages.filter(position=reply.position - 1).first()
    )
    if prompt is None or not prompt.text:
        return None
    return prompt, reply


def conversation_title_generate(
    *, conversation_id: uuid.UUID | str, reply_id: uuid.UUID | str | None = None
) -> str | None:
    """Ask for a title and store it if the conversation still has its local one.

    Returns the new title, or None when the conversation keeps its own. Safe to
    run twice: the second run finds the title changed (or the first still
    calling) and does nothing."""
    conversation = Conversation.objects.filter(id=conversation_id).first()
    if conversation is None:
        return None
    first = _first_exchange(conversation, reply_id)
    if first is None:
        return None
    local = title_from_text(first[0].text)
    if conversation.title != local:
        return None  # renamed by its owner, or titled already
    if not cache.add(f"conversation-title:{conversation.id}", 1, timeout=300):
        return None  # another delivery of this task is calling now
    model = settings.CHAT_TITLE_MODEL
    request = title_request(model=model, user_text=first[0].text, reply_text=first[1].text)
    prompt_chars = len(TITLE_SYSTEM_PROMPT) + len(request.messages[0]["content"])
    worst = worst_case_cost(
        model,
        prompt_tokens=prompt_chars // _CHARS_PER_TOKEN + 1,
        max_output_tokens=TITLE_MAX_TOKENS,
        at=timezone.now().date(),
        regional=regional_premium(model),
    )
    try:
        reservation = budget_reserve(
            user_id=conversation.owner_id, team_id=conversation.team_id, amount=worst
        )
    except (BudgetExceeded, RateLimited):
        return None
    started = timezone.now()
    reply = async_to_sync(title_generate)(request)
    with transaction.atomic():
        call = api_call_priced(
            model=reply.model,
            usage=reply.usage,
            on=started.date(),
            user_id=conversation.owner_id,
            team_id=conversation.team_id,
            conversation_id=conversation.id,
            conversation_uuid=conversation.id,
            purpose=ApiCall.Purpose.TITLE,
            request_id=reply.request_id,
            duration_ms=int((timezone.now() - started).total_seconds() * 1000),
            stop_reason=reply.stop_reason,
            error_type=reply.error.api_error_type if reply.error else "",
        )
        call.save()
        ledger_record_in_transaction(call=call, reservation_id=reservation.id)
        if not reply.title:
            return None
        # Only over the local title: a rename during the call wins.
        if not Conversation.objects.filter(id=conversation.id, title=local).update(
            title=reply.title
        ):
            return None
        conversation.title = reply.title
        broadcast_after_commit(conversation.id, conversation_updated(conversation))
    return reply.title
