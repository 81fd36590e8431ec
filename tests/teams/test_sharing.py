"""Sharing a conversation inside its team: read-only, live, never outside the team."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async
from django.core.files.base import ContentFile
from django.db import connection
from django.test import Client

from accounts.models import AuditEvent, Membership
from conversations import selectors
from conversations.attachments.pipeline import attachment_storage
from conversations.models import Attachment, Conversation, ConversationShare, Message
from conversations.sharing import ShareRefused, conversation_share_set
from tests.conftest import assistant_id, completed, receive_frames, streamed_text
from tests.conversations.sockets import SignedIn, expect_close, pong, send_frame
from tests.teams.conftest import member_remove


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _conversation_with_history(owner, text="What is a websocket?"):
    from conversations.services import conversation_create

    conversation = conversation_create(owner=owner, model="claude-sonnet-5-5")
    Message.objects.create(
        conversation=conversation,
        position=0,
        role="user",
        text=text,
        content=[{"type": "text", "text": text}],
    )
    Message.objects.create(
        conversation=conversation,
        position=1,
        role="assistant",
        text="A two-way pipe.",
        html="<p>A two-way pipe.</p>",
    )
    conversation.title = "Websockets"
    conversation.save()
    return conversation


@pytest.mark.django_db
class TestPages:
    def test_shared_with_the_team_every_teammate_reads_it_and_nobody_else(self, team_world):
        w = team_world
        conversation = _conversation_with_history(w.bob)
        assert _client(w.dave).get(f"/c/{conversation.id}/").status_code == 404
        response = _client(w.bob).post(f"/c/{conversation.id}/share/", {"team": "on"})
        assert response.status_code == 302
        page = _client(w.dave).get(f"/c/{conversation.id}/")
        assert page.status_code == 200
        text = page.content.decode()
        assert "Shared by Bob Baker · read-only" in text and "Continue in my own chat" in text
        assert 'id="composer-input"' not in text and 'data-action="rename"' not in text
        assert "Websockets" in _client(w.frank).get("/").content.decode()  # under "Shared with me"
        for outsider in (w.carol, w.admin):
            assert _client(outsider).get(f"/c/{conversation.id}/").status_code == 404
        event = AuditEvent.objects.get(action="shared")
        assert event.actor == w.bob and event.details["with"] == ["team"]

    def test_shared_with_chosen_teammates_only_they_read_it(self, team_world):
        w = team_world
        conversation = _conversation_with_history(w.bob)
        _client(w.bob).post(f"/c/{conversation.id}/share/", {"users": [w.dave.pk]})
        assert _client(w.dave).get(f"/c/{conversation.id}/").status_code == 200
        assert _client(w.frank).get(f"/c/{conversation.id}/").status_code == 404
        assert "Websockets" in _client(w.dave).get("/").content.decode()
        assert "Websockets" not in _client(w.frank).get("/").content.decode()

    def test_never_outside_the_team(self, team_world):
        w = team_world
        conversation = _conversation_with_history(w.bob)
        response = _client(w.bob).post(f"/c/{conversation.id}/share/", {"users": [w.carol.pk]})
        assert response.status_code == 400
        assert b"only with members of its team" in response.content
        assert not ConversationShare.objects.exists()

    def test_a_viewer_cannot_write(self, team_world):
        w = team_world
        conversation = _conversation_with_history(w.bob)
        conversation_share_set(conversation=conversation, actor=w.bob, team=True)
        dave = _client(w.dave)
        assert dave.post(f"/c/{conversation.id}/rename/", {"title": "Mine now"}).status_code == 404
        assert dave.post(f"/c/{conversation.id}/delete/").status_code == 404
        assert dave.get(f"/c/{conversation.id}/share/").status_code == 404
        assert dave.post(f"/c/{conversation.id}/estimate/", {"text": "hi"}).status_code == 404
        assert dave.post(f"/c/{conversation.id}/attachments/").status_code == 404
        conversation.refresh_from_db()
        assert conversation.title == "Websockets"
        with pytest.raises(ShareRefused):
            conversation_share_set(conversation=conversation, actor=w.dave, team=False)

    def test_stop_sharing_ends_access_at_once_and_is_audited(self, team_world):
        w = team_world
        conversation = _conversation_with_history(w.bob)
        conversation_share_set(
            conversation=conversation, actor=w.bob, team=True, user_ids=[w.dave.pk]
        )
        _client(w.bob).post(f"/c/{conversation.id}/share/", {"stop": "1", "team": "on"})
        assert not ConversationShare.objects.exists()
        assert _client(w.dave).get(f"/c/{conversation.id}/").status_code == 404
        assert AuditEvent.objects.get(action="unshared").details["with"] == [
            "team",
            f"user:{w.dave.pk}",
        ]

    def test_a_share_ends_when_the_owner_leaves_the_team(self, team_world):
        w = team_world
        conversation = _conversation_with_history(w.bob)
        conversation_share_set(conversation=conversation, actor=w.bob, team=True)
        member_remove(w.team, w.alice, w.bob)
        assert _client(w.dave).get(f"/c/{conversation.id}/").status_code == 404

    def test_links_need_the_team_owner_and_end_when_turned_off(self, team_world):
        w = team_world
        conversation = _conversation_with_history(w.bob)
        with pytest.raises(ShareRefused):
            conversation_share_set(conversation=conversation, actor=w.bob, link=True)
        assert (
            _client(w.erin).post("/teams/acme/settings/", {"share_links_enabled": "on"}).status_code
            == 403
        )
        _client(w.alice).post("/teams/acme/settings/", {"share_links_enabled": "on"})
        conversation_share_set(conversation=conversation, actor=w.bob, link=True)
        # Any signed-in member with the address; unlisted; nobody outside; nobody signed out.
        assert _client(w.frank).get(f"/c/{conversation.id}/").status_code == 200
        assert "Websockets" not in _client(w.frank).get("/").content.decode()
        assert _client(w.carol).get(f"/c/{conversation.id}/").status_code == 404
        assert Client().get(f"/c/{conversation.id}/").status_code == 302
        _client(w.alice).post("/teams/acme/settings/", {})
        assert not ConversationShare.objects.exists()
        assert _client(w.frank).get(f"/c/{conversation.id}/").status_code == 404
        assert AuditEvent.objects.filter(action="settings_changed").count() == 2

    def test_continue_in_my_own_chat_copies_the_history_billed_to_me(
        self, team_world, settings, tmp_path
    ):
        settings.STORAGES = {
            **settings.STORAGES,
            "attachments": {
                "BACKEND": "django.core.files.storage.FileSystemStorage",
                "OPTIONS": {"location": str(tmp_path), "base_url": None},
            },
        }
        w = team_world
        conversation = _conversation_with_history(w.bob)
        first = conversation.messages.get(position=0)
        name = attachment_storage().save("prepared/notes.txt", ContentFile(b"the notes"))
        Attachment.objects.create(
            conversation=conversation,
            uploaded_by=w.bob,
            message=first,
            name="notes.txt",
            status="ready",
            kind="text",
            media_type="text/plain",
            original_path=name,
            prepared_path=name,
        )
        conversation_share_set(conversation=conversation, actor=w.bob, team=True)
        response = _client(w.dave).post(f"/c/{conversation.id}/continue/")
        copy = Conversation.objects.get(owner=w.dave)
        assert response["Location"] == f"/c/{copy.id}/"
        assert (
            copy.team == w.team and copy.copied_from == conversation and copy.title == "Websockets"
        )
        assert [(m.role, m.text) for m in copy.messages.order_by("position")] == [
            ("user", "What is a websocket?"),
            ("assistant", "A two-way pipe."),
        ]
        copied_file = Attachment.objects.get(conversation=copy)
        assert copied_file.prepared_path != name
        assert attachment_storage().open(copied_file.prepared_path).read() == b"the notes"
        # It is dave's own: he writes to it, bob does not see it.
        assert (
            _client(w.dave).get(f"/c/{copy.id}/").content.decode().count('id="composer-input"') == 1
        )
        assert _client(w.bob).get(f"/c/{copy.id}/").status_code == 404
        # Deleting the original leaves the copy and its file.
        conversation.delete()
        assert attachment_storage().exists(copied_file.prepared_path)

    def test_the_files_of_a_shared_conversation_follow_who_may_see_it(
        self, team_world, settings, tmp_path
    ):
        settings.STORAGES = {
            **settings.STORAGES,
            "attachments": {
                "BACKEND": "django.core.files.storage.FileSystemStorage",
                "OPTIONS": {"location": str(tmp_path), "base_url": None},
            },
        }
        w = team_world
        conversation = _conversation_with_history(w.bob)
        name = attachment_storage().save("prepared/a.txt", ContentFile(b"secret"))
        attachment = Attachment.objects.create(
            conversation=conversation,
            uploaded_by=w.bob,
            message=conversation.messages.first(),
            name="a.txt",
            status="ready",
            kind="text",
            media_type="text/plain",
            prepared_path=name,
        )
        url = f"/attachments/{attachment.id}/file"
        assert _client(w.dave).get(url).status_code == 404
        conversation_share_set(conversation=conversation, actor=w.bob, user_ids=[w.dave.pk])
        response = _client(w.dave).get(url)
        assert response.status_code == 200 and b"".join(response.streaming_content) == b"secret"
        assert _client(w.frank).get(url).status_code == 404
        assert _client(w.carol).get(url).status_code == 404

    def test_one_rule_for_pages_and_lists(self, team_world):
        """`conversations_visible_to` (lists: search, exports) agrees with
        `conversation_for_user` for everyone."""
        w = team_world
        shared = _conversation_with_history(w.bob)
        private = _conversation_with_history(w.bob)
        conversation_share_set(conversation=shared, actor=w.bob, user_ids=[w.dave.pk])
        Membership.objects.filter(user=w.gina).delete()
        for person in (w.alice, w.bob, w.carol, w.dave, w.erin, w.frank, w.gina, w.admin):
            visible = set(
                selectors.conversations_visible_to(user=person).values_list("id", flat=True)
            )
            for conversation in (shared, private):
                one = selectors.conversation_for_user(user=person, conversation_id=conversation.id)
                assert (conversation.id in visible) == (one is not None), (person, conversation)


# --- Sockets ---------------------------------------------------------------------------


@pytest.fixture
async def sessions():
    from tests.conftest import generations_settled

    opened: list[SignedIn] = []

    async def make(user):
        session = await sync_to_async(SignedIn)(user)
        opened.append(session)
        return session

    yield make
    for session in opened:
        await session.close()
    await generations_settled()


@pytest.mark.django_db(transaction=True)
@pytest.mark.real_backends
async def test_a_teammate_watches_the_answer_stream_live_and_may_not_send(team_world, sessions):
    w = team_world
    conversation = await sync_to_async(_conversation_with_history)(w.bob)
    await sync_to_async(conversation_share_set)(conversation=conversation, actor=w.bob, team=True)
    owner, _ = await (await sessions(w.bob)).socket(conversation.id)
    watcher, connected = await (await sessions(w.dave)).socket(conversation.id)
    assert connected
    await owner.send_json_to(send_frame("stream it [[fake tokens=40 tps=200]]"))
    sent, watched = (
        await receive_frames(owner, until=completed),
        await receive_frames(watcher, until=completed),
    )
    reply_id = assistant_id(watched)
    assert [f["type"] for f in watched][:2] == ["message.created", "message.created"]
    assert len([f for f in watched if f["type"] == "message.delta"]) >= 2
    assert streamed_text(watched, reply_id) == streamed_text(sent, reply_id) == watched[-1]["text"]

    count = await sync_to_async(Message.objects.filter(conversation=conversation).count)()
    await watcher.send_json_to(send_frame("let me in", "c-watch"))
    refused = json.loads(await watcher.receive_from(timeout=5))
    assert refused["type"] == "error" and refused["code"] == "read_only"
    assert refused["client_id"] == "c-watch"
    await watcher.send_json_to({"type": "generation.stop", "message_id": reply_id})
    assert json.loads(await watcher.receive_from(timeout=5))["code"] == "read_only"
    await watcher.send_json_to({"type": "message.retry", "message_id": reply_id})
    assert json.loads(await watcher.receive_from(timeout=5))["code"] == "read_only"
    assert await pong(watcher)  # still open: a watcher is refused, not thrown out
    assert await sync_to_async(Message.objects.filter(conversation=conversation).count)() == count


@pytest.mark.django_db(transaction=True)
@pytest.mark.real_backends
async def test_the_owners_budget_reaches_the_owner_and_never_a_watcher(team_world, sessions):
    """Bob's budget, after his answer: on his socket, not on Dave's who watches."""
    from decimal import Decimal

    from usage.budgets import budget_limit_set
    from usage.models import BudgetCounter
    from usage.periods import month_start

    w = team_world
    await sync_to_async(budget_limit_set)(user=w.bob, limit_usd=Decimal("10"))
    await sync_to_async(BudgetCounter.objects.create)(
        scope=f"user:{w.bob.pk}", month=month_start(), spent_usd=Decimal("9")
    )
    conversation = await sync_to_async(_conversation_with_history)(w.bob)
    await sync_to_async(conversation_share_set)(conversation=conversation, actor=w.bob, team=True)
    owner, _ = await (await sessions(w.bob)).socket(conversation.id)
    watcher, _ = await (await sessions(w.dave)).socket(conversation.id)
    await owner.send_json_to(send_frame("count my spend [[fake tokens=5]]"))
    await receive_frames(owner, until=completed)  # (its first frame: the budget on connect)
    after = await receive_frames(owner, until=lambda f: f["type"] == "budget.status")
    assert after[-1]["level"] == "warning"
    watched = await receive_frames(watcher, until=completed)
    await watcher.send_json_to({"type": "ping"})
    watched += await receive_frames(watcher, until=lambda f: f["type"] == "pong")
    assert "budget.status" not in [f["type"] for f in watched]


@pytest.mark.django_db(transaction=True)
@pytest.mark.real_backends
async def test_stop_sharing_closes_the_watchers_socket(team_world, sessions):
    w = team_world
    conversation = await sync_to_async(_conversation_with_history)(w.bob)
    await sync_to_async(conversation_share_set)(conversation=conversation, actor=w.bob, team=True)
    owner, _ = await (await sessions(w.bob)).socket(conversation.id)
    watcher, _ = await (await sessions(w.dave)).socket(conversation.id)
    await sync_to_async(conversation_share_set)(conversation=conversation, actor=w.bob, team=False)
    assert await expect_close(watcher) == 4403
    assert await pong(owner)


@pytest.mark.django_db(transaction=True)
@pytest.mark.real_backends
async def test_removal_closes_the_removed_members_sockets_on_the_teams_conversations(
    team_world, sessions
):
    w = team_world
    shared = await sync_to_async(_conversation_with_history)(w.bob)
    await sync_to_async(conversation_share_set)(conversation=shared, actor=w.bob, team=True)
    own = await sync_to_async(_conversation_with_history)(w.dave)
    dave = await sessions(w.dave)
    on_shared, _ = await dave.socket(shared.id)
    on_own, _ = await dave.socket(own.id)
    bobs, _ = await (await sessions(w.bob)).socket(shared.id)
    await sync_to_async(member_remove)(w.team, w.alice, w.dave)
    assert await expect_close(on_shared) == 4403
    assert await expect_close(on_own) == 4403
    assert await pong(bobs)
    # And cannot come back.
    _, connected = await dave.socket(shared.id)
    assert not connected


@pytest.mark.django_db(transaction=True)
@pytest.mark.real_backends
async def test_a_frame_sent_before_the_removal_is_heard_is_refused(team_world, sessions):
    """A removal made with no signal (a plain UPDATE): the next frame finds it."""
    w = team_world
    own = await sync_to_async(_conversation_with_history)(w.dave)
    socket, _ = await (await sessions(w.dave)).socket(own.id)

    def delete_quietly():
        with connection.cursor() as cursor:  # no signal: nobody is told
            cursor.execute("DELETE FROM accounts_membership WHERE user_id = %s", [w.dave.pk])

    await sync_to_async(delete_quietly)()
    await socket.send_json_to(send_frame("bill acme [[fake tokens=5]]"))
    assert await expect_close(socket) == 4403
    assert await sync_to_async(Message.objects.filter(conversation=own).count)() == 2
