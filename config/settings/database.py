import dj_database_url

from config.env import env_int, env_str

# The embedded launcher (config/embedded.py) sets DATABASE_URL to the server it starts,
# so this default is only reached by a bare `manage.py` against a local PostgreSQL.
DATABASE_URL = env_str("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/payback")

DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL,
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
# Django's ORM binds parameters client-side and never prepares; the ingest hot path uses
# server-side binding and prepares its statements once per connection (see
# metering/services/ingest.py). Set to an empty value behind a pooler that cannot keep
# prepared statements (PgBouncer before 1.21 in transaction mode).
_PREPARE_THRESHOLD = env_str("DATABASE_PREPARE_THRESHOLD", "5")
DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = (
    int(_PREPARE_THRESHOLD) if _PREPARE_THRESHOLD else None
)

# A streaming replica for analytics (common/replicas.py): the margin, savings and premium
# reports and the dashboard read from it; everything else, invoices and their closes
# first, reads and writes the primary. Empty: everything on the primary.
DATABASE_REPLICA_URL = env_str("DATABASE_REPLICA_URL", "")
if DATABASE_REPLICA_URL:
    DATABASES["replica"] = dj_database_url.parse(
        DATABASE_REPLICA_URL,
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
    DATABASES["replica"].setdefault("OPTIONS", {})["prepare_threshold"] = DATABASES["default"][
        "OPTIONS"
    ]["prepare_threshold"]
    # Tests run the replica alias on the test database (a real replica is a test's own).
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}
DATABASE_ROUTERS = ["common.replicas.ReplicaRouter"]
