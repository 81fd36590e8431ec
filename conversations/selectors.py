"""Reads shared by views, consumers and the admin.

Every lookup of a conversation goes through `conversation_for_user` (and every
list through `conversations_visible_to`: the sidebar, exports, search in
`conversations.search`), the one place that decides who may
see it:

- a conversation of no team: its owner;
- a conversation of a team: its owner while they are a member of that team,
  and, read-only, the teammates it is shared with (`ConversationShare`: the
  whole team, chosen teammates, or any member with the link) while both they
  and the owner are members of it. Never anyone outside the team, staff
  included (they have the admin).

Only the owner writes (`conversation_for_user(..., to_write=True)`). A socket
asks the same question on every frame it sends (`socket_access`).
"""

from __future__ import annotations

import uuid

from django.db.models import Exists, F, OuterRef, Prefetch, Q, QuerySet, prefetch_related_objects

from accounts.models import Membership, Team, User
from accounts.sessions import session_row_read, session_stands
from conversations import tree
from conversations.models import Attachment, Conversation, ConversationShare, Message
from infra.rows import rows_first_values
from usage.models import ApiCall

# What `conversation_for_user` notes on the conversation it returns.
ACCESS_OWNER = "owner"
ACCESS_VIEWER = "viewer"


def _member(user_field: str) -> Exists:
    return Exists(
        Membership.objects.filter(user_id=OuterRef(user_field), team_id=OuterRef("team_id"))
    )


def conversation_for_user(
    *, user: User, conversation_id: uuid.UUID | str, to_write: bool = False
) -> Conversation | None:
    """The conversation if `user` may see it (with `to_write`: may write to it, which
    only its owner may), else None (callers answer 404, as for an id that does not
    exist). The one check of who may see a conversation: pages, sockets, files,
    search and exports all ask it. Sets `conversation.access` to "owner" or
    "viewer" (read-only: shared with them)."""
    if not user.is_authenticated:
        return None
    try:
        conversation_uuid = uuid.UUID(str(conversation_id))
    except ValueError:
        return None
    found = (
        Conversation.objects.filter(id=conversation_uuid)
        .annotate(
            _viewer_member=Exists(
                Membership.objects.filter(user_id=user.pk, team_id=OuterRef("team_id"))
            ),
            _owner_member=_member("owner_id"),
            _shared=Exists(
                ConversationShare.objects.filter(conversation_id=OuterRef("id")).filter(
                    Q(user_id=user.pk) | Q(user__isnull=True)
                )
            ),
        )
        .first()
    )
    if found is None:
        return None
    access = _access(found, user_id=user.pk)
    if access is None or (to_write and access != ACCESS_OWNER):
        return None
    found.access = access
    return found


def _access(conversation: Conversation, *, user_id: int) -> str | None:
    if conversation.team_id is None:
        return ACCESS_OWNER if conversation.owner_id == user_id else None
    if not conversation._viewer_member:
        return None
    if conversation.owner_id == user_id:
        return ACCESS_OWNER
    if conversation._owner_member and conversation._shared:
        return ACCESS_VIEWER
    return None


def conversations_visible_to(*, user: User) -> QuerySet[Conversation]:
    """Every conversation `user` may see (as `conversation_for_user` decides, link
    shares included), for lists such as search. Unordered."""
    if not user.is_authenticated:
        return Conversation.objects.none()
    my_teams = Membership.objects.filter(user_id=user.pk).values("team_id")
    own = Q(owner_id=user.pk) & (Q(team__isnull=True) | Q(team_id__in=my_teams))
    shared = (
        Q(team_id__in=my_teams)
        & ~Q(owner_id=user.pk)
        & Exists(
            ConversationShare.objects.filter(conversation_id=OuterRef("id")).filter(
                Q(user_id=user.pk) | Q(user__isnull=True)
            )
        )
        & _member("owner_id")
    )
    return Conversation.objects.filter(own | shared)


def _started(current_id: uuid.UUID | None = None) -> Q | Exists:
    """A conversation something was sent in (a first message refused, or files
    attached and never sent, leave none), or the one open."""
    started = Exists(Message.objects.filter(conversation_id=OuterRef("pk")))
    if current_id is not None:
        started = started | Q(id=current_id)
    return started


def conversation_list_for_user(
    *,
    user: User,
    team: Team | None = None,
    limit: int = 100,
    current_id: uuid.UUID | None = None,
) -> QuerySet[Conversation]:
    """The sidebar: the user's own conversations in `team` (and those of no team),
    pinned ones first (the latest pinned first), then newest activity first. With
    no team given: those of no team only, plus all of a person who is in no team.
    A conversation nothing was sent in yet is left out, but for the one open."""
    mine = conversations_visible_to(user=user).filter(owner=user)
    if team is not None:
        mine = mine.filter(Q(team=team) | Q(team__isnull=True))
    else:
        mine = mine.filter(team__isnull=True)
    return (
        mine.filter(_started(current_id))
        .only("id", "title", "updated_at", "model", "pinned_at")
        .order_by(F("pinned_at").desc(nulls_last=True), "-updated_at")[:limit]
    )


def conversation_list_shared_with(
    *, user: User, team: Team | None, limit: int = 50
) -> list[Conversation]:
    """ "Shared with me" in the sidebar: conversations of `team` that teammates shared
    with the whole team or with `user`, newest first (link shares are unlisted)."""
    if team is None or not user.is_authenticated:
        return []
    listed = ConversationShare.objects.filter(conversation_id=OuterRef("id")).filter(
        Q(user_id=user.pk) | Q(kind=ConversationShare.Kind.TEAM)
    )
    viewer_member = Exists(Membership.objects.filter(user_id=user.pk, team_id=OuterRef("team_id")))
    return list(
        Conversation.objects.filter(team=team)
        .exclude(owner=user)
        .filter(Exists(listed), _member("owner_id"), viewer_member, _started())
        .select_related("owner")
        .only("id", "title", "updated_at", "owner__username", "owner__display_name")
        .order_by("-updated_at")[:limit]
    )


def conversation_shares(*, conversation: Conversation) -> list[ConversationShare]:
    """A conversation's shares, for its owner's share page."""
    return list(conversation.shares.select_related("user").order_by("kind", "id"))


def attachment_list_prefetch() -> Prefetch:
    """A message's files as `message.attachment_list`, in upload order (the order
    Claude gets them in): what `frames.message_payload` lists for a user message."""
    return Prefetch(
        "attachments",
        queryset=Attachment.objects.order_by("created_at", "id"),
        to_attr="attachment_list",
    )


def message_list_for_page(
    *, conversation: Conversation, from_position: int = 0
) -> list[Message]:
    """The branch on show (from `from_position` down), each message with its API
    calls (`calls`), its files and its versions (`version_index`, `version_count`,
    `version_ids`: its siblings, itself included, oldest first), in three queries."""
    calls = ApiCall.objects.only(
        "id",
        "message_id",
        "input_tokens",
        "output_tokens",
        "cache_write_5m_tokens",
        "cache_write_1h_tokens",
        "cache_read_tokens",
        "cost_usd",
        "model",
    )
    every = list(conversation.messages.order_by("position", "created_at"))
    branches = tree.Tree.of(every)
    path = [m for m in branches.active_path(conversation.active_leaf_id) if m.position >= from_position]
    prefetch_related_objects(
        path, Prefetch("api_calls", queryset=calls, to_attr="calls"), attachment_list_prefetch()
    )
    for message in path:
        message.version_index, message.version_count, message.version_ids = branches.version_of(
            message
        )
    return path


def conversation_tree(*, conversation: Conversation) -> tree.Tree:
    """Every message of the conversation, every branch, with its API calls."""
    calls = ApiCall.objects.only(
        "id",
        "message_id",
        "input_tokens",
        "output_tokens",
        "cache_write_5m_tokens",
        "cache_write_1h_tokens",
        "cache_read_tokens",
        "cost_usd",
        "model",
        "created_at",
    ).order_by("created_at")
    return tree.Tree.of(
        conversation.messages.order_by("position", "created_at").prefetch_related(
            Prefetch("api_calls", queryset=calls, to_attr="calls"), attachment_list_prefetch()
        )
    )


def message_in_conversation(*, conversation_id: uuid.UUID, message_id: str) -> Message | None:
    """A message of this (already authorised) conversation, or None."""
    try:
        message_uuid = uuid.UUID(str(message_id))
    except ValueError:
        return None
    return Message.objects.filter(id=message_uuid, conversation_id=conversation_id).first()


def message_with_prompt(*, conversation_id: uuid.UUID, message_id: str) -> list[Message]:
    """A message of the conversation and the one before it, in order, with their
    files (`attachment_list`); [] if none."""
    message = message_in_conversation(conversation_id=conversation_id, message_id=message_id)
    if message is None:
        return []
    if message.parent_id:
        earlier = Message.objects.filter(id=message.parent_id).first()
    else:  # a row stored by position only (conversations/tree.py)
        earlier = (
            Message.objects.filter(conversation_id=conversation_id, position=message.position - 1)
            .order_by("-created_at")
            .first()
        )
    pair = [earlier, message] if earlier is not None else [message]
    prefetch_related_objects(pair, attachment_list_prefetch())
    return pair


def message_last_call(*, message: Message) -> ApiCall | None:
    """The ledger row of a reply's call (the latest, should there be several)."""
    return ApiCall.objects.filter(message_id=message.id).order_by("-created_at").first()


def socket_access(
    *,
    user_id: int,
    session_key: str | None,
    session_auth_hash: str,
    conversation_id: uuid.UUID,
    team_id: int | None = None,
    owner_id: int | None = None,
) -> str:
    """Whether an open socket may still see its conversation: "ok" (its owner),
    "read_only" (shared with them: they may watch, not write), "revoked" (the
    session ended or expired, the account was deactivated or its password changed,
    they or the owner left the team, the share ended, or the conversation is
    someone else's or another team's now) or "gone" (the conversation was deleted).

    `team_id` and `owner_id`: the conversation's team and owner when the socket
    opened (`conversation_for_user` let it in); a change of either revokes.
    Asked on every frame a client sends but `ping`, and when an account, a
    membership or a share changes: one plain statement, the same rule as
    `conversation_for_user`."""
    owner_id = owner_id if owner_id is not None else user_id
    watcher = owner_id != user_id
    # One plain statement (`infra.rows`): it runs on every send. The owner's socket
    # (the hot path) reads no share; one of no team reads no membership either.
    reads = [
        (Conversation, "owner", {"id": conversation_id}),
        (Conversation, "team", {"id": conversation_id}),
        (User, "is_active", {"id": user_id}),
        (User, "password", {"id": user_id}),
        session_row_read(session_key),
    ]
    if team_id is not None:
        reads.append((Membership, "id", {"user_id": user_id, "team_id": team_id}))
        if watcher:
            reads += [
                (Membership, "id", {"user_id": owner_id, "team_id": team_id}),
                (ConversationShare, "id", {"conversation_id": conversation_id, "user_id": None}),
                (ConversationShare, "id", {"conversation_id": conversation_id, "user_id": user_id}),
            ]
    values = rows_first_values(*reads)
    current_owner, current_team, active, password, session_alive = values[:5]
    member, owner_member, shared_all, shared_me = (values[5:] + [None] * 4)[:4]
    if current_owner is None:
        return "gone"
    if not active or current_team != team_id or current_owner != owner_id:
        return "revoked"
    if team_id is not None and member is None:
        return "revoked"
    if not watcher:
        verdict = "ok"
    elif team_id is not None and owner_member is not None and (shared_all or shared_me):
        verdict = "read_only"
    else:
        return "revoked"
    if not session_stands(
        user_id=user_id,
        password_hash=password,
        session_key=session_key,
        session_auth_hash=session_auth_hash,
        session_row_alive=session_alive is not None,
    ):
        return "revoked"
    return verdict


def attachment_for_user(*, user: User, attachment_id: uuid.UUID | str) -> Attachment | None:
    """The attachment if `user` may see it, else None (callers answer 404).

    Whoever may see its conversation may see it (`conversation_for_user` decides,
    so a change to who may see a conversation applies to its files too), and
    nobody else: not its uploader once the conversation is not theirs to see."""
    if not user.is_authenticated:
        return None
    try:
        attachment_uuid = uuid.UUID(str(attachment_id))
    except ValueError:
        return None
    attachment = Attachment.objects.filter(id=attachment_uuid).first()
    if attachment is None:
        return None
    conversation = conversation_for_user(user=user, conversation_id=attachment.conversation_id)
    if conversation is None:
        return None
    attachment.conversation = conversation
    return attachment
