"""headnode/services/join_tokens.py without a store: uses, name and group binding, survival of a reload."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict

import pytest

from common.clock import FakeClock
from common.errors import InvalidArgument, PermissionDenied
from headnode.services.join_tokens import JoinTokens


def made(uses: int = 1, names: list[str] | None = None, groups: list[str] | None = None) -> tuple[JoinTokens, str]:
    tokens = JoinTokens(None, FakeClock())
    return tokens, asyncio.run(tokens.create(uses, names or [], groups or [], 3600.0, "root")).id


def test_a_token_admits_as_many_nodes_as_its_uses_and_a_released_use_comes_back() -> None:
    tokens, tid = made(uses=2)
    tokens.reserve(tid, "n1", ())
    tokens.reserve(tid, "n2", ())
    with pytest.raises(PermissionDenied, match=r"has admitted all the nodes it may \(n1, n2\)"):
        tokens.reserve(tid, "n3", ())
    tokens.release(tid, "n2")
    assert tokens.reserve(tid, "n3", ()).admitted == ["n1", "n3"]


def test_names_and_groups_bind_a_token() -> None:
    tokens, tid = made(uses=5, names=["gpu-*", "login1"], groups=["gpu"])
    with pytest.raises(PermissionDenied, match="admits only nodes named gpu-\\*, login1, not cpu-1"):
        tokens.reserve(tid, "cpu-1", ())
    with pytest.raises(PermissionDenied, match="this agent asks for admin"):
        tokens.reserve(tid, "gpu-1", ("gpu", "admin"))
    assert tokens.reserve(tid, "gpu-1", ("gpu",)).left == 4
    assert tokens.reserve(tid, "login1", ()).left == 3


def test_what_a_token_did_survives_a_reload_and_unknown_tokens_admit_nobody() -> None:
    tokens, tid = made()
    tokens.reserve(tid, "n1", ())
    again = JoinTokens(None, FakeClock(), json.dumps([asdict(t) for t in tokens.list()]))
    with pytest.raises(PermissionDenied, match="has admitted all"):
        again.reserve(tid, "n2", ())
    with pytest.raises(PermissionDenied, match="not known to this cluster"):
        again.reserve("jt-00000000", "n2", ())


def test_bad_uses_and_names_are_invalid_arguments() -> None:
    tokens = JoinTokens(None, FakeClock())
    with pytest.raises(InvalidArgument, match="uses must be between 1 and 10000, got 0"):
        asyncio.run(tokens.create(0, [], [], 0.0, "root"))
    with pytest.raises(InvalidArgument, match="1 to 64 characters, got 65"):
        asyncio.run(tokens.create(1, ["x" * 65], [], 0.0, "root"))
