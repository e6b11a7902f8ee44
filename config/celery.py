import os
import time

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.django.base")

app = Celery("payback")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


# Task metrics (common/metrics.py) and the log lines' id: `task:<id>` for a task's lines.
_started: dict[str, tuple[float, object]] = {}


@signals.task_prerun.connect
def _task_started(task_id: str, **_: object) -> None:
    from common.request_id import REQUEST_ID

    _started[task_id] = (time.perf_counter(), REQUEST_ID.set(f"task:{task_id}"))


@signals.task_postrun.connect
def _task_finished(task_id: str, task: object, state: str | None = None, **_: object) -> None:
    from common.metrics import TASK_SECONDS
    from common.request_id import REQUEST_ID

    started = _started.pop(task_id, None)
    if started is None:
        return
    began, token = started
    TASK_SECONDS.labels(getattr(task, "name", "?"), state or "?").observe(
        time.perf_counter() - began
    )
    REQUEST_ID.reset(token)  # type: ignore[arg-type]


@signals.task_failure.connect
def _task_failed(sender: object = None, **_: object) -> None:
    from common.metrics import TASK_FAILURES

    TASK_FAILURES.labels(getattr(sender, "name", "?")).inc()
