"""DAC settings: everything comes from the environment (see .env.example)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
# The test suite must not depend on a developer's .env (settings_test sets DAC_SKIP_DOTENV).
if (BASE_DIR / ".env").exists() and not os.environ.get("DAC_SKIP_DOTENV"):
    env.read_env(BASE_DIR / ".env")

INSECURE_SECRET_KEY = "dac-insecure-development-key-do-not-use-in-production"
# A fixed Fernet key so `make run` works with no set-up; refused when DEBUG is off.
INSECURE_ENCRYPTION_KEY = "ZGFjLWRldmVsb3BtZW50LWtleS1kby1ub3QtdXNlISE="

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default=INSECURE_SECRET_KEY)
DAC_ENCRYPTION_KEYS = env.list("DAC_ENCRYPTION_KEYS", default=[])

if not DEBUG:
    if SECRET_KEY == INSECURE_SECRET_KEY or len(SECRET_KEY) < 32:
        raise ImproperlyConfigured(
            "SECRET_KEY must be set to a random value of at least 32 characters when DEBUG is off."
        )
    if not DAC_ENCRYPTION_KEYS or INSECURE_ENCRYPTION_KEY in DAC_ENCRYPTION_KEYS:
        raise ImproperlyConfigured(
            "DAC_ENCRYPTION_KEYS must list at least one master key (newest first) when DEBUG is "
            "off; `manage.py generate_encryption_key` makes one."
        )
elif not DAC_ENCRYPTION_KEYS:
    DAC_ENCRYPTION_KEYS = [INSECURE_ENCRYPTION_KEY]

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "tenants",
    "threads",
    "providers",
    "routing",
    "audit",
    "metrics",
    "dac.apps.DacAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served from our static files, not a CDN
    "corsheaders",
    "django_htmx",
    "template_partials",
]

MIDDLEWARE = [
    "metrics.middleware.RequestMetricsMiddleware",  # outermost: times the whole request
    "django.middleware.security.SecurityMiddleware",
    "dac.middleware.SecurityHeadersMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "tenants.middleware.TenantMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

# The gateway (/v1/, bearer tokens only) runs through these alone: each is async-capable, so a
# call never hops to a worker thread for middleware (see dac/asgi.py).
DAC_GATEWAY_MIDDLEWARE = [
    "metrics.middleware.RequestMetricsMiddleware",
    "dac.middleware.AsyncSecurityMiddleware",
    "dac.middleware.SecurityHeadersMiddleware",
    "corsheaders.middleware.CorsMiddleware",
]

ROOT_URLCONF = "dac.urls"
ASGI_APPLICATION = "dac.asgi.application"
AUTH_USER_MODEL = "tenants.User"
LOGIN_URL = "tenants:login"
LOGIN_REDIRECT_URL = "threads:list"
LOGOUT_REDIRECT_URL = "tenants:login"

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
                "tenants.context_processors.current_org",
            ],
        },
    },
]

# Two roles: the runtime role the app connects as (no superuser, no BYPASSRLS, owns nothing)
# and the owner that runs migrations (`manage.py migrate` uses it by default).
DATABASE_URL = env.str("DATABASE_URL", default="postgres://dac_app@127.0.0.1:5432/dac")
DATABASE_OWNER_URL = env.str("DATABASE_OWNER_URL", default="postgres://dac_owner@127.0.0.1:5432/dac")
# Under ASGI each request's sync work runs in a short-lived thread, so persistent per-thread
# connections would leak: a psycopg pool is shared instead (the backend re-asserts the tenant
# on every borrowed connection).
DB_POOL_MIN_SIZE = env.int("DB_POOL_MIN_SIZE", default=2)
DB_POOL_MAX_SIZE = env.int("DB_POOL_MAX_SIZE", default=20)
DB_POOL_TIMEOUT = env.float("DB_POOL_TIMEOUT", default=10.0)


def _database(url: str, *, pool: bool) -> dict:
    config = environ.Env.db_url_config(url)
    config["ENGINE"] = "dac.db"
    config["CONN_MAX_AGE"] = 0
    if pool:  # keep what the URL says (sslmode, a socket ?host=) and add the pool
        config.setdefault("OPTIONS", {})["pool"] = {
            "min_size": DB_POOL_MIN_SIZE, "max_size": DB_POOL_MAX_SIZE, "timeout": DB_POOL_TIMEOUT
        }
        # Django hands the pool psycopg's check: a connection that died with a PostgreSQL
        # restart is replaced on checkout (one empty round trip) instead of failing a request.
        config["CONN_HEALTH_CHECKS"] = True
    return config


DATABASES = {
    "default": _database(DATABASE_URL, pool=env.bool("DB_POOL", default=True)),
    "owner": _database(DATABASE_OWNER_URL, pool=False),
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "OPTIONS": {
            "SOCKET_CONNECT_TIMEOUT": 0.25,
            "SOCKET_TIMEOUT": 0.5,
            # Redis down must not break pages that merely cache: quotas have their own fallback.
            "IGNORE_EXCEPTIONS": True,
        },
    }
}
DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = False

QDRANT_URL = env.str("QDRANT_URL", default="")
QDRANT_PATH = env.str("QDRANT_PATH", default=str(VAR_DIR / "qdrant"))
QDRANT_API_KEY = env.str("QDRANT_API_KEY", default="")

# Org memory (threads/memory, docs/memory.md).
DAC_MEMORY_ENABLED = env.bool("DAC_MEMORY_ENABLED", default=True)
DAC_MEMORY_TOP_K = env.int("DAC_MEMORY_TOP_K", default=3)
DAC_MEMORY_MIN_SCORE = env.float("DAC_MEMORY_MIN_SCORE", default=1.0)
DAC_MEMORY_MIN_DENSE_SCORE = env.float("DAC_MEMORY_MIN_DENSE_SCORE", default=0.3)
DAC_MEMORY_RECALL_BUDGET_MS = env.int("DAC_MEMORY_RECALL_BUDGET_MS", default=1000)
DAC_MEMORY_INDEX_MODE = env.str("DAC_MEMORY_INDEX_MODE", default="background")
DAC_MEMORY_TIMEOUT = env.float("DAC_MEMORY_TIMEOUT", default=2.0)
DAC_MEMORY_RETRY_SECONDS = env.float("DAC_MEMORY_RETRY_SECONDS", default=30.0)
DAC_MEMORY_BACKOFF_SECONDS = env.float("DAC_MEMORY_BACKOFF_SECONDS", default=5.0)
DAC_MEMORY_EMBED_TIMEOUT = env.float("DAC_MEMORY_EMBED_TIMEOUT", default=5.0)
DAC_MEMORY_DENSE_DIM = env.int("DAC_MEMORY_DENSE_DIM", default=768)
DAC_MEMORY_IDF_SCOPE = env.str("DAC_MEMORY_IDF_SCOPE", default="auto")
DAC_MEMORY_COLLECTION = env.str("DAC_MEMORY_COLLECTION", default="dac_memory")
if DAC_MEMORY_INDEX_MODE not in ("background", "inline", "queue"):
    raise ImproperlyConfigured("DAC_MEMORY_INDEX_MODE must be background, inline or queue.")
if DAC_MEMORY_IDF_SCOPE not in ("auto", "org", "global"):
    raise ImproperlyConfigured("DAC_MEMORY_IDF_SCOPE must be auto, org or global.")
if not 0 <= DAC_MEMORY_TOP_K <= 20:
    raise ImproperlyConfigured("DAC_MEMORY_TOP_K must be from 0 to 20.")
if DAC_MEMORY_DENSE_DIM <= 0:
    raise ImproperlyConfigured("DAC_MEMORY_DENSE_DIM must be positive.")

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
DAC_HTTPS = env.bool("DAC_HTTPS", default=not DEBUG)
SESSION_COOKIE_SECURE = DAC_HTTPS
CSRF_COOKIE_SECURE = DAC_HTTPS
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=DAC_HTTPS)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # load balancers probe over plain HTTP
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000 if DAC_HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = DAC_HTTPS
SECURE_HSTS_PRELOAD = DAC_HTTPS
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("DAC_BEHIND_PROXY", default=False) else None
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

CORS_ALLOWED_ORIGINS = env.list("CORS_ALLOWED_ORIGINS", default=[])
CORS_ALLOW_HEADERS = ("authorization", "content-type", "x-org-id", "x-dac-thread-id")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "tenants.authentication.ApiTokenAuthentication",
        "tenants.authentication.OrgSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "dac.errors.api_exception_handler",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "DAC API",
    "DESCRIPTION": "Multi-tenant LLM workspace and gateway.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {"RoutingRuleEnum": "routing.rules.RULE_NAMES"},
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Limits and behaviour.
DAC_MAX_MESSAGE_CHARS = env.int("DAC_MAX_MESSAGE_CHARS", default=32_000)
DAC_DEFAULT_REQUESTS_PER_DAY = env.int("DAC_DEFAULT_REQUESTS_PER_DAY", default=1_000)
DAC_DEFAULT_TOKENS_PER_DAY = env.int("DAC_DEFAULT_TOKENS_PER_DAY", default=100_000)
DAC_ALLOW_PRIVATE_BASE_URLS = env.bool("DAC_ALLOW_PRIVATE_BASE_URLS", default=False)
DAC_PROVIDER_TIMEOUT = env.float("DAC_PROVIDER_TIMEOUT", default=60.0)
DAC_DEMO_STREAM_DELAY_MS = env.int("DAC_DEMO_STREAM_DELAY_MS", default=15)
# Provider calls in flight at once per worker process; more wait for a free connection.
DAC_PROVIDER_MAX_CONNECTIONS = env.int("DAC_PROVIDER_MAX_CONNECTIONS", default=2000)
DAC_PROVIDER_RETRIES = env.int("DAC_PROVIDER_RETRIES", default=2)
# On shutdown, how long a worker lets the answers it is still producing (their client gone, see
# SendHandle.abandon) finish and be recorded before the server cancels them (dac/asgi.py).
DAC_SHUTDOWN_GRACE_SECONDS = env.float("DAC_SHUTDOWN_GRACE_SECONDS", default=20.0)
DAC_PROVIDER_RETRY_BACKOFF = env.float("DAC_PROVIDER_RETRY_BACKOFF", default=0.25)
DAC_DEFAULT_MAX_TOKENS = env.int("DAC_DEFAULT_MAX_TOKENS", default=1024)
DAC_QUOTA_PROBE_SECONDS = env.float("DAC_QUOTA_PROBE_SECONDS", default=2.0)
DAC_QUOTA_LIMITS_CACHE_SECONDS = env.float("DAC_QUOTA_LIMITS_CACHE_SECONDS", default=5.0)
DAC_QUOTA_KEY_PREFIX = env.str("DAC_QUOTA_KEY_PREFIX", default="dac:q")
DAC_KEY_TESTS_PER_HOUR = env.int("DAC_KEY_TESTS_PER_HOUR", default=30)
DAC_TOKEN_CACHE_SECONDS = env.float("DAC_TOKEN_CACHE_SECONDS", default=5.0)
# Active keys, routing settings and the context window, per org and process (dac/org_cache.py).
DAC_SETTINGS_CACHE_SECONDS = env.float("DAC_SETTINGS_CACHE_SECONDS", default=5.0)
DAC_LOGIN_MAX_FAILURES = env.int("DAC_LOGIN_MAX_FAILURES", default=5)
DAC_LOGIN_WINDOW_SECONDS = env.int("DAC_LOGIN_WINDOW_SECONDS", default=900)

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
if LOG_LEVEL.upper() not in logging.getLevelNamesMapping():
    raise ImproperlyConfigured(f"LOG_LEVEL={LOG_LEVEL!r} is not a logging level.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL.upper()},
    "loggers": {"httpx": {"level": "WARNING"}, "httpcore": {"level": "WARNING"}},
}
DAC_SERVE_STATIC = env.bool("DAC_SERVE_STATIC", default=True)


# --- metrics and audit ---
# Read by metrics/ and audit/ (docs/observability.md). Prices: USD per 1M input and output
# tokens, for the estimated cost of each provider call; DAC_MODEL_PRICES (JSON, e.g.
# '{"my-model": [0.5, 1.5]}') adds or overrides models.
def _price(name: str, value) -> tuple[float, float]:
    try:
        price_in, price_out = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ImproperlyConfigured(f"{name}: a price is [USD per 1M input tokens, USD per 1M output tokens].") from None
    if price_in < 0 or price_out < 0:
        raise ImproperlyConfigured(f"{name}: prices cannot be negative.")
    return price_in, price_out


DAC_MODEL_PRICES = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "o4-mini": (1.10, 4.40),
    "sonar": (1.00, 1.00),
    "sonar-pro": (3.00, 15.00),
    "sonar-reasoning": (1.00, 5.00),
    "gemini-2.5-flash": (0.30, 2.50),
    "gemini-2.5-pro": (1.25, 10.00),
    "gemini-2.0-flash": (0.10, 0.40),
    "demo-1": (0.0, 0.0),
}
_extra_prices = env.json("DAC_MODEL_PRICES", default={})
if not isinstance(_extra_prices, dict):
    raise ImproperlyConfigured("DAC_MODEL_PRICES must be a JSON object of model -> [input, output] USD per 1M tokens.")
DAC_MODEL_PRICES.update({str(k).lower(): _price(f"DAC_MODEL_PRICES[{k}]", v) for k, v in _extra_prices.items()})
# Providers whose calls cost nothing whatever the model (the offline demo, self-hosted servers).
DAC_PROVIDER_PRICES = {"demo": (0.0, 0.0), "openai_compatible": (0.0, 0.0)}
DAC_MODEL_PRICE_DEFAULT = _price("DAC_MODEL_PRICE_DEFAULT", env.list("DAC_MODEL_PRICE_DEFAULT", default=["1.0", "3.0"]))

# /metrics (Prometheus): a bearer token, or a client address in the allow-list (IPs or CIDRs).
DAC_METRICS_TOKEN = env.str("DAC_METRICS_TOKEN", default="")
DAC_METRICS_ALLOWED_IPS = env.list("DAC_METRICS_ALLOWED_IPS", default=["127.0.0.1", "::1"])
try:
    import ipaddress as _ipaddress

    DAC_METRICS_ALLOWED_NETWORKS = tuple(_ipaddress.ip_network(v, strict=False) for v in DAC_METRICS_ALLOWED_IPS if v)
except ValueError as _exc:
    raise ImproperlyConfigured(f"DAC_METRICS_ALLOWED_IPS: {_exc}") from None
if DAC_METRICS_TOKEN and len(DAC_METRICS_TOKEN) < 24:
    raise ImproperlyConfigured("DAC_METRICS_TOKEN must be at least 24 characters (or empty to rely on the allow-list).")

# Request/provider-call rows are buffered in each process and written in batches: every
# DAC_METRICS_FLUSH_ROWS rows or DAC_METRICS_FLUSH_SECONDS seconds (0: no background thread;
# flushed when full and at exit), never more than DAC_METRICS_BUFFER_MAX_ROWS held (extra rows
# are dropped and counted). A crash loses at most the buffer: metrics, never audit.
# DAC_METRICS_STORE=false keeps metrics in Prometheus only (no database rows; test suites).
DAC_METRICS_STORE = env.bool("DAC_METRICS_STORE", default=True)
DAC_METRICS_FLUSH_ROWS = env.int("DAC_METRICS_FLUSH_ROWS", default=500)
DAC_METRICS_FLUSH_SECONDS = env.float("DAC_METRICS_FLUSH_SECONDS", default=2.0)
DAC_METRICS_BUFFER_MAX_ROWS = env.int("DAC_METRICS_BUFFER_MAX_ROWS", default=50_000)
# Retention: raw rows, per-minute rollups, per-hour rollups. Rollups run at most every
# DAC_METRICS_ROLLUP_SECONDS per org (after a flush, on read, or `manage.py rollup_metrics`)
# and recompute the last DAC_METRICS_LATE_SECONDS so rows that arrive late still count.
DAC_METRICS_RAW_RETENTION_HOURS = env.int("DAC_METRICS_RAW_RETENTION_HOURS", default=48)
DAC_METRICS_MINUTE_RETENTION_HOURS = env.int("DAC_METRICS_MINUTE_RETENTION_HOURS", default=48)
DAC_METRICS_HOUR_RETENTION_DAYS = env.int("DAC_METRICS_HOUR_RETENTION_DAYS", default=400)
DAC_METRICS_ROLLUP_SECONDS = env.int("DAC_METRICS_ROLLUP_SECONDS", default=60)
DAC_METRICS_LATE_SECONDS = env.int("DAC_METRICS_LATE_SECONDS", default=300)
if DAC_METRICS_FLUSH_ROWS < 1 or DAC_METRICS_FLUSH_SECONDS < 0 or DAC_METRICS_BUFFER_MAX_ROWS < DAC_METRICS_FLUSH_ROWS:
    raise ImproperlyConfigured("DAC_METRICS_FLUSH_ROWS >= 1, DAC_METRICS_FLUSH_SECONDS >= 0 and DAC_METRICS_BUFFER_MAX_ROWS >= DAC_METRICS_FLUSH_ROWS.")
if DAC_METRICS_RAW_RETENTION_HOURS * 3600 < 3600 + 2 * DAC_METRICS_LATE_SECONDS:
    raise ImproperlyConfigured("DAC_METRICS_RAW_RETENTION_HOURS must cover an hour plus twice DAC_METRICS_LATE_SECONDS.")
if DAC_METRICS_MINUTE_RETENTION_HOURS < 26:
    raise ImproperlyConfigured("DAC_METRICS_MINUTE_RETENTION_HOURS must be at least 26 (the 24-hour window reads minutes).")
if DAC_METRICS_HOUR_RETENTION_DAYS < 8:
    raise ImproperlyConfigured("DAC_METRICS_HOUR_RETENTION_DAYS must be at least 8 (the 7-day window reads hours).")
# The audit page re-verifies at most this many of the newest rows of the chain on each view
# (cached per chain head); `manage.py verify_audit` always walks the whole chain.
DAC_AUDIT_PAGE_VERIFY_ROWS = env.int("DAC_AUDIT_PAGE_VERIFY_ROWS", default=50_000)
