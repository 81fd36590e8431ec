"""The upload's gate: an ASGI middleware in front of Django's HTTP app that
decides on an upload request (`POST /c/<uuid>/attachments/`, and an import's
`POST /import/`, each with its own limit: `GATED_VIEWS`) from its headers,
before any of its body is read.

Django's ASGI handler reads the whole body (to a temporary file) before any
middleware or view runs, so the view's own checks (signed in, the size) came
after the body had been received in full: an anonymous POST of 100 MiB was read
to its last byte, then sent to sign in. Here, without calling `receive()`:

- no live signed-in session (the cookie is checked against the session store,
  as `AuthenticationMiddleware` would): 302 to sign in, as the view answers;
- no `Content-Length` (a chunked body): 411;
- a `Content-Length` past the limit: 413 `file_too_large`.

Otherwise the body goes to Django counted: once it passes the limit, whatever
the `Content-Length` said, Django is told the client left (it drops what it
spooled and answers nothing) and the gate answers 413.
"""

from __future__ import annotations

import json
from http.cookies import SimpleCookie
from importlib import import_module
from typing import Any
from urllib.parse import quote

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import get_user
from django.contrib.auth.views import redirect_to_login
from django.urls import Resolver404, resolve
from django.utils import translation
from django.utils.translation import gettext

from conversations.attachments.uploads import (
    AttachmentRefused,
    attachment_request_max_bytes,
    attachment_too_large,
)
from conversations.exports import import_request_max_bytes, import_too_large
from conversations.language import scope_language

UPLOAD_VIEW_NAME = "attachment_upload"
# The views whose bodies are gated: the largest body each takes, and the refusal
# past it (an AttachmentRefused with status 413, the size if it is known).
GATED_VIEWS = {
    UPLOAD_VIEW_NAME: (attachment_request_max_bytes, attachment_too_large),
    "conversation_import": (import_request_max_bytes, import_too_large),
}


class _Session:
    """What `django.contrib.auth.get_user` reads of a request: its session."""

    def __init__(self, session_key: str | None) -> None:
        engine = import_module(settings.SESSION_ENGINE)
        self.session = engine.SessionStore(session_key)


def _signed_in(session_key: str | None) -> bool:
    # get_user checks all AuthenticationMiddleware would: the user exists, is
    # active for the backend, and the session's hash still matches the password.
    return bool(session_key) and get_user(_Session(session_key)).is_authenticated


def _header(scope: dict[str, Any], name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value
    return None


def _session_key(scope: dict[str, Any]) -> str | None:
    raw = _header(scope, b"cookie")
    if not raw:
        return None
    cookies = SimpleCookie()
    try:
        cookies.load(raw.decode("latin-1"))
    except Exception:  # a malformed Cookie header is no session
        return None
    morsel = cookies.get(settings.SESSION_COOKIE_NAME)
    return morsel.value if morsel else None


def _gate_of(scope: dict[str, Any]) -> tuple | None:
    """The limit and refusal of a gated POST, else None."""
    if scope["type"] != "http" or scope.get("method") != "POST":
        return None
    try:
        return GATED_VIEWS.get(resolve(scope["path"]).view_name)
    except Resolver404:
        return None


async def _send_json(send, status: int, payload: dict[str, str]) -> None:
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                # The body was not read: the connection cannot carry another request.
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _send_redirect(send, location: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 302,
            "headers": [
                (b"location", location.encode("latin-1")),
                (b"content-length", b"0"),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b""})


class UploadGate:
    """ASGI middleware: refuses an upload from its headers, and cuts one whose
    body passes the limit while it streams. Every other request passes as is."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        gate = _gate_of(scope)
        if gate is None:
            await self.app(scope, receive, send)
            return
        max_bytes_of, too_large = gate
        # Refused before Django (and its LocaleMiddleware) runs: said in the
        # language the page would have been.
        with translation.override(scope_language(scope)):
            await self._gated(scope, receive, send, max_bytes_of, too_large)

    async def _gated(self, scope, receive, send, max_bytes_of, too_large) -> None:
        if not await sync_to_async(_signed_in)(_session_key(scope)):
            path = quote(scope["path"]) + (
                "?" + scope["query_string"].decode("latin-1") if scope.get("query_string") else ""
            )
            await _send_redirect(send, redirect_to_login(path)["Location"])
            return
        max_bytes = max_bytes_of()
        declared = _header(scope, b"content-length")
        try:
            length = int(declared) if declared is not None else None
        except ValueError:
            length = None
        if length is None or length < 0:
            refused = AttachmentRefused(
                "length_required",
                gettext(
                    "The upload must say its size (a Content-Length header); "
                    "a browser sends one with every file."
                ),
                411,
            )
            await _send_json(send, refused.http_status, refused.as_json())
            return
        if length > max_bytes:
            await _send_json(send, 413, too_large(length).as_json())
            return

        received = 0
        exceeded = False
        started = False

        async def counted_receive():
            nonlocal received, exceeded
            if exceeded:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    # Django drops what it spooled and answers nothing; the gate does.
                    exceeded = True
                    return {"type": "http.disconnect"}
            return message

        async def watched_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, counted_receive, watched_send)
        if exceeded and not started:
            await _send_json(send, 413, too_large().as_json())
