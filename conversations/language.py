"""The language of a request Django's LocaleMiddleware never sees: a websocket
(Channels runs no Django middleware) or an upload the ASGI gate refuses first."""

from __future__ import annotations

from django.conf import settings
from django.utils import translation
from django.utils.translation.trans_real import parse_accept_lang_header


def scope_language(scope: dict) -> str:
    """Chosen as LocaleMiddleware chooses a page's: the language cookie, else the
    Accept-Language header, among settings.LANGUAGES; else LANGUAGE_CODE."""
    headers = dict(scope.get("headers") or ())
    wanted = []
    cookie = _cookie(headers.get(b"cookie", b"").decode("latin-1"), settings.LANGUAGE_COOKIE_NAME)
    if cookie:
        wanted.append(cookie)
    accept = headers.get(b"accept-language", b"").decode("latin-1")
    wanted += [code for code, _quality in parse_accept_lang_header(accept) if code != "*"]
    for code in wanted:
        try:
            return translation.get_supported_language_variant(code)
        except LookupError:
            continue
    return settings.LANGUAGE_CODE


def _cookie(header: str, name: str) -> str:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return ""
