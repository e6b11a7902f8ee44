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
