"""Errors from Claude in the app's own terms: a code the UI acts on, a message a
person can read, and whether pressing Retry can help.

The code is what is stored with a failed reply (`Message.error_code`), so a
frame rebuilt from the row says exactly what the live one said.
"""

from __future__ import annotations

import re
from typing import Any

import anthropic
from django.utils.translation import gettext_noop

# Marked for translation but kept in English here: a message is stored with the
# failed reply (`Message.error_message`) and shown later to whoever reads the
# conversation, so the display translates it then, in the reader's language
# (conversations.streaming.frames.error_text). A message is what happened and,
# where Retry can help, a sentence saying to press it: two msgids, so that the
# card can show the second only while Retry is there in every language
# (`error_message_parts` finds them again in a stored message).
_MESSAGE_PARTS = {
    "rate_limited": (
        gettext_noop("Claude is getting too many requests right now."),
        gettext_noop("Wait a moment, then press Retry."),
    ),
    "overloaded": (
        gettext_noop("Claude is overloaded right now. Your message is saved."),
        gettext_noop("Press Retry in a moment."),
    ),
    "auth": (
        gettext_noop("This site's Claude API key was refused. Ask an administrator to check it."),
        "",
    ),
    "permission": (
        gettext_noop("This site's Claude account may not use this model. Ask an administrator."),
        "",
    ),
    "billing": (
        gettext_noop(
            "The Claude account behind this site has a billing problem. Ask an administrator."
        ),
        "",
    ),
    "context_too_long": (
        gettext_noop(
            "This conversation is too long for the model. Start a new conversation or shorten your message."
        ),
        "",
    ),
    "not_found": (
        gettext_noop("Claude does not know this model. Pick another model for a new conversation."),
        "",
    ),
    "upstream": (gettext_noop("Claude had an internal error."), gettext_noop("Press Retry.")),
    "timeout": (gettext_noop("Claude took too long to answer."), gettext_noop("Press Retry.")),
    "connection": (
        gettext_noop("Could not reach Claude."),
        gettext_noop("Check the connection, then press Retry."),
    ),
    "bad_request": (gettext_noop("Claude rejected the request."), ""),
    "unsupported": (gettext_noop("This site's Claude provider does not offer that."), ""),
}
_HUMAN_MESSAGES = {code: " ".join(filter(None, parts)) for code, parts in _MESSAGE_PARTS.items()}

# The sentence of a stored message that says to press Retry (and those of rows
# stored before the parts were apart, "...saved: press Retry in a moment.").
_RETRY_SENTENCE = re.compile(
    r"^(?P<main>.*?[.:])\s*(?P<hint>[^.:]*\bpress retry\b[^.:]*\.?)\s*$", re.I
)


def error_message_parts(message: str) -> tuple[str, str]:
    """A stored (English) message as (what happened, the sentence to press Retry or
    ""), each the msgid it was made of."""
    message = str(message or "")
    match = _RETRY_SENTENCE.match(message)
    if not match:
        return message, ""
    main = match.group("main")
    if main.endswith(":"):
        main = main[:-1] + "."
    hint = match.group("hint").strip()
    return main, hint[:1].upper() + hint[1:]


# The API's own words in brackets after ours (error_text reads them back out).
BAD_REQUEST_WITH_DETAIL = gettext_noop("Claude rejected the request. (%(detail)s)")


class ClaudeError(Exception):
    """A failed call, with a code the UI can act on and a message a person can read."""

    def __init__(
        self,
        code: str,
        *,
        detail: str = "",
        api_error_type: str = "",
        request_id: str = "",
        status: int | None = None,
    ) -> None:
        self.code = code
        self.detail = detail
        self.api_error_type = api_error_type or code
        self.request_id = request_id
        self.status = status
        super().__init__(f"{code}: {detail}" if detail else code)

    @property
    def human_message(self) -> str:
        message = _HUMAN_MESSAGES.get(self.code, _HUMAN_MESSAGES["upstream"])
        if self.code == "unsupported" and self.detail:
            return self.detail
        if self.code == "bad_request" and self.detail:
            message = BAD_REQUEST_WITH_DETAIL % {"detail": self.detail}
        return message

    @property
    def retryable(self) -> bool:
        return error_retryable(self.code)


# A reply cut by a server restart: not Claude's error, but stored and shown like one.
INTERRUPTED_CODE = "interrupted"
INTERRUPTED_MESSAGE = " ".join(
    (
        gettext_noop("The answer was interrupted by a server restart."),
        gettext_noop("Press Retry for a new one."),
    )
)

_RETRYABLE = {"rate_limited", "overloaded", "upstream", "timeout", "connection", INTERRUPTED_CODE}


def error_retryable(code: str) -> bool:
    """Whether retrying can help: a busy or failing service can, a refused key or
    a too-long conversation cannot."""
    return code in _RETRYABLE


# Amazon Bedrock's exceptions (the `x-amzn-ErrorType` header before a stream, the
# `:exception-type` of an exception frame in one, first letter either case) and
# Google's statuses (Vertex AI's own errors: `{"error": {"status": ...}}`), in our codes.
_AWS_CODES = {
    "throttlingexception": "rate_limited",
    "servicequotaexceededexception": "rate_limited",
    "modelnotreadyexception": "overloaded",
    "serviceunavailableexception": "overloaded",
    "internalserverexception": "upstream",
    "modelstreamerrorexception": "upstream",
    "modelerrorexception": "upstream",
    "modeltimeoutexception": "timeout",
    "validationexception": "bad_request",
    "accessdeniedexception": "permission",
    "unrecognizedclientexception": "auth",
    "invalidsignatureexception": "auth",
    "incompletesignatureexception": "auth",
    "missingauthenticationtokenexception": "auth",
    "expiredtokenexception": "auth",
    "resourcenotfoundexception": "not_found",
}
_GOOGLE_CODES = {
    "UNAUTHENTICATED": "auth",
    "PERMISSION_DENIED": "permission",
    "NOT_FOUND": "not_found",
    "RESOURCE_EXHAUSTED": "rate_limited",
    "INVALID_ARGUMENT": "bad_request",
    "FAILED_PRECONDITION": "bad_request",
    "UNAVAILABLE": "overloaded",
    "DEADLINE_EXCEEDED": "timeout",
    "INTERNAL": "upstream",
}
_ANTHROPIC_CODES = {
    "rate_limit_error": "rate_limited",
    "overloaded_error": "overloaded",
    "authentication_error": "auth",
    "permission_error": "permission",
    "billing_error": "billing",
    "not_found_error": "not_found",
    "request_too_large": "context_too_long",
    "api_error": "upstream",
    "timeout_error": "timeout",
    "invalid_request_error": "bad_request",
}
# When the body names nothing we know: by the HTTP status.
_STATUS_CODES = {
    401: "auth",
    402: "billing",
    403: "permission",
    404: "not_found",
    408: "timeout",
    413: "context_too_long",
    429: "rate_limited",
    503: "overloaded",
    504: "timeout",
    529: "overloaded",
}


def claude_error_from_sdk(exc: anthropic.APIError) -> ClaudeError:
    if isinstance(exc, anthropic.APITimeoutError):
        return ClaudeError("timeout", api_error_type="timeout")
    if isinstance(exc, anthropic.APIConnectionError):
        return ClaudeError("connection", api_error_type="connection_error")
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    return claude_error_from_body(
        getattr(exc, "body", None),
        status=getattr(exc, "status_code", None),
        request_id=getattr(exc, "request_id", None) or headers.get("x-amzn-requestid", ""),
        aws_error_type=headers.get("x-amzn-errortype", ""),
    )


def claude_error_from_body(
    body: Any, *, status: int | None, request_id: str, aws_error_type: str = ""
) -> ClaudeError:
    """An error body as our error: the API's {"type": "error", "error": {"type",
    "message"}}, Bedrock's {"message"} with its `x-amzn-ErrorType`
    ("ThrottlingException:http://internal.amazon.com/..."), or Google's
    {"error": {"code", "message", "status"}}."""
    error_type = aws_error_type.partition(":")[0]
    detail = ""
    code = ""
    if isinstance(body, dict):
        error = body.get("error") if isinstance(body.get("error"), dict) else body
        error_type = error_type or str(error.get("type") or "")
        detail = str(error.get("message") or body.get("message") or "")
        google_status = error.get("status")
        if not error_type and isinstance(google_status, str):
            error_type = google_status
            code = _GOOGLE_CODES.get(google_status, "")
    code = (
        code
        or _ANTHROPIC_CODES.get(error_type)
        or _AWS_CODES.get(error_type.lower())
        or _STATUS_CODES.get(status or 0)
        or ("upstream" if (status or 500) >= 500 else "bad_request")
    )
    if code == "bad_request" and "too long" in detail.lower():
        code = "context_too_long"
    return ClaudeError(
        code,
        detail=detail,
        api_error_type=error_type or f"http_{status}",
        request_id=request_id,
        status=status,
    )
