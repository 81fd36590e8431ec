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
from celery.schedules import crontab
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy

from chatsite.env import (
    development_secret_key,
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_str,
)
from chatsite.languages import translated_languages

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
    # Sign-in: passwords, OpenID Connect single sign-on and TOTP (see "Auth" below).
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
    "allauth.mfa",
    "accounts",
    "conversations",
    "usage",
    "teams",
    "summaries",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The reader's language from Accept-Language, among those LANGUAGES lists.
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    # After authentication: an owner or admin of a team that requires two-factor
    # reaches only enrolment, verification and sign-out until this session passed it.
    "accounts.mfa.MfaRequiredMiddleware",
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
                "teams.context_processors.team_switcher",
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

# --- Cache: the sign-in throttle's counters ------------------------------------
# Shared by every process on Redis, else per process in memory (one process is
# all the embedded default runs).
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("CHANNEL_LAYER_PREFIX", "chat"),
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

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
# The queue tasks are sent to (and a worker started without -Q takes): one per
# site when several share a broker.
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_QUEUE", "celery")
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
    "resume-summary-jobs": {
        "task": "summaries.tasks.summaries_resume_task",
        "schedule": 60.0,
    },
    "weekly-summary-digests": {
        "task": "summaries.tasks.weekly_digests_task",
        # Mondays, 06:00 UTC: the week before is over everywhere.
        "schedule": crontab(minute=0, hour=6, day_of_week="mon"),
    },
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# --- Claude ------------------------------------------------------------------
# Provider: "anthropic" (the API, with ANTHROPIC_API_KEY or ANTHROPIC_BASE_URL),
# "bedrock", "vertex", or "fake" (the offline fake, in process). The default is
# the API when a key or base URL is set, else the fake.
ANTHROPIC_API_KEY = env_str("ANTHROPIC_API_KEY", "")
ANTHROPIC_BASE_URL = env_str("ANTHROPIC_BASE_URL", "")
CLAUDE_PROVIDER = env_choice(
    "CLAUDE_PROVIDER",
    ("anthropic", "bedrock", "vertex", "fake"),
    "anthropic" if (ANTHROPIC_API_KEY or ANTHROPIC_BASE_URL) else "fake",
)
# Amazon Bedrock (`CLAUDE_PROVIDER=bedrock`): the region, and the inference profile
# the model ids go through: `global` (routed anywhere, list price) or a geography,
# `us`, `eu`, `jp` or `apac` (a regional endpoint: the data stays there, +10% on
# models from Sonnet 4.5 on). Credentials as boto3 finds them (AWS_ACCESS_KEY_ID /
# AWS_SECRET_ACCESS_KEY, AWS_PROFILE, an instance role) or AWS_BEARER_TOKEN_BEDROCK.
CLAUDE_AWS_REGION = env_str("AWS_REGION", env_str("AWS_DEFAULT_REGION", ""))
CLAUDE_BEDROCK_ENDPOINT = env_choice(
    "CLAUDE_BEDROCK_ENDPOINT", ("global", "us", "eu", "jp", "apac"), "global"
)
CLAUDE_BEDROCK_BASE_URL = env_str("ANTHROPIC_BEDROCK_BASE_URL", "")
# Google Vertex AI (`CLAUDE_PROVIDER=vertex`): the location (`global`, or a region
# such as `us-east5`, which is a regional endpoint), the project, and Google's
# application default credentials, or a static access token.
CLAUDE_VERTEX_REGION = env_str("CLOUD_ML_REGION", "")
CLAUDE_VERTEX_PROJECT_ID = env_str("ANTHROPIC_VERTEX_PROJECT_ID", "")
CLAUDE_VERTEX_BASE_URL = env_str("ANTHROPIC_VERTEX_BASE_URL", "")
CLAUDE_VERTEX_ACCESS_TOKEN = env_str("CLAUDE_VERTEX_ACCESS_TOKEN", "")
if CLAUDE_PROVIDER == "bedrock" and not CLAUDE_AWS_REGION:
    raise ImproperlyConfigured("CLAUDE_PROVIDER=bedrock: set AWS_REGION (e.g. us-west-2).")
if CLAUDE_PROVIDER == "vertex" and not (CLAUDE_VERTEX_REGION and CLAUDE_VERTEX_PROJECT_ID):
    raise ImproperlyConfigured(
        "CLAUDE_PROVIDER=vertex: set CLOUD_ML_REGION (e.g. global or us-east5) and "
        "ANTHROPIC_VERTEX_PROJECT_ID."
    )
CLAUDE_MAX_RETRIES = env_int("CLAUDE_MAX_RETRIES", 2)
CLAUDE_TIMEOUT_SECONDS = env_float("CLAUDE_TIMEOUT_SECONDS", 600.0)
CLAUDE_DEFAULT_MODEL = env_str("CLAUDE_DEFAULT_MODEL", "claude-sonnet-5-5")
CLAUDE_MAX_TOKENS = env_int("CLAUDE_MAX_TOKENS", 8192)
# Upload each prepared attachment once through the Files API and send its
# file_id, instead of the bytes in every request (Anthropic API only).
CLAUDE_FILES_API = env_bool("CLAUDE_FILES_API", False)
if CLAUDE_FILES_API and CLAUDE_PROVIDER in ("bedrock", "vertex"):
    raise ImproperlyConfigured(
        f"CLAUDE_FILES_API=true needs the Anthropic API: {CLAUDE_PROVIDER} has no Files API "
        "(files are sent inline there). Unset it."
    )

# --- Batch summaries (Message Batches; docs/summaries.md) ------------------------
SUMMARIES_DEFAULT_MODEL = env_str("SUMMARIES_DEFAULT_MODEL", "claude-haiku-5-5")
SUMMARIES_DEFAULT_INSTRUCTION = env_str(
    "SUMMARIES_DEFAULT_INSTRUCTION",
    "Summarise this conversation concisely in Markdown: what it was about, the decisions "
    "made, the open questions, and the action items (with who owns each, where named).",
)
# max_tokens of each summary (the hold prices every answer at all of it) and the
# length the estimate expects.
SUMMARIES_MAX_TOKENS = env_int("SUMMARIES_MAX_TOKENS", 1024)
SUMMARIES_EXPECTED_OUTPUT_TOKENS = env_int("SUMMARIES_EXPECTED_OUTPUT_TOKENS", 300)
# A longer transcript keeps its first quarter and its end (about 100,000 tokens).
SUMMARIES_MAX_INPUT_CHARS = env_int("SUMMARIES_MAX_INPUT_CHARS", 400_000)
# The API takes at most 100,000 requests or 256 MB a batch; a job past either is split.
SUMMARIES_BATCH_MAX_REQUESTS = env_int("SUMMARIES_BATCH_MAX_REQUESTS", 100_000)
SUMMARIES_BATCH_MAX_BYTES = env_int("SUMMARIES_BATCH_MAX_BYTES", 250 * 1024 * 1024)
# Polling: first look after this long, doubling, at most this long apart (and
# always under the broker's visibility timeout).
SUMMARIES_POLL_FIRST_SECONDS = env_float("SUMMARIES_POLL_FIRST_SECONDS", 10.0)
SUMMARIES_POLL_MAX_SECONDS = env_float("SUMMARIES_POLL_MAX_SECONDS", 600.0)
# A submit that started this long ago and never stored its batch id died in its call.
SUMMARIES_SUBMIT_LEASE_SECONDS = env_int("SUMMARIES_SUBMIT_LEASE_SECONDS", 120)
SUMMARIES_ORPHAN_SKEW_SECONDS = env_int("SUMMARIES_ORPHAN_SKEW_SECONDS", 120)
# Beat requeues a step whose task has been quiet this long.
SUMMARIES_RESUME_AFTER_SECONDS = env_int("SUMMARIES_RESUME_AFTER_SECONDS", 60)
# How often a job page's socket reads the job's progress (any process's worker).
SUMMARIES_PROGRESS_SECONDS = env_float("SUMMARIES_PROGRESS_SECONDS", 1.0)

# --- Chat streaming ----------------------------------------------------------
CHAT_COALESCE_SECONDS = env_float("CHAT_COALESCE_SECONDS", 0.05)
CHAT_CHECKPOINT_SECONDS = env_float("CHAT_CHECKPOINT_SECONDS", 2.0)
# A generation whose heartbeat is older than this is an orphan of a dead process.
CHAT_ORPHAN_AFTER_SECONDS = env_float("CHAT_ORPHAN_AFTER_SECONDS", 90.0)
CHAT_MAX_MESSAGE_CHARS = env_int("CHAT_MAX_MESSAGE_CHARS", 100_000)
CHAT_REPLAY_KEEP_SECONDS = env_int("CHAT_REPLAY_KEEP_SECONDS", 300)
# On SIGTERM, running replies get this long to finish before they are saved as interrupted.
CHAT_SHUTDOWN_GRACE_SECONDS = env_float("CHAT_SHUTDOWN_GRACE_SECONDS", 20.0)
# After a conversation's first answer, a Celery task asks this model for a short
# title (billed, on the ledger as `title`); empty: keep the first message's line.
CHAT_TITLE_MODEL = env_str("CHAT_TITLE_MODEL", "claude-haiku-5-5")
# Long conversations: older turns are condensed once the prompt reaches this share
# of the model's context window (the API's compaction where the model has it, else
# a summary the chat keeps); CHAT_CONDENSE_AT_TOKENS, when set, is the threshold
# in tokens instead (for demos and tests).
CHAT_CONDENSE_AT_PERCENT = env_int("CHAT_CONDENSE_AT_PERCENT", 80)
CHAT_CONDENSE_AT_TOKENS = env_int("CHAT_CONDENSE_AT_TOKENS", 0)
# The largest conversation export `POST /import/` takes (the file; 413 past it).
IMPORT_MAX_BYTES = env_int("IMPORT_MAX_BYTES", 10 * 1024 * 1024)

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
# django-allauth: sign-in by username (or e-mail) and password, password reset by
# e-mail, OpenID Connect single sign-on, TOTP two-factor. No self sign-up: people
# are created by an admin, by an invite, or on their first single sign-on.
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
# allauth's backend, loading the two-factor gate's facts with the user (accounts.backends);
# Django's own stays listed so that sessions signed in before allauth still stand.
AUTHENTICATION_BACKENDS = [
    "accounts.backends.AuthenticationBackend",
    "django.contrib.auth.backends.ModelBackend",
]
ACCOUNT_ADAPTER = "accounts.adapters.AccountAdapter"
SOCIALACCOUNT_ADAPTER = "accounts.adapters.SocialAccountAdapter"
ACCOUNT_FORMS = {"login": "accounts.forms.SignInForm"}
ACCOUNT_LOGIN_METHODS = {"username", "email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "username*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_LOGOUT_REDIRECT_URL = "/accounts/login/?signed_out=1"
# Sessions last their full age (two weeks), as before allauth: no "remember me" box.
ACCOUNT_SESSION_REMEMBER = True
ACCOUNT_PREVENT_ENUMERATION = True
# A signed-in person sent to the sign-in page (a page their account cannot open)
# sees it, with a note, instead of being sent back.
ACCOUNT_AUTHENTICATED_LOGIN_REDIRECTS = False
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[Team chat] "
# A reset asked for an address with no account sends nothing (and says the same as for one).
ACCOUNT_EMAIL_UNKNOWN_ACCOUNTS = False
# Links in mail and the single sign-on redirect URI: https in production.
ACCOUNT_DEFAULT_HTTP_PROTOCOL = "https" if PRODUCTION else "http"
# Failed sign-ins: after AUTH_LOGIN_FAILURES wrong passwords for one account in
# AUTH_LOGIN_WINDOW_SECONDS, every attempt for it (a right password too) is
# refused until the window passes; and at most AUTH_LOGIN_FAILURES_PER_IP a
# minute from one address. Counted in the cache (Redis when REDIS_URL is set),
# for /accounts/login/ and /admin/login/ alike.
AUTH_LOGIN_FAILURES = env_int("AUTH_LOGIN_FAILURES", 5)
AUTH_LOGIN_WINDOW_SECONDS = env_int("AUTH_LOGIN_WINDOW_SECONDS", 300)
AUTH_LOGIN_FAILURES_PER_IP = env_int("AUTH_LOGIN_FAILURES_PER_IP", 20)
ACCOUNT_RATE_LIMITS = {
    "login_failed": (
        f"{AUTH_LOGIN_FAILURES_PER_IP}/m/ip,"
        f"{AUTH_LOGIN_FAILURES}/{AUTH_LOGIN_WINDOW_SECONDS}s/key"
    ),
}
# Two-factor: TOTP with recovery codes. A team's owner can require it of the
# team's owners and admins (Team.mfa_required, /accounts/security/).
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = env_str("MFA_TOTP_ISSUER", "Team chat")
# A code typed in the last second of its 30 reaches the server in the next; allow
# one step either side (RFC 6238, section 5.2). A used code stays refused.
MFA_TOTP_TOLERANCE = 1
# allauth refuses two-factor to an account with an unverified address, against a
# stranger signing up with it first; there is no sign-up here to do that with.
MFA_ALLOW_UNVERIFIED_EMAIL = True
# OpenID Connect single sign-on, on when OIDC_ISSUER is set (see the README for
# Google Workspace, Entra ID, Okta and Keycloak). The identity provider's
# redirect URI: https://<site>/accounts/oidc/sso/login/callback/
OIDC_ISSUER = env_str("OIDC_ISSUER", "")
SOCIALACCOUNT_PROVIDERS: dict = {}
if OIDC_ISSUER:
    SOCIALACCOUNT_PROVIDERS["openid_connect"] = {
        "APPS": [
            {
                "provider_id": "sso",
                # The button's "Sign in with …": the identity provider's name, else
                # these words in the page's language.
                "name": env_str("OIDC_DISPLAY_NAME", "") or gettext_lazy("Single sign-on"),
                "client_id": env_str("OIDC_CLIENT_ID"),
                "secret": env_str("OIDC_CLIENT_SECRET"),
                "settings": {
                    "server_url": OIDC_ISSUER,
                    # The provider's "email_verified" claim decides, unless
                    # OIDC_EMAIL_VERIFIED says every address it sends is verified
                    # (Entra ID sends no such claim).
                    "verified_email": env_bool("OIDC_EMAIL_VERIFIED", False),
                    "scope": env_list("OIDC_SCOPES", ["openid", "profile", "email"]),
                    "oauth_pkce_enabled": True,
                },
            }
        ],
    }
SOCIALACCOUNT_ONLY = False
SOCIALACCOUNT_AUTO_SIGNUP = True
SOCIALACCOUNT_LOGIN_ON_GET = False
SOCIALACCOUNT_STORE_TOKENS = False
# A verified address from the provider signs in the account that has it already.
SOCIALACCOUNT_EMAIL_AUTHENTICATION = True
SOCIALACCOUNT_EMAIL_AUTHENTICATION_AUTO_CONNECT = True
SOCIALACCOUNT_REQUESTS_TIMEOUT = env_int("OIDC_TIMEOUT_SECONDS", 10)
# New single sign-on people whose verified address is in one of these domains
# join that team as members: "example.com=acme,example.org=globex".
OIDC_DOMAIN_TEAMS: dict[str, str] = {}
for _rule in env_list("OIDC_DOMAIN_TEAMS", []):
    _domain, _sep, _slug = _rule.partition("=")
    if not _sep or not _domain.strip() or not _slug.strip():
        raise ImproperlyConfigured(
            f"OIDC_DOMAIN_TEAMS takes domain=team-slug pairs, not {_rule!r}."
        )
    OIDC_DOMAIN_TEAMS[_domain.strip().lower().lstrip("@")] = _slug.strip()
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- E-mail ----------------------------------------------------------------------
# Password resets (and invites) go through Django's e-mail backend: SMTP when
# EMAIL_HOST is set, else one file per message in var/mail/, so a laptop needs
# no mail server.
EMAIL_HOST = env_str("EMAIL_HOST", "")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Team chat <chat@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
EMAIL_FILE_PATH = VAR_DIR / "mail"
if EMAIL_HOST:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_PORT = env_int("EMAIL_PORT", 587)
    EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
    EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
    EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", EMAIL_PORT == 587)
    EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", EMAIL_PORT == 465)
    EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT_SECONDS", 10)
else:
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"

DEMO_PASSWORD = env_str("DEMO_PASSWORD", "teamchat-demo")

# --- Teams -----------------------------------------------------------------------
# How long an invitation's link works.
TEAM_INVITE_DAYS = env_int("TEAM_INVITE_DAYS", 7)

# --- I18N, static ----------------------------------------------------------------
LANGUAGE_CODE = "en-us"
# Translations live in locale/<language>/LC_MESSAGES (README: "Translating";
# CHAT_LOCALE_DIR keeps them elsewhere).
# The site offers English and each language with a compiled catalog there, and
# no other: Django ships catalogs of its own for a hundred languages, and a page
# in one of those would be Django's words translated around ours in English.
LOCALE_PATHS = [Path(env_str("CHAT_LOCALE_DIR", str(BASE_DIR / "locale")))]
LANGUAGES = [("en", "English"), *translated_languages(LOCALE_PATHS[0])]
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
