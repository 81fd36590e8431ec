"""Test settings: the production settings module, with test-friendly environment defaults.

Real environment variables still win, so `DATABASE_URL` / `REDIS_URL` switch
the suite to PostgreSQL and Redis.
"""

import os

# The fake streams as fast as it can unless a test asks otherwise with a
# `[[fake tps=...]]` directive.
os.environ.setdefault("FAKE_CLAUDE_TPS", "0")
os.environ.setdefault("FAKE_CLAUDE_TTFT_MS", "0")
os.environ.setdefault("DJANGO_DEBUG", "false")
os.environ.setdefault("DJANGO_SECRET_KEY", "test-secret-key-not-for-production")
os.environ.setdefault("DJANGO_SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("DJANGO_SECURE_COOKIES", "false")
os.environ.setdefault("CHANNEL_LAYER_PREFIX", "chat-test")
# No title calls unless a test turns them on (tests/conversations/test_titles.py):
# other tests count their ledger rows, and no worker runs the queued task.
os.environ.setdefault("CHAT_TITLE_MODEL", "")
# The in-process fake keeps Files API uploads on disk (shared by a worker and
# the web process); one folder per run, removed with it (tests/conftest.py).
os.environ.setdefault(
    "FAKE_CLAUDE_FILES_DIR",
    os.path.join(os.environ.get("CHAT_VAR_DIR", "var"), f"test-fake-files-{os.getpid()}"),
)

# Message Batches at the fake end at once unless a test says otherwise, and live
# in one folder per run (removed with it).
os.environ.setdefault("FAKE_CLAUDE_BATCH_SECONDS", "0")
os.environ.setdefault(
    "FAKE_CLAUDE_BATCHES_DIR",
    os.path.join(os.environ.get("CHAT_VAR_DIR", "var"), f"test-fake-batches-{os.getpid()}"),
)

from chatsite.settings import *  # noqa: E402,F403

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    # One folder per test run (removed with it, see tests/conftest.py).
    "attachments": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {
            "location": str(VAR_DIR / f"test-attachments-{os.getpid()}"),  # noqa: F405
            "base_url": None,
        },
    },
}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # One file per test run, so runs side by side never share a database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-db-{os.getpid()}.sqlite3")}  # noqa: F405

# Tests close every connection when they finish, so none outlives the test database.
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405

SUMMARIES_POLL_FIRST_SECONDS = 0.2
SUMMARIES_POLL_MAX_SECONDS = 1.0
