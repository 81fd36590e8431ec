"""Image and document blocks in the fake, driven by the real SDK: accepted in the
API's shapes, refused with the API's errors, counted as the API documents, and
read from the prompt cache on a follow-up like any other block."""

from __future__ import annotations

import base64
from typing import Any

import anthropic
import pytest

from claude.fake.app import FakeClaude
from claude.stream import ChatRequest, request_params
from tests.claude_files.samples import (
    file_block,
    image_block,
    image_bytes,
    pdf_block,
    pdf_bytes,
    png_header_only,
    text_document_block,
)

MODEL = "claude-sonnet-5-5"  # cache minimum 1024 tokens
QUESTION = {"type": "text", "text": "What is this?"}  # 13 characters: 4 tokens


def user(*blocks: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "user", "content": list(blocks)}]


async def attachment_tokens(client: anthropic.AsyncAnthropic, block: dict[str, Any]) -> int:
    """What one block adds to a prompt (the question alone is the baseline)."""
    alone = await client.messages.count_tokens(model=MODEL, messages=user(QUESTION))
    both = await client.messages.count_tokens(model=MODEL, messages=user(QUESTION, block))
    return both.input_tokens - alone.input_tokens


# --- Counting -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("width", "height", "kind", "media_type", "tokens"),
    [
        (200, 100, "PNG", "image/png", 27),  # 20,000 px / 750, rounded up
        (1000, 1000, "JPEG", "image/jpeg", 1334),  # the API's own table: ~1,334
        # Scaled to ~1.15 MP first: 1313 x 875 / 750.
        (3000, 2000, "PNG", "image/png", 1532),
        (64, 48, "GIF", "image/gif", 5),
        (640, 480, "WEBP", "image/webp", 410),
        # The long edge scaled to 1568 px: 1568 x 1 / 750.
        (8000, 10, "PNG", "image/png", 3),
    ],
)
async def test_an_image_costs_its_pixels_after_the_api_downscale(
    client: anthropic.AsyncAnthropic,
    width: int,
    height: int,
    kind: str,
    media_type: str,
    tokens: int,
) -> None:
    block = image_block(image_bytes(width, height, kind), media_type)
    assert await attachment_tokens(client, block) == tokens
    message = await client.messages.create(
        model=MODEL, max_tokens=400, messages=user(QUESTION, block)
    )
    counted = await client.messages.count_tokens(model=MODEL, messages=user(QUESTION, block))
    assert message.usage.input_tokens == counted.input_tokens
    assert f"an image of {width}×{height} px" in message.content[0].text


async def test_a_pdf_costs_each_page_as_an_image_plus_its_text(
    client: anthropic.AsyncAnthropic,
) -> None:
    # A letter page drawn at 1568 px is 1212 x 1568, scaled to ~1.15 MP: 1,532 tokens.
    assert await attachment_tokens(client, pdf_block(pdf_bytes(3))) == 3 * 1532
    # "Hello page 1" is 12 characters: 3 tokens more a page.
    assert await attachment_tokens(client, pdf_block(pdf_bytes(3, "Hello page"))) == 3 * 1535
    # The title is read too: "Q3 report" is 3 tokens.
    titled = pdf_block(pdf_bytes(3), title="Q3 report")
    assert await attachment_tokens(client, titled) == 3 * 1532 + 3


async def test_a_text_document_costs_its_text_and_title(client: anthropic.AsyncAnthropic) -> None:
    block = text_document_block("a" * 401, "notes.md")
    assert await attachment_tokens(client, block) == 101 + 2


async def test_file_sources_count_like_their_bytes(
    client: anthropic.AsyncAnthropic,
) -> None:
    png = image_bytes(200, 100)
    pdf = pdf_bytes(2, "Hello page")
    image_id = (await client.files.upload(file=("a.png", png, "image/png"))).id
    pdf_id = (await client.files.upload(file=("a.pdf", pdf, "application/pdf"))).id
    text_id = (await client.files.upload(file=("notes.md", b"b" * 40, "text/plain"))).id

    assert await attachment_tokens(client, file_block("image", image_id)) == 27
    assert await attachment_tokens(client, file_block("document", pdf_id)) == 2 * 1535
    titled = {**file_block("document", text_id), "title": "notes.md"}
    assert await attachment_tokens(client, titled) == 10 + 2


# --- The reply -------------------------------------------------------------------


async def test_the_reply_names_what_it_read(client: anthropic.AsyncAnthropic) -> None:
    blocks = (
        image_block(image_bytes(200, 100)),
        pdf_block(pdf_bytes(3), title="Q3 report"),
        text_document_block("hello", "notes.md"),
        QUESTION,
    )
    async with client.messages.stream(
        model=MODEL, max_tokens=400, messages=user(*blocks)
    ) as stream:
        streamed = "".join([piece async for piece in stream.text_stream])
    assert streamed.startswith(
        "**I read the attachments:** an image of 200×100 px; a PDF of 3 pages titled "
        '"Q3 report"; and the text document "notes.md".\n\n'
    )
    assert "What is this?" in streamed


async def test_without_new_attachments_the_reply_is_as_before(
    client: anthropic.AsyncAnthropic,
) -> None:
    plain = await client.messages.create(
        model=MODEL, max_tokens=400, messages=[{"role": "user", "content": "And then?"}]
    )
    history = [
        *user(image_block(image_bytes(200, 100)), QUESTION),
        {"role": "assistant", "content": "A blue rectangle."},
        {"role": "user", "content": "And then?"},
    ]
    follow_up = await client.messages.create(model=MODEL, max_tokens=400, messages=history)
    assert follow_up.content[0].text == plain.content[0].text
    assert "I read the attachments" not in plain.content[0].text


# --- The prompt cache --------------------------------------------------------------


async def cached_turns(
    client: anthropic.AsyncAnthropic, attachment: dict[str, Any]
) -> tuple[anthropic.types.Usage, anthropic.types.Usage]:
    """A question about an attachment and a follow-up, as the site sends them."""
    first_turn = user(attachment, {"type": "text", "text": "Summarize it."})
    first = await client.messages.create(
        **request_params(ChatRequest(model=MODEL, messages=first_turn, max_tokens=300))
    )
    history = [
        *first_turn,
        {"role": "assistant", "content": first.content[0].text},
        {"role": "user", "content": "And the second page?"},
    ]
    second = await client.messages.create(
        **request_params(ChatRequest(model=MODEL, messages=history, max_tokens=300))
    )
    return first.usage, second.usage


async def test_a_follow_up_reads_the_pdf_from_the_cache(client: anthropic.AsyncAnthropic) -> None:
    first, second = await cached_turns(client, pdf_block(pdf_bytes(2)))
    # 4 (message) + 2 x 1,532 (pages) + 4 ("Summarize it.") tokens, written once ...
    assert first.cache_creation_input_tokens == 4 + 2 * 1532 + 4
    assert first.cache_read_input_tokens == 0 and first.input_tokens == 0
    # ... and read by the follow-up, which writes only what is new.
    assert second.cache_read_input_tokens == first.cache_creation_input_tokens
    assert 0 < second.cache_creation_input_tokens < 500


async def test_a_follow_up_reads_a_file_source_from_the_cache(
    client: anthropic.AsyncAnthropic,
) -> None:
    pdf = pdf_bytes(2)
    file_id = (await client.files.upload(file=("a.pdf", pdf, "application/pdf"))).id
    first, second = await cached_turns(client, file_block("document", file_id))
    assert first.cache_creation_input_tokens == 4 + 2 * 1532 + 4
    assert second.cache_read_input_tokens == first.cache_creation_input_tokens

    # The prefix is keyed by the file id: the same bytes under another id are new.
    other_id = (await client.files.upload(file=("b.pdf", pdf, "application/pdf"))).id
    other, _ = await cached_turns(client, file_block("document", other_id))
    assert other.cache_read_input_tokens == 0
    assert other.cache_creation_input_tokens == first.cache_creation_input_tokens


async def test_a_different_image_misses_the_cache(client: anthropic.AsyncAnthropic) -> None:
    first, _ = await cached_turns(client, image_block(image_bytes(1200, 1000)))
    again, _ = await cached_turns(client, image_block(image_bytes(1200, 1001)))
    assert first.cache_creation_input_tokens > 1024
    assert again.cache_read_input_tokens == 0


def test_the_cache_breakpoint_goes_on_the_last_block_of_an_attachment_message() -> None:
    image = image_block(image_bytes(20, 10))
    pdf = pdf_block(pdf_bytes(1))
    earlier = {"role": "user", "content": [image, QUESTION]}
    messages = [earlier, {"role": "assistant", "content": "Hm."}, *user(image, pdf)]
    params = request_params(ChatRequest(model=MODEL, messages=messages, max_tokens=100))

    sent = params["messages"]
    assert sent[:2] == messages[:2]
    assert sent[2]["content"] == [image, {**pdf, "cache_control": {"type": "ephemeral"}}]
    # The caller's blocks are not changed in place.
    assert "cache_control" not in pdf and "cache_control" not in messages[2]["content"][-1]


# --- What the API refuses -------------------------------------------------------------

PNG = image_bytes(20, 10)


def _b64_image(data: str, media_type: str = "image/png") -> dict[str, Any]:
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


REFUSED = [
    (
        _b64_image("not base64!!"),
        "messages.0.content.1.image.source.base64: invalid base64 data",
    ),
    (
        image_block(PNG, "image/jpeg"),
        "messages.0.content.1.image.source.base64: The image was specified using the image/jpeg "
        "media type, but the image appears to be a image/png image",
    ),
    (
        image_block(b"<html><script>alert(1)</script></html>"),
        "Could not process image",
    ),
    (
        image_block(PNG[:40] + b"<html>"),  # a PNG header, then HTML
        "Could not process image",
    ),
    (
        image_block(PNG, "image/svg+xml"),
        "messages.0.content.1.image.source.base64.media_type: Input should be 'image/jpeg', "
        "'image/png', 'image/gif' or 'image/webp'",
    ),
    (
        image_block(image_bytes(8001, 10)),
        "messages.0.content.1.image.source.base64.data: At least one of the image dimensions "
        "exceed max allowed size: 8000 pixels",
    ),
    (
        image_block(png_header_only(30000, 30000)),  # 900 MP: never decoded
        "messages.0.content.1.image.source.base64.data: At least one of the image dimensions "
        "exceed max allowed size: 8000 pixels",
    ),
    (
        pdf_block(pdf_bytes(101)),
        "messages.0.content.1.pdf.source.base64.data: A maximum of 100 PDF pages may be provided.",
    ),
    (
        pdf_block(b"PK\x03\x04 a zip file renamed .pdf"),
        "messages.0.content.1.pdf.source.base64.data: The PDF specified was not valid.",
    ),
    (
        pdf_block(pdf_bytes(3)[:400]),  # truncated
        "messages.0.content.1.pdf.source.base64.data: The PDF specified was not valid.",
    ),
    (
        pdf_block(pdf_bytes(1, password="secret")),
        "messages.0.content.1.pdf.source.base64.data: The PDF specified is password protected.",
    ),
    (
        {
            "type": "document",
            "source": {
                "type": "base64",
                "media_type": "application/zip",
                "data": base64.b64encode(b"PK").decode(),
            },
        },
        "messages.0.content.1.document.source.base64.media_type: Input should be 'application/pdf'",
    ),
    (
        {"type": "document", "source": {"type": "text", "media_type": "text/html", "data": "x"}},
        "messages.0.content.1.document.source.text.media_type: Input should be 'text/plain'",
    ),
    (
        file_block("image", "file_011CNha8iCJcU1wXNR6q4V8w"),
        "messages.0.content.1.image.source.file.file_id: File not found: "
        "file_011CNha8iCJcU1wXNR6q4V8w",
    ),
    (
        file_block("document", "file_011CNha8iCJcU1wXNR6q4V8w"),
        "messages.0.content.1.document.source.file.file_id: File not found: "
        "file_011CNha8iCJcU1wXNR6q4V8w",
    ),
    (
        {"type": "image", "source": {"type": "path", "path": "/etc/passwd"}},
        "messages.0.content.1.image.source: Input tag 'path' found using 'type' does not match "
        "any of the expected tags: 'base64', 'file', 'url'",
    ),
]


@pytest.mark.parametrize(("block", "message"), REFUSED)
@pytest.mark.parametrize("endpoint", ["create", "count_tokens"])
async def test_refused_blocks_get_the_api_error(
    client: anthropic.AsyncAnthropic, block: dict[str, Any], message: str, endpoint: str
) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        if endpoint == "create":
            await client.messages.create(model=MODEL, max_tokens=50, messages=user(QUESTION, block))
        else:
            await client.messages.count_tokens(model=MODEL, messages=user(QUESTION, block))
    assert caught.value.status_code == 400
    assert caught.value.body["error"] == {"type": "invalid_request_error", "message": message}
    assert caught.value.body["request_id"].startswith("req_01")


async def test_the_page_limit_is_for_the_whole_request(client: anthropic.AsyncAnthropic) -> None:
    sixty = pdf_block(pdf_bytes(60))
    await client.messages.count_tokens(model=MODEL, messages=user(sixty, QUESTION))
    history = [
        *user(sixty, QUESTION),
        {"role": "assistant", "content": "Read it."},
        *user(pdf_block(pdf_bytes(41)), QUESTION),
    ]
    with pytest.raises(anthropic.BadRequestError) as caught:
        await client.messages.count_tokens(model=MODEL, messages=history)
    assert caught.value.body["error"]["message"] == (
        "messages.2.content.0.pdf.source.base64.data: A maximum of 100 PDF pages may be provided."
    )


async def test_file_sources_must_fit_the_block(client: anthropic.AsyncAnthropic) -> None:
    pdf_id = (await client.files.upload(file=("a.pdf", pdf_bytes(1), "application/pdf"))).id
    image_id = (await client.files.upload(file=("a.png", PNG, "image/png"))).id
    cases = [
        (file_block("image", pdf_id), "File type application/pdf is not supported for image"),
        (file_block("document", image_id), "File type image/png is not supported for document"),
    ]
    for block, message in cases:
        with pytest.raises(anthropic.BadRequestError, match=message):
            await client.messages.count_tokens(model=MODEL, messages=user(block))


async def test_many_images_must_be_at_most_2000_px(client: anthropic.AsyncAnthropic) -> None:
    small = image_block(image_bytes(100, 100))
    await client.messages.count_tokens(model=MODEL, messages=user(*[small] * 20, QUESTION))
    big = image_block(image_bytes(2001, 10))
    await client.messages.count_tokens(model=MODEL, messages=user(big, *[small] * 19))
    with pytest.raises(anthropic.BadRequestError, match="many-image requests: 2000 pixels"):
        await client.messages.count_tokens(model=MODEL, messages=user(big, *[small] * 20))


async def test_a_request_over_32_mb_is_413(
    app: FakeClaude, client: anthropic.AsyncAnthropic
) -> None:
    huge = image_block(b"\0" * (25 * 1024 * 1024))  # 33 MB once base64-encoded
    with pytest.raises(anthropic.RequestTooLargeError) as caught:
        await client.messages.create(model=MODEL, max_tokens=50, messages=user(huge))
    assert caught.value.status_code == 413
    assert caught.value.body["error"] == {
        "type": "request_too_large",
        "message": "Request exceeds the maximum allowed number of bytes.",
    }
