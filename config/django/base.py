"""Base settings: shared by the laptop, the tests and production (see production.py)."""

from config.env import env_bool, env_list, env_str
from config.settings.admin import *  # noqa: F403
from config.settings.alerts import *  # noqa: F403
from config.settings.api import *  # noqa: F403
from config.settings.billing import *  # noqa: F403
from config.settings.celery import *  # noqa: F403
from config.settings.database import *  # noqa: F403
from config.settings.metering import *  # noqa: F403
from config.settings.observability import *  # noqa: F403
from config.settings.stripe import *  # noqa: F403

SECRET_KEY = env_str("SECRET_KEY", "insecure-local-development-key-change-me")
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "rest_framework_api_key",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "metering",
    "outcomes",
    "billing",  # migrations only: the history of the billing_* tables
    "billing.plans",
    "billing.credits",
    "billing.invoicing",
    "billing.stripe_sync",
    "billing.analytics",
    "billing.limits",
    "billing.statements",
    "alerts",
    "axes",
    "auditlog",
]

# django-axes first: it refuses a locked-out login before the password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

# Two pipelines (config/pipeline.py): the API's, for product backends with a key, and the
# admin's, for everything else. What every request passes is written once, here.
COMMON_MIDDLEWARE = [
    "api.middleware.RequestIdMiddleware",
    "common.metrics.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "api.middleware.BodySizeLimitMiddleware",
    # Checks the Host against ALLOWED_HOSTS (400 for another).
    "django.middleware.common.CommonMiddleware",
    # X-Frame-Options: DENY on every answer, JSON too (OWASP's REST security headers).
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
# The API: under API_PATH_PREFIX, but for the docs and the schema, which open for an
# operator logged in to the admin (a browser cannot send the key header).
API_PATH_PREFIX = "/v1/"
API_PATHS_WITH_SESSION = ("/v1/docs", "/v1/schema")
API_MIDDLEWARE = [
    *COMMON_MIDDLEWARE,
    # After the body limit (which holds for what was sent): gzip bodies, inflated.
    "api.middleware.RequestDecompressionMiddleware",
    "api.middleware.DatabaseUnavailableMiddleware",
]
MIDDLEWARE = [
    # First: an API request leaves this chain here for API_MIDDLEWARE.
    "config.pipeline.ApiPipelineMiddleware",
    *COMMON_MIDDLEWARE,
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Who is acting, for the audit log of invoices and plans (auditlog's LogEntry).
    "auditlog.middleware.AuditlogMiddleware",
    "api.middleware.DatabaseUnavailableMiddleware",
    # Last, as django-axes requires: answers a locked-out admin login.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# Only production collects static files (see production.py); elsewhere WhiteNoise serves
# the admin's and the API docs' assets straight from the installed packages.
STATIC_ROOT = env_str("STATIC_ROOT", "") or None
WHITENOISE_USE_FINDERS = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
