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
    "corsheaders",
    "django_htmx",
    "template_partials",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
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
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
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
}

# Limits and behaviour.
DAC_MAX_MESSAGE_CHARS = env.int("DAC_MAX_MESSAGE_CHARS", default=32_000)
DAC_DEFAULT_REQUESTS_PER_DAY = env.int("DAC_DEFAULT_REQUESTS_PER_DAY", default=1_000)
DAC_DEFAULT_TOKENS_PER_DAY = env.int("DAC_DEFAULT_TOKENS_PER_DAY", default=100_000)
DAC_ALLOW_PRIVATE_BASE_URLS = env.bool("DAC_ALLOW_PRIVATE_BASE_URLS", default=False)
DAC_PROVIDER_TIMEOUT = env.float("DAC_PROVIDER_TIMEOUT", default=60.0)
DAC_DEMO_STREAM_DELAY_MS = env.int("DAC_DEMO_STREAM_DELAY_MS", default=15)

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
DAC_PROVIDER_RETRIES = env.int("DAC_PROVIDER_RETRIES", default=2)
DAC_PROVIDER_RETRY_BACKOFF = env.float("DAC_PROVIDER_RETRY_BACKOFF", default=0.25)
