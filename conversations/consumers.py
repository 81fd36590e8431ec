"""The conversation websocket: parse, authorise, call a service, hand frames over.

Delivery (ordering, catch-up, resume) is `streaming/delivery.py`'s; replies run
in `streaming/runner.py`; see docs/websocket-protocol.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from accounts.mfa import session_mfa_missing
from accounts.sessions import socket_session, user_sockets_group
from conversations import selectors, services
from conversations.language import scope_language
from conversations.protocol import (
    BranchSwitch,
    FrameError,
    GenerationStop,
    MessageContinue,
    MessageEdit,
    MessageRegenerate,
    MessageRetry,
    MessageSend,
    Ping,
    Resume,
    frame_decode,
    frame_parse,
)
from conversations.signals import CLOSE_CONVERSATION_DELETED
from conversations.streaming import runner
from conversations.streaming.delivery import SocketDelivery
from conversations.streaming.frames import (
    conversation_group,
    error_frame,
    frame_json,
)
from conversations.streaming.publisher import socket_join, socket_leave
from infra.channel_layers import published_here
from infra.db_threads import db_async
from usage.budgets import budget_status

logger = logging.getLogger(__name__)

# The socket's access was revoked (signed out, deactivated, password changed, out
# of the conversation's team, no longer shared with them, or the conversation is
# someone else's): the client does not reconnect.
CLOSE_ACCESS_REVOKED = 4403
REVOKED_BECAUSE = {
    CLOSE_ACCESS_REVOKED: ("access_revoked", _("You were signed out. Sign in again.")),
    CLOSE_CONVERSATION_DELETED: ("conversation_deleted", _("This conversation was deleted.")),
}


# A teammate watching a conversation shared with them sent a frame that writes.
# What a watcher is told when the share ended (or they left the team, or signed out).
WATCH_ENDED = ("access_revoked", _("This conversation is no longer shared with you."))
READ_ONLY_ERROR = (
    "read_only",
    _("This conversation is shared with you read-only. Continue in your own chat to reply."),
)


class ConversationConsumer(AsyncWebsocketConsumer):
    delivery: SocketDelivery | None = None
    revoked = False
    read_only = False
    language = settings.LANGUAGE_CODE

    async def __call__(self, scope, receive, send) -> None:
        # The whole connection in the person's language, picked once at the
        # handshake: error frames, the budget note, frames rebuilt from rows for
        # a catch-up and those answering the group's events. (The database
        # threads of `db_async` run in a copy of this context, so the services'
        # messages too.)
        self.language = scope_language(scope)
        with translation.override(self.language):
            await super().__call__(scope, receive, send)

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is not None and await db_async(session_mfa_missing)(
            user=user, session=self.scope["session"]
        ):
            await self.close()  # two-factor still owed in this session: refused like a page
            return
        conversation = await db_async(selectors.conversation_for_user)(
            user=user, conversation_id=self.scope["url_route"]["kwargs"]["conversation_id"]
        )
        if conversation is None:
            await self.close()  # before accept: the handshake is refused (403)
            return
        self.conversation = conversation
        # A teammate it is shared with watches: frames reach them, writes do not.
        self.read_only = conversation.access != selectors.ACCESS_OWNER
        self.groups_joined = [conversation_group(conversation.id), user_sockets_group(user.pk)]
        self.access = {
            **socket_session(self.scope),
            "conversation_id": conversation.id,
            "team_id": conversation.team_id,
            "owner_id": conversation.owner_id,
        }
        # Joined before any state is read, so nothing published after is missed.
        self.delivery = SocketDelivery(
            conversation_id=conversation.id,
            send=lambda text: self.send(text_data=text),
            close=lambda code: self.close(code),
            read_only=self.read_only,
        )
        # Frames of this process reach it directly from now on (held until the
        # client's first frame), those of others through the layer's groups.
        socket_join(self.groups_joined[0], self.delivery)
        try:
            for group in self.groups_joined:
                await self.channel_layer.group_add(group, self.channel_name)
            await self.accept()
            # A person with a budget sees where they stand as soon as the chat opens
            # (a watcher sends nothing, so has none here).
            if not self.read_only:
                budget = await db_async(budget_status)(
                    user_id=user.pk, team_id=conversation.team_id
                )
                if budget.level != "none":
                    await self.send(text_data=frame_json(budget.as_frame()))
        except BaseException:
            await self.disconnect(1011)
            raise

    async def dispatch(self, message: dict) -> None:
        # Not Channels' dispatch: it hops to asgiref's one shared thread before every
        # message to close that thread's stale connections, and this consumer's
        # database work runs in `db_async`'s threads, which close their own.
        kind = message["type"]
        if kind in ("chat.frame", "chat.broadcast"):
            if self.delivery is not None and not published_here(message):
                await self.delivery.relay(message)  # else it came directly
        elif kind == "chat.stop":
            runner.reply_stop_local(message["message_id"])
        elif kind == "access.check":
            ended_here = message.get("ended_session") == self.access["session_key"]
            await (self._revoke(CLOSE_ACCESS_REVOKED) if ended_here else self._authorised())
        else:
            await getattr(self, get_handler_name(message))(message)

    async def disconnect(self, code: int) -> None:
        # Leaving never cancels a reply: it goes on and is saved.
        if self.delivery is not None:
            await self.delivery.close()
            socket_leave(self.groups_joined[0], self.delivery)
            for group in self.groups_joined:
                await self.channel_layer.group_discard(group, self.channel_name)
            self.delivery = None

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            await self._receive_frame(text_data)
        except FrameError as exc:
            await self._error(exc.code, exc.message)
        except services.ChatInputError as exc:
            await self._error(exc.code, exc.message, client_id=getattr(exc, "client_id", ""))
            if isinstance(exc, services.ConversationGone):  # deleted since the check
                await self._revoke(CLOSE_CONVERSATION_DELETED, say=False)
        except Exception:  # the database or Redis failed: say so, keep the socket
            logger.exception("A client frame failed")
            await self._error(
                "server_error", gettext("Something went wrong on our side. Try again.")
            )
        finally:
            if self.delivery is not None:
                await self.delivery.release()

    async def _receive_frame(self, text_data: str | None) -> None:
        # A frame far larger than any valid message is refused before parsing.
        if text_data is None or len(text_data) > settings.CHAT_MAX_MESSAGE_CHARS * 2 + 1024:
            raise FrameError("frame_too_large", gettext("That frame is too large or not text."))
        frame = frame_parse(frame_decode(text_data))
        if self.revoked:
            return  # closing: nothing more is answered
        if isinstance(frame, Ping):
            await self.send(text_data='{"type":"pong"}')
            return
        if isinstance(frame, MessageSend):
            await self._message_send(frame)
        elif isinstance(frame, MessageEdit):
            await self._message_send(frame, edit=True)
        elif isinstance(frame, MessageRetry | MessageContinue | MessageRegenerate):
            service = {
                MessageRetry: services.message_retry,
                MessageContinue: services.message_continue,
                MessageRegenerate: services.message_regenerate,
            }[type(frame)]
            started = await self._authorised(
                service, conversation=self.conversation, message_id=frame.message_id
            )
            if started is not None:
                runner.reply_start(started[-1])  # the service has broadcast what changed
        elif isinstance(frame, BranchSwitch):
            await self._authorised(
                services.branch_switch, conversation=self.conversation, message_id=frame.message_id
            )
        elif isinstance(frame, GenerationStop):
            if await self._authorised(writes=True) is not None:
                await runner.reply_stop(conversation=self.conversation, message_id=frame.message_id)
        elif await self._authorised() is None:
            return
        elif isinstance(frame, Resume):
            if not await self.delivery.resume(str(frame.message_id), frame.last_seq):
                await self._error("not_found", gettext("No such message in this conversation."))

    async def _message_send(self, frame: MessageSend | MessageEdit, *, edit: bool = False) -> None:
        if edit:
            call = {"service": services.message_edit, "message_id": frame.message_id}
        else:
            call = {"service": services.message_send, "attachment_ids": frame.attachments}
        try:
            result = await self._authorised(
                conversation=self.conversation,
                author=self.scope["user"],
                text=frame.text,
                client_id=frame.client_id,
                **call,
            )
        except services.ChatInputError as exc:
            exc.client_id = frame.client_id
            raise
        if result is None:
            return
        if result.created:
            runner.reply_start(result.job)  # the service has broadcast both messages
        else:
            await self.delivery.resend(result.user_message, result.assistant_message)

    async def _authorised(
        self, service: Callable[..., Any] | None = None, *, writes: bool = False, **kwargs: Any
    ) -> Any:
        """Ask again whether this socket may see its conversation, and if so call
        `service(**kwargs)` in the same trip to the database threads. None, and the
        socket closed, if it may not; None and an error frame if it may only watch
        and this writes (a `service` always does, or `writes`); else the service's
        result (True without one)."""
        verdict, result = await _checked_call(self.access, service, kwargs)
        if verdict == "read_only":
            if service is None and not writes:
                return True
            await self._error(*READ_ONLY_ERROR, client_id=kwargs.get("client_id", ""))
            return None
        if verdict != "ok":
            await self._revoke(
                CLOSE_CONVERSATION_DELETED if verdict == "gone" else CLOSE_ACCESS_REVOKED
            )
            return None
        return True if service is None else result

    async def _revoke(self, code: int, *, say: bool = True) -> None:
        """Say why, send nothing more, close: the client does not reconnect."""
        if self.revoked:
            return
        self.revoked = True
        if say:
            ended = self.read_only and code == CLOSE_ACCESS_REVOKED
            await self._error(*(WATCH_ENDED if ended else REVOKED_BECAUSE[code]))
        if self.delivery is not None:
            await self.delivery.close()
        await self.close(code)

    async def _error(self, code: str, message: str, *, client_id: str = "") -> None:
        await self.send(text_data=frame_json(error_frame(code, message, client_id=client_id)))


@db_async
def _checked_call(access: dict, service: Callable[..., Any] | None, kwargs: dict) -> tuple:
    verdict = selectors.socket_access(**access)
    if verdict != "ok" or service is None:
        return verdict, None
    return verdict, service(**kwargs)
