from config.env import env_float, env_int, env_list, env_str

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["metering.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["api.parsers.SafeJSONParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "api.negotiation.JsonContentNegotiation",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "api.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_THROTTLE_CLASSES": ["api.throttling.ApiKeyRateThrottle"],
}

SPECTACULAR_SETTINGS = {
    "TITLE": "payback API",
    "DESCRIPTION": (
        "Usage- and outcome-based billing for GenAI products. Authenticate with "
        '`Authorization: Api-Key <key>`. Errors are `{"errors": [{"index"?, "field"?, '
        '"code", "message"}]}`. Money travels as decimal strings.'
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Like every /v1 endpoint, the schema needs an API key; the browsable docs also open
    # for an operator logged in to the admin (a browser cannot send the key header).
    "SERVE_AUTHENTICATION": [
        "metering.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "OutcomeStatusEnum": "outcomes.models.OutcomeStatus",
        "InvoiceLineKindEnum": "billing.invoicing.models.LineKind",
        "InvoiceStatusEnum": "billing.invoicing.models.InvoiceStatus",
        "OutcomeInputStatusEnum": "outcomes.models.SENT_STATUSES",
        "HealthStatusEnum": "api.health.HealthStatus",
    },
}

API_KEY_CUSTOM_HEADER = None
# How long a process trusts a key it verified (see metering/authentication.py).
API_KEY_CACHE_SECONDS = env_int("API_KEY_CACHE_SECONDS", 10)

# Largest request body accepted by the API, in bytes; larger bodies get 413. A batch of
# 1,000 events with 8 KiB of properties each stays under this.
API_MAX_BODY_BYTES = env_int("API_MAX_BODY_BYTES", 10 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_BODY_BYTES

# Proxies in front of the API over TCP (addresses or networks, comma-separated) whose
# X-Forwarded-For names the client (config/wsgi.py). A peer on gunicorn's unix socket,
# the proxy of `make run` and docker-compose.yml, is trusted without being listed.
API_TRUSTED_PROXIES = env_list("API_TRUSTED_PROXIES", [])

# Requests per API key ("N/s", "N/m" or "N/h"; "0": no limit), and failed
# authentications per client address before 429 (api/throttling.py).
API_KEY_RATE_LIMIT = env_str("API_KEY_RATE_LIMIT", "2000/s")
API_AUTH_FAILURE_LIMIT = env_str("API_AUTH_FAILURE_LIMIT", "20/m")

# Where rate-limit counters live: per process by default; `redis://…` for one count
# across processes (and a Django cache for anything else that wants one).
_CACHE_URL = env_str("CACHE_URL", "")
# A cache call waits at most this long for a connection and for a reply; after a failure
# the rate limits count per process for CACHE_BACKOFF_SECONDS (api/throttling.py).
CACHE_TIMEOUT_SECONDS = env_float("CACHE_TIMEOUT_SECONDS", 0.5)
CACHE_BACKOFF_SECONDS = env_float("CACHE_BACKOFF_SECONDS", 5.0)
CACHES = {
    "default": (
        {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": _CACHE_URL,
            "OPTIONS": {
                "socket_timeout": CACHE_TIMEOUT_SECONDS,
                "socket_connect_timeout": CACHE_TIMEOUT_SECONDS,
            },
        }
        if _CACHE_URL.startswith(("redis://", "rediss://"))
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}
