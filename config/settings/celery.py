from pathlib import Path

from config.env import VAR_DIR, env_bool, env_float, env_int, env_str
from config.settings.alerts import ALERTS_EVALUATE_SECONDS

# Redis or RabbitMQ in production; `filesystem://` is kombu's server-less transport that
# the embedded launcher uses on a laptop.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
CELERY_BROKER_VISIBILITY_TIMEOUT = env_int("CELERY_BROKER_VISIBILITY_TIMEOUT", 3600)
_BROKER_FOLDER = env_str("CELERY_BROKER_FOLDER", str(VAR_DIR / "broker"))
# Every call to the broker is bounded: one that accepts connections and then never
# answers (stopped by SIGSTOP, a dead NAT mapping, a failover) costs a caller this many
# seconds per connect and per reply, then an error. Keep it above Redis' BRPOP wait (1 s).
CELERY_BROKER_TIMEOUT_SECONDS = env_float("CELERY_BROKER_TIMEOUT_SECONDS", 2.0)
CELERY_BROKER_CONNECTION_TIMEOUT = CELERY_BROKER_TIMEOUT_SECONDS
# After an enqueue found the broker unreachable, the process sends nothing to it for this
# many seconds (each attempt would wait out the timeout); the sweeps send that work later
# (common/queue.py).
CELERY_ENQUEUE_BACKOFF_SECONDS = env_float("CELERY_ENQUEUE_BACKOFF_SECONDS", 5.0)
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = (
    {
        "data_folder_in": _BROKER_FOLDER,
        "data_folder_out": _BROKER_FOLDER,
        "processed_folder": _BROKER_FOLDER + "-processed",
        # kombu's default is ./control, in whatever folder the process runs.
        "control_folder": _BROKER_FOLDER + "-control",
        "store_processed": False,
    }
    if CELERY_BROKER_URL.startswith("filesystem")
    else {
        # Redis: a message a worker took and never acknowledged (the worker was killed
        # mid-task, SIGKILL or out of memory) goes back to the queue after this many
        # seconds, and another worker runs it. Keep it above the longest task, or a slow
        # task also runs a second time (harmless, tasks are idempotent, but wasted).
        "visibility_timeout": CELERY_BROKER_VISIBILITY_TIMEOUT,
        # Look for such messages every tenth of the timeout, from 1 s to kombu's 100 s.
        "unacked_restore_interval": max(1, min(100, CELERY_BROKER_VISIBILITY_TIMEOUT // 10)),
        "unacked_restore_throttle": 1,
        # Redis (redis-py) reads these; RabbitMQ (py-amqp) reads the two below them.
        "socket_timeout": CELERY_BROKER_TIMEOUT_SECONDS,
        "socket_connect_timeout": CELERY_BROKER_TIMEOUT_SECONDS,
        "read_timeout": CELERY_BROKER_TIMEOUT_SECONDS,
        "write_timeout": CELERY_BROKER_TIMEOUT_SECONDS,
    }
)
if CELERY_BROKER_URL.startswith("filesystem"):
    # kombu does not create its folders, and a worker without them never becomes ready
    # (nor says why). The embedded launcher made them; now so does any process that uses
    # them (a test run by hand, `celery worker`).
    for _folder in (_BROKER_FOLDER, _BROKER_FOLDER + "-processed", _BROKER_FOLDER + "-control"):
        Path(_folder).mkdir(parents=True, exist_ok=True)
# The queue tasks go to and workers take from: another name lets deployments (or tests)
# share one broker without taking each other's tasks.
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_TASK_DEFAULT_QUEUE", "celery")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
# Tasks are idempotent (they take ids and re-read their rows), so a redelivery after a
# worker crash is safe and wanted.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BEAT_SCHEDULE_FILENAME = env_str(
    "CELERY_BEAT_SCHEDULE_FILENAME", str(VAR_DIR / "celerybeat-schedule")
)
CELERY_BEAT_SCHEDULE = {
    # Each due customer period becomes one close_period task; the invoice's unique
    # (customer, period_start) makes a second run of either harmless.
    "close-due-periods": {
        "task": "billing.tasks.close_due_periods",
        "schedule": 300.0,
    },
    # The credits plans give each period, made soon after it starts (a close makes any
    # this missed; each grant once).
    "grant-plan-credits": {
        "task": "credits.tasks.grant_plan_credits",
        "schedule": 300.0,
    },
    # Reservations nobody settled or released in time stop holding (limits).
    "expire-reservations": {
        "task": "limits.tasks.expire_reservations",
        "schedule": 60.0,
    },
    # Auto top-ups of customers whose available amount fell below their threshold.
    "check-auto-top-ups": {
        "task": "limits.tasks.check_auto_top_ups",
        "schedule": 60.0,
    },
    # Days that are over join the running rollup (the preview, live margins, authorize).
    "fold-running-days": {
        "task": "invoicing.tasks.fold_running_days",
        "schedule": 600.0,
    },
    # Each plan's fair-use cap per premium seat, from the last whole month (limits).
    "compute-fair-use-caps": {
        "task": "limits.tasks.compute_fair_use_caps",
        "schedule": 3600.0,
    },
    # The margin breakdown of closed invoices whose after-close task was lost.
    "reconcile-missing": {
        "task": "billing.tasks.reconcile_missing",
        "schedule": 600.0,
    },
    # Processed Stripe deliveries' bodies, after STRIPE_WEBHOOK_RETENTION_DAYS.
    "prune-stripe-deliveries": {
        "task": "billing.tasks.prune_stripe_deliveries",
        "schedule": 86400.0,
    },
    # Work whose message was lost (a broker outage at enqueue): pushes, Stripe events,
    # alert deliveries (common/queue.py).
    "resend-stalled-billing-work": {
        "task": "billing.tasks.resend_stalled",
        "schedule": 300.0,
    },
    "resend-stalled-alert-deliveries": {
        "task": "alerts.tasks.resend_stalled_deliveries",
        "schedule": 300.0,
    },
    "check-stripe-drift": {
        "task": "billing.tasks.check_stripe_drift",
        "schedule": 3600.0,
    },
    # Alert rules over the month so far; an alert fires once per rule, subject and month.
    "evaluate-alerts": {
        "task": "alerts.tasks.evaluate_alerts",
        "schedule": ALERTS_EVALUATE_SECONDS,  # seconds
    },
    # A safety net behind the on-commit enqueue in price_override_save: whatever a lost
    # message left unpriced is priced here. Every minute: a broker back from an outage
    # should not leave calls unpriced for long, and finding none is one index probe.
    "price-unpriced-events": {
        "task": "metering.tasks.price_unpriced_events_sweep",
        "schedule": 60.0,
    },
    # The events table's monthly partitions, months ahead; events that landed in the
    # default partition meanwhile move to their month's (metering/services/partitions.py).
    "ensure-event-partitions": {
        "task": "metering.tasks.ensure_event_partitions",
        "schedule": 3600.0,
    },
}
