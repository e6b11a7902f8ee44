from config.env import env_str

# /metrics (Prometheus): a scraper sends `Authorization: Bearer <METRICS_TOKEN>`; without a
# token only a logged-in staff user may read it (common/metrics.py).
METRICS_TOKEN = env_str("METRICS_TOKEN", "")

# Log lines: "json" (one object per line: time, level, logger, message, request_id, and
# any extra fields) or "plain" for a terminal. Every line of a request carries its
# X-Request-ID; a Celery task's lines carry `task:<task id>` (api/middleware.py).
LOG_FORMAT = env_str("LOG_FORMAT", "plain")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "common.request_id.RequestIdFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(request_id)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "plain",
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
