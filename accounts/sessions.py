"""Whether a signed-in session still stands, and telling open sockets when it may not.

A websocket is authenticated once, at its handshake; these keep it honest after
that. Every socket of a person joins `user_sockets_group(user_id)`; when their
account changes (signed out, deactivated, password changed) an `access.check`
goes to that group on every web process, and each socket asks
`session_stands` again and closes if the answer is no.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.base import SessionBase
from django.contrib.sessions.models import Session
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django.utils.module_loading import import_string

from accounts.models import User
from infra.channel_layers import group_send_after_commit


def user_sockets_group(user_id: int) -> str:
    """The channel-layer group of every open socket of one person."""
    return f"user.{user_id}"


def socket_session(scope: dict) -> dict:
    """What `session_stands` needs to ask again about a socket's session: its user,
    its key, and the password-derived hash Django stored in it at login."""
    session: SessionBase = scope["session"]
    return {
        "user_id": scope["user"].pk,
        "session_key": session.session_key,
        "session_auth_hash": session.get(HASH_SESSION_KEY, "") or "",
    }


_DB_SESSIONS = "django.contrib.sessions.backends.db"


def session_row_read(session_key: str | None) -> tuple:
    """A read for `infra.rows.rows_first_values`: the session's row, while it is
    unexpired (None for sessions not kept in the database)."""
    return (Session, "session_key", {"session_key": session_key or "", "expire_date__gt": timezone.now()})


def session_stands(
    *,
    user_id: int,
    password_hash: str,
    session_key: str | None,
    session_auth_hash: str,
    session_row_alive: bool,
) -> bool:
    """True while the session stands as Django's own HTTP check would see it: not
    ended nor expired, still signed in as this person, with the password it was
    signed in with. `password_hash`: the person's, as stored now;
    `session_row_alive`: what `session_row_read` found.

    With sessions in the database (the default engine) the row is the answer:
    signing out, or in as someone else, gives a session a new key, so the key's
    row alive and unexpired means it still signs this person in. Loading and
    decoding the session was most of a millisecond on every send. Other engines
    load it."""
    if not session_key:
        return False
    current = User(pk=user_id, password=password_hash).get_session_auth_hash()
    if not constant_time_compare(session_auth_hash, current):
        return False  # the password changed since this session signed in
    if settings.SESSION_ENGINE == _DB_SESSIONS:
        return session_row_alive
    store = import_string(f"{settings.SESSION_ENGINE}.SessionStore")(session_key=session_key)
    data = store.load()  # {} when the session is gone or past its expiry date
    return str(data.get(SESSION_KEY)) == str(user_id) and constant_time_compare(
        data.get(HASH_SESSION_KEY, ""), session_auth_hash
    )


def access_check_after_commit(user_id: int, *, ended_session: str | None = None) -> None:
    """Ask every open socket of this person, on every process, to check its access
    once the current transaction commits. `ended_session`: the session being signed
    out, whose sockets close without asking (Django signals a logout before it
    deletes the session, so asking could still find it)."""
    message = {"type": "access.check"}
    if ended_session:
        message["ended_session"] = ended_session
    group_send_after_commit(user_sockets_group(user_id), message)
