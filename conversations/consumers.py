"""The conversation websocket: parse, authorise, call a service, relay frames.

Every socket on a conversation joins its group at connect, before it reads any
state, so nothing published after that is missed; `resume` then fills what came
before from the replay buffer or the database, and a per-reply cursor drops
frames the socket already delivered (no gap, no duplicate). Frames published in
this process arrive through `relay` (`conversations/fanout.py`), those of other
processes through the channel layer.

Relayed frames wait while the socket cannot know what its client already has:
from connect until the client's first frame is handled (a reopened page sends
its resumes first; a client that sends nothing gets them after
`HOLD_AFTER_CONNECT_SECONDS`), and while a resume is answered. They go out after,
in order, and the cursor drops what the resume covered.
"""

from __future__ import annotations

import asyncio
import json
import logging

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from conversations import selectors, services
from conversations.events import (
    ErrorFrame,
    MessageCompleted,
    MessageSnapshot,
    conversation_group,
    frame_json,
    message_payload,
    usage_payload,
)
from conversations.fanout import group_publish, socket_join, socket_leave
from conversations.generation import generation_start, generation_stop_local
from conversations.models import Conversation, Message
from conversations.protocol import (
    FrameError,
    GenerationStop,
    MessageRetry,
    MessageSend,
    Ping,
    Resume,
    frame_parse,
)
from conversations.replay import replay_buffer
from infra.channel_layers import published_here
from infra.db_threads import db_async
from usage.budgets import budget_status

logger = logging.getLogger(__name__)

HOLD_AFTER_CONNECT_SECONDS = 1.0


class ConversationConsumer(AsyncWebsocketConsumer):
    conversation: Conversation
    group: str

    async def connect(self) -> None:
        user = self.scope.get("user")
        conversation_id = self.scope["url_route"]["kwargs"]["conversation_id"]
        conversation = await db_async(selectors.conversation_for_user)(
            user=user, conversation_id=conversation_id
        )
        if conversation is None:
            await self.close()  # before accept: the handshake is refused (403)
            return
        self.conversation = conversation
        self.group = conversation_group(conversation.id)
        # Highest seq delivered per reply on this socket.
        self.cursors: dict[str, int] = {}
        # Relayed frames waiting to go out (see the module docstring); None: none wait.
        self._held: list[dict] | None = []
        self._release_lock = asyncio.Lock()
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        socket_join(self.group, self)
        self._release_timer = asyncio.get_running_loop().call_later(
            HOLD_AFTER_CONNECT_SECONDS, self._release_later
        )
        # A person with a budget sees where they stand as soon as the chat opens.
        budget = await db_async(budget_status)(
            user_id=conversation.owner_id, team_id=conversation.team_id
        )
        if budget.level != "none":
            await self.send(text_data=frame_json(budget.as_frame()))

    async def dispatch(self, message: dict) -> None:
        # Channels' own dispatch first hops to asgiref's one shared thread to close
        # that thread's stale database connections, before every message. This
        # consumer's database work runs in `db_async`'s threads, which close
        # theirs where they use them: the hop would only queue each message
        # behind whatever else that one thread is doing.
        kind = message["type"]
        if kind in ("chat.frame", "chat.broadcast"):
            if not published_here(message):  # else `relay` had it already
                await self.relay(message)
        elif kind == "chat.stop":
            generation_stop_local(message["message_id"])
        else:
            handler = getattr(self, get_handler_name(message), None)
            if handler is None:
                raise ValueError(f"No handler for message type {kind}")
            await handler(message)

    async def disconnect(self, code: int) -> None:
        # Leaving never cancels a reply: it goes on and is saved.
        if hasattr(self, "group"):
            socket_leave(self.group, self)
            self._release_timer.cancel()
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def relay(self, event: dict) -> None:
        """A frame or broadcast of this conversation, from any process."""
        if self._held is not None:
            self._held.append(event)
        else:
            await self._deliver(event)

    async def _deliver(self, event: dict) -> None:
        if event["type"] == "chat.frame":
            await self.chat_frame(event)
        else:
            await self.chat_broadcast(event)

    def _release_later(self) -> None:
        self._release_task = asyncio.ensure_future(self._release())

    async def _release(self) -> None:
        """Send the frames that waited, in order; from now on they go out at once."""
        async with self._release_lock:
            while self._held:
                await self._deliver(self._held.pop(0))
            self._held = None

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            await self._receive_frame(text_data)
        finally:
            if self._held is not None:
                await self._release()

    async def _receive_frame(self, text_data: str | None) -> None:
        # A frame far larger than any valid message is refused before parsing.
        if text_data is None or len(text_data) > settings.CHAT_MAX_MESSAGE_CHARS * 2 + 1024:
            await self._error("frame_too_large", "That frame is too large or not text.")
            return
        try:
            frame = frame_parse(json.loads(text_data))
        except json.JSONDecodeError:
            await self._error("bad_json", "That frame is not valid JSON.")
            return
        except FrameError as exc:
            await self._error(exc.code, exc.message)
            return
        try:
            if isinstance(frame, MessageSend):
                await self._message_send(frame)
            elif isinstance(frame, GenerationStop):
                await self._generation_stop(frame)
            elif isinstance(frame, Resume):
                await self._resume(frame)
            elif isinstance(frame, MessageRetry):
                await self._message_retry(frame)
            elif isinstance(frame, Ping):
                await self.send(text_data='{"type":"pong"}')
        except services.ChatInputError as exc:
            client_id = frame.client_id if isinstance(frame, MessageSend) else ""
            await self._error(exc.code, exc.message, client_id=client_id)

    async def _message_send(self, frame: MessageSend) -> None:
        result = await db_async(services.message_send)(
            conversation=self.conversation,
            author=self.scope["user"],
            text=frame.text,
            client_id=frame.client_id,
        )
        if not result.created:
            # A resend: tell this socket what is stored, start nothing.
            for message in (result.user_message, result.assistant_message):
                await self.send(
                    text_data=frame_json(
                        {"type": "message.created", "message": message_payload(message)}
                    )
                )
            return
        await self._broadcast_created(result.user_message, result.assistant_message)
        if result.user_message.position == 0:
            # The first message may have titled the conversation: update every sidebar.
            await self._broadcast(
                {
                    "type": "conversation.updated",
                    "conversation_id": str(self.conversation.pk),
                    "title": result.conversation_title,
                }
            )
        generation_start(result.job)

    async def _message_retry(self, frame: MessageRetry) -> None:
        removed_id, reply, job = await db_async(services.message_retry)(
            conversation=self.conversation, message_id=frame.message_id
        )
        await self._broadcast({"type": "message.deleted", "message_id": str(removed_id)})
        await self._broadcast_created(reply)
        generation_start(job)

    async def _generation_stop(self, frame: GenerationStop) -> None:
        requested = await db_async(services.generation_stop_request)(
            conversation=self.conversation, message_id=frame.message_id
        )
        if requested:
            if not generation_stop_local(frame.message_id):
                # The reply runs in another web process: relay the stop to the
                # conversation's sockets, one of which may live there.
                await self.channel_layer.group_send(
                    self.group, {"type": "chat.stop", "message_id": str(frame.message_id)}
                )

    async def _resume(self, frame: Resume) -> None:
        async with self._release_lock:
            if self._held is None:
                self._held = []
            await self._resume_answer(frame)
            # What was relayed meanwhile goes after the answer; the cursor drops
            # what the answer covered.
            while self._held:
                await self._deliver(self._held.pop(0))
            self._held = None

    async def _resume_answer(self, frame: Resume) -> None:
        message = await db_async(selectors.message_in_conversation)(
            conversation=self.conversation, message_id=str(frame.message_id)
        )
        if message is None:
            await self._error("not_found", "No such message in this conversation.")
            return
        message_id = str(message.id)
        read = await replay_buffer().read_after(message_id, frame.last_seq)
        if read is not None:
            if read.snapshot_text is not None:
                await self._send_snapshot(
                    message, read.seq, read.snapshot_text, read.snapshot_thinking or ""
                )
            for stored in read.frames:
                await self.send(text_data=stored)
            self.cursors[message_id] = max(read.seq, self.cursors.get(message_id, 0))
            return
        # No live record here: the database is the truth (final, or the last checkpoint).
        if message.is_active:
            if frame.last_seq < message.seq:
                await self._send_snapshot(message, message.seq, message.text, message.thinking)
            self.cursors[message_id] = max(message.seq, frame.last_seq)
            return
        await self.send(text_data=frame_json(await _completed_from_row(message)))
        self.cursors[message_id] = message.seq

    async def chat_frame(self, event: dict) -> None:
        """A frame published to the group: deliver it once, in order."""
        message_id, seq = event["message_id"], event["seq"]
        cursor = self.cursors.get(message_id)
        if cursor is not None and seq <= cursor:
            return
        if cursor is not None and seq > cursor + 1:
            # The layer dropped frames: fill the gap from the record first.
            read = await replay_buffer().read_after(message_id, cursor)
            if read is not None and read.snapshot_text is None:
                for stored in read.frames:
                    await self.send(text_data=stored)
                self.cursors[message_id] = read.seq
                return
        self.cursors[message_id] = seq
        await self.send(text_data=event["frame"])

    async def chat_broadcast(self, event: dict) -> None:
        await self.send(text_data=event["frame"])

    async def _broadcast_created(self, *messages: Message) -> None:
        for message in messages:
            await self._broadcast({"type": "message.created", "message": message_payload(message)})

    async def _broadcast(self, frame: dict) -> None:
        await group_publish(self.group, {"type": "chat.broadcast", "frame": frame_json(frame)})

    async def _send_snapshot(self, message: Message, seq: int, text: str, thinking: str) -> None:
        snapshot: MessageSnapshot = {
            "type": "message.snapshot",
            "message_id": str(message.id),
            "seq": seq,
            "status": message.status,
            "text": text,
            "thinking": thinking,
        }
        await self.send(text_data=frame_json(snapshot))

    async def _error(self, code: str, message: str, *, client_id: str = "") -> None:
        frame: ErrorFrame = {"type": "error", "code": code, "message": message}
        if client_id:
            frame["client_id"] = client_id
        await self.send(text_data=frame_json(frame))


@db_async
def _completed_from_row(message: Message) -> MessageCompleted:
    """The end of a reply, rebuilt from the stored row and its ledger entry."""
    call = message.api_calls.order_by("-created_at").first()
    frame: MessageCompleted = {
        "type": "message.completed",
        "message_id": str(message.id),
        "seq": message.seq,
        "status": message.status,
        "stop_reason": message.stop_reason,
        "text": message.text,
        "thinking": message.thinking,
        "html": message.html,
        "usage": usage_payload(call) if call else None,
        "cost_usd": str(call.cost_usd) if call else None,
    }
    if message.error_code:
        frame["error"] = {
            "code": message.error_code,
            "message": message.error_message,
            "retryable": True,
        }
    return frame
