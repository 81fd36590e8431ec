"""Every word the chat shows is marked for translation.

Under the pseudo-language (tests/i18n_pseudo.py) a marked string comes out as
⟦...⟧; a bare word left on a page is one no translator could reach. The data a
test puts there itself (names, titles, message text, the models' display names)
is taken out first: no catalog translates it.
"""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.test import Client
from django.utils.translation import trans_real

from claude.errors import ClaudeError
from claude.providers import model_choices
from conversations.language import scope_language
from conversations.models import Attachment, Message
from conversations.sharing import conversation_share_set
from tests.i18n_pseudo import (
    CLOSE,
    OPEN,
    PseudoTranslation,
    page_unmarked_words,
    pseudo_language,  # noqa: F401  (the fixture)
    unmarked_words,
)
from usage.budgets import budget_limit_set
from usage.models import ApiCall, BudgetCounter
from usage.periods import month_start

MODEL_NAMES = [label for _, label in model_choices()]


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _people(*users) -> list[str]:
    """What the pages show of a person: the username and the name they go by."""
    names = []
    for user in users:
        names += [user.username, str(user), user.get_full_name(), getattr(user, "display_name", "")]
    return [name for name in names if name]


def _team_names(*users) -> list[str]:
    return [team.name for user in users for team in user.teams.all()]


def _budget(user, *, limit: str, spent: str) -> None:
    budget_limit_set(user=user, limit_usd=Decimal(limit))
    BudgetCounter.objects.update_or_create(
        scope=f"user:{user.pk}", month=month_start(), defaults={"spent_usd": Decimal(spent)}
    )


def _message(conversation, *, role, position, parent=None, text="", **fields) -> Message:
    return Message.objects.create(
        conversation=conversation,
        role=role,
        position=position,
        parent=parent,
        text=text,
        html=f"<p>{text}</p>" if role == "assistant" and text else "",
        content=[{"type": "text", "text": text}] if text else [],
        model="claude-sonnet-5-5" if role == "assistant" else "",
        **fields,
    )


# The words of the conversation below: its data, not the page's.
TITLE = "Garden planning"
WORDS = [
    TITLE,
    "Which tomatoes grow in shade",
    "Which tomatoes grow in the shade of a wall",
    "Cherry tomatoes do well",
    "Plan the beds for spring",
    "Raised beds along the fence",
    "And the herbs",
    "Condensed story of the garden so far",
    "Basil and thyme",
    "soil-report.pdf",
]


def _garden_conversation(make_conversation, alice):
    """A conversation with every kind of answer the thread shows: finished (with its
    usage), a first message with two versions, a PDF, a condensed marker, an answer
    cut at the length limit (Continue), a refusal and a failed one (Retry)."""
    conversation = make_conversation()
    conversation.title = TITLE
    conversation.save()
    first = _message(conversation, role="user", position=0, text=WORDS[1])
    _message(conversation, role="assistant", position=1, parent=first, text="Basil and thyme")
    edited = _message(conversation, role="user", position=0, text=WORDS[2])
    finished = _message(conversation, role="assistant", position=1, parent=edited, text=WORDS[3])
    ApiCall.objects.create(
        user=alice,
        conversation=conversation,
        conversation_uuid=conversation.id,
        message=finished,
        model="claude-sonnet-5-5",
        input_tokens=1200,
        output_tokens=300,
        cache_read_tokens=50,
        cache_write_5m_tokens=20,
        cost_usd=Decimal("0.012"),
    )
    asked = _message(conversation, role="user", position=2, parent=finished, text=WORDS[4])
    Attachment.objects.create(
        conversation=conversation,
        uploaded_by=alice,
        message=asked,
        name="soil-report.pdf",
        size=2048,
        status=Attachment.Status.READY,
        kind=Attachment.Kind.PDF,
        pages=3,
        original_path="originals/soil",
    )
    cut = _message(
        conversation,
        role="assistant",
        position=3,
        parent=asked,
        text=WORDS[5],
        stop_reason="max_tokens",
        summary=WORDS[7],
    )
    herbs = _message(conversation, role="user", position=4, parent=cut, text=WORDS[6])
    refused = _message(
        conversation,
        role="assistant",
        position=5,
        parent=herbs,
        stop_reason="refusal",
        stop_details={"category": "cyber"},
    )
    again = _message(conversation, role="user", position=6, parent=refused, text=WORDS[6])
    failed = _message(
        conversation,
        role="assistant",
        position=7,
        parent=again,
        status=Message.Status.ERROR,
        error_code="overloaded",
        error_message=ClaudeError("overloaded").human_message,
    )
    conversation.active_leaf = failed
    conversation.save()
    return conversation


@pytest.mark.django_db
@pytest.mark.usefixtures("pseudo_language")
class TestPages:
    def test_the_chat_page_every_kind_of_answer(self, alice, make_conversation):
        conversation = _garden_conversation(make_conversation, alice)
        html = _client(alice).get(f"/c/{conversation.id}/").content.decode()
        # What the thread has, so that the check below covers it.
        assert 'data-stop-reason="max_tokens"' in html and 'data-action="continue"' in html
        assert 'data-status="error"' in html and "msg-file-doc" in html
        assert 'class="versions-label">2/2' in html
        assert f"{OPEN}Earlier turns were condensed here to fit the context window{CLOSE}" in html
        assert f"{OPEN}This answer was cut off at the length limit.{CLOSE}" in html
        assert f"{OPEN}Claude is overloaded right now." in html
        data = [*WORDS, *MODEL_NAMES, *_people(alice), *_team_names(alice)]
        assert page_unmarked_words(html, data=data) == []

    def test_the_chat_page_as_the_teammate_it_is_shared_with(self, alice, bob, make_conversation):
        conversation = _garden_conversation(make_conversation, alice)
        conversation_share_set(conversation=conversation, actor=alice, team=True)
        html = _client(bob).get(f"/c/{conversation.id}/").content.decode()
        assert 'id="read-only-bar"' in html and 'id="shared-badge"' in html
        data = [*WORDS, *MODEL_NAMES, *_people(alice, bob), *_team_names(alice, bob)]
        assert page_unmarked_words(html, data=data) == []

    def test_the_new_chat_page_with_the_budget_warning(self, alice):
        _budget(alice, limit="10", spent="8.50")
        html = _client(alice).get("/").content.decode()
        assert 'data-level="warning"' in html
        data = [*MODEL_NAMES, *_people(alice), *_team_names(alice)]
        assert page_unmarked_words(html, data=data) == []

    def test_the_new_chat_page_with_the_budget_refusal(self, alice):
        _budget(alice, limit="1", spent="1")
        html = _client(alice).get("/").content.decode()
        assert 'data-level="exceeded"' in html
        data = [*MODEL_NAMES, *_people(alice), *_team_names(alice)]
        assert page_unmarked_words(html, data=data) == []

    def test_the_share_page_of_the_owner(self, alice, bob, make_conversation):
        conversation = _garden_conversation(make_conversation, alice)
        client = _client(alice)
        saved = client.post(f"/c/{conversation.id}/share/", {"team": "on"}, follow=True)
        html = saved.content.decode()
        assert 'id="share-form"' in html and 'id="share-stop"' in html
        assert f"{OPEN}Sharing saved.{CLOSE}" in html
        teammates = [m.user for m in alice.teams.get(slug="acme").memberships.all()]
        data = [*WORDS, *MODEL_NAMES, *_people(alice, bob, *teammates), *_team_names(alice)]
        assert page_unmarked_words(html, data=data) == []

    def test_the_search_page_with_results_and_without(self, alice, make_conversation):
        conversation = _garden_conversation(make_conversation, alice)
        client = _client(alice)
        # A snippet is cut around its <mark>: the words either side of it, apart.
        data = [*WORDS, *MODEL_NAMES, *_people(alice), *_team_names(alice), "tomatoes"]
        data += ["Cherry", "do well"]
        found = client.get("/search/", {"q": "tomatoes"}).content.decode()
        assert f'data-conversation-id="{conversation.id}"' in found
        assert page_unmarked_words(found, data=data) == []
        none = client.get("/search/", {"q": "cucumbers"}).content.decode()
        assert "search-none" in none
        assert page_unmarked_words(none, data=[*data, "cucumbers"]) == []

    def test_the_markdown_export(self, alice, make_conversation):
        conversation = _garden_conversation(make_conversation, alice)
        text = _client(alice).get(f"/c/{conversation.id}/export.md").content.decode()
        assert text.startswith(f"# {TITLE}")
        assert unmarked_words(text, data=[*WORDS, *MODEL_NAMES]) == []


# --- The socket ----------------------------------------------------------------------

socket_db = pytest.mark.django_db(transaction=True)


def _wrapped(message: str) -> bool:
    return message.startswith(OPEN) and message.endswith(CLOSE) and unmarked_words(message) == []


@socket_db
@pytest.mark.usefixtures("pseudo_language")
async def test_a_budget_refusal_and_a_bad_frame_speak_the_pseudo_language(
    alice, make_conversation, socket_for
):
    await sync_to_async(_budget)(alice, limit="1", spent="1")
    conversation = await sync_to_async(make_conversation)()
    socket, connected = await socket_for(alice, conversation.id)
    assert connected
    status = await socket.receive_json_from(timeout=5)
    assert status["level"] == "exceeded" and _wrapped(status["message"])
    await socket.send_json_to({"type": "message.send", "text": "hi", "client_id": "c1"})
    refused = await socket.receive_json_from(timeout=5)
    assert (refused["type"], refused["code"]) == ("error", "budget_exceeded")
    assert _wrapped(refused["message"]), refused["message"]
    await socket.send_to(text_data="{not json")
    bad = await socket.receive_json_from(timeout=5)
    assert (bad["type"], bad["code"]) == ("error", "bad_json")
    assert bad["message"] == f"{OPEN}That frame is not valid JSON.{CLOSE}"


@socket_db
async def test_the_handshake_accept_language_picks_the_socket_language(
    settings, monkeypatch, alice, make_conversation
):
    """Two languages on offer; only German is the pseudo-language here. A socket
    whose browser asks for German hears ⟦...⟧, one asking for English plain words."""
    from channels.testing import WebsocketCommunicator

    from chatsite.asgi import application
    from tests.conftest import ORIGIN, session_cookie_for

    settings.LANGUAGES = [("en", "English"), ("de", "Deutsch")]
    german = PseudoTranslation()
    real = trans_real.translation
    monkeypatch.setattr(
        trans_real, "translation", lambda language: german if language == "de" else real(language)
    )
    conversation = await sync_to_async(make_conversation)()
    cookie = await sync_to_async(session_cookie_for)(alice)

    async def bad_frame_message(accept_language: str) -> str:
        headers = [
            (b"cookie", cookie.encode()),
            (b"origin", ORIGIN.encode()),
            (b"accept-language", accept_language.encode()),
        ]
        socket = WebsocketCommunicator(application, f"/ws/c/{conversation.id}/", headers=headers)
        connected, _ = await socket.connect(timeout=5)
        assert connected
        try:
            await socket.send_to(text_data=json.dumps({"type": "no.such.frame"}))
            frame = await socket.receive_json_from(timeout=5)
        finally:
            await socket.disconnect(timeout=2)
        assert (frame["type"], frame["code"]) == ("error", "unknown_type")
        return frame["message"]

    assert await bad_frame_message("de-DE,de;q=0.9,en;q=0.5") == (
        f"{OPEN}Unknown frame type %(type)s.{CLOSE}" % {"type": "'no.such.frame'"}
    )
    assert await bad_frame_message("fr-FR,en;q=0.8") == "Unknown frame type 'no.such.frame'."


def test_the_socket_language_is_chosen_as_a_page_s(settings):
    """The language cookie first, then Accept-Language by preference, among LANGUAGES;
    else LANGUAGE_CODE."""
    settings.LANGUAGES = [("en", "English"), ("de", "Deutsch")]

    def scope(*headers: tuple[bytes, bytes]) -> dict:
        return {"type": "websocket", "headers": list(headers), "id": uuid.uuid4().hex}

    assert scope_language(scope((b"accept-language", b"fr;q=0.9, de;q=0.8, en;q=0.7"))) == "de"
    assert scope_language(scope((b"accept-language", b"de-AT"))) == "de"
    assert scope_language(scope((b"accept-language", b"fr, ja"))) == settings.LANGUAGE_CODE
    assert scope_language(scope()) == settings.LANGUAGE_CODE
    cookie = (b"cookie", f"sessionid=x; {settings.LANGUAGE_COOKIE_NAME}=en".encode())
    assert scope_language(scope(cookie, (b"accept-language", b"de"))) == "en"


@pytest.mark.usefixtures("pseudo_language")
def test_a_stored_error_message_is_translated_when_shown():
    """Stored in English, the source language: shown in the reader's, the API's own
    words kept as they came."""
    from conversations.streaming.frames import error_text, error_text_parts

    stored = ClaudeError("bad_request", detail="max_tokens: too big").human_message
    assert stored == "Claude rejected the request. (max_tokens: too big)"
    assert error_text(stored) == f"{OPEN}Claude rejected the request. (max_tokens: too big){CLOSE}"
    overloaded = ClaudeError("overloaded").human_message
    assert (
        overloaded
        == "Claude is overloaded right now. Your message is saved. Press Retry in a moment."
    )
    # Two msgids: what happened, and the sentence the card shows only with Retry.
    main, hint = error_text_parts(overloaded)
    assert main == f"{OPEN}Claude is overloaded right now. Your message is saved.{CLOSE}"
    assert hint == f"{OPEN}Press Retry in a moment.{CLOSE}"
    assert error_text(overloaded) == f"{main} {hint}"
    # A row stored before the parts were apart is shown the same.
    older = "Claude is overloaded right now. Your message is saved: press Retry in a moment."
    assert error_text_parts(older) == (main, hint)
    assert error_text("") == ""
