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
    "billing.invoicing",
    "billing.stripe_sync",
    "billing.analytics",
    "alerts",
    "axes",
    "auditlog",
]

# django-axes first: it refuses a locked-out login before the password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

MIDDLEWARE = [
    # The hot path (below) takes its requests off this chain: first, so every other
    # request passes all of it.
    "config.middleware.HotPathMiddleware",
    "config.middleware.RequestIdMiddleware",
    "config.metrics.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "config.middleware.BodySizeLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Who is acting, for the audit log of invoices and plans (auditlog's LogEntry).
    "auditlog.middleware.AuditlogMiddleware",
    "config.middleware.DatabaseUnavailableMiddleware",
    # Last, as django-axes requires: answers a locked-out admin login.
    "axes.middleware.AxesMiddleware",
]

# Requests answered by a plain view behind a short chain of the middleware above,
# past URL routing, the admin's middleware and DRF (config.middleware.HotPathMiddleware).
# A middleware added above for every request belongs in HOT_PATH_MIDDLEWARE too.
HOT_PATHS = {("POST", "/v1/events"): "metering.api.events_ingest_hot"}
HOT_PATH_MIDDLEWARE = [
    "config.middleware.RequestIdMiddleware",
    "config.metrics.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "config.middleware.BodySizeLimitMiddleware",
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
