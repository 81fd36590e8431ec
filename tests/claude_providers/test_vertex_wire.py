"""The fake speaks Google Vertex AI's wire protocol for Claude, as the SDK's own
`AsyncAnthropicVertex` uses it: `…/publishers/anthropic/models/{m}:rawPredict`
and `:streamRawPredict` (SSE), `count-tokens:rawPredict`, a bearer token, and
Google's errors beside the API's."""

from __future__ import annotations

import anthropic
import httpx2
import pytest

from claude.fake import StreamingASGITransport
from tests.claude_providers.conftest import GOOGLE_TOKEN, PROJECT, user

SONNET_45 = "claude-sonnet-4-5@20250929"
OPUS_41 = "claude-opus-4-1@20250805"


async def test_raw_predict_answers_a_message_the_sdk_reads(vertex, recorder):
    client = vertex()
    message = await client.messages.create(
        model=SONNET_45, max_tokens=200, messages=user("[[fake echo=1]] Hello, Vertex")
    )
    assert message.content[0].text == "Hello, Vertex"
    assert message.id.startswith("msg_vrtx_01")
    assert message.model == "claude-sonnet-4-5-20250929"
    seen = recorder.last
    assert seen.path == (
        f"/v1/projects/{PROJECT}/locations/global/publishers/anthropic/models/"
        f"{SONNET_45}:rawPredict"
    )
    assert seen.headers["authorization"] == f"Bearer {GOOGLE_TOKEN}"
    body = seen.json
    assert body["anthropic_version"] == "2026-10-21" and "model" not in body


async def test_stream_raw_predict_is_sse_the_sdk_decodes(vertex, recorder):
    client = vertex(region="us-east5")
    async with client.messages.stream(
        model=OPUS_41,
        max_tokens=4000,
        messages=user("Tell me about SSE [[fake tokens=30]]"),
        thinking={"type": "enabled", "budget_tokens": 1024},
    ) as stream:
        text = "".join([piece async for piece in stream.text_stream])
        final = await stream.get_final_message()
    assert recorder.last.path.endswith(
        f"/locations/us-east5/publishers/anthropic/models/{OPUS_41}:streamRawPredict"
    )
    assert recorder.last.json["stream"] is True
    assert [block.type for block in final.content] == ["thinking", "text"]
    assert final.content[1].text == text
    assert final.usage.output_tokens == 30 + 40
    assert stream.response.headers["content-type"].startswith("text/event-stream")


async def test_count_tokens_is_a_raw_predict_of_its_own(vertex, recorder):
    client = vertex()
    counted = await client.messages.count_tokens(model=SONNET_45, messages=user("count me " * 50))
    message = await client.messages.create(
        model=SONNET_45, max_tokens=20, messages=user("count me " * 50)
    )
    assert counted.input_tokens == message.usage.input_tokens > 100
    assert recorder.seen[0].path == (
        f"/v1/projects/{PROJECT}/locations/global/publishers/anthropic/models/"
        "count-tokens:rawPredict"
    )
    assert recorder.seen[0].json["model"] == SONNET_45


@pytest.mark.parametrize(
    ("directive", "status", "error_class", "shape"),
    [
        # What Google answers itself comes in Google's shape...
        ("rate_limit_error", 429, anthropic.RateLimitError, "RESOURCE_EXHAUSTED"),
        ("authentication_error", 401, anthropic.AuthenticationError, "UNAUTHENTICATED"),
        ("permission_error", 403, anthropic.PermissionDeniedError, "PERMISSION_DENIED"),
        # ... the model's own errors in the API's.
        ("overloaded_error", 529, anthropic.OverloadedError, "overloaded_error"),
        ("api_error", 500, anthropic.InternalServerError, "api_error"),
    ],
)
async def test_errors_before_the_stream(vertex, directive, status, error_class, shape):
    client = vertex()
    with pytest.raises(error_class) as caught:
        await client.messages.create(
            model=SONNET_45, max_tokens=20, messages=user(f"[[fake error={directive}]] hi")
        )
    error = caught.value
    assert error.status_code == status
    body = error.body
    if shape.isupper():
        assert body["error"]["status"] == shape and body["error"]["code"] == status
    else:
        assert body["type"] == "error" and body["error"]["type"] == shape


async def test_an_error_mid_stream_is_an_sse_error_event(vertex):
    client = vertex()
    with pytest.raises(anthropic.APIStatusError) as caught:
        async with client.messages.stream(
            model=SONNET_45,
            max_tokens=200,
            messages=user("[[fake error=overloaded_error error_at=3]] a story"),
        ) as stream:
            async for _ in stream.text_stream:
                pass
    assert caught.value.status_code == 200
    assert caught.value.body["error"]["type"] == "overloaded_error"


async def test_a_model_the_global_endpoint_does_not_serve_is_not_found(vertex):
    """Opus 4.1 is regional only: the global endpoint answers Google's 404."""
    client = vertex()
    with pytest.raises(anthropic.NotFoundError) as caught:
        await client.messages.create(model=OPUS_41, max_tokens=5, messages=user("hi"))
    assert caught.value.body["error"]["status"] == "NOT_FOUND"
    assert OPUS_41 in caught.value.body["error"]["message"]
    regional = vertex(region="europe-west1")
    message = await regional.messages.create(
        model=OPUS_41, max_tokens=5, messages=user("[[fake tokens=2]] hi")
    )
    assert message.usage.output_tokens == 2


async def test_a_request_without_a_token_is_unauthenticated(recorder):
    async with httpx2.AsyncClient(
        transport=StreamingASGITransport(app=recorder), base_url="http://vertex.fake.invalid"
    ) as http:
        response = await http.post(
            f"/v1/projects/{PROJECT}/locations/global/publishers/anthropic/models/"
            f"{SONNET_45}:rawPredict",
            json={"anthropic_version": "vertex-2023-10-16", "max_tokens": 5,
                  "messages": user("hi")},
        )
    assert response.status_code == 401
    assert response.json()["error"]["status"] == "UNAUTHENTICATED"


async def test_url_sources_are_refused(vertex):
    client = vertex()
    with pytest.raises(anthropic.BadRequestError) as caught:
        await client.messages.create(
            model=SONNET_45,
            max_tokens=20,
            messages=[{"role": "user", "content": [
                {"type": "document", "source": {"type": "url", "url": "https://x.test/a.pdf"}},
                {"type": "text", "text": "summarise"},
            ]}],
        )
    assert "url sources are not supported on Vertex AI" in caught.value.body["error"]["message"]


async def test_the_sdk_refuses_batches_on_vertex(vertex, recorder):
    client = vertex()
    with pytest.raises(anthropic.AnthropicError, match="Batch API is not supported"):
        await client.messages.batches.create(requests=[])
    assert recorder.seen == []
