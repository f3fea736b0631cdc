"""What the head node checks about its database before it serves from it.

Integrity (SQLite): an existing database file is checked with `PRAGMA integrity_check` when
it is opened, so a corrupted file stops the head at start with one line, instead of starting
and then failing the requests that touch the damaged pages. Measured here on a database of
10,000 ended jobs (11.8 MB, 80,000 history rows): ~20 ms warm (quick_check ~16 ms), against
~360 ms to load and restore the same jobs; 100,000 jobs (118 MB): ~190 ms against ~4.9 s.
The first read of a cold file costs what reading it costs (~150 ms for 11.8 MB here), which
loading it would pay anyway. So the full check, which also compares indexes to their tables,
is cheap enough.

Identity: on a cluster's first start the head makes a random cluster id and keeps it twice,
in the database's meta table and in a file beside the database (`<state_dir>/cluster.id`,
or `PATH.cluster-id` beside a `sqlite:///PATH` database). At every start the two must agree:
a database emptied (truncated to zero, deleted) or replaced by another cluster's would
otherwise start as a new cluster, its job ids again from 1. PostgreSQL keeps the id in its
meta table alone, and the check applies if a file exists in the head's state dir.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
from pathlib import Path

from common.errors import UntrustedDatabase

CLUSTER_ID = "cluster_id"  # meta key
ID_FILE = "cluster.id"
_CORRUPT = (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB


def id_file(url: str, state_dir: Path) -> Path:
    """Where the cluster id is kept beside the database the URL names."""
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite://") + ".cluster-id")
    return Path(state_dir) / ID_FILE


def _restore_or_start_anew(id_path: Path) -> str:
    return f"restore it from a backup, or delete {id_path} to start a new cluster deliberately"


def check_not_emptied(db_path: Path, id_path: Path) -> None:
    """Before SQLite opens (and so creates) the file: a cluster whose id file is here has a
    database, so a missing or zero-length one was emptied or deleted."""
    try:
        size = db_path.stat().st_size
    except FileNotFoundError:
        size = -1
    if size > 0 or not id_path.exists():
        return
    what = "is missing" if size < 0 else "is empty (zero bytes)"
    raise UntrustedDatabase(
        f"the database {db_path} is not this cluster's: it {what} but {id_path} says it held cluster "
        f"{_read_id(id_path)} (emptied or replaced); {_restore_or_start_anew(id_path)}")


def check_integrity(db: sqlite3.Connection, path: Path) -> None:
    """Raise UntrustedDatabase if SQLite finds the file damaged."""
    try:
        rows = db.execute("PRAGMA integrity_check(3)").fetchall()
    except sqlite3.DatabaseError as e:
        raise corrupted(path, str(e)) from None
    if rows != [("ok",)]:
        raise corrupted(path, "; ".join(r[0] for r in rows))


def corrupted(path: Path, detail: str) -> UntrustedDatabase:
    # SQLite's report is several lines ("*** in database main ***", then a line per problem).
    lines = [line.strip() for line in detail.splitlines() if line.strip() and not line.startswith("***")]
    found = "; ".join(lines[:2])[:200] or "unreadable"
    return UntrustedDatabase(f"the database {path} is corrupted (integrity_check: {found}); restore it from a "
                             "backup, or move it aside to start a new cluster")


def is_corruption(e: sqlite3.Error) -> bool:
    return getattr(e, "sqlite_errorcode", None) in _CORRUPT or "malformed" in str(e) or "not a database" in str(e)


def check_identity(meta: dict[str, str], id_path: Path, database: str) -> str | None:
    """Compare the database's cluster id with the file's. Returns a new id when this is the
    cluster's first start (neither has one), to be stored in the database and then the file."""
    stored = meta.get(CLUSTER_ID)
    kept = _read_id(id_path) if id_path.exists() else None
    if kept is not None and stored != kept:
        held = f"cluster {stored}" if stored else "no cluster id (it is new or was emptied)"
        raise UntrustedDatabase(
            f"the database {database} is not this cluster's: {id_path} says cluster {kept}, the database holds "
            f"{held} (emptied or replaced); {_restore_or_start_anew(id_path)}")
    if stored is None:
        return secrets.token_hex(16)
    return None


def keep_id_file(id_path: Path, cluster_id: str) -> None:
    """Write the id file (once the database holds the id: a crash between the two leaves a
    database with an id and no file, which the next start mends, never the reverse)."""
    if id_path.exists() and _read_id(id_path) == cluster_id:
        return
    tmp = id_path.with_name(id_path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        data = (cluster_id + "\n").encode()
        if os.write(fd, data) != len(data):
            raise OSError(f"short write to {tmp}")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, id_path)
    directory = os.open(id_path.parent, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _read_id(id_path: Path) -> str:
    return id_path.read_text().strip() or "(an empty id file)"
