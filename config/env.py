"""Reads settings from the environment: the one place where payback looks at os.environ."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
# Local state of the embedded defaults (database files, broker queue, beat schedule).
VAR_DIR = Path(os.environ.get("PAYBACK_VAR_DIR") or BASE_DIR / "var").resolve()


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return default if raw is None or raw == "" else int(raw)


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return default if raw is None or raw == "" else float(raw)


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]
