"""Persistence behind one Store interface: SQLite (the embedded default) or PostgreSQL.

Opening a SQLite file runs the start-up checks of store/checks.py first: a database emptied
under a cluster's id file is refused before SQLite would make a new one of it.
"""

from __future__ import annotations

from pathlib import Path

from common.errors import ConfigError
from headnode.store import checks
from headnode.store.base import Store


def open_store(url: str, state_dir: Path) -> Store:
    """'' -> SQLite in the state dir; sqlite:///PATH; postgresql://... (see postgres.py)."""
    if not url or url.startswith("sqlite:///"):
        from headnode.store.sqlite import SqliteStore

        path = Path(url.removeprefix("sqlite://")) if url else Path(state_dir) / "shoal.db"
        checks.check_not_emptied(path, checks.id_file(url, state_dir))
        return SqliteStore(path, f"state dir {state_dir}" if not url else "")
    if url.startswith(("postgresql://", "postgres://")):
        import psycopg

        from headnode.store.postgres import PostgresStore

        try:
            return PostgresStore(url)
        except (psycopg.OperationalError, ValueError) as e:
            raise ConfigError(f"cannot use the database {redacted(url)}: {' '.join(str(e).split())}") from None
    raise ConfigError(f"database {redacted(url)!r} must be postgresql://... or sqlite:///PATH")


def redacted(url: str) -> str:
    """The URL without a password, for messages."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        creds, _, host = rest.rpartition("@")
        user = creds.split(":", 1)[0]
        return f"{scheme}{sep}{user}:***@{host}"
    return url
