"""Builds the SDK client from settings. Nothing outside this package imports `anthropic`.

Settings are read when a client is built, never at import. Clients hold an
HTTP connection pool bound to the event loop that made them, so one client is
kept per running loop.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

import anthropic
import httpx2
from django.conf import settings
from django.utils.translation import gettext

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()
_fake_app: Any = None


def claude_provider() -> str:
    """Which backend serves Claude here: anthropic, bedrock, vertex or fake."""
    return settings.CLAUDE_PROVIDER


# What the providers' SDK clients refuse (`anthropic.lib.bedrock` / `lib.vertex`):
# Bedrock and Vertex AI serve Messages; neither has Message Batches (the SDK raises
# "The Batch API is not supported in Bedrock yet" before any request), and
# Bedrock has no token counting. Callers ask first and say so, never fail silently.
_BATCH_PROVIDERS = ("anthropic", "fake")
_TOKEN_COUNTING_PROVIDERS = ("anthropic", "fake", "vertex")
_PROVIDER_NAMES = {"bedrock": "Amazon Bedrock", "vertex": "Google Vertex AI"}


def claude_provider_name() -> str:
    """The provider as a person reads it: "Amazon Bedrock", "Google Vertex AI", ..."""
    # Within a sentence ("... is not offered on the Anthropic API here"): marked,
    # as the others are names no language translates.
    return _PROVIDER_NAMES.get(settings.CLAUDE_PROVIDER) or gettext("the Anthropic API")


def batches_available() -> bool:
    """Whether Message Batches (half-price, asynchronous) can be used here."""
    return settings.CLAUDE_PROVIDER in _BATCH_PROVIDERS


def batches_unavailable_message() -> str:
    """What to tell a person who asked for a batch where there are none."""
    return gettext(
        "Batch jobs need the Anthropic API: this site reaches Claude through "
        "%(provider)s, which has no Message Batches."
    ) % {"provider": claude_provider_name()}


def token_counting_available() -> bool:
    """Whether the free token-counting endpoint exists here (not on Bedrock)."""
    return settings.CLAUDE_PROVIDER in _TOKEN_COUNTING_PROVIDERS


def token_counting_unavailable_message() -> str:
    return gettext(
        "Estimated on this site: %(provider)s has no token counting, "
        "so the count is a conservative local estimate."
    ) % {"provider": claude_provider_name()}


def claude_is_fake() -> bool:
    """True when answers come from the offline fake (in process or standalone)."""
    if settings.CLAUDE_PROVIDER == "fake":
        return True
    return settings.CLAUDE_PROVIDER == "anthropic" and not settings.ANTHROPIC_API_KEY


def fake_app() -> Any:
    """The in-process fake's ASGI app, one per process so its prompt cache persists."""
    global _fake_app
    if _fake_app is None:
        from claude.fake.app import fake_app_from_env

        _fake_app = fake_app_from_env()
    return _fake_app


def _build_client() -> Any:
    timeout = httpx2.Timeout(settings.CLAUDE_TIMEOUT_SECONDS, connect=5.0)
    common: dict[str, Any] = {"max_retries": settings.CLAUDE_MAX_RETRIES, "timeout": timeout}
    provider = settings.CLAUDE_PROVIDER
    if provider == "fake":
        from claude.fake.transport import StreamingASGITransport

        return anthropic.AsyncAnthropic(
            api_key="fake-key",
            base_url="http://fake-claude.invalid",
            http_client=httpx2.AsyncClient(transport=StreamingASGITransport(app=fake_app())),
            **common,
        )
    if provider == "bedrock":
        # Credentials as boto3 finds them (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,
        # AWS_PROFILE, a role), or a Bedrock API key (AWS_BEARER_TOKEN_BEDROCK),
        # each read by the SDK; requests are signed with SigV4 locally.
        return anthropic.AsyncAnthropicBedrock(
            aws_region=settings.CLAUDE_AWS_REGION or None,
            base_url=settings.CLAUDE_BEDROCK_BASE_URL or None,
            http_client=_http_client(timeout),
            **common,
        )
    if provider == "vertex":
        # A static token when one is set (CLAUDE_VERTEX_ACCESS_TOKEN), else Google's
        # application default credentials, refreshed by the SDK through google-auth.
        return anthropic.AsyncAnthropicVertex(
            region=settings.CLAUDE_VERTEX_REGION,
            project_id=settings.CLAUDE_VERTEX_PROJECT_ID,
            access_token=settings.CLAUDE_VERTEX_ACCESS_TOKEN or None,
            base_url=settings.CLAUDE_VERTEX_BASE_URL or None,
            http_client=_http_client(timeout),
            **common,
        )
    return anthropic.AsyncAnthropic(
        api_key=settings.ANTHROPIC_API_KEY or "fake-key",
        base_url=settings.ANTHROPIC_BASE_URL or None,
        http_client=_http_client(timeout),
        **common,
    )


def _http_client(timeout: httpx2.Timeout) -> Any:
    """The SDK's aiohttp transport: its C HTTP parser and native asyncio stream read
    a streamed reply for about half the CPU of the default httpx2 one (measured:
    71 vs 132 us per event, 200 streams at 50 tokens/s). Requests, signing,
    retries and errors are still the SDK's own. (Tests replace this function to
    reach the in-process fake through the providers' clients.)"""
    return anthropic.DefaultAioHttpClient(timeout=timeout)


def build_client() -> Any:
    """A new SDK client that the caller closes (`async with build_client() as client`).

    For calls made on a short-lived event loop (a Celery task through
    `async_to_sync`), where the per-loop client of `claude_client()` would be
    left open behind a loop that is gone.
    """
    return _build_client()


def claude_client() -> Any:
    """The async SDK client for the running event loop."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        client = _build_client()
        _clients[loop] = client
    return client


def claude_client_reset() -> None:
    """Forget built clients and the fake's state (tests change settings between runs)."""
    global _fake_app
    _clients.clear()
    _fake_app = None
