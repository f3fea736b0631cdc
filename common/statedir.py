"""An exclusive lock on a daemon's state dir, so two daemons never share one (two head nodes
on one SQLite file, or two agents on one spool, would corrupt each other)."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from common.errors import ConfigError


class StateDirLock:
    def __init__(self, state_dir: Path, role: str) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(state_dir / f"{role}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise ConfigError(f"another {role} is using the state dir {state_dir}") from None

    def release(self) -> None:
        os.close(self._fd)
