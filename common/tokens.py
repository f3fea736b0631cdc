"""Signed tokens (pure): user tokens, node join tokens and node credentials.

A token is `shoal1.<payload>.<signature>`: the payload is base64url JSON (kind, subject,
role, groups, expiry, issue time), the signature HMAC-SHA256 over it with the cluster's token key,
which the head node keeps in its store (so head nodes sharing a database share it). The
head checks a token without storing it; the expiry bounds it (HTCondor's IDTOKENS work the
same way).

  user   "who is calling": subject a user name, with a role
  join   lets a new agent register (`shoal node token create`); groups it joins
  node   a registered node's own credential, handed to its agent at its first join, so
         only that agent can speak for that node name afterwards
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, field

PREFIX = "shoal1"
KINDS = ("user", "join", "node")


class BadToken(ValueError):
    pass


@dataclass(frozen=True)
class Claims:
    kind: str
    subject: str = ""
    role: str = ""
    groups: tuple[str, ...] = field(default_factory=tuple)
    expires: float = 0.0  # 0: never
    issued: float = 0.0  # when it was signed (revocation refuses those issued before a time)
    # The revocation keys of the credential that minted it and of its own minters ("cert:SERIAL",
    # "user:NAME"): revoking any of them revokes this token (headnode/api/identity.py).
    parents: tuple[str, ...] = field(default_factory=tuple)


def new_key() -> str:
    return secrets.token_hex(32)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(key: str, claims: Claims) -> str:
    body = {"k": claims.kind, "s": claims.subject, "r": claims.role, "g": list(claims.groups),
            "e": claims.expires, "i": claims.issued, "n": secrets.token_hex(4)}
    if claims.parents:
        body["p"] = list(claims.parents)
    payload = _b64(json.dumps(body, separators=(",", ":")).encode())
    mac = hmac.new(bytes.fromhex(key), f"{PREFIX}.{payload}".encode(), hashlib.sha256).digest()
    return f"{PREFIX}.{payload}.{_b64(mac)}"


def verify(key: str, token: str, now: float, kind: str) -> Claims:
    """The token's claims if it is ours, unexpired and of `kind`; BadToken says why not."""
    parts = token.strip().split(".")
    if len(parts) != 3 or parts[0] != PREFIX:
        raise BadToken("not a Shoal token")
    expected = hmac.new(bytes.fromhex(key), f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
    try:
        good = hmac.compare_digest(expected, _unb64(parts[2]))
        data = json.loads(_unb64(parts[1])) if good else None
    except (ValueError, json.JSONDecodeError):
        raise BadToken("a malformed token") from None
    if data is None:
        raise BadToken("a token this cluster did not sign")
    claims = Claims(str(data.get("k", "")), str(data.get("s", "")), str(data.get("r", "")),
                    tuple(str(g) for g in data.get("g", ())), float(data.get("e", 0.0)), float(data.get("i", 0.0)),
                    tuple(str(p) for p in data.get("p", ())))
    if claims.kind != kind:
        raise BadToken(f"a {claims.kind} token where a {kind} token is needed")
    if claims.expires and claims.expires < now:
        raise BadToken("an expired token")
    return claims
