"""Settings for the team chat.

Every value comes from the environment through `chatsite.env`, with embedded
defaults that run on one laptop with no services: SQLite, the in-memory channel
layer, a filesystem Celery broker and the offline fake Claude. `DATABASE_URL`,
`REDIS_URL` and `ANTHROPIC_API_KEY` switch to the production parts.

`DJANGO_ENV` says what kind of run this is. `development` (the default, so that
`make run` and `manage.py` work in a fresh shell) generates its secret key into
`var/` and serves plain HTTP. `production` (the Dockerfile and docker-compose.yml
set it; set it in every deployment) refuses to start without `DJANGO_SECRET_KEY`
or with `DJANGO_DEBUG` on, and defaults to HTTPS only, secure cookies and HSTS.
`DJANGO_DEBUG` is only Django's debug pages, off unless asked for in either mode.
"""

from __future__ import annotations

from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from chatsite.env import (
    development_secret_key,
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("CHAT_VAR_DIR", str(BASE_DIR / "var")))

PRODUCTION = env_choice("DJANGO_ENV", ("development", "production"), "development") == "production"
# Tracebacks, settings and the URL list in the browser: never for a deployment.
DEBUG = env_bool("DJANGO_DEBUG", False)
if DEBUG and PRODUCTION:
    raise ImproperlyConfigured("DJANGO_DEBUG=true is for development, not DJANGO_ENV=production.")
# Production secrets have no default; a development run makes its own, once.
SECRET_KEY = env_str("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if PRODUCTION:
        raise ImproperlyConfigured(
            "Set the environment variable DJANGO_SECRET_KEY (DJANGO_ENV=production)."
        )
    SECRET_KEY = development_secret_key(VAR_DIR / "development-secret-key")
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "channels",
    "accounts",
    "conversations",
    "usage",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
]

ROOT_URLCONF = "chatsite.urls"
ASGI_APPLICATION = "chatsite.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "conversations.context_processors.claude_mode",
                "conversations.context_processors.ui_preferences",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}")
# Persistent connections: replies stream from many threads at once, and opening
# a connection per query (SQLite runs its pragmas each time) costs more than the query.
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL, conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 600)
    )
}
DATABASE_IS_SQLITE = DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"
if DATABASE_IS_SQLITE:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    # Web and worker write at the same time: WAL lets readers run beside the
    # writer, and IMMEDIATE takes the write lock up front instead of failing
    # with "database is locked" when a read transaction turns into a write.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}
# Threads a web process runs its sockets' and replies' database calls in, each
# with its own connection (see infra/db_threads.py). SQLite: one writer anyway.
DATABASE_THREADS = env_int("DATABASE_THREADS", 1 if DATABASE_IS_SQLITE else 8)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

# --- Redis: channel layer, Celery broker, stream replay buffer ----------------
REDIS_URL = env_str("REDIS_URL", "")
if REDIS_URL:
    # Pub/sub: a group send is one PUBLISH, and each web process fans it out to
    # its own sockets. The list-based RedisChannelLayer spends four round trips
    # per group send (and drops frames past its capacity); measured, it cost a
    # web process more CPU than streaming the replies themselves. Pub/sub is
    # at-most-once as well: the replay buffer and `resume` cover what it loses.
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "infra.channel_layers.RedisLayer",
            "CONFIG": {
                # redis-py's default 5 s read timeout would drop the subscriber
                # connection of a quiet process: no timeout.
                "hosts": [{"address": REDIS_URL, "socket_timeout": None}],
                "prefix": env_str("CHANNEL_LAYER_PREFIX", "chat"),
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "infra.channel_layers.LocalChannelLayer"}}

# --- Celery ------------------------------------------------------------------
CELERY_BROKER_DIR = VAR_DIR / "celery-broker"
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict = {"visibility_timeout": 3600}
else:
    # A broker that needs no server: kombu's filesystem transport, one folder
    # shared by producers and the worker (which fails to start if it is missing).
    for _folder in ("queue", "processed", "control"):
        (CELERY_BROKER_DIR / _folder).mkdir(parents=True, exist_ok=True)
    # The host is ignored, but without one kombu warns on every connection.
    CELERY_BROKER_URL = "filesystem://localhost/"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_DIR / "queue"),
        "data_folder_out": str(CELERY_BROKER_DIR / "queue"),
        "processed_folder": str(CELERY_BROKER_DIR / "processed"),
        "control_folder": str(CELERY_BROKER_DIR / "control"),
        "store_processed": False,
    }
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BEAT_SCHEDULE = {
    "reap-interrupted-generations": {
        "task": "conversations.tasks.generation_reap_task",
        "schedule": 60.0,
    },
    "sweep-stale-budget-reservations": {
        "task": "usage.tasks.budget_sweep_task",
        "schedule": 300.0,
    },
    "sweep-stuck-attachment-checks": {
        "task": "conversations.tasks.attachments_sweep_task",
        "schedule": 60.0,
    },
    "remove-unsent-attachments": {
        "task": "conversations.tasks.attachments_unsent_remove_task",
        "schedule": 3600.0,
    },
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# --- Claude ------------------------------------------------------------------
# Provider: "anthropic" (the API, with ANTHROPIC_API_KEY or ANTHROPIC_BASE_URL),
# "bedrock", "vertex", or "fake" (the offline fake, in process). The default is
# the API when a key or base URL is set, else the fake.
ANTHROPIC_API_KEY = env_str("ANTHROPIC_API_KEY", "")
ANTHROPIC_BASE_URL = env_str("ANTHROPIC_BASE_URL", "")
CLAUDE_PROVIDER = env_str(
    "CLAUDE_PROVIDER", "anthropic" if (ANTHROPIC_API_KEY or ANTHROPIC_BASE_URL) else "fake"
)
CLAUDE_MAX_RETRIES = env_int("CLAUDE_MAX_RETRIES", 2)
CLAUDE_TIMEOUT_SECONDS = env_float("CLAUDE_TIMEOUT_SECONDS", 600.0)
CLAUDE_DEFAULT_MODEL = env_str("CLAUDE_DEFAULT_MODEL", "claude-sonnet-5-5")
CLAUDE_MAX_TOKENS = env_int("CLAUDE_MAX_TOKENS", 8192)
# Upload each prepared attachment once through the Files API and send its
# file_id, instead of the bytes in every request (Anthropic API only).
CLAUDE_FILES_API = env_bool("CLAUDE_FILES_API", False)

# --- Chat streaming ----------------------------------------------------------
CHAT_COALESCE_SECONDS = env_float("CHAT_COALESCE_SECONDS", 0.05)
CHAT_CHECKPOINT_SECONDS = env_float("CHAT_CHECKPOINT_SECONDS", 2.0)
# A generation whose heartbeat is older than this is an orphan of a dead process.
CHAT_ORPHAN_AFTER_SECONDS = env_float("CHAT_ORPHAN_AFTER_SECONDS", 90.0)
CHAT_MAX_MESSAGE_CHARS = env_int("CHAT_MAX_MESSAGE_CHARS", 100_000)
CHAT_REPLAY_KEEP_SECONDS = env_int("CHAT_REPLAY_KEEP_SECONDS", 300)
# On SIGTERM, running replies get this long to finish before they are saved as interrupted.
CHAT_SHUTDOWN_GRACE_SECONDS = env_float("CHAT_SHUTDOWN_GRACE_SECONDS", 20.0)

# --- Attachments ------------------------------------------------------------------
# Uploaded files live in their own storage, never under the static root: the
# filesystem under var/ by default, any S3-compatible bucket through
# django-storages when ATTACHMENTS_S3_BUCKET is set. A view that checks
# permission serves them (conversations.views).
ATTACHMENTS_DIR = VAR_DIR / "attachments"
ATTACHMENTS_S3_BUCKET = env_str("ATTACHMENTS_S3_BUCKET", "")
if ATTACHMENTS_S3_BUCKET:
    ATTACHMENTS_STORAGE: dict = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": ATTACHMENTS_S3_BUCKET,
            # Empty means boto3's own lookup (AWS_* variables, profile, instance role).
            "endpoint_url": env_str("ATTACHMENTS_S3_ENDPOINT_URL", "") or None,
            "region_name": env_str("ATTACHMENTS_S3_REGION", "") or None,
            "location": env_str("ATTACHMENTS_S3_PREFIX", "attachments"),
            "default_acl": "private",
            "querystring_auth": True,
            "file_overwrite": False,
        },
    }
else:
    ATTACHMENTS_STORAGE = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        # No base_url: nothing here is reachable by URL except through the view.
        "OPTIONS": {"location": str(ATTACHMENTS_DIR), "base_url": None},
    }
# The limits, each with why:
# - 30 MB a file uploaded: the API takes 32 MB per request, so nothing bigger could
#   ever be sent. Sent inline, base64 grows a file by a third, so the check also
#   rejects images and PDFs over about 23.8 MB unless CLAUDE_FILES_API is on (a
#   Files API id costs the request nothing); the Files API itself takes 500 MB,
#   but a PDF that size is past any context window anyway.
ATTACHMENT_MAX_BYTES = env_int("ATTACHMENT_MAX_BYTES", 30 * 1024 * 1024)
# - 100 pages: the API's own limit for PDFs per request.
ATTACHMENT_MAX_PDF_PAGES = env_int("ATTACHMENT_MAX_PDF_PAGES", 100)
# - 8000 px a side: the API refuses larger images.
ATTACHMENT_MAX_IMAGE_SIDE = env_int("ATTACHMENT_MAX_IMAGE_SIDE", 8000)
# - 64 megapixels (8000 x 8000): past this, decoding alone could take gigabytes
#   (a decompression bomb); Pillow's own guard is set to it and made an error.
ATTACHMENT_MAX_IMAGE_PIXELS = env_int("ATTACHMENT_MAX_IMAGE_PIXELS", 8000 * 8000)
# - 1568 px on the long edge: the size the API scales images down to anyway,
#   so sending more costs upload time and nothing else.
ATTACHMENT_IMAGE_LONG_EDGE = env_int("ATTACHMENT_IMAGE_LONG_EDGE", 1568)
ATTACHMENT_THUMBNAIL_PX = env_int("ATTACHMENT_THUMBNAIL_PX", 320)
# - 180,000 tokens of text a file (estimated at 3 bytes a token): the smallest
#   context window of the models offered is 200,000 (claude.catalog); this leaves
#   room for the conversation and the answer. A file past it could never be read.
ATTACHMENT_MAX_TEXT_TOKENS = env_int("ATTACHMENT_MAX_TEXT_TOKENS", 180_000)
# - 1.5 GB of address space for the process that checks a file (RLIMIT_AS), and
#   60 CPU seconds (checks.CHECK_CPU_SECONDS). The largest files allowed, measured
#   (VmPeak, CPU): 8000 x 8000 PNG 301 MB, 0.9 s; the same with alpha or as a GIF
#   ~525 MB, 1.4 s; as a WebP 1030 MB, 4.2 s (Pillow decodes WebP to RGBA and
#   copies it). 1.5 GB keeps that WebP 45% clear of the limit; a file past it is
#   built to exhaust the worker (a PDF of compressed blank pages took 6.8 GB before
#   PDFs stopped being decoded), and is rejected in plain words instead.
ATTACHMENT_CHECK_MEMORY_BYTES = env_int("ATTACHMENT_CHECK_MEMORY_BYTES", 1536 * 1024 * 1024)
# - 1 GB of uploads per person, counted over the files still stored.
ATTACHMENT_QUOTA_BYTES = env_int("ATTACHMENT_QUOTA_BYTES", 1024 * 1024 * 1024)
# - 10 files per message (a sidebar-sized review of a PR, not a bulk import).
ATTACHMENT_MAX_PER_MESSAGE = env_int("ATTACHMENT_MAX_PER_MESSAGE", 10)
# Uploads never sent are removed after this long.
ATTACHMENT_UNSENT_KEEP_SECONDS = env_int("ATTACHMENT_UNSENT_KEEP_SECONDS", 24 * 3600)
# A check whose worker went quiet this long is started again, at most this many times.
ATTACHMENT_CHECK_STALE_SECONDS = env_int("ATTACHMENT_CHECK_STALE_SECONDS", 300)
ATTACHMENT_CHECK_MAX_ATTEMPTS = env_int("ATTACHMENT_CHECK_MAX_ATTEMPTS", 3)

# --- Usage and budgets ---------------------------------------------------------
# Messages (calls to Claude) one person may start per minute.
USAGE_RATE_LIMIT_PER_MINUTE = env_int("USAGE_RATE_LIMIT_PER_MINUTE", 20)
# The chat shows a warning once this share of the tighter budget is spent.
USAGE_WARN_PERCENT = env_int("USAGE_WARN_PERCENT", 80)
# An open reservation older than this whose reply is no longer running is
# released by the sweeper (its process died before it could settle).
USAGE_RESERVATION_TTL_SECONDS = env_int("USAGE_RESERVATION_TTL_SECONDS", 900)

# --- Auth ----------------------------------------------------------------------
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
DEMO_PASSWORD = env_str("DEMO_PASSWORD", "teamchat-demo")

# --- I18N, static ----------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "attachments": ATTACHMENTS_STORAGE,
    "staticfiles": {
        "BACKEND": "chatsite.static_storage.ModuleManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# Development serves static/ as it is on disk (no collectstatic; edits show on reload).
WHITENOISE_USE_FINDERS = not PRODUCTION
WHITENOISE_AUTOREFRESH = not PRODUCTION

# --- Security ------------------------------------------------------------------
CONTENT_SECURITY_POLICY = {
    # The Django admin uses inline styles and scripts of its own.
    "EXCLUDE_URL_PREFIXES": ["/admin/"],
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", PRODUCTION)
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", PRODUCTION)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31_536_000 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = PRODUCTION
# Opt-in: once browsers ship the domain in their preload list, it (and every
# subdomain) is HTTPS-only for them for months, even if HSTS is turned off here.
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", False)
if env_bool("DJANGO_BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        # The SDK's debug logs include request headers; keep them quiet.
        "anthropic": {"level": "WARNING"},
        "httpx2": {"level": "WARNING"},
    },
}
