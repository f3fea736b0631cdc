"""The committed stubs under shoal/v1 are exactly what the .proto files generate."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_committed_stubs_match_the_protos(tmp_path: Path) -> None:
    pytest.importorskip("grpc_tools", reason="grpcio-tools is installed with the test extras")
    import importlib.util

    spec = importlib.util.spec_from_file_location("generate", REPO / "protos" / "generate.py")
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)  # type: ignore[union-attr]
    fresh = generate.generate(tmp_path)
    assert fresh, "no stubs generated"
    stale = []
    for path in fresh:
        committed = REPO / "shoal" / "v1" / path.name
        if not committed.exists() or committed.read_bytes() != path.read_bytes():
            stale.append(path.name)
    extra = {p.name for p in (REPO / "shoal" / "v1").glob("*_pb2*")} - {p.name for p in fresh}
    assert not stale and not extra, f"stubs are stale ({stale}) or orphaned ({sorted(extra)}): run `make protos`"
