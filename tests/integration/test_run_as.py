"""Tasks run as their owner's Unix user when the agent runs as root (this machine runs the
tests as root; elsewhere the module is skipped, saying why)."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.ids import TaskId
from shoal.client import Client, task_spec
from shoal.local import LocalCluster
from shoal.v1 import jobs_pb2
from tests.conftest import unix_user

pytestmark = [pytest.mark.cluster,
              pytest.mark.skipif(os.geteuid() != 0, reason="switching a task's user needs the agent to run as root")]
USER = "shoaltask"


@pytest.fixture(scope="module")
def user() -> pwd.struct_passwd:
    return unix_user(USER)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, user: pwd.struct_passwd) -> Iterator[LocalCluster]:
    c = LocalCluster(tmp_path_factory.mktemp("runas"), nodes=1, cores=2, run_as="owner")
    with c:
        yield c


def run(cluster: LocalCluster, owner: str, spec: jobs_pb2.TaskSpec) -> tuple[jobs_pb2.Job, str]:
    with Client(cluster.address, user=owner) as client:
        job = client.wait_job(client.submit(jobs_pb2.JobSpec(tasks=[spec])))
        return job, b"".join(client.read_output(TaskId(job.id, 1))).decode()


def test_a_task_runs_as_its_owner_in_their_home(cluster: LocalCluster, user: pwd.struct_passwd, tmp_path: Path) -> None:
    job, out = run(cluster, USER, task_spec('id -u; id -g; pwd; echo "$HOME $USER"'))
    assert job.state == jobs_pb2.JOB_STATE_FINISHED, job.tasks[0].reason
    assert out.split("\n")[:4] == [str(user.pw_uid), str(user.pw_gid), user.pw_dir, f"{user.pw_dir} {USER}"]
    workdir = Path(tempfile.mkdtemp(dir=user.pw_dir))
    os.chown(workdir, user.pw_uid, user.pw_gid)
    try:
        job, _ = run(cluster, USER, task_spec("touch made-by-task", working_directory=str(workdir),
                                              stdout_path="out.txt"))
        assert job.state == jobs_pb2.JOB_STATE_FINISHED, job.tasks[0].reason
        for name in ("made-by-task", "out.txt"):
            assert (workdir / name).stat().st_uid == user.pw_uid, f"{name} is the owner's"
    finally:
        shutil.rmtree(workdir)


def test_the_working_directory_is_entered_as_the_owner(cluster: LocalCluster, user: pwd.struct_passwd,
                                                        tmp_path: Path) -> None:
    # As Slurm's chdir after setuid: a directory the owner may not enter is not entered on
    # their behalf; and one behind a directory they may not search (root's 0700 tmp_path
    # here), even their own, is not there as far as they can tell.
    hidden = tmp_path / "theirs"
    hidden.mkdir()
    os.chown(hidden, user.pw_uid, user.pw_gid)
    tmp_path.chmod(0o700)
    job, out = run(cluster, USER, task_spec("touch made-by-task", working_directory=str(hidden)))
    assert job.state == jobs_pb2.JOB_STATE_FAILED
    assert job.tasks[0].reason == f"could not start: working directory {hidden} does not exist on this node"
    assert not (hidden / "made-by-task").exists()
    shared = Path(tempfile.mkdtemp(prefix="shoal-runas-"))
    try:
        shared.chmod(0o711)
        closed = shared / "roots"
        closed.mkdir(mode=0o700)
        job, out = run(cluster, USER, task_spec("touch made-by-task", working_directory=str(closed)))
        assert job.state == jobs_pb2.JOB_STATE_FAILED
        assert job.tasks[0].reason == f"could not start: the task's user cannot enter {closed} on this node"
        assert not (closed / "made-by-task").exists()
    finally:
        shutil.rmtree(shared)


def test_root_and_unknown_owners_do_not_run(cluster: LocalCluster) -> None:
    job, _ = run(cluster, "root", task_spec("id -u"))
    assert job.state == jobs_pb2.JOB_STATE_FAILED
    assert job.tasks[0].reason == "could not start: tasks do not run as root on node node1 (its agent's " \
                                  "allow_root_tasks is off)"
    job, _ = run(cluster, "nosuchuser", task_spec("id -u"))
    assert job.tasks[0].reason == "could not start: user nosuchuser has no account on node node1"


def test_a_path_in_the_job_environment_does_not_choose_what_runs_as_root(
    cluster: LocalCluster, user: pwd.struct_passwd, tmp_path: Path
) -> None:
    # The agent (root) runs setpriv to become the owner: found on the agent's PATH, never on
    # one the job sets, or a user could have their own "setpriv" run as root.
    trap = tmp_path / "bin"
    trap.mkdir()
    marker = tmp_path / "ran-as-root"
    fake = trap / "setpriv"
    fake.write_text(f"#!/bin/sh\ntouch {marker}\nexec /usr/bin/setpriv \"$@\"\n")
    fake.chmod(0o755)
    trap.chmod(0o755)
    tmp_path.chmod(0o777)
    job, out = run(cluster, USER, task_spec("id -u", environment={"PATH": f"{trap}:/usr/bin:/bin"}))
    assert job.state == jobs_pb2.JOB_STATE_FINISHED, job.tasks[0].reason
    assert out.strip() == str(user.pw_uid)
    assert not marker.exists(), "the job's PATH chose the setpriv the agent ran as root"


def test_the_job_environment_reaches_the_task_but_not_the_programs_that_run_as_root(
    cluster: LocalCluster, user: pwd.struct_passwd, tmp_path: Path
) -> None:
    # The dynamic loader of a program run as root would write its debug log where the job
    # says: a file made by root wherever the user likes. tmp_path is root's alone, so only a
    # program running as root could write there.
    logs = tmp_path / "logs"
    logs.mkdir(mode=0o755)
    tricky = "it's \"quoted\"\na $HOME `two` lines\\"
    env = {"LD_DEBUG": "files", "LD_DEBUG_OUTPUT": str(logs / "ld"), "TRICKY": tricky, "NOT-A-NAME": "x"}
    job, out = run(cluster, USER, task_spec('printf "%s|" "$LD_DEBUG" "$TRICKY" "$USER" "${SHOAL_ENV-gone}"; unset LD_DEBUG; id -u',
                                           environment=env))
    assert job.state == jobs_pb2.JOB_STATE_FINISHED, job.tasks[0].reason
    assert out == f"files|{tricky}|{USER}|gone|{user.pw_uid}\n"
    assert sorted(p.name for p in logs.iterdir()) == [], "a program running as root took the job's LD_DEBUG_OUTPUT"


def test_the_files_a_job_names_are_opened_with_its_owners_permissions(
    cluster: LocalCluster, user: pwd.struct_passwd, tmp_path: Path
) -> None:
    # The agent (root) opens a task's stdin, stdout and stderr paths; it must open them as the
    # owner would, or a job could read any file, or truncate one, through them.
    secret = tmp_path / "secret"
    secret.write_text("root's alone\n")
    secret.chmod(0o600)
    shared = Path(tempfile.mkdtemp(prefix="shoal-runas-"))
    shared.chmod(0o711)
    precious = shared / "precious"
    precious.write_text("keep me\n")
    precious.chmod(0o644)
    group = "shoaltaskgrp"
    if subprocess.run(["getent", "group", group], capture_output=True).returncode != 0:
        subprocess.run(["groupadd", group], check=True, capture_output=True)
    subprocess.run(["usermod", "-a", "-G", group, USER], check=True, capture_output=True)
    ours = shared / "group-writable"
    ours.touch()
    os.chown(ours, 0, grp.getgrnam(group).gr_gid)
    ours.chmod(0o660)
    try:
        job, _ = run(cluster, USER, task_spec("cat", stdin_path=str(secret)))
        assert job.state == jobs_pb2.JOB_STATE_FAILED
        assert job.tasks[0].reason == f"could not start: cannot open stdin file {secret}: Permission denied"
        for field in ("stdout_path", "stderr_path"):
            job, _ = run(cluster, USER, task_spec("echo overwritten", **{field: str(precious)}))
            assert job.state == jobs_pb2.JOB_STATE_FAILED
            stream = field.removesuffix("_path")
            assert job.tasks[0].reason == f"could not start: cannot open {stream} file {precious}: Permission denied"
        assert precious.read_text() == "keep me\n"
        # What the owner may write through one of their groups, the task may too.
        job, _ = run(cluster, USER, task_spec("echo through the group", stdout_path=str(ours)))
        assert job.state == jobs_pb2.JOB_STATE_FINISHED, job.tasks[0].reason
        assert ours.read_text() == "through the group\n"
    finally:
        shutil.rmtree(shared)
