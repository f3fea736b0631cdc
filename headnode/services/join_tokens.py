"""Join tokens' uses: which join tokens exist, whom each may admit, and whom it admitted.

A join token (common/tokens.py, kind "join") is signed and names its id; what it may still do
lives here, in the store's meta table (key `join_tokens`, JSON), so head nodes sharing a
database share it and a standby reads it when it takes over. A token admits at most `uses`
new nodes (default one: a token that leaked after its node joined admits nobody), only names
matching its patterns when it has any, and never a node removed after it was made (the
removal is a `node:NAME` revocation, headnode/services/revocations.py).

A join counts before the agent is told its node credential: `reserve` takes the use in
memory at once (so two agents racing for a token's last use cannot both win), `save` makes it
durable, and `release` gives it back if the session could not open.
"""

from __future__ import annotations

import fnmatch
import json
import secrets
from dataclasses import asdict, dataclass, field

from common.clock import Clock
from common.errors import InvalidArgument, NotFound, PermissionDenied, quote
from headnode.services.journal import Journal

META_KEY = "join_tokens"
MAX_USES = 10_000
MAX_PATTERNS = 256
MAX_TOKENS = 10_000  # records kept; expired ones go first
KEEP_EXPIRED = 7 * 86400.0  # an expired token stays listed this long


@dataclass(slots=True)
class JoinToken:
    id: str
    uses: int
    created: float
    expires: float
    created_by: str
    names: list[str] = field(default_factory=list)  # shell patterns; empty: any name
    groups: list[str] = field(default_factory=list)
    admitted: list[str] = field(default_factory=list)  # node names, in the order they joined
    revoked: bool = False

    @property
    def left(self) -> int:
        return max(0, self.uses - len(self.admitted))


class JoinTokens:
    def __init__(self, journal: Journal | None, clock: Clock, stored: str = "") -> None:
        self.journal = journal
        self.clock = clock
        self._tokens: dict[str, JoinToken] = {}
        for item in json.loads(stored or "[]"):
            token = JoinToken(**item)
            self._tokens[token.id] = token

    def list(self) -> list[JoinToken]:
        return sorted(self._tokens.values(), key=lambda t: t.created)

    async def create(self, uses: int, names: list[str], groups: list[str], expires: float, by: str) -> JoinToken:
        if not 1 <= uses <= MAX_USES:
            raise InvalidArgument(f"uses must be between 1 and {MAX_USES}, got {uses}")
        if len(names) > MAX_PATTERNS:
            raise InvalidArgument(f"a join token names at most {MAX_PATTERNS} nodes, got {len(names)}")
        for name in names:
            if not name or len(name) > 64:
                raise InvalidArgument(f"a node name pattern has 1 to 64 characters, got {len(name)}")
        now = self.clock.now()
        token = JoinToken("jt-" + secrets.token_hex(4), uses, now, expires, by, list(names), list(groups))
        self._forget_old(now)
        self._tokens[token.id] = token
        await self.save()
        return token

    def reserve(self, token_id: str, name: str, groups: tuple[str, ...]) -> JoinToken:
        """Take one of the token's uses for node `name` (whose agent asks for `groups`), or say
        why it may not join. Sync, so the check and the count are one step."""
        token = self._tokens.get(token_id)
        if token is None:
            raise PermissionDenied("the agent's join token is not known to this cluster (made before join tokens "
                                   "were counted, or forgotten after it expired); create a new one with "
                                   "`shoal node token create`")
        if token.revoked:
            raise PermissionDenied(f"the agent's join token {token.id} was revoked; create a new one with "
                                   "`shoal node token create`")
        if token.names and not any(fnmatch.fnmatchcase(name, p) for p in token.names):
            raise PermissionDenied(f"join token {token.id} admits only nodes named {_listed(token.names)}, "
                                   f"not {quote(name, 64)}")
        if token.groups and (extra := [g for g in groups if g not in token.groups]):
            raise PermissionDenied(f"join token {token.id} puts its nodes in {_listed(token.groups)} only; this "
                                   f"agent asks for {_listed(extra)} (create a token with --group for them)")
        if not token.left:
            raise PermissionDenied(f"join token {token.id} has admitted all the nodes it may "
                                   f"({_listed(token.admitted)}); create a new one with `shoal node token create`")
        token.admitted.append(name)
        return token

    def release(self, token_id: str, name: str) -> None:
        token = self._tokens.get(token_id)
        if token is not None and name in token.admitted:
            token.admitted.remove(name)

    async def revoke(self, token_id: str) -> JoinToken:
        token = self._tokens.get(token_id)
        if token is None:
            raise NotFound(f"no join token {quote(token_id, 64)} (see `shoal node token list`)")
        token.revoked = True
        await self.save()
        return token

    async def save(self) -> None:
        if self.journal is not None:
            text = json.dumps([asdict(t) for t in self._tokens.values()], separators=(",", ":"))
            await self.journal.record(meta={META_KEY: text})

    def _forget_old(self, now: float) -> None:
        for token in list(self._tokens.values()):
            if token.expires and token.expires + KEEP_EXPIRED < now:
                del self._tokens[token.id]
        while len(self._tokens) >= MAX_TOKENS:
            del self._tokens[min(self._tokens.values(), key=lambda t: (t.left > 0 and not t.revoked, t.created)).id]


def _listed(items: list[str] | tuple[str, ...]) -> str:
    shown = ", ".join(quote(i, 64) for i in items[:5])
    return shown + (f" and {len(items) - 5} more" if len(items) > 5 else "") if items else "none"
