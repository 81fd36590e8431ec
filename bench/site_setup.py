"""Prepare a throwaway site for the benchmark: one user, N conversations, one session.

Run with the site's environment (`DJANGO_SETTINGS_MODULE=chatsite.settings` and
the bench's `DATABASE_URL`/`CHAT_VAR_DIR`) after `migrate`:
`python -m bench.site_setup N`. Prints JSON: the session cookie and the ids.
"""

from __future__ import annotations

import json
import os
import sys


def main() -> None:
    count = int(sys.argv[1])
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import (
        BACKEND_SESSION_KEY,
        HASH_SESSION_KEY,
        SESSION_KEY,
        get_user_model,
    )
    from django.contrib.sessions.backends.db import SessionStore

    from conversations.services import conversation_create

    user, _ = get_user_model().objects.get_or_create(username="bench")
    user.set_unusable_password()
    user.save()
    conversations = [
        str(conversation_create(owner=user, model=settings.CLAUDE_DEFAULT_MODEL).id)
        for _ in range(count)
    ]
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    cookie = f"{settings.SESSION_COOKIE_NAME}={session.session_key}"
    json.dump({"cookie": cookie, "conversations": conversations}, sys.stdout)


if __name__ == "__main__":
    main()
