"""Settings by mode. Development (the default) works in a fresh shell with no
secret set, using a key generated once into var/; production refuses to start
without its own secret or with debug pages on, and defaults to HTTPS only."""

from __future__ import annotations

import json
import multiprocessing
import stat
import subprocess
import sys

import pytest

from chatsite.env import development_secret_key

from .shell import ROOT, fresh_env

NAMES = [
    "PRODUCTION",
    "DEBUG",
    "SECRET_KEY",
    "SECURE_SSL_REDIRECT",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "WHITENOISE_USE_FINDERS",
]
PRODUCTION_KEY = "k" * 20 + "production-secret-0123456789-abcdefghij"


def load_settings(env: dict[str, str]) -> subprocess.CompletedProcess:
    code = (
        "import json; from chatsite import settings as s; "
        f"print(json.dumps({{n: getattr(s, n) for n in {NAMES!r}}} | "
        "{'STATICFILES': s.STORAGES['staticfiles']['BACKEND']}))"
    )
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def settings_of(env: dict[str, str]) -> dict:
    result = load_settings(env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_development_needs_no_secret_and_keeps_the_one_it_made(tmp_path):
    """A fresh shell gets a generated key, stored privately in var/ and the same on the next run."""
    first = settings_of(fresh_env(tmp_path))
    key_file = tmp_path / "development-secret-key"
    assert first["PRODUCTION"] is False
    assert first["SECRET_KEY"] == key_file.read_text().strip()
    assert first["SECRET_KEY"].startswith("django-insecure-")  # check --deploy flags it (W009)
    assert len(first["SECRET_KEY"]) > 50
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert settings_of(fresh_env(tmp_path))["SECRET_KEY"] == first["SECRET_KEY"]
    assert settings_of(fresh_env(tmp_path / "other"))["SECRET_KEY"] != first["SECRET_KEY"]


def test_development_serves_plain_http_without_debug_pages(tmp_path):
    values = settings_of(fresh_env(tmp_path))
    assert values["DEBUG"] is False
    assert values["SECURE_SSL_REDIRECT"] is False
    assert values["SESSION_COOKIE_SECURE"] is False
    assert values["SECURE_HSTS_SECONDS"] == 0
    # static/ straight from disk: no collectstatic in development
    assert values["WHITENOISE_USE_FINDERS"] is True
    assert values["STATICFILES"] == "django.contrib.staticfiles.storage.StaticFilesStorage"


def test_development_uses_a_secret_that_is_set(tmp_path):
    values = settings_of(fresh_env(tmp_path, DJANGO_SECRET_KEY="set-by-hand"))
    assert values["SECRET_KEY"] == "set-by-hand"
    assert not (tmp_path / "development-secret-key").exists()


def test_production_refuses_to_start_without_its_own_secret(tmp_path):
    result = load_settings(fresh_env(tmp_path, DJANGO_ENV="production"))
    assert result.returncode != 0
    assert "Set the environment variable DJANGO_SECRET_KEY" in result.stderr
    assert not (tmp_path / "development-secret-key").exists()


def test_production_ignores_a_development_key_left_in_var(tmp_path):
    settings_of(fresh_env(tmp_path))  # makes var/development-secret-key
    result = load_settings(fresh_env(tmp_path, DJANGO_ENV="production"))
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_production_refuses_debug_pages(tmp_path):
    env = fresh_env(
        tmp_path, DJANGO_ENV="production", DJANGO_SECRET_KEY=PRODUCTION_KEY, DJANGO_DEBUG="true"
    )
    result = load_settings(env)
    assert result.returncode != 0
    assert "DJANGO_DEBUG=true is for development" in result.stderr


def test_production_defaults_to_https_only(tmp_path):
    values = settings_of(
        fresh_env(tmp_path, DJANGO_ENV="production", DJANGO_SECRET_KEY=PRODUCTION_KEY)
    )
    assert values["PRODUCTION"] is True
    assert values["SECRET_KEY"] == PRODUCTION_KEY
    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["SESSION_COOKIE_SECURE"] is True
    assert values["CSRF_COOKIE_SECURE"] is True
    assert values["SECURE_HSTS_SECONDS"] == 31_536_000
    assert values["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert values["SECURE_HSTS_PRELOAD"] is False  # opt-in
    assert values["STATICFILES"] == "chatsite.static_storage.ModuleManifestStaticFilesStorage"


def test_hsts_preload_is_an_explicit_choice(tmp_path):
    env = fresh_env(
        tmp_path,
        DJANGO_ENV="production",
        DJANGO_SECRET_KEY=PRODUCTION_KEY,
        DJANGO_HSTS_PRELOAD="true",
    )
    assert settings_of(env)["SECURE_HSTS_PRELOAD"] is True


@pytest.mark.parametrize("value", ["prod", "staging", "true"])
def test_an_unknown_mode_is_an_error_not_development(tmp_path, value):
    result = load_settings(fresh_env(tmp_path, DJANGO_ENV=value))
    assert result.returncode != 0
    assert "DJANGO_ENV must be one of development, production" in result.stderr


def _race_for_key(path, barrier, keys) -> None:
    barrier.wait()
    keys.put(development_secret_key(path))


def test_processes_starting_together_agree_on_one_key(tmp_path):
    """`make run` may start several processes at once: none may replace another's key.

    A write-then-read version fails this in about one round in three; hence rounds.
    """
    context = multiprocessing.get_context("fork")
    for round_ in range(4):
        path = tmp_path / str(round_) / "development-secret-key"
        barrier, keys = context.Barrier(8), context.Queue()
        processes = [
            context.Process(target=_race_for_key, args=(path, barrier, keys)) for _ in range(8)
        ]
        for process in processes:
            process.start()
        for process in processes:
            process.join(timeout=30)
        found = {keys.get(timeout=5) for _ in processes}
        assert found == {path.read_text().strip()}
        assert [p.name for p in path.parent.iterdir()] == ["development-secret-key"]


def test_uploads_go_to_an_s3_bucket_when_one_is_set(tmp_path):
    """django-storages' S3 backend, private, never overwriting; built without a network call."""
    env = {
        **fresh_env(tmp_path),
        "ATTACHMENTS_S3_BUCKET": "teamchat-files",
        "ATTACHMENTS_S3_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
    }
    code = (
        "import django, json; django.setup(); "
        "from django.core.files.storage import storages; s = storages['attachments']; "
        "print(json.dumps([type(s).__name__, s.bucket_name, s.default_acl, s.file_overwrite, "
        "s.location, s.querystring_auth]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "chatsite.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [
        "S3Storage", "teamchat-files", "private", False, "attachments", True
    ]


def test_uploads_stay_on_disk_under_var_by_default(tmp_path):
    code = (
        "import json; from chatsite import settings as s; "
        "print(json.dumps(s.STORAGES['attachments']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=fresh_env(tmp_path),
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    storage = json.loads(result.stdout)
    assert storage["BACKEND"] == "django.core.files.storage.FileSystemStorage"
    assert storage["OPTIONS"]["base_url"] is None
    assert storage["OPTIONS"]["location"].endswith("/attachments")


# --- Claude's provider ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ({"CLAUDE_PROVIDER": "bedrok"}, "CLAUDE_PROVIDER must be one of anthropic, bedrock"),
        ({"CLAUDE_PROVIDER": "bedrock"}, "CLAUDE_PROVIDER=bedrock: set AWS_REGION"),
        ({"CLAUDE_PROVIDER": "vertex", "CLOUD_ML_REGION": "us-east5"},
         "set CLOUD_ML_REGION (e.g. global or us-east5) and ANTHROPIC_VERTEX_PROJECT_ID"),
        ({"CLAUDE_PROVIDER": "bedrock", "AWS_REGION": "us-west-2", "CLAUDE_BEDROCK_ENDPOINT": "asia"},
         "CLAUDE_BEDROCK_ENDPOINT must be one of global, us, eu, jp, apac"),
        ({"CLAUDE_PROVIDER": "vertex", "CLOUD_ML_REGION": "global",
          "ANTHROPIC_VERTEX_PROJECT_ID": "p", "CLAUDE_FILES_API": "true"},
         "CLAUDE_FILES_API=true needs the Anthropic API: vertex has no Files API"),
    ],
)
def test_a_provider_set_up_wrong_refuses_to_start_and_says_why(tmp_path, extra, says):
    result = load_settings(fresh_env(tmp_path, **extra))
    assert result.returncode != 0
    assert says in result.stderr
