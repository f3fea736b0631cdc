"""Persistence behind one Store interface: SQLite (the embedded default) or PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from common.errors import ConfigError
from headnode.store.base import Store


def open_store(url: str, state_dir: Path) -> Store:
    """'' -> SQLite in the state dir; sqlite:///PATH; postgresql://... (see postgres.py)."""
    if not url:
        from headnode.store.sqlite import SqliteStore

        return SqliteStore(Path(state_dir) / "shoal.db")
    if url.startswith("sqlite:///"):
        from headnode.store.sqlite import SqliteStore

        return SqliteStore(Path(url.removeprefix("sqlite://")))
    if url.startswith(("postgresql://", "postgres://")):
        import psycopg

        from headnode.store.postgres import PostgresStore

        try:
            return PostgresStore(url)
        except (psycopg.OperationalError, ValueError) as e:
            raise ConfigError(f"cannot use the database {_redacted(url)}: {' '.join(str(e).split())}") from None
    raise ConfigError(f"database {_redacted(url)!r} must be postgresql://... or sqlite:///PATH")


def _redacted(url: str) -> str:
    """The URL without a password, for messages."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        creds, _, host = rest.rpartition("@")
        user = creds.split(":", 1)[0]
        return f"{scheme}{sep}{user}:***@{host}"
    return url
