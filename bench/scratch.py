"""A scratch database for a benchmark, next to the one DATABASE_URL names."""

import os
import sys

import psycopg
from psycopg import sql


def scratch_database(name: str) -> str:
    """Drop and create database `name` on DATABASE_URL's server; return its URL."""
    base = os.environ.get("DATABASE_URL")
    if not base:
        sys.exit("DATABASE_URL is not set: run through `python -m config.embedded exec`.")
    info = psycopg.conninfo.conninfo_to_dict("postgresql://" + base.split("://", 1)[1])
    admin = psycopg.conninfo.make_conninfo(**{**info, "dbname": "postgres"})
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    host, user = info.get("host", "127.0.0.1"), info.get("user", "postgres")
    if host.startswith("/"):
        return f"postgresql://{user}:@/{name}?host={host}"
    return f"postgresql://{user}@{host}:{info.get('port', 5432)}/{name}"
