"""Task leases: the pure arithmetic (computenode/lease.py), the agent state machine's fence,
the head's config check, and the watchdog's lease file and stop (computenode/fence.py, with
real processes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from common.config import LEASE_MARGIN, HeadConfig
from common.errors import ConfigError
from common.ids import TaskId
from computenode import fence
from computenode import state as st
from computenode.lease import Lease


def test_a_renewal_counts_from_when_the_answered_message_was_sent() -> None:
    lease = Lease()
    assert not lease.renew(100.0), "no lease before a head has said how long"
    lease.configure(10.0, 60.0)
    assert lease.renew(100.0) and lease.deadline == 110.0
    assert not lease.renew(99.0), "an older message's answer never moves it back"
    assert lease.deadline == 110.0 and lease.anchor == 100.0
    assert not lease.lapsed(109.9) and lease.lapsed(110.0)


def test_an_extension_while_the_head_is_stalled_is_capped_by_stall_grace() -> None:
    lease = Lease()
    lease.configure(10.0, 30.0)
    assert not lease.extend(105.0), "nothing to extend before a first renewal"
    lease.renew(100.0)
    assert lease.extend(105.0) and lease.deadline == 115.0
    assert lease.extend(135.0) and lease.deadline == 140.0, "at most anchor + lease + stall_grace"
    assert not lease.extend(170.0) and lease.deadline == 140.0
    assert lease.lapsed(140.0)
    lease.renew(150.0)
    assert lease.deadline == 160.0 and not lease.lapsed(150.5), "a renewal after a lapse starts anew"


def test_the_head_refuses_a_node_lost_after_that_a_lease_and_grace_do_not_fit_in() -> None:
    assert HeadConfig().validate().lease == 30.0 - 5.0 - LEASE_MARGIN
    with pytest.raises(ConfigError, match=r"node_lost_after \(10s\) must be at least task_lease \(8s\) \+ kill_grace"):
        HeadConfig(task_lease=8.0, node_lost_after=10.0).validate()
    with pytest.raises(ConfigError, match="must be at least twice heartbeat_interval"):
        HeadConfig(heartbeat_interval=1.0, node_lost_after=6.0).validate()  # 6 - 5 - 1 = 0 s
    assert HeadConfig(heartbeat_interval=1.0, node_lost_after=6.0, kill_grace=1.0).validate().lease == 4.0


K1, K2, K3 = (TaskId(1, 1, 1), 1), (TaskId(1, 1, 2), 1), (TaskId(1, 1, 3), 1)


def test_a_lapsed_lease_stops_what_runs_and_drops_what_is_queued() -> None:
    a = st.AgentState(cores=1)
    a.handle(st.LaunchRequested(K1, "l1", cores=1))
    a.handle(st.LaunchRequested(K2, "l2", cores=1))  # queued: no room
    out = a.fence()
    assert st.ReportExited(K2) in out and st.Signal(K1, signal.SIGTERM) in out and st.StartKillTimer(K1) in out
    assert not any(isinstance(i, st.Start) for i in out), "a queued launch is never started on a lapsed lease"
    assert a.tasks[K1].fenced and a.tasks[K2].fenced and a.tasks[K1].phase is st.Phase.KILLING
    # The process ends within its grace: what it left behind gets the rest (KillLeftovers).
    out = a.handle(st.ProcessExited(K1, 0, signal.SIGTERM))
    assert out[0] == st.KillLeftovers(K1) and st.ReportExited(K1) in out
    # A task that ends by itself takes its process group with it at once.
    a.handle(st.LaunchRequested(K3, "l3", cores=1))
    assert a.handle(st.ProcessExited(K3, 0, 0))[0] == st.Signal(K3, signal.SIGKILL)


def test_the_lease_file_holds_one_whole_record(tmp_path: Path) -> None:
    lease, old = fence.LeaseFile.open(tmp_path)
    assert old is None, "a new state dir has no lease"
    state = fence.LeaseState(123.5, 2.0, fence.new_lease_id(), os.getpid(), fence.start_ticks(os.getpid()))
    lease.write(state)
    assert lease.read() == state
    raw = bytearray((tmp_path / fence.LEASE_FILE).read_bytes())
    raw[9] ^= 0xFF
    (tmp_path / fence.LEASE_FILE).write_bytes(bytes(raw))
    assert lease.read() is None, "a torn or damaged record is no deadline"
    lease.close()


def test_stop_gives_a_tasks_term_handler_its_grace_and_kills_only_its_lease(tmp_path: Path) -> None:
    mine, other = fence.new_lease_id(), fence.new_lease_id()
    cleaned = tmp_path / "cleaned"
    handler = (f"trap 'sleep 0.5; echo done > {cleaned}; exit 0' TERM; while :; do sleep 0.05; done")
    env = dict(os.environ, SHOAL_RUN_ID="r1")
    task = subprocess.Popen(["/bin/sh", "-c", handler], env={**env, fence.ENV: mine}, process_group=0)
    bystander = subprocess.Popen(["sleep", "30"], env={**env, fence.ENV: other}, process_group=0)
    stubborn = subprocess.Popen(["/bin/sh", "-c", "trap '' TERM; while :; do sleep 0.05; done"],
                                env={**env, fence.ENV: mine}, process_group=0)
    try:
        deadline = time.monotonic() + 5
        while len(fence.find([mine])) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        began = time.monotonic()
        assert fence.stop([mine], grace=1.5, state_dir=tmp_path, log=False) >= 2
        took = time.monotonic() - began
        assert cleaned.read_text() == "done\n", "the TERM handler ran to its end"
        assert task.wait(2) == 0
        assert stubborn.wait(2) == -signal.SIGKILL and 1.4 <= took <= 3, f"SIGKILL after the grace ({took:.2f}s)"
        assert bystander.poll() is None, "another lease's task is left alone"
        assert (tmp_path / fence.FENCED_FILE).read_text().split() == ["r1"]
    finally:
        for p in (task, bystander, stubborn):
            p.kill()
            p.wait()


def test_the_watchdog_stops_tasks_when_the_lease_lapses_with_the_agent_frozen(tmp_path: Path) -> None:
    """The agent here is a SIGSTOPped process that wrote the lease; the watchdog runs alone."""
    agent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    lease_id = fence.new_lease_id()
    lease, _ = fence.LeaseFile.open(tmp_path)
    from common.clock import boot_clock

    lease.write(fence.LeaseState(boot_clock() + 1.0, 0.5, lease_id, agent.pid, fence.start_ticks(agent.pid)))
    task = subprocess.Popen(["sleep", "60"], env=dict(os.environ, **{fence.ENV: lease_id}), process_group=0)
    watchdog = fence.ensure_watchdog(tmp_path, dict(os.environ, PYTHONPATH=str(Path(__file__).parents[2])))
    os.kill(agent.pid, signal.SIGSTOP)
    try:
        assert task.wait(10) == -signal.SIGTERM
        assert fence.watchdog_running(tmp_path)
        lease.write(fence.LeaseState(fence.CLOSED, 0.5, lease_id, agent.pid, fence.start_ticks(agent.pid)))
        assert os.waitpid(watchdog, 0)[1] == 0, "a closed lease lets the watchdog go"
    finally:
        os.kill(agent.pid, signal.SIGKILL)
        agent.wait()
        task.kill()
        task.wait()
        lease.close()
