"""The details people expect, each as a person would notice it: a refused first
message leaves nothing behind, the empty page says where the budget stands,
pins, titles without Markdown, model names, error cards, maths and task lists,
the theme."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import Team
from claude.errors import _HUMAN_MESSAGES, _MESSAGE_PARTS, INTERRUPTED_MESSAGE, error_message_parts
from conversations.models import Conversation, Message
from conversations.rendering import markdown_to_html
from conversations.services import title_from_text
from conversations.templatetags.chat_tags import error_parts
from tests.conversations.test_rendering import assert_inert
from usage.budgets import budget_limit_set
from usage.models import BudgetCounter
from usage.periods import month_start

pytestmark = pytest.mark.django_db


def spend(user, usd: str) -> None:
    BudgetCounter.objects.update_or_create(
        scope=f"user:{user.pk}", month=month_start(), defaults={"spent_usd": Decimal(usd)}
    )


def budget_notes(body: str) -> list[str]:
    return re.findall(r'class="budget-note[^"]*"[^>]*data-level="(\w+)"', body)


def one_turn(conversation: Conversation, text: str = "hello") -> None:
    Message.objects.bulk_create(
        [
            Message(conversation=conversation, position=0, role="user", text=text),
            Message(conversation=conversation, position=1, role="assistant", text="hi"),
        ]
    )


# --- A new chat, and the budget -------------------------------------------------


def test_a_refused_first_message_leaves_no_empty_conversation(client, alice):
    """With the budget used up, starting a chat is refused with the reason, and
    no "New conversation" appears anywhere."""
    budget_limit_set(user=alice, limit_usd=Decimal("5"))
    spend(alice, "5")
    client.force_login(alice)
    response = client.post(reverse("conversation_create"), {"model": "claude-sonnet-5-5"})
    assert response.status_code == 400
    assert not Conversation.objects.exists()
    body = response.content.decode()
    assert budget_notes(body) == ["exceeded"]  # said once, not also as a form error
    assert "monthly budget" in body
    json = client.post(
        reverse("conversation_create"),
        {"model": "claude-sonnet-5-5"},
        HTTP_ACCEPT="application/json",
    )
    assert json.status_code == 400 and json.json()["code"] == "budget_exceeded"
    assert not Conversation.objects.exists()


def test_a_conversation_nothing_was_sent_in_stays_out_of_the_sidebar(
    client, alice, make_conversation
):
    """A first message refused over the socket (rate limit, budget) or files never
    sent leave a conversation with no messages: no sidebar lists it, but its own
    page while it is open."""
    empty = make_conversation()
    started = make_conversation()
    one_turn(started)
    Conversation.objects.filter(id=started.id).update(title="Started chat")
    client.force_login(alice)
    home = client.get(reverse("home")).content.decode()
    assert f'data-conversation-id="{started.id}"' in home
    assert f'data-conversation-id="{empty.id}"' not in home
    own_page = client.get(reverse("conversation_detail", args=[empty.id])).content.decode()
    assert 'class="conv-link is-current"' in own_page


@pytest.mark.parametrize(
    ("spent", "expected"),
    [("1", []), ("8.5", ["warning"]), ("10", ["exceeded"]), ("12", ["exceeded"])],
)
def test_the_empty_chat_page_says_where_the_budget_stands_once(client, alice, spent, expected):
    """Before anything is typed: the warning from 80 %, the refusal at 100 %, never both."""
    budget_limit_set(user=alice, limit_usd=Decimal("10"))
    spend(alice, spent)
    client.force_login(alice)
    body = client.get(reverse("home")).content.decode()
    assert budget_notes(body) == expected
    if expected == ["warning"]:
        assert "You have used 85% of your monthly budget" in body
    if expected == ["exceeded"]:
        assert "New messages are refused until" in body


def test_the_team_budget_counts_on_the_empty_page(client, bob):
    acme = Team.objects.get(slug="acme")
    budget_limit_set(team=acme, limit_usd=Decimal("10"))
    BudgetCounter.objects.create(scope=f"team:{acme.pk}", month=month_start(), spent_usd=10)
    client.force_login(bob)
    body = client.get(reverse("home")).content.decode()
    assert budget_notes(body) == ["exceeded"] and "your team&#x27;s monthly budget" in body


# --- The sidebar: pins, rename and delete ----------------------------------------


def test_pinned_conversations_head_the_sidebar(client, alice, make_conversation):
    first, second, third = (make_conversation() for _ in range(3))
    for c, title in ((first, "First"), (second, "Second"), (third, "Third")):
        one_turn(c)
        Conversation.objects.filter(id=c.id).update(title=title)
    Conversation.objects.filter(id=third.id).update(updated_at=timezone.now())
    client.force_login(alice)
    response = client.post(
        reverse("conversation_pin", args=[first.id]),
        {"pinned": "true"},
        HTTP_ACCEPT="application/json",
    )
    assert response.json() == {"id": str(first.id), "pinned": True}
    first.refresh_from_db()
    assert first.pinned_at is not None
    body = client.get(reverse("home")).content.decode()
    assert (
        body.index(">Pinned<")
        < body.index(">First<")
        < body.index(">Third<")
        < body.index(">Second<")
    )
    assert body.count(">Pinned<") == 1

    client.post(reverse("conversation_pin", args=[first.id]), {"pinned": "false"})
    first.refresh_from_db()
    assert first.pinned_at is None
    assert ">Pinned<" not in client.get(reverse("home")).content.decode()
    assert (
        client.post(reverse("conversation_pin", args=[first.id]), {"pinned": "maybe"}).status_code
        == 400
    )


def test_someone_else_cannot_pin(client, bob, make_conversation):
    conversation = make_conversation()
    client.force_login(bob)
    assert client.post(reverse("conversation_pin", args=[conversation.id])).status_code == 404
    conversation.refresh_from_db()
    assert conversation.pinned_at is None


def test_every_sidebar_entry_has_its_menu_and_the_title_a_pencil(client, alice, make_conversation):
    conversation = make_conversation()
    one_turn(conversation)
    client.force_login(alice)
    body = client.get(reverse("conversation_detail", args=[conversation.id])).content.decode()
    entry = re.search(r'<div class="conv-item[^>]*>.*?</div>', body, re.S).group(0)
    assert f'data-rename-url="/c/{conversation.id}/rename/"' in entry
    assert f'data-delete-url="/c/{conversation.id}/delete/"' in entry
    assert f'data-pin-url="/c/{conversation.id}/pin/"' in entry
    assert 'data-action="conv-menu"' in entry
    assert 'class="icon-btn title-pencil" data-action="rename"' in body
    assert 'id="conv-menu"' in body and 'data-menu="pin"' in body


# --- Titles, model names, error cards ----------------------------------------------


@pytest.mark.parametrize(
    ("first_line", "title"),
    [
        ("# **Fix** the `parser` bug", "Fix the parser bug"),
        ("> quoted _text_ here", "quoted text here"),
        ("- [the docs](https://example.com) say so", "the docs say so"),
        ("1. first *thing*", "first thing"),
        ("~~old~~ new plan", "old new plan"),
        ("a < b & c", "a < b & c"),
        ("```python", "```python"),
    ],
)
def test_titles_have_no_markdown_marks(first_line, title):
    assert title_from_text(f"{first_line}\nmore") == title


def test_pages_name_the_model_never_its_id(client, alice, make_conversation):
    conversation = make_conversation(model="claude-haiku-5-5")
    Message.objects.bulk_create(
        [
            Message(conversation=conversation, position=0, role="user", text="hi"),
            Message(
                conversation=conversation,
                position=1,
                role="assistant",
                text="hello",
                html="<p>hello</p>",
                model="claude-haiku-5-5",
            ),
        ]
    )
    client.force_login(alice)
    body = client.get(reverse("conversation_detail", args=[conversation.id])).content.decode()
    assert '<span class="msg-model">Claude Haiku 5.5</span>' in body
    assert re.search(r'class="model-badge"[^>]*>Claude Haiku 5\.5', body)
    # The id is only in the data the page's script reads (model-labels).
    visible = re.sub(r'<script id="model-labels".*?</script>', "", body, flags=re.S)
    assert ">claude-haiku-5-5<" not in visible


RETRY_MESSAGES = [m for m in _HUMAN_MESSAGES.values() if "retry" in m.lower()] + [
    INTERRUPTED_MESSAGE
]


@pytest.mark.parametrize("message", RETRY_MESSAGES)
def test_an_error_card_keeps_its_retry_sentence_apart(message):
    main, hint = error_parts(message)
    assert "retry" not in main.lower() and main.endswith(".")
    assert hint.lower().count("retry") == 1 and hint[0].isupper()


@pytest.mark.parametrize("code", sorted(_MESSAGE_PARTS))
def test_a_stored_error_message_splits_back_into_the_msgids_it_was_made_of(code):
    """The card translates each part by itself: the split must find them exactly."""
    main, hint = _MESSAGE_PARTS[code]
    assert error_message_parts(_HUMAN_MESSAGES[code]) == (main, hint)
    assert bool(hint) == ("retry" in _HUMAN_MESSAGES[code].lower())


def test_an_old_error_card_does_not_ask_for_a_retry_button_it_has_not(
    client, alice, make_conversation
):
    """An error card above the last reply has no Retry: its "press Retry" sentence
    is marked so (chat.css shows it only on the last, retryable reply)."""
    conversation = make_conversation()
    Message.objects.bulk_create(
        [
            Message(conversation=conversation, position=0, role="user", text="one"),
            Message(
                conversation=conversation,
                position=1,
                role="assistant",
                status="error",
                error_code="overloaded",
                error_message=_HUMAN_MESSAGES["overloaded"],
            ),
            Message(conversation=conversation, position=2, role="user", text="two"),
            Message(conversation=conversation, position=3, role="assistant", text="fine"),
        ]
    )
    client.force_login(alice)
    body = client.get(reverse("conversation_detail", args=[conversation.id])).content.decode()
    assert (
        '<span class="error-main">Claude is overloaded right now. Your message is saved.</span>'
        in body
    )
    assert '<span class="error-retry-hint">Press Retry in a moment.</span>' in body
    css = open("static/chat/chat.css").read()
    assert ".msg-assistant:not(.can-retry) .error-retry-hint { display: none; }" in css


def test_an_empty_failed_answer_offers_no_copy_or_cost(client, alice, make_conversation):
    css = open("static/chat/chat.css").read()
    rule = next(line for line in css.splitlines() if ":has(> .prose:empty)" in line)
    assert '[data-status="error"]' in rule and ".act-copy" in rule and ".usage-wrap" in rule
    assert "display: none" in rule
    conversation = make_conversation()
    Message.objects.bulk_create(
        [
            Message(conversation=conversation, position=0, role="user", text="one"),
            Message(conversation=conversation, position=1, role="assistant", status="error"),
        ]
    )
    client.force_login(alice)
    body = client.get(reverse("conversation_detail", args=[conversation.id])).content.decode()
    # What the rule matches: the failed answer's prose is empty, its copy button marked.
    article = re.search(
        r'<article class="msg msg-assistant" data-message-id.*?</article>', body, re.S
    ).group(0)
    assert '<div class="prose"></div>' in article and 'class="act act-copy"' in article


def test_messages_show_their_time_on_hover(client, alice, make_conversation):
    conversation = make_conversation()
    one_turn(conversation)
    client.force_login(alice)
    body = client.get(reverse("conversation_detail", args=[conversation.id])).content.decode()
    assert body.count('<time class="msg-time" datetime="') == 2


def test_the_thread_is_a_live_region(client, alice, make_conversation):
    conversation = make_conversation()
    client.force_login(alice)
    body = client.get(reverse("conversation_detail", args=[conversation.id])).content.decode()
    assert re.search(r'id="messages" role="log" aria-live="polite"', body)


# --- Maths and task lists -------------------------------------------------------------


def test_maths_is_kept_as_tex_for_katex():
    html = markdown_to_html("Euler: $e^{i\\pi} + 1 = 0$, and\n\n$$\n\\int_0^1 x\\,dx < 1\n$$\n")
    assert '<span class="math inline">e^{i\\pi} + 1 = 0</span>' in html
    assert '<div class="math block">\n\\int_0^1 x\\,dx &lt; 1\n</div>' in html


def test_money_is_not_maths():
    assert "math" not in markdown_to_html("It costs $5 and $10 on Fridays.")


def test_task_lists_render_as_disabled_checkboxes():
    html = markdown_to_html("- [ ] write tests\n- [x] write code\n")
    assert '<ul class="contains-task-list">' in html
    assert '<input class="task-list-item-checkbox" type="checkbox" disabled> write tests' in html
    assert (
        '<input class="task-list-item-checkbox" type="checkbox" disabled checked> write code'
        in html
    )


@pytest.mark.parametrize(
    "attack",
    [
        "$<img src=x onerror=alert(1)>$",
        "$$\n</div><script>alert(1)</script>\n$$",
        "- [ ] <input type=text onfocus=alert(1) autofocus>",
        "$\\href{javascript:alert(1)}{x}$",
        '<span class="math inline" onclick="alert(1)">x</span>',
        '<div class="math block"><svg onload=alert(1)></div>',
    ],
)
def test_maths_and_task_lists_stay_inert(attack):
    html = markdown_to_html(attack)
    assert_inert(html)
    for _tag, attrs in re.findall(r"<(input)\b([^>]*)>", html):
        assert attrs.strip() in ('class="task-list-item-checkbox" type="checkbox" disabled',)


def test_the_chat_page_loads_vendored_katex_from_our_origin(client, alice, make_conversation):
    conversation = make_conversation()
    client.force_login(alice)
    body = client.get(reverse("conversation_detail", args=[conversation.id])).content.decode()
    for path in (
        "vendor/katex/katex.min.js",
        "vendor/katex/katex.min.css",
        "vendor/markdown-it-texmath/texmath.js",
        "vendor/markdown-it-task-lists/markdown-it-task-lists.min.js",
    ):
        assert f'"/static/{path}"' in body
    assert "cdn" not in body.lower()


# --- Theme, keys, phone -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cookie", "attribute"),
    [
        ("dark", ' data-theme="dark"'),
        ("light", ' data-theme="light"'),
        ("system", ""),
        ("<script>", ""),
    ],
)
def test_the_theme_switch_is_remembered(client, alice, cookie, attribute):
    client.force_login(alice)
    client.cookies["chat_theme"] = cookie
    body = client.get(reverse("home")).content.decode()
    assert re.search(r"<html lang=\"[\w-]+\"" + re.escape(attribute) + ">", body)
    assert "<script>" not in body.split("<head>")[0]


def test_a_collapsed_sidebar_stays_collapsed(client, alice):
    client.force_login(alice)
    assert "sidebar-collapsed" not in client.get(reverse("home")).content.decode()
    client.cookies["chat_sidebar"] = "collapsed"
    assert re.search(
        r'<body class="[^"]*sidebar-collapsed', client.get(reverse("home")).content.decode()
    )


def test_on_a_touch_screen_the_placeholder_says_what_enter_does(client, alice, make_conversation):
    client.force_login(alice)
    home = client.get(reverse("home")).content.decode()
    assert 'data-touch-placeholder="Ask anything… (Enter adds a line, tap ↑ to send)"' in home
    conversation = make_conversation()
    page = client.get(reverse("conversation_detail", args=[conversation.id])).content.decode()
    assert 'data-touch-placeholder="Reply to Claude… (Enter adds a line, tap ↑ to send)"' in page
