"""The environment a benchmark's site processes run with: this shell's, without
any of the site's own settings (so a developer's `.env` cannot skew a run), plus
what every bench sets. Each bench adds its own on top."""

from __future__ import annotations

import os
from pathlib import Path

_SITE_PREFIXES = ("DJANGO_", "CHAT_", "CLAUDE_", "ANTHROPIC_", "FAKE_CLAUDE_", "ATTACHMENT", "USAGE_")


def bench_site_env(var_dir: Path, *, secret_key: str, **settings: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(_SITE_PREFIXES) and key not in {"DATABASE_URL", "REDIS_URL"}
    }
    env.update(
        DJANGO_SETTINGS_MODULE="chatsite.settings",
        DJANGO_DEBUG="false",
        DJANGO_SECRET_KEY=secret_key,
        DJANGO_SECURE_SSL_REDIRECT="false",
        DJANGO_SECURE_COOKIES="false",
        CHAT_VAR_DIR=str(var_dir),
        PYTHONUNBUFFERED="1",
    )
    env.update(settings)
    return env
