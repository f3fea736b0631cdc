"""computenode/cgroups.py against cgroup trees laid out in a temporary directory (the file
formats of the kernel's cgroupfs), and its join shell against real files."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from computenode import cgroups


@pytest.fixture
def root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)


def fake_proc(tmp_path: Path, mounts: str, own: str) -> str:
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "mounts").write_text(mounts)
    (proc / "self" / "cgroup").write_text(own)
    return str(proc)


def test_v2_with_memory_and_cpu_delegated_gives_each_task_its_limits(tmp_path: Path, root: None) -> None:
    tree = tmp_path / "cg"
    base = tree / "svc"
    base.mkdir(parents=True)
    (base / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (base / "cgroup.procs").write_text(f"{os.getpid()}\n")
    proc = fake_proc(tmp_path, f"cgroup2 {tree} cgroup2 rw 0 0\n", "0::/svc\n")
    iso = cgroups.detect("auto", "n1", proc)
    assert iso.mode == "cgroup-v2"
    assert (base / "agent" / "cgroup.procs").read_text() == str(os.getpid()), "the agent moved into a leaf"
    assert (base / "cgroup.subtree_control").read_text() == "+memory +cpu +pids"
    assert iso.limits_processes
    group = iso.create("7.1.0.1", 64, 2, 4096)
    assert group is not None
    d = base / "task-7.1.0.1"
    assert (d / "pids.max").read_text() == "4096"
    assert (d / "memory.max").read_text() == str(64 * 1024 * 1024)
    assert (d / "memory.swap.max").read_text() == "0"
    assert (d / "cpu.max").read_text() == "200000 100000"
    assert group.prefix()[-2:] == [str(d / "cgroup.procs"), "--"]
    assert not group.oom_killed()
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    assert group.oom_killed()


def test_v2_shared_with_other_processes_falls_back_to_watching(tmp_path: Path, root: None) -> None:
    base = tmp_path / "cg"
    base.mkdir()
    (base / "cgroup.controllers").write_text("cpu memory\n")
    (base / "cgroup.procs").write_text(f"1\n{os.getpid()}\n")
    proc = fake_proc(tmp_path, f"cgroup2 {base} cgroup2 rw 0 0\n", "0::/\n")
    iso = cgroups.detect("auto", "n1", proc)
    assert iso.mode == "watch" and "holds other processes too" in iso.reason
    assert not (base / "agent").exists(), "nothing was moved"
    with pytest.raises(cgroups.IsolationError, match='isolation = "cgroup" but no cgroup can be used here'):
        cgroups.detect("cgroup", "n1", proc)


def test_v2_without_a_memory_controller_is_not_used(tmp_path: Path, root: None) -> None:
    base = tmp_path / "cg"
    base.mkdir()
    (base / "cgroup.controllers").write_text("hugetlb\n")
    proc = fake_proc(tmp_path, f"cgroup2 {base} cgroup2 rw 0 0\n", "0::/\n")
    iso = cgroups.detect("auto", "n1", proc)
    assert iso.mode == "watch" and "offers: hugetlb" in iso.reason


def test_v1_memory_and_cpu_hierarchies(tmp_path: Path, root: None) -> None:
    mem, cpu = tmp_path / "memory", tmp_path / "cpu"
    (mem / "outer").mkdir(parents=True)
    cpu.mkdir()
    proc = fake_proc(tmp_path, f"tmpfs {tmp_path} tmpfs rw 0 0\ncgroup {mem} cgroup rw,memory 0 0\n"
                               f"cgroup {cpu} cgroup rw,cpu 0 0\ncgroup2 {tmp_path}/u cgroup2 rw 0 0\n",
                     "4:memory:/outer\n1:cpu:/\n0::/\n")
    iso = cgroups.detect("auto", "n1", proc)
    assert iso.mode == "cgroup-v1", iso.reason
    group = iso.create("7.1.0.1", 100, 1)
    assert group is not None and group.dirs == [str(mem / "outer/shoal-n1/7.1.0.1"), str(cpu / "shoal-n1/7.1.0.1")]
    assert (mem / "outer/shoal-n1/7.1.0.1/memory.limit_in_bytes").read_text() == str(100 * 1024 * 1024)
    assert (cpu / "shoal-n1/7.1.0.1/cpu.cfs_quota_us").read_text() == "100000"
    assert iso.create("7.2.0.1", 0, 0) is not None, "no limits: still its own cgroup"
    (mem / "outer/shoal-n1/7.1.0.1/memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    assert group.oom_killed()


def test_v1_with_a_pids_hierarchy_limits_each_tasks_processes(tmp_path: Path, root: None) -> None:
    mem, cpu, pids = tmp_path / "memory", tmp_path / "cpu", tmp_path / "pids"
    for d in (mem, cpu, pids):
        d.mkdir()
    proc = fake_proc(tmp_path, f"cgroup {mem} cgroup rw,memory 0 0\ncgroup {cpu} cgroup rw,cpu 0 0\n"
                               f"cgroup {pids} cgroup rw,pids 0 0\n", "4:memory:/\n1:cpu:/\n7:pids:/\n")
    iso = cgroups.detect("auto", "n1", proc)
    assert iso.mode == "cgroup-v1" and iso.limits_processes, iso.reason
    group = iso.create("7.1.0.1", 0, 0, 64)
    assert group is not None and group.dirs[2] == str(pids / "shoal-n1/7.1.0.1")
    assert (pids / "shoal-n1/7.1.0.1/pids.max").read_text() == "64"
    assert group.prefix()[-2] == str(pids / "shoal-n1/7.1.0.1/cgroup.procs"), "the task joins it before it runs"


def test_watch_is_chosen_when_asked_or_when_not_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert cgroups.detect("watch", "n1").mode == "watch"
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    iso = cgroups.detect("auto", "n1")
    assert iso.mode == "watch" and iso.reason == "the agent is not root"
    assert iso.create("1.1.0.1", 10, 1) is None


def test_the_join_shell_writes_its_own_pid_and_becomes_the_command(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    group = cgroups.TaskGroup(1, [str(tmp_path / "x"), str(tmp_path / "y")])
    procs = group.prefix()[4:-1]
    assert procs == [str(tmp_path / "x/cgroup.procs"), str(tmp_path / "y/cgroup.procs")]
    done = subprocess.run(["/bin/sh", "-c", cgroups.JOIN, "shoal-cgroup", str(a), str(b), "--",
                           "/bin/sh", "-c", 'echo $$; echo "$1"', "inner", "a b"], capture_output=True, text=True)
    pid, arg = done.stdout.splitlines()
    assert a.read_text().strip() == b.read_text().strip() == pid, "exec kept the pid that joined"
    assert arg == "a b", "arguments pass through unchanged"
    refused = subprocess.run(["/bin/sh", "-c", cgroups.JOIN, "shoal-cgroup", str(tmp_path / "no/such"), "--", "true"],
                             capture_output=True)
    assert refused.returncode == 125, "a task that cannot join its cgroup does not run"


def test_sweep_removes_stale_empty_task_cgroups_but_not_adopted_ones(tmp_path: Path, root: None) -> None:
    mem, cpu = tmp_path / "memory", tmp_path / "cpu"
    mem.mkdir()
    cpu.mkdir()
    proc = fake_proc(tmp_path, f"cgroup {mem} cgroup rw,memory 0 0\ncgroup {cpu} cgroup rw,cpu 0 0\n",
                     "4:memory:/\n1:cpu:/\n")
    iso = cgroups.detect("auto", "n1", proc)
    old = iso.create("1.1.0.1", 0, 0)
    adopted = iso.create("2.1.0.1", 0, 0)
    assert old is not None and adopted is not None
    assert iso.sweep([adopted.dirs]) == 2, "the stale task's memory and cpu directories"
    assert not any(Path(d).exists() for d in old.dirs)
    assert all(Path(d).exists() for d in adopted.dirs)
