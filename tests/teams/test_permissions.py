"""The permission table (tests/teams/permission_table.py, docs/permissions.md), checked
actor by actor; and every URL the site has is in it, so a new one cannot be forgotten."""

from __future__ import annotations

import io
import json
import re
import uuid
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.contrib import admin
from django.core.files.base import ContentFile
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from PIL import Image

from accounts.invites import invite_create, invite_path
from accounts.models import Membership, User
from conversations.attachments.pipeline import attachment_storage
from conversations.models import Attachment, Conversation, ConversationShare, Message, Preset
from summaries.models import SummaryJob
from tests.conversations.sockets import SignedIn, pong, send_frame
from tests.teams import permission_table as table

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def attachments_folder(settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "attachments": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "attachments"), "base_url": None},
        },
    }


@pytest.fixture
def perm_world(team_world, attachments_folder):
    """bob's conversation in Acme, with a sent file, shared with dave and gina; gina
    then removed. A pending invitation, a preset, and hal (a member to act on)."""
    w = team_world
    hal = User.objects.create_user(username="hal", email="hal@example.com", password="x" * 12)
    Membership.objects.create(user=hal, team=w.team, role="member")
    conversation = Conversation.objects.create(
        owner=w.bob, team=w.team, model="claude-sonnet-5-5", title="Plans"
    )
    question = Message.objects.create(conversation=conversation, position=0, role="user", text="hi")
    Message.objects.create(
        conversation=conversation,
        position=1,
        role="assistant",
        text="hello",
        html="<p>hello</p>",
        status="complete",
    )
    storage = attachment_storage()
    prepared = storage.save("prepared/notes.txt", ContentFile(b"notes"))
    png = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(png, "PNG")
    thumbnail = storage.save("thumbnails/t.png", ContentFile(png.getvalue()))
    attachment = Attachment.objects.create(
        conversation=conversation,
        uploaded_by=w.bob,
        message=question,
        name="notes.txt",
        status="ready",
        kind="text",
        media_type="text/plain",
        prepared_path=prepared,
        thumbnail_path=thumbnail,
    )
    for person in (w.dave, w.gina):
        ConversationShare.objects.create(
            conversation=conversation, kind="user", user=person, created_by=w.bob
        )
    Membership.objects.filter(user=w.gina, team=w.team).delete()
    invite = invite_create(
        team=w.team, email="new@example.com", invited_by=w.alice, site_url="http://testserver/"
    )
    preset = Preset.objects.create(team=w.team, name="P", model="claude-sonnet-5-5")
    job = SummaryJob.objects.create(
        team=w.team, created_by=w.alice, model="claude-haiku-5-5", instruction="Summarise."
    )
    actors = {
        "anonymous": None,
        "other_team": w.carol,
        "teammate": w.frank,
        "shared_teammate": w.dave,
        "owner": w.bob,
        "team_admin": w.erin,
        "team_owner": w.alice,
        "staff": w.admin,
        "removed": w.gina,
    }
    values = {
        "c": conversation.id,
        "a": attachment.id,
        "slug": "acme",
        "invite": invite.pk,
        "member": hal.pk,
        "preset": preset.pk,
        "job": job.pk,
        "token": invite_path(invite).split("/")[2],
    }
    return actors, values, conversation


# --- The table covers every URL ------------------------------------------------------


def _site_url_names(patterns=None, namespace: str = "") -> set[str]:
    names: set[str] = set()
    for entry in patterns if patterns is not None else get_resolver().url_patterns:
        if isinstance(entry, URLResolver):
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            names |= _site_url_names(entry.url_patterns, inner)
        elif isinstance(entry, URLPattern):
            names.add(f"{namespace}{entry.name or entry.pattern}")
    return names


def test_every_url_of_the_site_is_in_the_table():
    """A URL added without a row here (and so in docs/permissions.md) fails this test."""
    site = {name for name in _site_url_names() if not name.startswith("admin:")}
    listed = {row[0] for row in table.URLS}
    assert site - listed == set(), "URLs missing from tests/teams/permission_table.py"
    assert listed - site == set(), "rows for URLs the site does not have"


def test_the_docs_show_exactly_the_table():
    doc = (ROOT / "docs" / "permissions.md").read_text()
    block = re.search(r"<!-- table:start -->\n(.*)<!-- table:end -->", doc, re.S)
    assert block, "docs/permissions.md lost its table markers"
    assert block.group(1) == table.markdown(), (
        "Regenerate: .venv/bin/python -m tests.teams.permission_table"
    )


# --- Each actor gets what the table says ---------------------------------------------

_POST_DATA = {
    "conversation_create": {"model": "claude-sonnet-5-5"},
    "conversation_rename": {"title": "Renamed"},
    "conversation_settings": {"model": "claude-sonnet-5-5", "thinking_effort": ""},
    "conversation_estimate": {"text": "hello"},
    "team_budget": {"monthly_limit_usd": "10"},
    "team_invite": {"email": "x2@example.com", "role": "member"},
    "team_member_role": {"role": "admin"},
}


def outcome(response) -> str:
    if response.status_code in (301, 302, 303):
        location = response["Location"]
        to_login = location.startswith(reverse("login")) and "next=" in location
        if to_login or location.startswith("/admin/login/"):
            return "login"
        return "done"
    return str(response.status_code)


def _request(client: Client, method: str, path: str, name: str):
    if method == "GET":
        return client.get(path)
    if method == "DELETE":
        return client.delete(path)
    return client.post(path, _POST_DATA.get(name, {}))


@pytest.mark.django_db
@pytest.mark.parametrize(
    "row", table.URLS, ids=[f"{method} {path}" for _, method, path, _, _ in table.URLS]
)
def test_each_actor_gets_what_the_table_says(perm_world, row):
    actors, values, _ = perm_world
    name, method, path, expected, _ = row
    url = path.format(**values)
    got = {}
    for actor, user in actors.items():
        with transaction.atomic():
            client = Client()
            if user is not None:
                client.force_login(user)
            got[actor] = outcome(_request(client, method, url, name))
            transaction.set_rollback(True)
    assert got == expected


@pytest.mark.django_db
def test_search_lists_only_what_each_actor_may_see(perm_world):
    """The search row's 200 is not the whole story: bob's shared conversation is in
    the results of exactly those who may open it."""
    actors, _, conversation = perm_world
    may_see = {"owner", "shared_teammate"}
    for query in ("Plans", "hello"):  # its title, and a message's words
        for actor, user in actors.items():
            if user is None:
                continue
            client = Client()
            client.force_login(user)
            found = client.get("/search/", {"q": query, "format": "json"}).json()["results"]
            ids = {r["conversation_id"] for r in found}
            assert (str(conversation.id) in ids) == (actor in may_see), (actor, query)


def _admin_pages() -> list[str]:
    pages = [reverse("admin:index"), reverse("admin:usage_report")]
    for model in admin.site._registry:
        pages.append(reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist"))
    return pages


@pytest.mark.django_db
def test_admin_pages_are_staff_only(perm_world):
    actors, _, _ = perm_world
    for page in _admin_pages():
        got = {}
        for actor, user in actors.items():
            client = Client()
            if user is not None:
                client.force_login(user)
            got[actor] = outcome(client.get(page))
        assert got == table.ADMIN, page


@pytest.mark.django_db
def test_admin_actions_are_staff_only(perm_world):
    """An admin action posted by anyone but staff does nothing."""
    actors, _, conversation = perm_world
    changelist = reverse("admin:conversations_conversation_changelist")
    for actor, user in actors.items():
        if actor == "staff":
            continue
        client = Client()
        if user is not None:
            client.force_login(user)
        response = client.post(
            changelist,
            {
                "action": "delete_selected",
                "_selected_action": [str(conversation.id)],
                "post": "yes",
            },
        )
        assert outcome(response) == "login", actor
        assert Conversation.objects.filter(id=conversation.id).exists()


# --- Sockets -------------------------------------------------------------------------


def _last_reply(conversation_id) -> str:
    return str(
        Message.objects.filter(conversation_id=conversation_id, role="assistant")
        .order_by("-created_at")
        .values_list("id", flat=True)
        .first()
    )


async def _frame_outcome(socket, frame: str, values: dict) -> str:
    random_id = str(uuid.uuid4())
    if frame == "message.send":
        await socket.send_json_to(send_frame("hello [[fake tokens=3]]"))
    elif frame == "message.retry":
        await socket.send_json_to({"type": "message.retry", "message_id": values["reply"]})
    elif frame == "generation.stop":
        await socket.send_json_to({"type": "generation.stop", "message_id": random_id})
    elif frame == "resume":
        await socket.send_json_to({"type": "resume", "message_id": random_id, "last_seq": 0})
    elif frame == "ping":
        return "pong" if await pong(socket) else "no pong"
    elif frame == "message.edit":
        await socket.send_json_to(
            {
                **send_frame("hi again [[fake tokens=3]]"),
                "type": "message.edit",
                "message_id": values["question"],
            }
        )
    elif frame in ("message.regenerate", "message.continue"):
        last = await sync_to_async(_last_reply)(values["conversation"])
        await socket.send_json_to({"type": frame, "message_id": last})
    elif frame == "branch.switch":
        await socket.send_json_to({"type": frame, "message_id": values["reply"]})
    if frame == "generation.stop" and await socket.receive_nothing(timeout=0.3):
        return "silent" if await pong(socket) else "closed"
    got = json.loads(await socket.receive_from(timeout=5))
    if got["type"] == "error":
        return got["code"]
    # What a change is announced with (branch.switched, message.created, ...), then,
    # when it starts a reply, the reply until it completes.
    first = got["type"]
    while got["type"] != "message.completed":
        if await socket.receive_nothing(timeout=1.0):
            return first
        got = json.loads(await socket.receive_from(timeout=10))
    return "reply"


@pytest.mark.django_db(transaction=True)
async def test_socket_frames_for_each_actor(perm_world):
    from tests.conftest import generations_settled

    actors, values, conversation = perm_world
    values["reply"] = str(
        await sync_to_async(
            lambda: Message.objects.get(conversation=conversation, role="assistant").id
        )()
    )
    values["question"] = str(
        await sync_to_async(
            lambda: Message.objects.get(conversation=conversation, role="user").id
        )()
    )
    values["conversation"] = conversation.id
    sessions = []
    got_connect, got_frames = {}, {}
    try:
        for actor, user in actors.items():
            if user is None:
                from channels.testing import WebsocketCommunicator

                from chatsite.asgi import application

                socket = WebsocketCommunicator(
                    application,
                    f"/ws/c/{conversation.id}/",
                    headers=[(b"origin", b"http://localhost")],
                )
                connected, _ = await socket.connect(timeout=5)
                if connected:
                    await socket.disconnect()
            else:
                session = await sync_to_async(SignedIn)(user)
                sessions.append(session)
                socket, connected = await session.socket(conversation.id)
            got_connect[actor] = "accepted" if connected else "refused"
            if connected and user is not None:
                for frame, _, _ in table.SOCKET_FRAMES:
                    got_frames[(frame, actor)] = await _frame_outcome(socket, frame, values)
    finally:
        for session in sessions:
            await session.close()
        await generations_settled()
    assert got_connect == table.SOCKET_CONNECT
    expected = {
        (frame, actor): value
        for frame, per_actor, _ in table.SOCKET_FRAMES
        for actor, value in per_actor.items()
    }
    assert got_frames == expected
