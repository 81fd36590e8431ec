"""Sign-in settings from the environment: mail, the throttle's cache, single sign-on."""

from __future__ import annotations

import json
import subprocess
import sys

from .shell import ROOT, fresh_env


def settings_json(env: dict[str, str], expression: str) -> subprocess.CompletedProcess:
    code = f"import json; from chatsite import settings as s; print(json.dumps({expression}, default=str))"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_mail_is_written_to_var_mail_with_no_mail_server(tmp_path):
    env = fresh_env(tmp_path)
    result = settings_json(env, "[s.EMAIL_BACKEND, str(s.EMAIL_FILE_PATH), s.CACHES['default']['BACKEND'], s.SOCIALACCOUNT_PROVIDERS]")
    assert result.returncode == 0, result.stderr
    backend, path, cache, providers = json.loads(result.stdout)
    assert backend == "django.core.mail.backends.filebased.EmailBackend"
    assert path.endswith("/mail") and path.startswith(env["CHAT_VAR_DIR"])
    assert cache == "django.core.cache.backends.locmem.LocMemCache"
    assert providers == {}  # no single sign-on unless configured


def test_smtp_redis_cache_and_single_sign_on_from_the_environment(tmp_path):
    env = {
        **fresh_env(tmp_path),
        "EMAIL_HOST": "smtp.example.com",
        "EMAIL_HOST_USER": "chat",
        "REDIS_URL": "redis://127.0.0.1:6379/5",
        "OIDC_ISSUER": "https://login.microsoftonline.com/tenant-1/v2.0",
        "OIDC_CLIENT_ID": "client-1",
        "OIDC_CLIENT_SECRET": "secret-1",
        "OIDC_DISPLAY_NAME": "Microsoft",
        "OIDC_EMAIL_VERIFIED": "true",
        "OIDC_DOMAIN_TEAMS": "Example.com=acme, @example.org=globex",
    }
    result = settings_json(
        env,
        "[s.EMAIL_BACKEND, s.EMAIL_PORT, s.EMAIL_USE_TLS, s.CACHES['default'], "
        "s.SOCIALACCOUNT_PROVIDERS['openid_connect']['APPS'][0], s.OIDC_DOMAIN_TEAMS]",
    )
    assert result.returncode == 0, result.stderr
    backend, port, tls, cache, app, rules = json.loads(result.stdout)
    assert (backend, port, tls) == ("django.core.mail.backends.smtp.EmailBackend", 587, True)
    assert cache["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    assert cache["LOCATION"] == "redis://127.0.0.1:6379/5"
    assert app["provider_id"] == "sso" and app["name"] == "Microsoft"
    assert (app["client_id"], app["secret"]) == ("client-1", "secret-1")
    assert app["settings"]["server_url"] == "https://login.microsoftonline.com/tenant-1/v2.0"
    assert app["settings"]["verified_email"] is True
    assert app["settings"]["oauth_pkce_enabled"] is True
    assert rules == {"example.com": "acme", "example.org": "globex"}


def test_single_sign_on_needs_its_client_and_well_formed_rules(tmp_path):
    base = {**fresh_env(tmp_path), "OIDC_ISSUER": "https://accounts.google.com"}
    missing = settings_json(base, "1")
    assert missing.returncode != 0 and "OIDC_CLIENT_ID" in missing.stderr
    bad = settings_json(
        {**base, "OIDC_CLIENT_ID": "c", "OIDC_CLIENT_SECRET": "s", "OIDC_DOMAIN_TEAMS": "example.com"},
        "1",
    )
    assert bad.returncode != 0 and "domain=team-slug" in bad.stderr
