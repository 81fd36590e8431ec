"""The offline fake Claude API, driven by the real `anthropic` SDK.

Everything goes through the SDK's own HTTP stack (httpx2 with the streaming
ASGI transport, or a real socket for the standalone server), so these tests
check the fake against what the SDK actually parses, not against our reading
of the docs.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time
from collections.abc import MutableMapping
from typing import Any

import anthropic
import httpx2
import PIL.Image
import pytest
import uvicorn

from claude.fake import StreamingASGITransport, create_fake_app
from claude.fake.app import FakeClaude
from claude.fake.control import ControlError, parse_control, strip_directives
from claude.fake.replies import split_tokens
from claude.fake.tokens import estimate_tokens
from tests.conversations.conftest import free_port

MODEL = "claude-sonnet-5-5"  # adaptive thinking, cache minimum 1024 tokens
ENABLED_MODEL = "claude-opus-4-5"  # manual thinking only
NO_THINKING_MODEL = "claude-3-haiku"
# About 2,000 tokens: above every model's cache minimum used here.
LONG_SYSTEM = "You are a careful assistant for the Acme team. " * 170


@pytest.fixture
def app() -> FakeClaude:
    return create_fake_app()


def make_client(app: Any, **kwargs: Any) -> anthropic.AsyncAnthropic:
    options: dict[str, Any] = {"api_key": "test", "max_retries": 0, **kwargs}
    return anthropic.AsyncAnthropic(
        base_url="http://fake",
        http_client=httpx2.AsyncClient(transport=StreamingASGITransport(app=app)),
        **options,
    )


@pytest.fixture
def client(app: FakeClaude) -> anthropic.AsyncAnthropic:
    return make_client(app)


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def cached_system(ttl: str | None = None) -> list[dict[str, Any]]:
    cache_control: dict[str, Any] = {"type": "ephemeral"}
    if ttl:
        cache_control["ttl"] = ttl
    return [{"type": "text", "text": LONG_SYSTEM, "cache_control": cache_control}]


# --- Streaming ---------------------------------------------------------------


async def test_text_stream_assembles_the_final_message(client: anthropic.AsyncAnthropic) -> None:
    async with client.messages.stream(
        model=MODEL, max_tokens=1024, messages=user("How do I sort a list in Python?")
    ) as stream:
        pieces = [piece async for piece in stream.text_stream]
        message = await stream.get_final_message()

    text = "".join(pieces)
    assert len(pieces) > 20
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == text
    assert "How do I sort a list in Python?" in text
    assert "```" in text and "`" in text.replace("```", "") and "- " in text
    assert message.stop_reason == "end_turn"
    assert message.id.startswith("msg_01") and len(message.id) == len("msg_01") + 22
    assert message.model == MODEL
    assert stream.request_id is not None and stream.request_id.startswith("req_01")


async def test_replies_are_deterministic(client: anthropic.AsyncAnthropic) -> None:
    texts = []
    for _ in range(2):
        message = await client.messages.create(
            model=MODEL, max_tokens=1024, messages=user("Same question")
        )
        texts.append(message.content[0].text)
    assert texts[0] == texts[1]


async def test_usage_matches_count_tokens_and_emitted_tokens(
    client: anthropic.AsyncAnthropic,
) -> None:
    messages = [
        {"role": "user", "content": "First question about SQL indexes."},
        {"role": "assistant", "content": "An earlier answer."},
        {"role": "user", "content": [{"type": "text", "text": "Follow-up [[fake tokens=57]]"}]},
    ]
    counted = await client.messages.count_tokens(model=MODEL, system="Be brief.", messages=messages)
    async with client.messages.stream(
        model=MODEL, max_tokens=1024, system="Be brief.", messages=messages
    ) as stream:
        emitted = 0
        async for event in stream:
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                emitted += len(split_tokens(event.delta.text))
        message = await stream.get_final_message()

    usage = message.usage
    assert counted.input_tokens > 20
    assert usage.input_tokens == counted.input_tokens
    assert usage.cache_creation_input_tokens == 0 and usage.cache_read_input_tokens == 0
    assert emitted == 57
    assert usage.output_tokens == 57
    assert len(split_tokens(message.content[0].text)) == 57
    assert usage.service_tier == "standard"


async def test_small_max_tokens_stops_with_max_tokens(client: anthropic.AsyncAnthropic) -> None:
    async with client.messages.stream(
        model=MODEL, max_tokens=7, messages=user("Explain closures")
    ) as stream:
        message = await stream.get_final_message()
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 7
    assert len(split_tokens(message.content[0].text)) == 7


async def test_adaptive_thinking_comes_before_text_with_a_signature(
    client: anthropic.AsyncAnthropic,
) -> None:
    async with client.messages.stream(
        model=MODEL,
        max_tokens=2048,
        thinking={"type": "adaptive"},
        messages=user("Why is the sky blue? [[fake thinking_tokens=30 tokens=50]]"),
    ) as stream:
        kinds = [event.type async for event in stream]
        message = await stream.get_final_message()

    assert [block.type for block in message.content] == ["thinking", "text"]
    thinking = message.content[0]
    assert thinking.type == "thinking"
    assert thinking.thinking.startswith("The user asks about")
    assert thinking.signature
    assert len(split_tokens(thinking.thinking)) == 30
    assert "signature" in kinds and kinds.index("thinking") < kinds.index("text")
    assert message.usage.output_tokens == 80
    assert message.usage.output_tokens_details is not None
    assert message.usage.output_tokens_details.thinking_tokens == 30


async def test_thinking_counts_toward_max_tokens(client: anthropic.AsyncAnthropic) -> None:
    message = await client.messages.create(
        model=MODEL,
        max_tokens=20,
        thinking={"type": "adaptive"},
        messages=user("Think hard [[fake thinking_tokens=30]]"),
    )
    assert [block.type for block in message.content] == ["thinking"]
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 20


async def test_enabled_thinking_and_unsupported_modes(client: anthropic.AsyncAnthropic) -> None:
    message = await client.messages.create(
        model=ENABLED_MODEL,
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=user("Plan a trip"),
    )
    assert [block.type for block in message.content] == ["thinking", "text"]

    with pytest.raises(anthropic.BadRequestError, match="adaptive"):
        await client.messages.create(
            model=ENABLED_MODEL,
            max_tokens=2048,
            thinking={"type": "adaptive"},
            messages=user("x"),
        )
    with pytest.raises(anthropic.BadRequestError, match="does not support thinking"):
        await client.messages.create(
            model=NO_THINKING_MODEL,
            max_tokens=2048,
            thinking={"type": "enabled", "budget_tokens": 1024},
            messages=user("x"),
        )
    with pytest.raises(anthropic.BadRequestError, match="max_tokens"):
        await client.messages.create(
            model=ENABLED_MODEL,
            max_tokens=1024,
            thinking={"type": "enabled", "budget_tokens": 1024},
            messages=user("x"),
        )


async def test_stream_really_streams(client: anthropic.AsyncAnthropic) -> None:
    started = time.monotonic()
    first: float | None = None
    async with client.messages.stream(
        model=MODEL, max_tokens=1024, messages=user("Stream please [[fake tps=20 tokens=20]]")
    ) as stream:
        async for _ in stream.text_stream:
            if first is None:
                first = time.monotonic() - started
        total = time.monotonic() - started
    assert first is not None
    assert total > 0.8  # 20 tokens at 20/s
    assert first < 0.5 * total


async def test_ttft_delays_the_first_token_not_the_headers(
    client: anthropic.AsyncAnthropic,
) -> None:
    started = time.monotonic()
    async with client.messages.stream(
        model=MODEL, max_tokens=1024, messages=user("Hi [[fake ttft_ms=300 tokens=3]]")
    ) as stream:
        opened = time.monotonic() - started
        async for _ in stream.text_stream:
            break
        first = time.monotonic() - started
    assert opened < 0.2
    assert first >= 0.29


async def test_closing_the_stream_early_stops_the_app(app: FakeClaude) -> None:
    client = make_client(app)
    started = time.monotonic()
    async with client.messages.stream(
        model=MODEL, max_tokens=10_000, messages=user("Long one [[fake tps=50 tokens=5000]]")
    ) as stream:
        seen = 0
        async for _ in stream.text_stream:
            seen += 1
            if seen == 3:
                break
        assert app.active_streams == 1
    assert time.monotonic() - started < 2
    for _ in range(10):
        await asyncio.sleep(0)
    assert app.active_streams == 0


# --- Errors ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("error_type", "exception", "status"),
    [
        ("invalid_request_error", anthropic.BadRequestError, 400),
        ("authentication_error", anthropic.AuthenticationError, 401),
        ("billing_error", anthropic.PaymentRequiredError, 402),
        ("permission_error", anthropic.PermissionDeniedError, 403),
        ("not_found_error", anthropic.NotFoundError, 404),
        ("request_too_large", anthropic.RequestTooLargeError, 413),
        ("rate_limit_error", anthropic.RateLimitError, 429),
        ("api_error", anthropic.InternalServerError, 500),
        ("timeout_error", anthropic.GatewayTimeoutError, 504),
        ("overloaded_error", anthropic.OverloadedError, 529),
    ],
)
async def test_error_directive_raises_the_sdk_class(
    client: anthropic.AsyncAnthropic, error_type: str, exception: type[Exception], status: int
) -> None:
    with pytest.raises(exception) as caught:
        async with client.messages.stream(
            model=MODEL, max_tokens=100, messages=user(f"Hi [[fake error={error_type}]]")
        ) as stream:
            await stream.get_final_message()
    error = caught.value
    assert isinstance(error, anthropic.APIStatusError)
    assert error.status_code == status
    assert error.type == error_type
    assert error.request_id is not None and error.request_id.startswith("req_01")
    assert isinstance(error.body, dict) and error.body["request_id"] == error.request_id


async def test_rate_limit_sends_retry_after(client: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.RateLimitError) as caught:
        await client.messages.create(
            model=MODEL,
            max_tokens=100,
            messages=user("Hi [[fake error=rate_limit_error retry_after=7 retry_after_ms=5]]"),
        )
    assert caught.value.response.headers["retry-after"] == "7"
    assert caught.value.response.headers["retry-after-ms"] == "5"


async def test_missing_api_key_is_401(app: FakeClaude) -> None:
    client = make_client(app, api_key="")
    with pytest.raises(anthropic.AuthenticationError, match="invalid x-api-key"):
        await client.messages.create(model=MODEL, max_tokens=100, messages=user("Hi"))


async def test_x_api_key_is_accepted_with_the_old_version(app: FakeClaude) -> None:
    async with httpx2.AsyncClient(
        transport=StreamingASGITransport(app=app), base_url="http://fake"
    ) as http:
        body = {"model": MODEL, "max_tokens": 10, "temperature": 0.3, "messages": user("Hi")}
        response = await http.post(
            "/v1/messages",
            json=body,
            headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
        )
    assert response.status_code == 200
    assert response.json()["stop_reason"] == "max_tokens"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"extra_body": {"temperature": 0.5}}, "temperature: Extra inputs are not permitted"),
        ({"extra_body": {"bogus": 1}}, "bogus: Extra inputs are not permitted"),
        (
            {"messages": [{"role": "system", "content": "x"}, *user("Hi")]},
            "messages.0.role: Input should be 'user' or 'assistant'",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]},
            "messages: text content blocks must be non-empty",
        ),
        ({"messages": []}, "messages: at least one message is required"),
        ({"max_tokens": 0}, "max_tokens: Input should be greater than or equal to 1"),
        ({"max_tokens": 200_000, "timeout": 30}, "maximum allowed number of output tokens"),
        (
            {"extra_body": {"output_config": {"effort": "huge"}}},
            "output_config.effort: Input should be",
        ),
        (
            {"messages": user("Hi [[fake tokens=many]]")},
            "fake control: tokens must be an integer",
        ),
    ],
)
async def test_bad_requests_are_400(
    client: anthropic.AsyncAnthropic, kwargs: dict[str, Any], message: str
) -> None:
    params: dict[str, Any] = {"model": MODEL, "max_tokens": 100, "messages": user("Hi")}
    params.update(kwargs)
    with pytest.raises(anthropic.BadRequestError) as caught:
        await client.messages.create(**params)
    assert message in caught.value.message
    assert caught.value.type == "invalid_request_error"


async def test_raw_validation_messages(app: FakeClaude) -> None:
    headers = {"authorization": "Bearer k", "anthropic-version": "2026-10-21"}
    async with httpx2.AsyncClient(
        transport=StreamingASGITransport(app=app), base_url="http://fake"
    ) as http:

        async def error_of(body: Any) -> tuple[int, str]:
            content = body if isinstance(body, bytes) else json.dumps(body).encode()
            response = await http.post("/v1/messages", content=content, headers=headers)
            payload = response.json()
            assert payload["type"] == "error"
            assert response.headers["request-id"] == payload["request_id"]
            return response.status_code, payload["error"]["message"]

        assert await error_of(b"{not json") == (
            400,
            "There was an issue with your request body: invalid JSON",
        )
        assert await error_of({"model": MODEL, "messages": user("x")}) == (
            400,
            "max_tokens: Field required",
        )
        assert await error_of({"max_tokens": 5, "messages": user("x")}) == (
            400,
            "model: Field required",
        )
        assert await error_of({"model": MODEL, "max_tokens": 5}) == (
            400,
            "messages: Field required",
        )
        assert await error_of({"model": MODEL, "max_tokens": "5", "messages": user("x")}) == (
            400,
            "max_tokens: Input should be a valid integer",
        )
        assert await error_of(
            {"model": MODEL, "max_tokens": 5, "messages": [{"role": "user"}]}
        ) == (400, "messages.0.content: Field required")
        assert await error_of({"model": "claude-nope", "max_tokens": 5, "messages": user("x")}) == (
            404,
            "model: claude-nope",
        )


async def test_unknown_model_is_404(client: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.NotFoundError, match="model: claude-unknown-9"):
        await client.messages.create(model="claude-unknown-9", max_tokens=100, messages=user("Hi"))


async def test_body_over_32_mb_is_413(client: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.RequestTooLargeError):
        await client.messages.create(
            model=MODEL, max_tokens=100, messages=user("x" * (32 * 1024 * 1024 + 10))
        )


async def test_unknown_path_is_404_with_headers(app: FakeClaude) -> None:
    async with httpx2.AsyncClient(
        transport=StreamingASGITransport(app=app), base_url="http://fake"
    ) as http:
        response = await http.get("/v1/models")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"
    assert response.headers["request-id"].startswith("req_01")
    assert "anthropic-ratelimit-requests-remaining" in response.headers


async def test_mid_stream_error_after_some_text(client: anthropic.AsyncAnthropic) -> None:
    received: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as caught:
        async with client.messages.stream(
            model=MODEL,
            max_tokens=1024,
            messages=user("Hi [[fake error=overloaded_error error_at=5]]"),
        ) as stream:
            async for piece in stream.text_stream:
                received.append(piece)
    error = caught.value
    assert type(error) is anthropic.APIStatusError
    assert error.status_code == 200
    assert error.type == "overloaded_error"
    assert len(split_tokens("".join(received))) == 5


async def test_error_times_lets_the_retry_succeed(app: FakeClaude) -> None:
    client = make_client(app, max_retries=2)
    directive = "[[fake error=overloaded_error error_times=1 retry_after_ms=1]]"
    response = await client.messages.with_raw_response.create(
        model=MODEL, max_tokens=100, messages=user(f"Hi {directive}")
    )
    assert response.retries_taken == 1
    message = await response.parse()
    assert message.stop_reason in ("end_turn", "max_tokens")

    async with client.messages.stream(
        model=MODEL, max_tokens=100, messages=user(f"Again {directive}")
    ) as stream:
        assert (await stream.get_final_message()).content


async def test_header_control_wins(client: anthropic.AsyncAnthropic) -> None:
    message = await client.messages.create(
        model=MODEL,
        max_tokens=1024,
        system="Rules. [[fake tokens=40]]",
        messages=user("Hi [[fake tokens=30]]"),
        extra_headers={"x-fake-claude": "tokens=12"},
    )
    assert message.usage.output_tokens == 12


async def test_echo_and_forced_stop_reasons(client: anthropic.AsyncAnthropic) -> None:
    message = await client.messages.create(
        model=MODEL, max_tokens=1024, messages=user("Repeat *exactly* this. [[fake echo=1]]")
    )
    assert message.content[0].text == "Repeat *exactly* this."

    async with client.messages.stream(
        model=MODEL, max_tokens=1024, messages=user("Bad idea [[fake stop_reason=refusal]]")
    ) as stream:
        refused = await stream.get_final_message()
    assert refused.stop_reason == "refusal"
    assert refused.stop_details is not None and refused.stop_details.type == "refusal"
    assert refused.content[0].text == "I can't help with that request."


async def test_prefill_gets_a_continuation(client: anthropic.AsyncAnthropic) -> None:
    message = await client.messages.create(
        model=MODEL,
        max_tokens=1024,
        messages=[*user("Say hi [[fake tokens=5]]"), {"role": "assistant", "content": "Hi"}],
    )
    assert message.usage.output_tokens == 5


# --- Prompt caching -----------------------------------------------------------


async def test_prompt_cache_write_then_read(client: anthropic.AsyncAnthropic) -> None:
    usages = []
    for question in ("First question", "Second question"):
        message = await client.messages.create(
            model=MODEL, max_tokens=100, system=cached_system(), messages=user(question)
        )
        usages.append(message.usage)
    first, second = usages
    assert first.cache_creation_input_tokens > 1024
    assert first.cache_read_input_tokens == 0
    assert first.cache_creation.ephemeral_5m_input_tokens == first.cache_creation_input_tokens
    assert second.cache_read_input_tokens == first.cache_creation_input_tokens
    assert second.cache_creation_input_tokens == 0

    counted = await client.messages.count_tokens(
        model=MODEL, system=cached_system(), messages=user("Second question")
    )
    total = (
        second.input_tokens + second.cache_creation_input_tokens + second.cache_read_input_tokens
    )
    assert total == counted.input_tokens


async def test_short_prompt_is_not_cached(client: anthropic.AsyncAnthropic) -> None:
    system = [{"type": "text", "text": "Short.", "cache_control": {"type": "ephemeral"}}]
    for _ in range(2):
        message = await client.messages.create(
            model=MODEL, max_tokens=100, system=system, messages=user("Hi")
        )
        assert message.usage.cache_creation_input_tokens == 0
        assert message.usage.cache_read_input_tokens == 0


async def test_one_hour_ttl_is_reported_separately(client: anthropic.AsyncAnthropic) -> None:
    async with client.messages.stream(
        model=MODEL, max_tokens=100, system=cached_system("1h"), messages=user("Hi")
    ) as stream:
        usage = (await stream.get_final_message()).usage
    assert usage.cache_creation is not None
    assert usage.cache_creation.ephemeral_1h_input_tokens == usage.cache_creation_input_tokens > 0
    assert usage.cache_creation.ephemeral_5m_input_tokens == 0


async def test_automatic_caching_reads_the_growing_conversation(
    client: anthropic.AsyncAnthropic,
) -> None:
    long_question = "Please review this long document. " * 200
    first = await client.messages.create(
        model=MODEL,
        max_tokens=100,
        messages=user(long_question),
        extra_body={"cache_control": {"type": "ephemeral"}},
    )
    assert first.usage.cache_creation_input_tokens > 1024
    history = [
        *user(long_question),
        {"role": "assistant", "content": first.content[0].text},
        *user("And a follow-up."),
    ]
    second = await client.messages.create(
        model=MODEL,
        max_tokens=100,
        messages=history,
        extra_body={"cache_control": {"type": "ephemeral"}},
    )
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    assert second.usage.cache_creation_input_tokens > 0
    assert second.usage.input_tokens == 0


async def test_count_tokens_agrees_with_messages(client: anthropic.AsyncAnthropic) -> None:
    png = io.BytesIO()
    PIL.Image.new("RGB", (1500, 1500), "teal").save(png, "PNG")
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this picture?"},
                {
                    "type": "image",
                    "source": {
                        "type": "base64",
                        "media_type": "image/png",
                        "data": base64.b64encode(png.getvalue()).decode(),
                    },
                },
            ],
        }
    ]
    counted = await client.messages.count_tokens(model=MODEL, system="Sys", messages=messages)
    message = await client.messages.create(
        model=MODEL, max_tokens=50, system="Sys", messages=messages
    )
    # The image is scaled to ~1.15 MP before it is counted: 1072 x 1072 / 750.
    assert counted.input_tokens == message.usage.input_tokens > 1_532


# --- Non-streaming and headers ------------------------------------------------


async def test_non_streaming_create(client: anthropic.AsyncAnthropic) -> None:
    response = await client.messages.with_raw_response.create(
        model=MODEL, max_tokens=1024, messages=user("Tell me about bash [[fake tokens=25]]")
    )
    assert response.headers["content-type"] == "application/json"
    for name in ("requests", "tokens", "input-tokens", "output-tokens"):
        assert f"anthropic-ratelimit-{name}-limit" in response.headers
        assert response.headers[f"anthropic-ratelimit-{name}-reset"].endswith("Z")
    message = await response.parse()
    assert message._request_id is not None and message._request_id.startswith("req_01")
    assert message.usage.output_tokens == 25
    assert message.stop_reason == "end_turn"


# --- Pieces -------------------------------------------------------------------


def test_control_parsing() -> None:
    control = parse_control(
        ["sys [[fake tps=5 tokens=10]]", "user [[fake tokens=20 echo=1]]"], "ttft_ms=7"
    )
    assert (control.tps, control.tokens, control.echo, control.ttft_ms) == (5.0, 20, True, 7)
    assert parse_control(["no directive here"], None).source == ""
    assert strip_directives("Hello [[fake echo=1]] world") == "Hello  world"
    with pytest.raises(ControlError):
        parse_control(["[[fake colour=red]]"], None)
    with pytest.raises(ControlError):
        parse_control([], "error=teapot_error")


def test_token_estimate() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("a") == 1
    assert estimate_tokens("x" * 400) == 100


async def test_transport_surfaces_app_exceptions() -> None:
    async def broken_before(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("boom before")

    async def broken_during(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        raise RuntimeError("boom during")

    async with httpx2.AsyncClient(transport=StreamingASGITransport(app=broken_before)) as http:
        with pytest.raises(RuntimeError, match="boom before"):
            await http.get("http://fake/")
    async with httpx2.AsyncClient(transport=StreamingASGITransport(app=broken_during)) as http:
        async with http.stream("GET", "http://fake/") as response:
            chunks: list[bytes] = []
            with pytest.raises(RuntimeError, match="boom during"):
                async for chunk in response.aiter_raw():
                    chunks.append(chunk)
    assert chunks == [b"part"]


# --- The standalone server ----------------------------------------------------


# `standalone_server`: tests/conversations/conftest.py


async def test_standalone_server_streams_over_a_socket(standalone_server: str) -> None:
    client = anthropic.AsyncAnthropic(api_key="test", base_url=standalone_server, max_retries=0)
    async with client.messages.stream(
        model=MODEL,
        max_tokens=1024,
        thinking={"type": "adaptive"},
        messages=user("Over the wire [[fake tokens=30 tps=200]]"),
    ) as stream:
        text = "".join([piece async for piece in stream.text_stream])
        message = await stream.get_final_message()
    assert message.content[-1].text == text
    assert message.usage.output_tokens == 30 + 40
    assert stream.request_id is not None and stream.request_id.startswith("req_01")

    with pytest.raises(anthropic.OverloadedError):
        await client.messages.create(
            model=MODEL, max_tokens=10, messages=user("[[fake error=overloaded_error]]")
        )
    await client.close()


async def test_a_dropped_socket_stops_generation_under_uvicorn(app: FakeClaude) -> None:
    """uvicorn's send() ignores a gone client, so the fake must watch receive()."""
    port = free_port()
    config = uvicorn.Config(app, port=port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        client = anthropic.AsyncAnthropic(
            api_key="test", base_url=f"http://127.0.0.1:{port}", max_retries=0
        )
        async with client.messages.stream(
            model=MODEL, max_tokens=10_000, messages=user("Long [[fake tps=100 tokens=5000]]")
        ) as stream:
            async for _ in stream.text_stream:
                break
            assert app.active_streams == 1
        await client.close()
        deadline = time.monotonic() + 2
        while app.active_streams and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert app.active_streams == 0
    finally:
        server.should_exit = True
        await serving
