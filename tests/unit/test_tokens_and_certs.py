"""Signed tokens and the cluster's certificates (pure, no sockets)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509

from common import tls, tokens

NOW = 1_700_000_000.0


def test_a_token_verifies_until_it_expires_and_only_for_its_kind() -> None:
    key = tokens.new_key()
    token = tokens.sign(key, tokens.Claims("user", "alice", "JobAdmin", expires=NOW + 60))
    claims = tokens.verify(key, token, NOW, "user")
    assert (claims.subject, claims.role) == ("alice", "JobAdmin")
    with pytest.raises(tokens.BadToken, match="an expired token"):
        tokens.verify(key, token, NOW + 61, "user")
    with pytest.raises(tokens.BadToken, match="a user token where a join token is needed"):
        tokens.verify(key, token, NOW, "join")
    with pytest.raises(tokens.BadToken, match="a token this cluster did not sign"):
        tokens.verify(tokens.new_key(), token, NOW, "user")
    prefix, payload, mac = token.split(".")
    forged = tokens.sign(key, tokens.Claims("user", "root", "Admin")).split(".")[1]
    with pytest.raises(tokens.BadToken, match="did not sign"):
        tokens.verify(key, f"{prefix}.{forged}.{mac}", NOW, "user")
    for junk in ("", "abc", "shoal1.x", "shoal1.!!!.???"):
        with pytest.raises(tokens.BadToken):
            tokens.verify(key, junk, NOW, "user")
    join = tokens.verify(key, tokens.sign(key, tokens.Claims("join", groups=("gpu",))), NOW + 1e9, "join")
    assert join.groups == ("gpu",) and join.expires == 0, "no expiry: never expires"


def test_certs_init_and_issue(tmp_path: Path) -> None:
    made = tls.init(tmp_path, NOW, ["head1.example.org"])
    assert {p.name for p in made} == {"ca.crt", "ca.key", "head.crt", "head.key", "client.crt", "client.key"}
    assert (tmp_path / "ca.key").stat().st_mode & 0o777 == 0o600
    head = x509.load_pem_x509_certificate((tmp_path / "head.crt").read_bytes())
    names = head.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "head1.example.org" in names.get_values_for_type(x509.DNSName)
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    with pytest.raises(ValueError, match="already exists: the cluster has a CA"):
        tls.init(tmp_path, NOW)
    key, cert = tls.issue(tmp_path, "user", "alice", NOW, role="Admin")
    assert tls.subject_of(cert.read_bytes()) == ("alice", "Admin")
    assert tls.subject_of(tls.issue(tmp_path, "node", "n1", NOW)[1].read_bytes()) == ("n1", "node")
    assert tls.subject_of((tmp_path / "client.crt").read_bytes())[1] == "client"
    files = tls.Files(tmp_path / "ca.crt")
    assert files.read()[1] == (tmp_path / "client.crt").read_bytes(), "without its own: the shared client cert"
    for bad, message in ((("robot", "x"), "a node or a user"), (("user", "a b"), "without spaces"),
                         (("node", "n2", "Admin"), "--role is for users")):
        with pytest.raises(ValueError, match=message):
            tls.issue(tmp_path, bad[0], bad[1], NOW, *bad[2:])
    with pytest.raises(ValueError, match="no cluster CA in"):
        tls.issue(tmp_path / "nowhere", "user", "bob", NOW)


def test_revocation_refuses_what_was_issued_until_then_and_survives_a_reload() -> None:
    import asyncio

    from common.clock import FakeClock
    from headnode.services.revocations import Revocations

    clock = FakeClock(1000.0)
    key = tokens.new_key()
    early = tokens.verify(key, tokens.sign(key, tokens.Claims("user", "tom", issued=clock.now())), clock.now(), "user")
    assert early.issued == 1000.0
    revocations = Revocations(None, clock)
    assert not revocations.revoked("user:tom", early.issued)
    clock.advance(5)
    asyncio.run(revocations.revoke("user:tom"))
    assert revocations.revoked("user:tom", early.issued)
    assert revocations.revoked("user:tom", 0.0), "tokens without an issue time count as old"
    assert not revocations.revoked("user:tom", 1006.0), "a token issued later works"
    assert not revocations.revoked("user:ann", early.issued)
    reloaded = Revocations(None, clock, '{"user:tom": 1005.0, "cert:1f": 1}')
    assert reloaded.revoked("user:tom", 1004.0) and reloaded.revoked("cert:1f", float("-inf"))
