"""Text from people and from Claude can never run script in the page."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.urls import reverse

from conversations.models import Message
from conversations.rendering import markdown_to_html

ATTACKS = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    "[click me](javascript:alert(1))",
    '<a href="javascript:alert(1)">x</a>',
    '<iframe src="https://evil.example"></iframe>',
    "<svg onload=alert(1)>",
    "[x](JaVaScRiPt:alert(1))",
    "<style>body{display:none}</style>",
]


class Elements(HTMLParser):
    """Every element and attribute a browser would build from the HTML."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))


def assert_inert(html: str, *, page: bool = False) -> None:
    """No executable element, no event handler, no script URL. (A whole page may
    have the site's own SVG icons, and images of its own attachments; rendered
    text may not have any of these tags.)"""
    banned = {"iframe", "img", "style", "object", "embed"} | (set() if page else {"svg"})
    for tag, attrs in Elements(html).elements:
        if page and tag == "img":
            # A thumbnail served by the attachment view, or the chip's empty placeholder.
            assert (attrs.get("src") or "/attachments/").startswith("/attachments/"), attrs
            continue
        assert tag not in banned, tag
        if tag == "script":
            assert "src" in attrs or attrs.get("type") == "application/json", attrs
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name)
            assert not (value or "").strip().lower().startswith("javascript:"), (tag, value)


@pytest.mark.parametrize("attack", ATTACKS)
def test_markdown_neutralises_html_and_script_urls(attack):
    html = markdown_to_html(f"Hello\n\n{attack}\n\n**bold**")
    assert_inert(html)
    assert not any(tag == "script" for tag, _ in Elements(html).elements)
    assert "<strong>bold</strong>" in html


def test_markdown_keeps_code_blocks_and_links():
    html = markdown_to_html("```python\nprint('<b>')\n```\n\n[docs](https://example.com)")
    assert '<code class="language-python">' in html
    assert "&lt;b&gt;" in html
    assert 'href="https://example.com"' in html and 'rel="noopener noreferrer nofollow"' in html


@pytest.mark.django_db
def test_conversation_page_escapes_user_and_model_text(client, alice, make_conversation):
    conversation = make_conversation()
    attack = '<script>alert("x")</script><img src=x onerror=alert(2)>'
    Message.objects.create(
        conversation=conversation,
        position=0,
        role="user",
        text=attack,
        content=[{"type": "text", "text": attack}],
    )
    # A reply whose cached HTML is missing is rendered from its text on the way out.
    Message.objects.create(
        conversation=conversation, position=1, role="assistant", text=attack, status="interrupted"
    )
    client.force_login(alice)
    body = client.get(reverse("conversation_detail", args=[conversation.id])).content.decode()
    assert_inert(body, page=True)
    assert 'alert("x")</script>' not in body
    assert body.count("&lt;script&gt;") >= 2  # shown as text, for both messages
