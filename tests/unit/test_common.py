"""Small pure pieces: resources, ids, config, backoff, the fake clock."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from common.clock import FakeClock
from common.config import HeadConfig, NodeConfig, load, resolve
from common.errors import ConfigError, InvalidArgument
from common.hostport import parse_address
from common.ids import TaskId, parse_job_id
from common.resources import CORES, MEMORY, Resources, fits, shortfall
from common.retry import Backoff


def test_shortfall_names_the_first_dimension_that_does_not_fit() -> None:
    assert shortfall(Resources(2, 100), Resources(2, 100)) is None
    assert shortfall(Resources(3, 100), Resources(2, 50)).dimension == CORES
    s = shortfall(Resources(1, 100), Resources(2, 50))
    assert (s.dimension, s.requested, s.available) == (MEMORY, 100, 50)


def test_fits_is_the_shortfall_check_answered_yes_or_no() -> None:
    sizes = [Resources(c, m, g) for c in (0, 1, 2) for m in (0, 100) for g in ((), (("gpu", 1),), (("gpu", 2),))]
    for request in sizes:
        for free in sizes:
            assert fits(request, free) == (shortfall(request, free) is None), (request, free)


def test_task_ids_parse_and_print() -> None:
    assert TaskId.parse("12.3") == TaskId(12, 3)
    assert str(TaskId.parse("12.3.4")) == "12.3.4"
    for bad in ("12", "a.b", "0.1", "1.2.3.4", ""):
        with pytest.raises(InvalidArgument, match="is not of the form JOB.TASK|start at 1"):
            TaskId.parse(bad)
    with pytest.raises(InvalidArgument, match="not a positive integer"):
        parse_job_id("x")


def test_config_layers_file_then_flags(tmp_path: Path) -> None:
    f = tmp_path / "shoal.toml"
    f.write_text('[head]\nlisten = "0.0.0.0:9000"\nheartbeat_interval = 2\n[node]\nname = "n7"\n')
    head = load(HeadConfig, "head", f, {"heartbeat_interval": 1.5, "state_dir": None})
    assert head.listen == "0.0.0.0:9000" and head.heartbeat_interval == 1.5
    assert load(NodeConfig, "node", f, {"plaintext": True}).name == "n7"
    secure = load(NodeConfig, "node", f, {"tls_ca": "/etc/shoal/ca.crt"})
    assert secure.tls_ca == "/etc/shoal/ca.crt" and not secure.plaintext


def test_config_environment_sits_between_the_file_and_flags_and_each_source_is_named(tmp_path: Path) -> None:
    f = tmp_path / "shoal.toml"
    f.write_text('[head]\npolicy = "fcfs"\nrate_limit = 7\nplacement = "spread"\n')
    env = {"SHOAL_HEAD_RATE_LIMIT": "9", "SHOAL_HEAD_PLACEMENT": "pack", "SHOAL_HEAD_ADMINS": "root, alice",
           "SHOAL_HEAD_PREEMPTION": "true"}
    head, sources = resolve(HeadConfig, "head", f, {"placement": "spread", "listen": None}, env)
    assert (head.policy, head.rate_limit, head.placement, head.admins, head.preemption) == (
        "fcfs", 9.0, "spread", ("root", "alice"), True)
    assert sources["policy"] == f"file {f}"
    assert sources["rate_limit"] == "env SHOAL_HEAD_RATE_LIMIT"
    assert sources["placement"] == "flag"
    assert sources["listen"] == "default" and set(sources) == {x.name for x in dataclasses.fields(HeadConfig)}
    # $SHOAL_CONFIG names the file when no --config is given.
    assert load(HeadConfig, "head", None, {}, {"SHOAL_CONFIG": str(f)}).policy == "fcfs"
    with pytest.raises(ConfigError, match=r"preemption = 'maybe' is not a valid bool \(from env SHOAL_HEAD_PREEMPTION\)"):
        load(HeadConfig, "head", None, {}, {"SHOAL_HEAD_PREEMPTION": "maybe"})


def test_config_show_prints_each_keys_value_and_source(tmp_path: Path) -> None:
    f = tmp_path / "shoal.toml"
    f.write_text("[node]\ncores = 3\n")
    env = dict(os.environ, SHOAL_NODE_LABELS="avx2,rack=1", SHOAL_HEAD="h1:7676")
    shown = subprocess.run([sys.executable, "-m", "shoal", "config", "show", "node", "--config", str(f),
                            "--plaintext", "--name", "n9", "--json"], capture_output=True, text=True, env=env,
                           timeout=60)
    assert shown.returncode == 0, shown.stderr
    config = json.loads(shown.stdout)
    assert config["cores"] == {"value": 3, "source": f"file {f}"}
    assert config["labels"] == {"value": ["avx2", "rack=1"], "source": "env SHOAL_NODE_LABELS"}
    assert config["name"] == {"value": "n9", "source": "flag"}
    assert config["head"] == {"value": "h1:7676", "source": "env SHOAL_HEAD"}
    assert config["kill_grace"] == {"value": 5.0, "source": "default"}
    bad = subprocess.run([sys.executable, "-m", "shoal", "config", "show", "head"], capture_output=True, text=True,
                         env=dict(os.environ, SHOAL_HEAD_POLICY="lifo"), timeout=60)
    assert bad.returncode == 2 and "policy must be 'easy' or 'fcfs'" in bad.stderr


def test_config_errors_say_what_to_fix(tmp_path: Path) -> None:
    f = tmp_path / "bad.toml"
    f.write_text('[head]\nlisten_on = "x"\n')
    with pytest.raises(ConfigError, match="unknown key 'listen_on' in \\[head\\]"):
        load(HeadConfig, "head", f, {})
    with pytest.raises(ConfigError, match="does not exist"):
        load(HeadConfig, "head", tmp_path / "missing.toml", {})
    with pytest.raises(ConfigError, match="is not HOST:PORT"):
        parse_address("localhost")
    with pytest.raises(ConfigError, match="must be longer than"):
        load(HeadConfig, "head", None, {"heartbeat_interval": 10, "node_lost_after": 5})
    with pytest.raises(ConfigError, match="not a valid float"):
        load(HeadConfig, "head", None, {"heartbeat_interval": "soon"})
    with pytest.raises(ConfigError, match="give tls_ca .* or --plaintext"):
        load(NodeConfig, "node", None, {})
    with pytest.raises(ConfigError, match="tls_cert and tls_key go together"):
        load(NodeConfig, "node", None, {"tls_ca": "ca.crt", "tls_cert": "n1.crt"})
    with pytest.raises(ConfigError, match="event_loop must be 'uvloop' or 'asyncio', got 'tokio'"):
        load(HeadConfig, "head", None, {"event_loop": "tokio"})
    with pytest.raises(ConfigError, match="dispatch_ahead must be between 0 and 16"):
        load(HeadConfig, "head", None, {"dispatch_ahead": -1})
    with pytest.raises(ConfigError, match="dispatch_ahead_wait must be > 0 seconds"):
        load(HeadConfig, "head", None, {"dispatch_ahead_wait": 0})
    with pytest.raises(ConfigError, match="dispatch_ahead_pass_interval must be between 0 and 1 seconds"):
        load(HeadConfig, "head", None, {"dispatch_ahead_pass_interval": 2})
    with pytest.raises(ConfigError, match="users_see_all_jobs = true .* users_list_others_jobs = false .* one"):
        load(HeadConfig, "head", None, {"users_see_all_jobs": True, "users_list_others_jobs": False})


def test_others_jobs_are_listed_but_what_they_run_is_not_shown_by_default() -> None:
    config = load(HeadConfig, "head", None, {})
    assert (config.users_see_all_jobs, config.users_list_others_jobs) == (False, True)


def test_backoff_grows_with_jitter_and_resets() -> None:
    b = Backoff(initial=0.1, maximum=1.0)
    delays = [b.next_delay() for _ in range(8)]
    assert 0.05 <= delays[0] <= 0.1
    assert all(d <= 1.0 for d in delays) and delays[-1] >= 0.5
    b.reset()
    assert b.next_delay() <= 0.1


def test_fake_clock_wakes_sleepers_in_order() -> None:
    async def scenario() -> list[str]:
        clock = FakeClock()
        woke: list[str] = []

        async def sleeper(name: str, seconds: float) -> None:
            await clock.sleep(seconds)
            woke.append(name)

        tasks = [asyncio.create_task(sleeper("late", 5)), asyncio.create_task(sleeper("early", 1))]
        await asyncio.sleep(0)
        clock.advance(2)
        await asyncio.sleep(0)
        assert woke == ["early"]
        clock.advance(3)
        await asyncio.gather(*tasks)
        return woke

    assert asyncio.run(scenario()) == ["early", "late"]


def test_the_example_config_in_deploy_loads() -> None:
    example = Path(__file__).resolve().parents[2] / "deploy" / "shoal.example.toml"
    assert load(HeadConfig, "head", example, {}).listen == "127.0.0.1:7676"
    assert load(NodeConfig, "node", example, {}).head == "headnode.example.org:7676"
    tables = tomllib.loads(example.read_text())
    for table, config in (("head", HeadConfig), ("node", NodeConfig)):
        shown = set(tables[table]) | set(re.findall(r"^# (\w+) = ", example.read_text(), re.M))
        assert {f.name for f in dataclasses.fields(config)} <= shown, f"[{table}] in the example lacks a key"


def test_every_daemon_flag_sets_the_config_key_of_its_name() -> None:
    # The daemons and `shoal config show` map flags to keys by name (config.flag_overrides).
    import argparse

    from computenode.flags import add_arguments as node_flags
    from headnode.flags import add_arguments as head_flags

    for add, cls in ((head_flags, HeadConfig), (node_flags, NodeConfig)):
        parser = argparse.ArgumentParser()
        add(parser)
        dests = {a.dest for a in parser._actions} - {"help", "config"}
        assert dests <= {f.name for f in dataclasses.fields(cls)}, dests - {f.name for f in dataclasses.fields(cls)}


def test_a_malformed_timestamp_is_the_senders_error_not_a_crash() -> None:
    from google.protobuf.timestamp_pb2 import Timestamp

    from common.wire import seconds

    assert seconds(Timestamp(seconds=12, nanos=500_000_000)) == 12.5
    for bad in (Timestamp(nanos=-1), Timestamp(seconds=10**13)):
        with pytest.raises(InvalidArgument, match="until is not a valid timestamp"):
            seconds(bad, "until")


def test_heap_tuning_applies_on_glibc_and_leaves_an_operators_setting_alone() -> None:
    import platform

    from common import heap

    if platform.libc_ver()[0] == "glibc":
        assert heap.tune({}) is True
    assert heap.tune({"MALLOC_MMAP_THRESHOLD_": "131072"}) is False
    assert heap.tune({"MALLOC_TRIM_THRESHOLD_": "131072"}) is False
