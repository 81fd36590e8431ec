"""The gateway on Bedrock and Vertex AI: model ids per provider and endpoint, the
models offered, streaming and errors in the app's own terms, what each provider
cannot do (and says so), through the real SDK clients and the fake."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from claude.client import (
    batches_available,
    batches_unavailable_message,
    claude_client,
    claude_client_reset,
    token_counting_available,
)
from claude.files import files_api_available
from claude.providers import (
    default_model,
    endpoint,
    model_choices,
    model_offered,
    provider_model_id,
    regional_premium,
)
from claude.stream import ChatRequest, ClaudeError, ReplyFinished, ReplyStream, TextDelta
from claude.tokens import input_tokens_count
from tests.conversations.conftest import standalone_server  # noqa: F401 (a fixture)


def chat_request(text: str, model: str = "claude-sonnet-5-5", **kwargs) -> ChatRequest:
    return ChatRequest(
        model=model,
        messages=[{"role": "user", "content": [{"type": "text", "text": text}]}],
        max_tokens=1024,
        **kwargs,
    )


async def collect(request: ChatRequest):
    events = []
    try:
        async with ReplyStream(request) as reply:
            async for event in reply:
                events.append(event)
    except ClaudeError as exc:
        return events, exc
    return events, None


# --- Model ids and the picker ------------------------------------------------------


def test_model_ids_per_provider_and_endpoint(claude_on):
    claude_on("bedrock")
    assert provider_model_id("claude-sonnet-4-5") == (
        "global.anthropic.claude-sonnet-4-5-20250929-v1:0"
    )
    assert provider_model_id("claude-sonnet-5-5") == "global.anthropic.claude-sonnet-5-5-v1:0"
    claude_on("bedrock", region="eu-west-1", endpoint="eu")
    assert provider_model_id("claude-haiku-4-5-20251001") == (
        "eu.anthropic.claude-haiku-4-5-20251001-v1:0"
    )
    claude_on("vertex", region="us-east5")
    assert provider_model_id("claude-sonnet-4-5") == "claude-sonnet-4-5@20250929"
    assert provider_model_id("claude-opus-5-5") == "claude-opus-5-5"


def test_the_picker_offers_what_the_provider_serves_here(claude_on, settings):
    everything = {m for m, _ in model_choices()}  # the fake: every model
    assert {"claude-opus-4-1", "claude-3-5-haiku", "claude-opus-5-5"} <= everything

    claude_on("bedrock")  # global: the models with a global profile
    offered = {m for m, _ in model_choices()}
    assert "claude-sonnet-4-5" in offered and "claude-sonnet-4" in offered
    assert not offered & {"claude-opus-4-1", "claude-opus-4", "claude-3-5-haiku", "claude-3-haiku"}

    claude_on("bedrock", region="ap-northeast-1", endpoint="jp")
    offered = {m for m, _ in model_choices()}
    assert "claude-sonnet-4-5" in offered  # the guide's table: Sonnet 4.5 has jp
    assert not offered & {"claude-opus-4-5", "claude-haiku-4-5", "claude-sonnet-4"}

    claude_on("bedrock", region="us-east-1", endpoint="us")
    assert {"claude-opus-4-1", "claude-3-5-haiku"} <= {m for m, _ in model_choices()}

    claude_on("vertex")  # global: no regional-only models
    assert not model_offered("claude-opus-4-1")
    claude_on("vertex", region="us-east5")
    assert model_offered("claude-opus-4-1")

    # The configured default is kept when offered, else the first model offered.
    claude_on("bedrock", region="ap-northeast-1", endpoint="jp")
    settings.CLAUDE_DEFAULT_MODEL = "claude-opus-4-5"
    assert default_model() == model_choices()[0][0] == "claude-opus-5-5"


def test_endpoints_and_the_regional_premium(claude_on):
    claude_on("bedrock", region="eu-west-1", endpoint="eu")
    where = endpoint()
    assert (where.provider, where.region, where.kind, where.profile) == (
        "bedrock", "eu-west-1", "regional", "eu"
    )
    assert regional_premium("claude-sonnet-4-5")  # Sonnet 4.5 and later: +10%
    assert not regional_premium("claude-sonnet-4")  # older: the old pricing
    claude_on("bedrock")
    assert endpoint().kind == "global" and not regional_premium("claude-sonnet-4-5")
    claude_on("vertex", region="europe-west1")
    assert endpoint().kind == "regional" and regional_premium("claude-opus-5-5")
    claude_on("vertex", region="global")
    assert not regional_premium("claude-opus-5-5")


def test_what_bedrock_and_vertex_cannot_do_is_said(claude_on, settings):
    settings.CLAUDE_PROVIDER = "anthropic"
    assert batches_available() and token_counting_available() and files_api_available()
    claude_on("bedrock")
    assert not batches_available() and not token_counting_available()
    assert not files_api_available()
    assert "Amazon Bedrock" in batches_unavailable_message()
    assert "Anthropic API" in batches_unavailable_message()
    claude_on("vertex")
    assert not batches_available() and token_counting_available() and not files_api_available()
    assert "Google Vertex AI" in batches_unavailable_message()


# --- Streaming through the providers' clients ----------------------------------------


@pytest.mark.parametrize("provider", ["bedrock", "vertex"])
async def test_a_reply_streams_through_the_provider(claude_on, provider):
    claude_on(provider)
    events, error = await collect(
        chat_request("[[fake echo=1]] hello from the cloud", model="claude-sonnet-4-5")
    )
    assert error is None
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert text == "hello from the cloud"
    finished = events[-1]
    assert isinstance(finished, ReplyFinished)
    # The provider names the dated model; priced and stored as the catalog's.
    assert finished.model in ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5")
    assert finished.usage.input_tokens > 0 and finished.usage.output_tokens > 0
    assert finished.request_id
    assert finished.content == [{"type": "text", "text": "hello from the cloud"}]


@pytest.mark.parametrize("provider", ["bedrock", "vertex"])
async def test_thinking_streams_before_the_text(claude_on, provider):
    claude_on(provider)
    events, error = await collect(
        chat_request("[[fake tokens=10]] think first", thinking_effort="low")
    )
    assert error is None
    finished = events[-1]
    assert [b["type"] for b in finished.content] == ["thinking", "text"]
    assert finished.content[0]["signature"]


@pytest.mark.parametrize(
    ("provider", "directive", "code", "api_error_type"),
    [
        ("bedrock", "error=rate_limit_error", "rate_limited", "ThrottlingException"),
        ("bedrock", "error=overloaded_error", "overloaded", "ServiceUnavailableException"),
        ("bedrock", "error=authentication_error", "auth", "UnrecognizedClientException"),
        ("bedrock", "error=permission_error", "permission", "AccessDeniedException"),
        ("bedrock", "error=request_too_large", "context_too_long", "ValidationException"),
        ("bedrock", "error=overloaded_error error_at=3", "overloaded",
         "serviceUnavailableException"),
        ("bedrock", "error=rate_limit_error error_at=3", "rate_limited", "throttlingException"),
        ("vertex", "error=rate_limit_error", "rate_limited", "RESOURCE_EXHAUSTED"),
        ("vertex", "error=authentication_error", "auth", "UNAUTHENTICATED"),
        ("vertex", "error=overloaded_error", "overloaded", "overloaded_error"),
        ("vertex", "error=overloaded_error error_at=3", "overloaded", "overloaded_error"),
    ],
)
async def test_provider_errors_are_claude_errors(
    claude_on, provider, directive, code, api_error_type
):
    claude_on(provider)
    events, error = await collect(chat_request(f"[[fake {directive}]] a long story"))
    assert isinstance(error, ClaudeError)
    assert (error.code, error.api_error_type) == (code, api_error_type)
    assert len(error.human_message) > 20
    if "error_at" in directive:
        assert events and all(isinstance(e, TextDelta) for e in events)


async def test_a_model_the_endpoint_does_not_serve_is_refused_plainly(claude_on):
    """A conversation kept from before a move to Bedrock's Japan profile."""
    claude_on("bedrock", region="ap-northeast-1", endpoint="jp")
    events, error = await collect(chat_request("hi", model="claude-opus-4-5"))
    assert isinstance(error, ClaudeError) and error.code == "bad_request"
    assert "model identifier is invalid" in error.human_message


async def test_token_counting_bedrock_says_no_vertex_counts(claude_on):
    claude_on("bedrock")
    with pytest.raises(ClaudeError) as caught:
        await input_tokens_count(chat_request("count me"))
    assert caught.value.code == "unsupported"
    assert "Amazon Bedrock has no token counting" in caught.value.human_message
    claude_on("vertex")
    counted = await input_tokens_count(chat_request("count me " * 40))
    assert counted > 80


# --- Over a real socket, on the SDK's aiohttp transport ---------------------------------


@pytest.fixture
async def gateway_over_tcp(claude_on) -> AsyncIterator[Callable[[str, str], None]]:
    def point_at(provider: str, base_url: str) -> None:
        claude_on(provider, base_url=base_url)

    yield point_at
    await claude_client().close()
    claude_client_reset()


@pytest.mark.parametrize("provider", ["bedrock", "vertex"])
async def test_the_standalone_fake_serves_each_provider_over_tcp(
    standalone_server,  # noqa: F811
    gateway_over_tcp,
    provider,
):
    gateway_over_tcp(provider, standalone_server)
    events, error = await collect(chat_request("[[fake echo=1 tps=0]] over a socket"))
    assert error is None
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "over a socket"
    events, error = await collect(chat_request("[[fake error=overloaded_error error_at=2 tps=0]] x y z"))
    assert isinstance(error, ClaudeError) and error.code == "overloaded"


def test_the_provider_tests_cannot_reach_the_network(claude_on):
    """What keeps the tests above honest: the instance metadata service, STS and
    Google's token endpoint are out of reach, so an SDK that tried them would fail."""
    import socket

    claude_on("bedrock")
    with pytest.raises(OSError, match="no name lookups"):
        socket.create_connection(("169.254.169.254", 80), timeout=1)
    with socket.socket() as sock, pytest.raises(OSError, match="no network beyond loopback"):
        sock.connect(("169.254.169.254", 80))
    with pytest.raises(OSError, match="no name lookups"):
        socket.getaddrinfo("oauth2.googleapis.com", 443)
