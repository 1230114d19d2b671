"""Settings, read from the environment (every variable is documented in README.md).

With nothing set the service runs on SQLite and runs Celery tasks in-process after commit, so it
starts on a bare machine. With DATABASE_URL / CELERY_BROKER_URL (or REDIS_URL) it uses PostgreSQL
and a real Redis broker.
"""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

from config.keys import DEVELOPMENT_SECRET_KEY, production_key_problems

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


# Production is DEBUG off. Development turns it on explicitly: `make run` (scripts/demo.py) and the tests (pyproject's
# [tool.pytest_env]); only then may the committed development keys be used.
DEBUG = env_bool("DEBUG", False)
SECRET_KEY = os.environ.get("SECRET_KEY") or (DEVELOPMENT_SECRET_KEY if DEBUG else "")
# Fernet keys (comma-separated, newest first) that encrypt provider secrets at rest.
FIELD_ENCRYPTION_KEYS = env_list("FIELD_ENCRYPTION_KEYS")
if not DEBUG and (key_problems := production_key_problems(SECRET_KEY, FIELD_ENCRYPTION_KEYS)):
    raise ImproperlyConfigured(" ".join(key_problems) + " Production (DEBUG off) needs its own keys: see README, Configuration.")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
# Public base URL used to build absolute links (webhook endpoint, payment links in emails).
SITE_URL = os.environ.get("SITE_URL", "http://localhost:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "axes",
    "billing",
    "providers",
    "payments",
    "webhooks",
    # Before refunds: its post_migrate gives the Finance group view permissions on receipts and reminder history.
    "receipts",
    "reminders",
    "disputes",
    "refunds",
    "demo",
    "finance",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"

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
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=int(os.environ.get("DB_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = int(os.environ.get("DB_CONNECT_TIMEOUT", "3"))
    # No statement waits forever (a lock held by a stuck session, a runaway query): the Celery worker's thread pool
    # cannot kill a task at its time limit, so the database does (the task then retries with backoff).
    DATABASES["default"]["OPTIONS"]["options"] = (f"-c statement_timeout={int(os.environ.get('DB_STATEMENT_TIMEOUT_MS', '30000'))} "
                                                  f"-c lock_timeout={int(os.environ.get('DB_LOCK_TIMEOUT_MS', '10000'))}")
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The demo's SQLite: threaded runserver and webhooks arriving together. IMMEDIATE transactions take the write
    # lock at BEGIN and wait for it (timeout) instead of failing with "database is locked" when upgrading; WAL
    # lets readers go on meanwhile.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"transaction_mode": "IMMEDIATE", "timeout": 20, "init_command": "PRAGMA journal_mode=WAL;"})
# The webhook view must decide its answer in its own short transaction: no ATOMIC_REQUESTS.
DATABASES["default"]["ATOMIC_REQUESTS"] = False
# The statements every webhook runs are prepared on their connection (billing.ledger.sql.prepared_cursor: psycopg
# prepares a server-binding cursor's statement at its first execution with this threshold; Django's ordinary cursors
# bind on the client and never prepare). Turn off behind a pooler in transaction mode that does not support prepared
# statements (PgBouncer < 1.21).
DB_PREPARED_STATEMENTS = env_bool("DB_PREPARED_STATEMENTS", True)
USING_POSTGRES = DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
if USING_POSTGRES and DB_PREPARED_STATEMENTS:
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("prepare_threshold", 0)
elif USING_POSTGRES:
    # None: psycopg never prepares, not even a statement run five times (its default threshold) — behind PgBouncer in
    # transaction mode the next statement may run on another server connection, where the prepared one does not exist.
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = None

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Admin logins are throttled per user and client address (django-axes; README, Security).
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = int(os.environ.get("LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=int(os.environ.get("LOGIN_LOCKOUT_MINUTES", "60")))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]  # an attacker cannot lock a clerk out from the office
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "config.network.client_address"
AXES_LOCKOUT_TEMPLATE = "admin/locked_out.html"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("de", "Deutsch")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"] if (BASE_DIR / "static").exists() else []

# --- Security -------------------------------------------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
# Production (DEBUG off) is HTTPS only by default; each of these can be turned off explicitly (README, Security).
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
# Never redirected: Stripe does not follow a redirect of its signed webhook POST (the delivery would fail until Stripe gives
# up on it), and the health probe speaks plain HTTP from inside the network.
SECURE_REDIRECT_EXEMPT = [r"^webhooks/", r"^healthz$"]
# Secure cookies whatever the request looked like: behind a TLS proxy without BEHIND_PROXY every request looks like HTTP.
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "0" if DEBUG else str(365 * 86400)))
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = SECURE_HSTS_SECONDS > 0
# Behind a proxy that terminates TLS: its X-Forwarded-Proto says whether the client used HTTPS, and its client address
# header (config.network) is the client's address. Never trusted otherwise: a client could send them itself.
BEHIND_PROXY = env_bool("BEHIND_PROXY")
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if BEHIND_PROXY else None
CLIENT_ADDRESS_HEADER = os.environ.get("CLIENT_ADDRESS_HEADER", "X-Forwarded-For")

# Error reports hide secrets and keys (settings and local variables).
DEFAULT_EXCEPTION_REPORTER_FILTER = "providers.reporting.SecretsExceptionReporterFilter"

# --- Cache: the rate limits' counters (django-ratelimit) -------------------------------------------
# Redis when REDIS_URL is set, shared by every web process; local memory otherwise (the demo: one process).
REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL, "KEY_PREFIX": "billing",
                          # A Redis outage must not hang the payment page (payments.throttling lets it through).
                          "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1}}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
RATELIMIT_USE_CACHE = "default"
# PaymentIntents (and SetupIntents) a payment link, and a client address, may start (payments.throttling).
PAYMENT_START_RATE_PER_LINK = os.environ.get("PAYMENT_START_RATE_PER_LINK", "20/h")
PAYMENT_START_RATE_PER_ADDRESS = os.environ.get("PAYMENT_START_RATE_PER_ADDRESS", "60/h")

# --- Email -----------------------------------------------------------------------------------
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "billing@localhost")
# A mail server that hangs must not hold an outbox row (and a worker) forever.
EMAIL_TIMEOUT = int(os.environ.get("EMAIL_TIMEOUT", "20"))

# --- Stripe ----------------------------------------------------------------------------------
# A Stripe-compatible server for tests and offline demos; empty means Stripe itself.
STRIPE_API_BASE = os.environ.get("STRIPE_API_BASE", "").rstrip("/")
STRIPE_API_VERSION = os.environ.get("STRIPE_API_VERSION", "2026-10-28.endive")
STRIPE_TIMEOUT_SECONDS = float(os.environ.get("STRIPE_TIMEOUT_SECONDS", "20"))
STRIPE_MAX_NETWORK_RETRIES = int(os.environ.get("STRIPE_MAX_NETWORK_RETRIES", "2"))
STRIPE_JS_URL = os.environ.get("STRIPE_JS_URL", "https://js.stripe.com/v3/")
# Offline demo (scripts/demo.py): test payments confirmed by the server against a local Stripe stand-in.
# Honoured only for test-mode settings while STRIPE_API_BASE points at this machine (payments/services/offline.py).
STRIPE_OFFLINE_DEMO = env_bool("STRIPE_OFFLINE_DEMO", False)
STRIPE_WEBHOOK_TOLERANCE_SECONDS = 300
WEBHOOK_MAX_BODY_BYTES = 1024 * 1024
# The receipts beat task issues receipts that were missed for charges and refunds of the last days (not older, so
# that turning receipts on does not email every customer for past payments).
RECEIPT_SWEEP_DAYS = int(os.environ.get("RECEIPT_SWEEP_DAYS", "3"))
# A reminder step whose day passed more than this many days ago is not sent any more (a beat outage, or reminders
# switched on for old invoices), so customers never get a pile of late reminders at once.
REMINDER_MAX_LATENESS_DAYS = int(os.environ.get("REMINDER_MAX_LATENESS_DAYS", "3"))
PAYMENT_LINK_MAX_AGE_SECONDS = int(os.environ.get("PAYMENT_LINK_MAX_AGE_DAYS", "30")) * 86400
# The webhook body limit is enforced by the view itself (413); Django's own limit must be larger.
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

# --- Celery ----------------------------------------------------------------------------------
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or os.environ.get("REDIS_URL") or ""
# Without a broker, tasks run in-process (they are still enqueued only after commit).
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", not CELERY_BROKER_URL)
CELERY_TASK_EAGER_PROPAGATES = False
if not CELERY_BROKER_URL:
    CELERY_BROKER_URL = "memory://"
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND") or None
# The webhook view answers without waiting for the task publish (webhooks/publisher.py); the inbox is durable.
WEBHOOK_PUBLISH_IN_BACKGROUND = env_bool("WEBHOOK_PUBLISH_IN_BACKGROUND", True)
# How long the background publisher waits to put several tasks in one Redis round trip (only delays processing).
WEBHOOK_PUBLISH_LINGER_MS = int(os.environ.get("WEBHOOK_PUBLISH_LINGER_MS", "20"))
# Up to this many events per published processing task: a burst is drained without paying Celery's per-task work per
# event (a batch runs in one transaction; when it cannot, each event in its own, with its own outcome). 1 gives one task
# per event.
WEBHOOK_TASK_BATCH_SIZE = max(1, int(os.environ.get("WEBHOOK_TASK_BATCH_SIZE", "20")))
# A worker that falls behind takes the tasks waiting in a lane along with the one it runs, up to this many events in one
# batch (webhooks.publisher.take_waiting_events): its batches grow with the backlog. 1 or less turns that off.
WEBHOOK_TASK_MAX_EVENTS = int(os.environ.get("WEBHOOK_TASK_MAX_EVENTS", "50"))
# Event processing commits without waiting for the disk flush; a lost commit is replayed from the inbox
# (why that is safe: webhooks.services.replayable_commits). false waits for every flush.
WEBHOOK_ASYNC_COMMIT = env_bool("WEBHOOK_ASYNC_COMMIT", True)
# Processed (and ignored) events are deleted from the inbox this many days after processing (webhooks.retention); it
# must exceed Stripe's 30-day replay window (a system check refuses less). Failed and unprocessed events are kept.
WEBHOOK_RETENTION_DAYS = int(os.environ.get("WEBHOOK_RETENTION_DAYS", "45"))
# Per-entity fairness: each setting's events go to one of this many lanes (queues webhooks.0 .. webhooks.N-1, the lane
# is the setting id modulo N). A worker consumes every lane, and kombu's Redis transport rotates over its queues
# after each message, so a month-end burst of one entity waits in its own lane while the others go on.
WEBHOOK_LANES = max(1, int(os.environ.get("WEBHOOK_LANES", "8")))
WEBHOOK_LANE_PREFIX = "webhooks."
CELERY_TASK_IGNORE_RESULT = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
# A task is acknowledged only when it finished, and requeued if its worker dies: handlers are
# idempotent, so a redelivery is safe while a lost task would lose money.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = int(os.environ.get("CELERY_WORKER_PREFETCH_MULTIPLIER", "1"))
# Event processing waits on PostgreSQL half of its time: threads in one worker process overlap those waits (measured:
# 1.4-1.9x the events/s of one prefork process, bench/processing.py). Task time limits are not enforced by a thread pool;
# the batch task's own 30 s budget, the database's statement and lock timeouts (above) and Stripe's request timeout
# bound a task instead. The documents worker (CPU-bound PDFs) runs prefork (docker-compose.yml).
CELERY_WORKER_POOL = os.environ.get("CELERY_WORKER_POOL", "threads")
CELERY_WORKER_CONCURRENCY = int(os.environ.get("CELERY_WORKER_CONCURRENCY", "4"))
CELERY_TASK_TIME_LIMIT = 120
CELERY_TASK_SOFT_TIME_LIMIT = 90
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Publishing must fail fast when Redis is down: the inbox keeps the event and beat re-enqueues it.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": 3600,
    "socket_timeout": 2,
    "socket_connect_timeout": 2,
    "max_retries": 1,
}
CELERY_TASK_PUBLISH_RETRY = False
# Documents (receipt PDFs and their emails, reminder emails) take tens of milliseconds each: they have a queue of their
# own, so a burst of them never delays the webhook events that keep the books (docker-compose.yml runs a worker for it).
DOCUMENTS_QUEUE = "documents"
CELERY_TASK_ROUTES = {"receipts.tasks.*": {"queue": DOCUMENTS_QUEUE}, "reminders.tasks.*": {"queue": DOCUMENTS_QUEUE},
                      "disputes.tasks.*": {"queue": DOCUMENTS_QUEUE}}
# The queues a worker started without -Q consumes: the default one (beat's tasks and the rest), every webhook lane and the
# documents queue. The events worker excludes documents (`-X documents`), the documents worker takes only it (`-Q documents`),
# so no command line lists the lanes and changing WEBHOOK_LANES needs no other change.
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_QUEUES = [Queue(name, routing_key=name) for name in
                      ["celery", *(f"{WEBHOOK_LANE_PREFIX}{lane}" for lane in range(WEBHOOK_LANES)), DOCUMENTS_QUEUE]]
CELERY_BEAT_SCHEDULE = {
    "webhooks-requeue-received-events": {
        "task": "webhooks.tasks.requeue_stale_events",
        "schedule": 60.0,
    },
    "refunds-finish-pending-requests": {
        "task": "refunds.tasks.finish_pending_refund_requests",
        "schedule": 300.0,
    },
    "receipts-sweep": {
        "task": "receipts.tasks.sweep_receipts",
        "schedule": 300.0,
    },
    "disputes-sweep-emails": {
        "task": "disputes.tasks.sweep_dispute_emails",
        "schedule": 300.0,
    },
    "reminders-send-due": {
        "task": "reminders.tasks.send_due_reminders",
        "schedule": crontab(minute=5),
    },
    "payments-cancel-replaced-payment-intents": {
        "task": "payments.tasks.cancel_replaced_payment_intents",
        "schedule": 300.0,
    },
    "payments-collect-due-invoices": {
        "task": "payments.tasks.collect_due_invoices",
        "schedule": crontab(minute=15, hour="*/6"),
    },
    # Payouts whose events were missed, and mismatched payouts matched again (payments.tasks.PAYOUT_CATCH_UP_DAYS).
    # Processed events past WEBHOOK_RETENTION_DAYS, in small batches within a time budget (webhooks.retention).
    "webhooks-purge-old-events": {
        "task": "webhooks.tasks.purge_old_events",
        "schedule": crontab(minute=40, hour=3),
    },
    "payments-reconcile-recent-payouts": {
        "task": "payments.tasks.reconcile_recent_payouts",
        "schedule": crontab(minute=30, hour=5),
    },
}

# --- REST API --------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["config.permissions.StaffWithModelPermissions"],
    "DEFAULT_SCHEMA_CLASS": "config.schema.DocumentedRefusalsSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "config.pagination.BoundedLimitOffsetPagination",
    "PAGE_SIZE": 100,
    "COERCE_DECIMAL_TO_STRING": True,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Stripe billing provider API",
    "DESCRIPTION": "Invoices, balances, payment entries and refunds of the billing back office.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and its docs page list every endpoint and field of the books: staff only.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAdminUser"],
}

# The ingest benchmark's baseline endpoint (bench/baseline.py); never enable in production.
BENCH_BASELINE = env_bool("BENCH_BASELINE", False)

# --- Logging ---------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact_secrets": {"()": "providers.logging.RedactSecretsFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact_secrets"]},
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        # The Stripe SDK logs request lines; keep it quiet.
        "stripe": {"level": "WARNING"},
        # WeasyPrint logs every step of every receipt at INFO.
        "weasyprint": {"level": "WARNING"},
        "fontTools": {"level": "WARNING"},
    },
}
