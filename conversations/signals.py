"""Row changes that open sockets must hear of however they were made (the
admin included): a deleted conversation closes its sockets, and one given to
someone else has its sockets check their access (and close)."""

from __future__ import annotations

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from accounts.models import Membership, Team
from conversations.models import Attachment, Conversation, ConversationShare
from conversations.streaming.frames import conversation_deleted, conversation_group
from conversations.streaming.publisher import broadcast_after_commit
from infra.channel_layers import group_send_after_commit

# The close code after `conversation.deleted`: the client does not reconnect.
CLOSE_CONVERSATION_DELETED = 4404


@receiver(post_delete, sender=Conversation)
def _sockets_close_on_delete(sender, instance: Conversation, **kwargs) -> None:
    broadcast_after_commit(
        instance.pk, conversation_deleted(instance.pk), close=CLOSE_CONVERSATION_DELETED
    )


# What the app itself saves on a conversation: nothing that changes who may see it.
_ACCESS_NEUTRAL_FIELDS = {
    "title",
    "updated_at",
    "model",
    "system_prompt",
    "thinking_effort",
    "pinned_at",
    "preset",
    "preset_name",
    "active_leaf",
}


@receiver(post_save, sender=Conversation)
def _sockets_check_on_owner_change(
    sender, instance: Conversation, created, update_fields=None, **kwargs
):
    if created or (update_fields is not None and set(update_fields) <= _ACCESS_NEUTRAL_FIELDS):
        return
    group_send_after_commit(conversation_group(instance.pk), {"type": "access.check"})


@receiver(post_delete, sender=Attachment)
def _attachment_files_delete(sender, instance: Attachment, **kwargs) -> None:
    """A deleted attachment's files go once the delete commits (a conversation's
    delete cascades here too); a rolled-back delete keeps them."""
    from conversations.attachments.pipeline import attachment_file_names, attachment_files_delete

    names, file_id = attachment_file_names(instance), instance.claude_file_id
    transaction.on_commit(
        lambda: attachment_files_delete(names, claude_file_id=file_id), robust=True
    )


@receiver(post_delete, sender=ConversationShare)
def _sockets_check_on_unshare(sender, instance: ConversationShare, **kwargs) -> None:
    """A share ended (unshared, the conversation or the teammate deleted): the
    sockets of the conversation ask again, and those it let in close."""
    group_send_after_commit(conversation_group(instance.conversation_id), {"type": "access.check"})


@receiver(post_delete, sender=Membership)
def _sockets_check_on_owner_leaving(sender, instance: Membership, **kwargs) -> None:
    """Someone left a team: what they shared in it stops being shared (the
    selectors require the owner's membership), so the sockets of their shared
    conversations there ask again. Their own sockets are asked by
    `accounts.signals`."""
    shared = (
        Conversation.objects.filter(
            owner_id=instance.user_id, team_id=instance.team_id, shares__isnull=False
        )
        .values_list("id", flat=True)
        .distinct()
    )
    for conversation_id in shared:
        group_send_after_commit(conversation_group(conversation_id), {"type": "access.check"})


@receiver(post_save, sender=Team)
def _links_end_when_turned_off(sender, instance: Team, **kwargs) -> None:
    """A team owner turned links off: every link share of the team's conversations
    ends (and their sockets let in by a link close, by the delete signal above)."""
    if not instance.share_links_enabled:
        shares = ConversationShare.objects.filter(
            conversation__team=instance, kind=ConversationShare.Kind.LINK
        )
        if shares.exists():
            shares.delete()
