"""The id of the request (or Celery task) that a log line belongs to. No Django imports:
the logging configuration loads this while settings are still being read."""

import logging
from contextvars import ContextVar

# "-" outside a request and a task.
REQUEST_ID: ContextVar[str] = ContextVar("request_id", default="-")


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True
