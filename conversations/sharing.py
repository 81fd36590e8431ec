"""Sharing a conversation inside its team, read-only, and taking a copy of one.

Who may see what is decided in one place, `selectors.conversation_for_user`
(and `socket_access` for open sockets); these only write the shares. Ending a
share closes the sockets that relied on it, on every process, through the
share's delete signal (`conversations.signals`).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from django.core.files.base import ContentFile
from django.db import transaction
from django.utils.translation import gettext

from accounts.audit import audit_record
from accounts.models import AuditEvent, Membership, Team, User
from conversations import tree
from conversations.attachments.pipeline import attachment_storage
from conversations.models import Attachment, Conversation, ConversationShare, Message


class ShareRefused(Exception):
    """A share that cannot be made; `message` is for the person."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


@dataclass(frozen=True)
class ShareState:
    """What a conversation is shared with, as its share form shows it."""

    team: bool
    user_ids: frozenset[int]
    link: bool

    @property
    def shared(self) -> bool:
        return self.team or self.link or bool(self.user_ids)


def share_state(*, conversation: Conversation) -> ShareState:
    shares = list(conversation.shares.all())
    return ShareState(
        team=any(s.kind == ConversationShare.Kind.TEAM for s in shares),
        user_ids=frozenset(s.user_id for s in shares if s.kind == ConversationShare.Kind.USER),
        link=any(s.kind == ConversationShare.Kind.LINK for s in shares),
    )


@transaction.atomic
def conversation_share_set(
    *,
    conversation: Conversation,
    actor: User,
    team: bool = False,
    user_ids: Collection[int] = (),
    link: bool = False,
    ip: str | None = None,
) -> ShareState:
    """Share the conversation read-only with the whole team, with these teammates,
    and/or with any member who has the link; what is not asked for any more
    stops (all False and empty: stop sharing).

    Only the owner shares (the caller looked the conversation up `to_write`),
    only within the conversation's team, only with its current members; links
    only while the team's owner allows them. Each share and each unshare is in
    the audit log."""
    if conversation.owner_id != actor.pk:
        raise ShareRefused(gettext("Only the conversation's owner can share it."))
    wanted_users = {int(pk) for pk in user_ids} - {actor.pk}
    if conversation.team_id is None:
        if team or link or wanted_users:
            raise ShareRefused(
                gettext("This conversation belongs to no team, so it cannot be shared.")
            )
        return ShareState(team=False, user_ids=frozenset(), link=False)
    # Read afresh (the caller's copy may be stale), and locked: a link is not made
    # while a team owner turns links off.
    team_row = Team.objects.select_for_update().get(pk=conversation.team_id)
    members = set(
        Membership.objects.filter(team_id=conversation.team_id).values_list("user_id", flat=True)
    )
    if actor.pk not in members:
        raise ShareRefused(gettext("You are no longer a member of this conversation's team."))
    outsiders = wanted_users - members
    if outsiders:
        raise ShareRefused(gettext("A conversation can be shared only with members of its team."))
    if link and not team_row.share_links_enabled:
        raise ShareRefused(
            gettext("Links are turned off for %(team)s; a team owner can allow them.")
            % {"team": team_row.name}
        )
    before = share_state(conversation=conversation)
    # Locked rows: two tabs saving at once must not both create the same share.
    list(ConversationShare.objects.select_for_update().filter(conversation=conversation))
    added: list[str] = []
    removed: list[str] = []
    for kind, want, have in (
        (ConversationShare.Kind.TEAM, team, before.team),
        (ConversationShare.Kind.LINK, link, before.link),
    ):
        if want and not have:
            ConversationShare.objects.create(conversation=conversation, kind=kind, created_by=actor)
            added.append(kind)
        elif have and not want:
            ConversationShare.objects.filter(conversation=conversation, kind=kind).delete()
            removed.append(kind)
    for pk in sorted(wanted_users - before.user_ids):
        ConversationShare.objects.create(
            conversation=conversation,
            kind=ConversationShare.Kind.USER,
            user_id=pk,
            created_by=actor,
        )
        added.append(f"user:{pk}")
    gone_users = before.user_ids - wanted_users
    if gone_users:
        ConversationShare.objects.filter(
            conversation=conversation, kind=ConversationShare.Kind.USER, user_id__in=gone_users
        ).delete()
        removed.extend(f"user:{pk}" for pk in sorted(gone_users))
    target = f"conversation:{conversation.pk}"
    if added:
        audit_record(
            action=AuditEvent.Action.SHARED,
            actor=actor,
            team=team_row,
            target=target,
            ip=ip,
            details={"with": added, "title": conversation.title},
        )
    if removed:
        audit_record(
            action=AuditEvent.Action.UNSHARED,
            actor=actor,
            team=team_row,
            target=target,
            ip=ip,
            details={"with": removed, "title": conversation.title},
        )
    return share_state(conversation=conversation)


# What a copy takes of each message: the history as it reads, not its ledger.
_COPIED_FIELDS = (
    "role",
    "status",
    "content",
    "text",
    "thinking",
    "html",
    "model",
    "stop_reason",
    "stop_details",
    "summary",
    "error_code",
    "error_message",
)


@transaction.atomic
def conversation_continue(*, conversation: Conversation, user: User) -> Conversation:
    """"Continue in my own chat": a copy of the conversation's history (the branch on
    show) as `user`'s own conversation, in the same team (never outside it),
    billed to them from here on.

    `conversation` was authorised by the caller (`conversation_for_user`). A reply
    still streaming is not copied (its question is: the copy can ask again); the
    files sent with the copied messages are copied too, so deleting either
    conversation leaves the other's files."""
    copy = Conversation.objects.create(
        owner=user,
        team_id=conversation.team_id,
        title=(conversation.title or gettext("New conversation"))[:200],
        model=conversation.model,
        system_prompt=conversation.system_prompt,
        thinking_effort=conversation.thinking_effort,
        preset_id=conversation.preset_id,
        preset_name=conversation.preset_name,
        copied_from=conversation,
    )
    branch = [
        m
        for m in tree.Tree.of(conversation.messages.all()).active_path(conversation.active_leaf_id)
        if m.status not in Message.ACTIVE_STATUSES
    ]
    copies: dict = {}
    parent = None
    for position, message in enumerate(branch):
        fields = {name: getattr(message, name) for name in _COPIED_FIELDS}
        parent = Message(conversation=copy, parent=parent, position=position, **fields)
        copies[message.id] = parent
    Message.objects.bulk_create(copies.values())
    if parent is not None:
        copy.active_leaf = parent
        copy.save(update_fields=["active_leaf", "updated_at"])
    files = Attachment.objects.filter(
        message_id__in=list(copies), status=Attachment.Status.READY
    ).order_by("created_at", "id")
    for attachment in files:
        _attachment_copy(
            attachment, conversation=copy, message=copies[attachment.message_id], user=user
        )
    return copy


def _attachment_copy(
    attachment: Attachment, *, conversation: Conversation, message: Message, user: User
) -> Attachment:
    storage = attachment_storage()
    names: dict[str, str] = {}
    for field in ("original_path", "prepared_path", "thumbnail_path"):
        old = getattr(attachment, field)
        if not old:
            continue
        if old not in names:
            folder, _, leaf = old.rpartition("/")
            with storage.open(old, "rb") as source:
                names[old] = storage.save(
                    f"{folder or 'copies'}/{leaf}", ContentFile(source.read())
                )
    copied = Attachment(
        conversation=conversation,
        uploaded_by=user,
        message=message,
        name=attachment.name,
        size=attachment.size,
        status=attachment.status,
        kind=attachment.kind,
        media_type=attachment.media_type,
        pages=attachment.pages,
        width=attachment.width,
        height=attachment.height,
        original_path=names.get(attachment.original_path, ""),
        prepared_path=names.get(attachment.prepared_path, ""),
        thumbnail_path=names.get(attachment.thumbnail_path, ""),
        prepared_size=attachment.prepared_size,
        tokens=attachment.tokens,
    )
    copied.save()
    return copied
