"""Row changes that open sockets must hear of however they were made (the
admin included): a deleted conversation closes its sockets."""

from __future__ import annotations

from django.db.models.signals import post_delete
from django.dispatch import receiver

from conversations.models import Conversation
from conversations.streaming.frames import conversation_deleted
from conversations.streaming.publisher import broadcast_after_commit

# The close code after `conversation.deleted`: the client does not reconnect.
CLOSE_CONVERSATION_DELETED = 4404


@receiver(post_delete, sender=Conversation)
def _sockets_close_on_delete(sender, instance: Conversation, **kwargs) -> None:
    broadcast_after_commit(
        instance.pk, conversation_deleted(instance.pk), close=CLOSE_CONVERSATION_DELETED
    )
