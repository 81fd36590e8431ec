"""Search across one's conversations: titles and message text, highlighted
snippets, and nobody else's words, on SQLite (FTS5) and PostgreSQL (the
`real_backends` pass: a GIN index on to_tsvector)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from conversations.models import Conversation, Message
from conversations.search import conversation_search
from conversations.search_index import FTS_TABLE, fts_ensure
from infra.rows import rows_update

pytestmark = [pytest.mark.django_db, pytest.mark.real_backends]


def say(conversation: Conversation, *texts: str, status: str = "complete") -> list[Message]:
    """Messages in the conversation, alternating user and assistant, after its last."""
    last = conversation.messages.order_by("-position").first()
    start = last.position + 1 if last else 0
    rows = [
        Message(
            conversation=conversation,
            position=start + i,
            role="user" if (start + i) % 2 == 0 else "assistant",
            status=status if (start + i) % 2 else "complete",
            text=text,
            content=[{"type": "text", "text": text}],
        )
        for i, text in enumerate(texts)
    ]
    Message.objects.bulk_create(rows)
    return rows


def titled(conversation: Conversation, title: str) -> Conversation:
    conversation.title = title
    conversation.save(update_fields=["title"])
    return conversation


def test_my_words_are_found_with_the_match_highlighted(alice, make_conversation):
    conversation = titled(make_conversation(), "Holiday plans")
    say(
        conversation,
        "Where can I see a kangaroo near Sydney?",
        "The Featherdale park has kangaroos you can feed, about an hour from the city.",
    )
    [result] = conversation_search(user=alice, query="kangaroo")
    assert result.conversation_id == conversation.id
    assert result.title == "Holiday plans"
    # The newest matching message gives the snippet; its matching word is marked.
    assert result.role == "assistant"
    assert "<mark>kangaroos</mark>" in result.snippet_html
    assert "Featherdale" in result.snippet_html


def test_every_word_must_match_and_the_last_is_a_prefix(alice, make_conversation):
    both = make_conversation()
    say(both, "The quarterly budget review is on Friday.")
    one = make_conversation()
    say(one, "The budget is fine.")
    assert [r.conversation_id for r in conversation_search(user=alice, query="budget quart")] == [
        both.id
    ]
    assert {r.conversation_id for r in conversation_search(user=alice, query="budg")} == {
        both.id,
        one.id,
    }
    # Two letters are a word, not yet a prefix (they would match nearly everything).
    assert conversation_search(user=alice, query="bu") == []


def test_a_title_alone_matches_without_a_snippet(alice, make_conversation):
    conversation = titled(make_conversation(), "Tax return 2026")
    say(conversation, "Nothing about it here.")
    [result] = conversation_search(user=alice, query="return")
    assert result.conversation_id == conversation.id
    assert result.snippet_html == ""
    assert result.title_html == "Tax <mark>return</mark> 2026"


def test_bob_never_finds_alices_words(client, alice, bob, carol, make_conversation):
    """Bob (alice's teammate) and carol (another team) find nothing of alice's:
    not her messages, not her titles, through the selector, the JSON and the page."""
    secret = titled(make_conversation(), "Zanzibar acquisition")
    say(secret, "The zanzibar deal closes in March.", "Noted: zanzibar, March.")
    own = titled(make_conversation(bob), "Lunch")
    say(own, "Sandwiches for the team.")

    assert [r.conversation_id for r in conversation_search(user=alice, query="zanzibar")] == [
        secret.id
    ]
    for person in (bob, carol):
        assert conversation_search(user=person, query="zanzibar") == []
        assert conversation_search(user=person, query="acquisition") == []
        client.force_login(person)
        data = client.get(
            reverse("conversation_search"), {"q": "zanzibar", "format": "json"}
        ).json()
        assert data["results"] == []
        page = client.get(reverse("conversation_search"), {"q": "zanzibar"}).content.decode()
        assert "Zanzibar acquisition" not in page and "deal closes" not in page
    # Bob still finds his own.
    assert [r.conversation_id for r in conversation_search(user=bob, query="sandwich")] == [own.id]


def test_search_needs_a_sign_in(client):
    response = client.get(reverse("conversation_search"), {"q": "anything", "format": "json"})
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_the_json_answer_links_to_the_message(client, alice, make_conversation):
    conversation = make_conversation()
    user_message, _ = say(conversation, "Find the wombat.", "A wombat sleeps.")
    client.force_login(alice)
    data = client.get(
        reverse("conversation_search"), {"q": "wombat"}, HTTP_ACCEPT="application/json"
    ).json()
    [result] = data["results"]
    assert result["conversation_id"] == str(conversation.id)
    assert result["url"] == f"/c/{conversation.id}/#message-{result['message_id']}"
    assert result["role"] == "assistant"


def test_a_streaming_answer_is_found_once_it_ends(alice, make_conversation):
    """Checkpoints of a streaming answer leave the index alone; the finished answer is in it."""
    conversation = make_conversation()
    _, reply = say(conversation, "Tell me about otters.", "", status="streaming")
    rows_update(
        Message,
        {"text": "Sea otters hold hands while they sleep", "seq": 3},
        where={"id": reply.id},
    )
    found = conversation_search(user=alice, query="hands")
    assert found == []
    rows_update(Message, {"status": "complete"}, where={"id": reply.id})
    [result] = conversation_search(user=alice, query="hands")
    assert result.message_id == reply.id


def test_edited_and_deleted_text_leaves_the_index(alice, make_conversation):
    conversation = make_conversation()
    _, reply = say(conversation, "Question.", "The platypus lays eggs.")
    Message.objects.filter(id=reply.id).update(text="Mammals that lay eggs.")
    assert conversation_search(user=alice, query="platypus") == []
    assert len(conversation_search(user=alice, query="mammals")) == 1
    conversation.delete()
    assert conversation_search(user=alice, query="mammals") == []
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT COUNT(*) FROM {FTS_TABLE}")
            assert cursor.fetchone()[0] == 0


def test_snippets_and_titles_are_escaped_text_with_only_mark(alice, make_conversation):
    conversation = titled(make_conversation(), '<img src=x onerror="alert(1)"> quokka')
    say(
        conversation,
        'Look: <script>alert("x")</script> a quokka <b onclick="steal()">smiles</b> \ue000odd\ue001',
    )
    [result] = conversation_search(user=alice, query="quokka")
    for html in (result.snippet_html, result.title_html):
        # Not one tag but <mark>: what looked like HTML is escaped text.
        assert html.replace("<mark>", "").replace("</mark>", "").count("<") == 0
    assert "script" not in result.snippet_html or "&lt;script" in result.snippet_html
    assert "<mark>quokka</mark>" in result.snippet_html
    assert result.title_html.endswith("<mark>quokka</mark>")


@pytest.mark.parametrize(
    "query",
    [
        '"unclosed',
        "a OR b*",
        "NEAR(x y)",
        "x:* & !y",
        "'); DROP TABLE x; --",
        "^*",
        "col:word",
        "é café",
    ],
)
def test_any_typed_text_is_searched_as_words(alice, make_conversation, query):
    """Nothing typed is taken as query syntax: no error, whatever it is."""
    say(make_conversation(), "A plain message about a café.")
    conversation_search(user=alice, query=query)


def test_too_little_to_search_for(client, alice, make_conversation):
    say(make_conversation(), "a b c")
    assert conversation_search(user=alice, query="a") == []
    client.force_login(alice)
    data = client.get(reverse("conversation_search"), {"q": "a", "format": "json"}).json()
    assert data == {"query": "a", "results": [], "too_short": True}


def test_one_result_per_conversation_most_recent_first(alice, make_conversation):
    older = make_conversation()
    say(older, "Penguins one.", "Penguins two.", "Penguins three.")
    newer = make_conversation()
    say(newer, "Penguins again.")
    Conversation.objects.filter(id=newer.id).update(updated_at=timezone.now())
    results = conversation_search(user=alice, query="penguins")
    assert [r.conversation_id for r in results] == [newer.id, older.id]
    assert "three" in results[1].snippet_html  # the newest matching message of that one


def test_the_search_page_shows_results(client, alice, make_conversation):
    conversation = titled(make_conversation(), "Garden")
    say(conversation, "When to plant tulips?")
    client.force_login(alice)
    body = client.get(reverse("conversation_search"), {"q": "tulips"}).content.decode()
    assert "<mark>tulips</mark>" in body
    assert f'href="/c/{conversation.id}/#message-' in body


@pytest.mark.skipif("connection.vendor != 'sqlite'")
@pytest.mark.django_db(transaction=True)  # a schema change on SQLite: outside a transaction
def test_a_rebuilt_message_table_gets_its_search_triggers_back(alice, make_conversation):
    """Django rebuilds a SQLite table for many schema changes (copy, drop, rename),
    which drops its triggers and renumbers its rows: after `migrate` the index is
    whole again and follows new messages."""
    conversation = make_conversation()
    say(conversation, "Before the rebuild: narwhal.")
    with connection.schema_editor() as editor:
        editor._remake_table(Message)
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger'")
        assert cursor.fetchone()[0] == 0  # what the rebuild did
    assert fts_ensure(connection) is True
    assert fts_ensure(connection) is False  # once is enough
    say(conversation, "After the rebuild: a second narwhal.")
    results = conversation_search(user=alice, query="narwhal")
    assert len(results) == 1 and "second" in results[0].snippet_html
    assert len(conversation_search(user=alice, query="before")) == 1


def test_results_come_newest_first_across_the_chunks_searched(
    alice, make_conversation, monkeypatch
):
    """PostgreSQL searches the newest conversations first, a chunk at a time
    (2, 4, ... here): results from every chunk, in one order, a page at most."""
    from conversations import search

    monkeypatch.setattr(search, "PG_FIRST_CHUNK", 2)
    made = []
    for i in range(9):
        conversation = make_conversation()
        say(conversation, f"Note {i}: " + ("the ibis flew" if i % 3 == 0 else "nothing here"))
        made.append(conversation)
    for age, conversation in enumerate(reversed(made)):
        Conversation.objects.filter(id=conversation.id).update(
            updated_at=timezone.now() - dt.timedelta(minutes=age)
        )
    assert [r.conversation_id for r in search.conversation_search(user=alice, query="ibis")] == [
        made[6].id,
        made[3].id,
        made[0].id,
    ]  # i = 6, 3, 0: the newest first
    assert len(search.conversation_search(user=alice, query="note", limit=4)) == 4


def test_versions_of_a_message_give_one_result(alice, make_conversation):
    """A regenerated answer is a sibling at the same position (branches): both
    versions matching still make one result for the conversation."""
    conversation = make_conversation()
    [question, first] = say(conversation, "Tell me about wombats", "Wombats dig burrows.")
    Message.objects.filter(id=first.id).update(parent=question)
    Message.objects.create(
        conversation=conversation,
        parent=question,
        position=first.position,
        role="assistant",
        status="complete",
        text="Wombats have cube-shaped droppings.",
    )
    results = conversation_search(user=alice, query="wombats")
    assert [r.conversation_id for r in results] == [conversation.id]
    assert results[0].role == "assistant"


def test_a_conversation_shared_with_me_is_found(alice, make_conversation, django_user_model):
    """Search lists what `conversations_visible_to` lets one see: a teammate's
    conversation shared with the whole team, and not once the share ends."""
    from accounts.models import Membership, Team
    from conversations.models import ConversationShare

    team = Team.objects.create(name="Wombat Co", slug="wombat-co")
    sharer = django_user_model.objects.create_user(username="sharer", password="x" * 12)
    Membership.objects.create(user=alice, team=team, role="member")
    Membership.objects.create(user=sharer, team=team, role="member")
    theirs = Conversation.objects.create(owner=sharer, team=team, model="claude-sonnet-5-5")
    say(theirs, "Marsupial census", "Many marsupials counted.")
    assert conversation_search(user=alice, query="marsupial") == []
    share = ConversationShare.objects.create(
        conversation=theirs, kind=ConversationShare.Kind.TEAM, created_by=sharer
    )
    assert [r.conversation_id for r in conversation_search(user=alice, query="marsupial")] == [
        theirs.id
    ]
    share.delete()
    assert conversation_search(user=alice, query="marsupial") == []
