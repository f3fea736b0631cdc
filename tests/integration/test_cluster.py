"""End to end on a real cluster: a head node and two agents as subprocesses on loopback."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import psutil
import pytest

from common.ids import TaskId
from shoal.client import Client, RequestFailed, task_spec
from shoal.v1 import admin_pb2, jobs_pb2
from tests.conftest import eventually, run_cli

pytestmark = pytest.mark.cluster

FINISHED, FAILED, CANCELLED = jobs_pb2.JOB_STATE_FINISHED, jobs_pb2.JOB_STATE_FAILED, jobs_pb2.JOB_STATE_CANCELLED


def submit(client: Client, *commands: str, **task_args: object) -> int:
    return client.submit(jobs_pb2.JobSpec(name="t", tasks=[task_spec(c, **task_args) for c in commands]))


def output(client: Client, job_id: int, task: int = 1, stderr: bool = False) -> bytes:
    return b"".join(client.read_output(TaskId(job_id, task), stderr=stderr))


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_job_runs_to_finished_with_its_output_and_history(client: Client) -> None:
    job_id = submit(client, "echo out; echo err >&2")
    job = client.wait_job(job_id)
    assert job.state == FINISHED and job.reason == f"task {job_id}.1 finished"
    (task,) = job.tasks
    assert task.state == jobs_pb2.TASK_STATE_FINISHED and task.exit_code == 0 and task.node in ("node1", "node2")
    assert output(client, job_id) == b"out\n" and output(client, job_id, stderr=True) == b"err\n"
    assert (task.stdout_bytes, task.stderr_bytes) == (4, 4)
    states = [jobs_pb2.JobState.Name(u.state) for u in job.history]
    assert states == ["JOB_STATE_CONFIGURING", "JOB_STATE_QUEUED", "JOB_STATE_RUNNING", "JOB_STATE_FINISHED"]
    times = [u.time.ToNanoseconds() for u in job.history]
    assert times == sorted(times)
    assert [jobs_pb2.TaskState.Name(u.state) for u in task.history] == [
        "TASK_STATE_CONFIGURING", "TASK_STATE_QUEUED", "TASK_STATE_RUNNING", "TASK_STATE_FINISHED"]
    seqs = sorted([u.seq for u in job.history] + [u.seq for u in task.history])
    assert seqs == list(range(1, 9)), "job and task updates share one gap-free sequence"
    assert job.owner and job.id >= 1


def test_non_zero_exit_fails_the_task_and_the_job(client: Client) -> None:
    job = client.wait_job(submit(client, "echo about to fail; exit 3"))
    assert job.state == FAILED
    assert job.tasks[0].state == jobs_pb2.TASK_STATE_FAILED and job.tasks[0].exit_code == 3
    assert job.tasks[0].reason == "exit code 3"
    assert job.reason == f"task {job.id}.1 failed: exit code 3"


def test_a_job_of_many_tasks_queues_what_does_not_fit_and_finishes(client: Client) -> None:
    commands = ["echo task $SHOAL_TASK_ID of job $SHOAL_JOB_ID on $SHOAL_NODE" for _ in range(6)]
    job = client.wait_job(submit(client, *commands))  # 6 one-core tasks on 4 cores
    assert job.state == FINISHED and job.task_counts.finished == 6
    for t in job.tasks:
        assert output(client, job.id, t.ref.task_id) == f"task {t.ref.task_id} of job {job.id} on {t.node}\n".encode()


def test_environment_and_working_directory(client: Client, tmp_path: Path) -> None:
    job = client.wait_job(submit(client, 'pwd; echo "$SHOAL_TASK $GREETING"', environment={"GREETING": "hi there"},
                                 working_directory=str(tmp_path)))
    assert output(client, job.id) == f"{tmp_path}\n{job.id}.1 hi there\n".encode()
    missing = client.wait_job(submit(client, "true", working_directory="/nonexistent/dir"))
    assert missing.state == FAILED
    assert missing.tasks[0].reason == "could not start: working directory /nonexistent/dir does not exist on this node"


def test_a_task_inherits_only_its_stdio_and_default_signal_handling(client: Client, tmp_path: Path) -> None:
    # The agent spawns without closing descriptors (each of its own is close-on-exec) and
    # with SIGPIPE and SIGXFSZ, which Python ignores, back to their defaults.
    job = client.wait_job(submit(client, 'ls /proc/$$/fd; grep SigIgn /proc/$$/status; echo "$PWD ${OLDPWD-none}"',
                                 working_directory=str(tmp_path)))
    assert job.state == FINISHED, job.tasks[0].reason
    fds_0, fds_1, fds_2, ignored, where, end = output(client, job.id).decode().split("\n")
    assert [fds_0, fds_1, fds_2, where, end] == ["0", "1", "2", f"{tmp_path} none", ""]
    # No standard signal (1-31) is ignored. glibc's posix_spawn leaves its own two internal
    # ones (32, 33) ignored, as every program it spawns has them; glibc takes them back.
    assert int(ignored.removeprefix("SigIgn:\t"), 16) & 0x7FFFFFFF == 0, ignored


def test_cancel_kills_the_running_process_group(client: Client, tmp_path: Path) -> None:
    job_id = submit(client, f"sleep 300 & echo $! > {tmp_path}/child; echo $$ > {tmp_path}/leader; wait", cores=2)
    leader = tmp_path / "leader"
    child = tmp_path / "child"
    eventually(lambda: leader.exists() and child.exists() and child.read_text().strip(), what="the task to start")
    pids = [int(leader.read_text()), int(child.read_text())]
    assert not any(gone(p) for p in pids)
    nodes = {n.name: n for n in client.list_nodes()}
    running_on = client.get_job(job_id).tasks[0].node
    assert nodes[running_on].allocated.cores == 2 and nodes[running_on].running_tasks == 1

    cancelled = client.cancel_job(job_id, "no longer needed")
    assert cancelled.state == CANCELLED
    eventually(lambda: all(gone(p) for p in pids), what="the task's processes to be gone")
    eventually(lambda: all(n.running_tasks == 0 for n in client.list_nodes()), what="the cores to be released")
    job = client.get_job(job_id)
    assert job.tasks[0].state == jobs_pb2.TASK_STATE_CANCELLED
    assert job.tasks[0].reason.endswith(": no longer needed") and "cancelled by" in job.tasks[0].reason
    with pytest.raises(RequestFailed) as e:
        client.cancel_job(job_id)
    assert e.value.code == grpc.StatusCode.FAILED_PRECONDITION and "is Cancelled" in e.value.message


def test_output_streams_while_the_task_runs_and_after(client: Client, tmp_path: Path) -> None:
    go = tmp_path / "go"
    job_id = submit(client, f"echo first; while [ ! -e {go} ]; do sleep 0.02; done; echo second; echo oops >&2")
    follower = client.read_output(TaskId(job_id, 1), follow=True)
    seen = b""
    while b"first\n" not in seen:
        seen += next(follower)
    assert client.get_job(job_id).tasks[0].state == jobs_pb2.TASK_STATE_RUNNING
    go.touch()
    seen += b"".join(follower)  # ends by itself once the task has ended
    assert seen == b"first\nsecond\n"
    assert client.get_job(job_id).state == FINISHED
    after = run_cli("task", "output", f"{job_id}.1", head=client.address)
    assert after.returncode == 0 and after.stdout == "first\nsecond\n"
    err = run_cli("task", "output", f"{job_id}.1", "--stderr", head=client.address)
    assert err.stdout == "oops\n"


def test_a_task_larger_than_every_node_waits_and_says_why(client: Client) -> None:
    big = submit(client, "true", cores=64)
    reason = "no node has 64 cores; largest has 2, and all online nodes together have 4"
    eventually(lambda: client.get_job(big).tasks[0].pending_reason == reason, what="the pending reason")
    job = client.get_job(big)
    assert job.state == jobs_pb2.JOB_STATE_QUEUED and job.pending_reason == reason
    # It does not hold up work that fits.
    assert client.wait_job(submit(client, "true")).state == FINISHED
    view = run_cli("job", "view", str(big), head=client.address)
    assert reason in view.stdout


@pytest.mark.parametrize(
    "spec, message",
    [
        (jobs_pb2.JobSpec(tasks=[task_spec("true", cores=0)]), "spec.tasks[0].resources.cores must be at least 1, got 0"),
        (jobs_pb2.JobSpec(tasks=[task_spec("true", cores=-2)]), "spec.tasks[0].resources.cores must be at least 1"),
        (jobs_pb2.JobSpec(tasks=[task_spec("true", memory_mb=0)]), "spec.tasks[0].resources.memory_mb must be at least 1"),
        (jobs_pb2.JobSpec(tasks=[task_spec("true"), task_spec("  ")]), "spec.tasks[1].command_line is empty"),
        (jobs_pb2.JobSpec(), "spec.tasks is empty: a job needs at least one task"),
        (jobs_pb2.JobSpec(tasks=[task_spec("true", working_directory="rel")]), "must be an absolute path"),
        (jobs_pb2.JobSpec(tasks=[task_spec("echo " + "x" * 200_000)]),
         "spec.tasks[0].command_line is 200005 bytes; at most 131072 are allowed"),
        (jobs_pb2.JobSpec(tasks=[task_spec("true", environment={f"V{i}": "y" * 100 for i in range(3000)})]),
         "spec.tasks[0].environment is"),
        (jobs_pb2.JobSpec(name="n" * 5000, tasks=[task_spec("true")]), "spec.name is 5000 bytes; at most 4096"),
        (jobs_pb2.JobSpec(tasks=[task_spec("true", depends_on=[f"t{i}" for i in range(1001)])]),
         "spec.tasks[0].depends_on has 1001 entries; at most 1000"),
    ],
)
def test_bad_submissions_are_refused_and_store_nothing(client: Client, spec: jobs_pb2.JobSpec, message: str) -> None:
    before = [j.id for j in client.list_jobs()]
    with pytest.raises(RequestFailed) as e:
        client.submit(spec)
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert message in e.value.message and "\n" not in e.value.message
    assert [j.id for j in client.list_jobs()] == before


def test_unknown_ids_are_not_found(client: Client) -> None:
    with pytest.raises(RequestFailed) as e:
        client.get_job(999_999)
    assert e.value.code == grpc.StatusCode.NOT_FOUND and e.value.message == "job 999999 does not exist"
    job_id = client.wait_job(submit(client, "true")).id
    with pytest.raises(RequestFailed) as e:
        list(client.read_output(TaskId(job_id, 9)))
    assert e.value.code == grpc.StatusCode.NOT_FOUND and f"task {job_id}.9 does not exist" in e.value.message
    with pytest.raises(RequestFailed) as e:
        client.cancel_job(999_999)
    assert e.value.code == grpc.StatusCode.NOT_FOUND


def test_watch_sends_every_change_once_in_order_and_ends(client: Client) -> None:
    job_id = submit(client, "true", "true")
    events = list(client.watch_job(job_id))  # started after submission: the history is replayed
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[-1].job_state == FINISHED and not events[-1].HasField("task")
    assert events[-1].task_counts.finished == 2
    for n in (1, 2):
        mine = [e.task_state for e in events if e.HasField("task") and e.task.task_id == n]
        assert mine == [jobs_pb2.TASK_STATE_CONFIGURING, jobs_pb2.TASK_STATE_QUEUED, jobs_pb2.TASK_STATE_RUNNING,
                        jobs_pb2.TASK_STATE_FINISHED]
    job_states = [e.job_state for e in events if not e.HasField("task")]
    assert job_states == [jobs_pb2.JOB_STATE_CONFIGURING, jobs_pb2.JOB_STATE_QUEUED, jobs_pb2.JOB_STATE_RUNNING,
                          FINISHED]
    history = client.get_job(job_id)
    assert len(history.history) + sum(len(t.history) for t in history.tasks) == len(events)
    # A watch of an ended job replays it and ends.
    assert [e.seq for e in client.watch_job(job_id)] == [e.seq for e in events]


def test_a_watch_of_job_events_only_leaves_out_every_task_change(client: Client) -> None:
    job_id = submit(client, "true", "true")
    everything = list(client.watch_job(job_id))
    own = list(client.watch_job(job_id, job_events_only=True))  # replayed, as the job has ended
    assert own and not any(e.HasField("task") for e in own)
    assert [(e.seq, e.job_state) for e in own] == [(e.seq, e.job_state) for e in everything if not e.HasField("task")]
    assert client.wait_job(job_id).state == FINISHED  # which watches this way


def test_watch_of_a_running_job_goes_on_live(client: Client, tmp_path: Path) -> None:
    go = tmp_path / "go"
    job_id = submit(client, f"while [ ! -e {go} ]; do sleep 0.02; done")
    watch = client.watch_job(job_id)
    seen = []
    while not any(e.task_state == jobs_pb2.TASK_STATE_RUNNING for e in seen):
        seen.append(next(watch))
    go.touch()  # the rest of the job happens after the watch caught up
    seen += list(watch)
    assert [e.seq for e in seen] == list(range(1, len(seen) + 1))
    assert seen[-1].job_state == FINISHED


def test_list_and_page(client: Client) -> None:
    ids = [submit(client, "true") for _ in range(3)]
    for job_id in ids:
        client.wait_job(job_id)
    listed = [j.id for j in client.list_jobs(page_size=2)]
    assert listed == sorted(listed) and set(ids) <= set(listed)
    finished = {j.id for j in client.list_jobs(states=(FINISHED,))}
    assert set(ids) <= finished


def test_node_list_shows_both_agents(client: Client) -> None:
    nodes = client.list_nodes()
    assert [n.name for n in nodes] == ["node1", "node2"]
    for n in nodes:
        assert n.state == admin_pb2.NODE_STATE_ONLINE and n.connected and n.capacity.cores == 2
        assert n.capacity.memory_mb > 0 and n.last_heartbeat.seconds > 0


def test_health_and_reflection_answer_generic_clients(cluster: object) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    with grpc.insecure_channel(cluster.address) as channel:  # type: ignore[attr-defined]
        status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service="shoal.v1.JobService"))
        assert status.status == health_pb2.HealthCheckResponse.SERVING
        replies = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        names = {s.name for r in replies for s in r.list_services_response.service}
    assert {"shoal.v1.JobService", "shoal.v1.NodeService", "shoal.v1.AdminService", "grpc.health.v1.Health"} <= names


# -- the CLI, as a user runs it ---------------------------------------------------------------


def test_cli_submit_wait_view_list(cluster: object, tmp_path: Path) -> None:
    head = cluster.address  # type: ignore[attr-defined]
    ok = run_cli("job", "submit", "--wait", "--", "echo", "hello world", head=head, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    job_id = int(ok.stdout.strip())
    assert f"job {job_id} Finished" in ok.stderr
    out = run_cli("task", "output", f"{job_id}.1", head=head)
    assert out.stdout == "hello world\n"
    failed = run_cli("job", "submit", "--wait", "--", "false", head=head)
    assert failed.returncode == 4 and "Failed" in failed.stderr
    view = json.loads(run_cli("job", "view", str(job_id), "--json", head=head).stdout)
    assert view["state"] == "JOB_STATE_FINISHED" and view["tasks"][0]["spec"]["working_directory"] == str(tmp_path)
    listed = json.loads(run_cli("job", "list", "--json", head=head).stdout)
    assert job_id in [int(j["id"]) for j in listed["jobs"]]
    nodes = json.loads(run_cli("node", "list", "--json", head=head).stdout)
    assert [n["name"] for n in nodes["nodes"]] == ["node1", "node2"]
    table = run_cli("node", "list", head=head).stdout
    assert "node1" in table and "Online" in table


def test_cli_errors_are_one_line_with_the_right_exit_code(cluster: object) -> None:
    head = cluster.address  # type: ignore[attr-defined]
    cases = [
        (["job", "submit", "--cores", "0", "--", "true"], 1, "cores must be at least 1, got 0"),
        (["job", "view", "999999"], 1, "job 999999 does not exist"),
        (["task", "output", "1"], 2, "is not of the form JOB.TASK"),
        (["job", "list", "--state", "sleeping"], 2, "is not a state (Configuring, Queued"),
        (["job", "submit"], 2, "give the command to run after --"),
    ]
    for args, code, message in cases:
        r = run_cli(*args, head=head)
        assert r.returncode == code, (args, r.returncode, r.stderr)
        assert message in r.stderr and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    down = run_cli("--head", "127.0.0.1:1", "job", "list")
    assert down.returncode == 3
    assert down.stderr.startswith("shoal: cannot reach the head node at 127.0.0.1:1")
    assert down.stderr.count("\n") == 1


def test_a_second_head_node_cannot_take_a_busy_port_or_state_dir(cluster: object, tmp_path: Path) -> None:
    busy = run_cli("head", "--plaintext", "--listen", cluster.address, "--state-dir", str(tmp_path / "other"), timeout=30)  # type: ignore[attr-defined]
    assert busy.returncode == 2 and "port is in use" in busy.stderr
    head_dir = cluster.state_dir / "head"  # type: ignore[attr-defined]
    shared = run_cli("head", "--plaintext", "--listen", "127.0.0.1:0", "--state-dir", str(head_dir), timeout=30)
    assert shared.returncode == 2 and f"another head node is using the state dir {head_dir}" in shared.stderr


def test_jobs_queued_where_no_node_has_registered_all_say_so_and_run_once_one_does(tmp_path: Path) -> None:
    from shoal.local import LocalCluster

    with LocalCluster(tmp_path, nodes=0, cores=1) as c, Client(c.address) as client:
        jobs = [submit(client, "true") for _ in range(3)]
        for job_id in jobs:
            job = client.get_job(job_id)
            assert job.state == jobs_pb2.JOB_STATE_QUEUED
            assert job.pending_reason == "no compute node has registered yet", job_id
        c.start_node("late")
        for job_id in jobs:
            assert client.wait_job(job_id).state == FINISHED


def test_the_daemons_run_on_the_event_loop_their_config_names(tmp_path: Path) -> None:
    # uvloop by default (common/loop.py); `event_loop = "asyncio"` brings back the standard
    # loop. Both kinds serve the same protocol: a node on each runs a job to the end.
    from shoal.local import LocalCluster

    with LocalCluster(tmp_path, nodes=0, cores=1) as c:
        c.start_node("uv")
        c.start_node("std", extra=["--event-loop", "asyncio"])
        with Client(c.address) as client:
            eventually(lambda: len(client.list_nodes()) == 2, what="both agents to join")
            for node in ("uv", "std"):
                spec = jobs_pb2.JobSpec(tasks=[task_spec("echo ran")])
                spec.tasks[0].placement.nodes.append(node)
                job = client.wait_job(client.submit(spec))
                assert job.state == FINISHED, (node, job.reason)
                assert output(client, job.id) == b"ran\n"

    def loop_of(name: str, event: str, key: str) -> str:
        lines = (c.log_dir / f"{name}.log").read_text().splitlines()
        return next(json.loads(line)[key] for line in lines if f'"event": "{event}"' in line)

    assert loop_of("head", "head_started", "event_loop") == "uvloop"
    assert loop_of("uv", "event_loop", "kind") == "uvloop"
    assert loop_of("std", "event_loop", "kind") == "asyncio"
