"""Revoked credentials: which tokens and certificates the head no longer accepts.

Tokens are checked without being stored (common/tokens.py), so revocation works by time: an
entry `user:alice` at time T refuses every token of alice's issued at or before T (a new
one, issued later, works). `join:*` does the same for every join token, `node:n1` for node
n1's own credential (set when the node is removed, so its old agent cannot come back), and
`cert:<serial>` refuses one certificate for good (gRPC's Python TLS takes no CRL, so the head
checks the serial of every client certificate itself).

The list lives in the store's meta table (key `revocations`, JSON), so head nodes sharing a
database share it; a standby reads it when it takes over.
"""

from __future__ import annotations

import json

from common.clock import Clock
from headnode.services.journal import Journal

META_KEY = "revocations"


class Revocations:
    def __init__(self, journal: Journal | None, clock: Clock, stored: str = "") -> None:
        self.journal = journal
        self.clock = clock
        self._revoked: dict[str, float] = {str(k): float(v) for k, v in json.loads(stored or "{}").items()}

    def revoked(self, key: str, issued: float = 0.0) -> bool:
        """Whether a credential named `key`, issued at `issued`, has been revoked."""
        at = self._revoked.get(key)
        return at is not None and issued <= at

    async def revoke(self, key: str) -> float:
        at = self.clock.now()
        entries = dict(self._revoked)
        entries[key] = at
        if self.journal is not None:
            await self.journal.record(meta={META_KEY: json.dumps(entries, separators=(",", ":"))})
        self._revoked = entries
        return at
