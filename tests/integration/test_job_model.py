"""The full job model on a real cluster: lifecycle operations, task kinds, dependencies."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from common.ids import TaskId
from shoal.client import USER_METADATA, Client, RequestFailed, task_spec
from shoal.v1 import jobs_pb2, jobs_pb2_grpc
from tests.conftest import eventually

pytestmark = pytest.mark.cluster

J = jobs_pb2
ENDED = (J.JOB_STATE_FINISHED, J.JOB_STATE_FAILED, J.JOB_STATE_CANCELLED)
T = jobs_pb2


def spec(*tasks: jobs_pb2.TaskSpec, **job: object) -> jobs_pb2.JobSpec:
    job.setdefault("name", "t")
    return jobs_pb2.JobSpec(tasks=list(tasks), **job)


def out(client: Client, task: TaskId) -> str:
    return b"".join(client.read_output(task)).decode()


def refused(call: object, code: grpc.StatusCode, message: str) -> None:
    with pytest.raises(RequestFailed) as e:
        call()  # type: ignore[operator]
    assert e.value.code == code, e.value.message
    assert message in e.value.message, e.value.message


def gate(tmp_path: Path, name: str = "go") -> tuple[str, Path]:
    """A shell condition that waits until the test creates the file."""
    path = tmp_path / name
    return f"while [ ! -e {path} ]; do sleep 0.02; done", path


# -- lifecycle operations --------------------------------------------------------------------


def test_new_add_modify_submit(client: Client, tmp_path: Path) -> None:
    job = client.create_job(spec(name="built"))
    assert job.state == J.JOB_STATE_CONFIGURING
    refused(lambda: client.submit_existing(job.id), grpc.StatusCode.FAILED_PRECONDITION, "has no tasks")
    (first,) = client.add_tasks(job.id, task_spec("echo one", name="one"))
    second, third = client.add_tasks(job.id, task_spec("echo two", name="two"), task_spec("echo three"))
    assert (first, second, third) == (1, 2, 3)
    client.modify_task(TaskId(job.id, 3), task_spec("echo three modified"), ["command_line"])
    client.modify_task(TaskId(job.id, 2), task_spec("", cores=1, depends_on=["one"]), ["depends_on"])
    viewed = client.get_job(job.id)
    assert viewed.tasks[2].spec.command_line == "echo three modified"
    assert list(viewed.tasks[1].spec.depends_on) == ["one"] and viewed.tasks[1].spec.command_line == "echo two"
    client.submit_existing(job.id)
    done = client.wait_job(job.id)
    assert done.state == J.JOB_STATE_FINISHED
    assert out(client, TaskId(job.id, 3)) == "three modified\n"
    refused(lambda: client.add_tasks(job.id, task_spec("late")), grpc.StatusCode.FAILED_PRECONDITION,
            f"job {job.id} is Finished; tasks can be added only while it is Configuring")
    refused(lambda: client.modify_task(TaskId(job.id, 1), task_spec("x"), ["command_line"]),
            grpc.StatusCode.FAILED_PRECONDITION, "is Finished; tasks can be modified only while it is Configuring")
    refused(lambda: client.submit_existing(job.id), grpc.StatusCode.FAILED_PRECONDITION,
            "is Finished; submit is allowed only when it is Configuring")


def test_cancel_from_each_state_and_not_after(client: Client, tmp_path: Path) -> None:
    configuring = client.create_job(spec(task_spec("true")))
    assert client.cancel_job(configuring.id).state == J.JOB_STATE_CANCELLED
    wait, _ = gate(tmp_path)
    running = client.submit(spec(task_spec(wait)))
    eventually(lambda: client.get_job(running).state == J.JOB_STATE_RUNNING, what="the job to run")
    held = client.submit(spec(task_spec("true"), hold=True))
    assert client.get_job(held).held
    for job_id in (running, held):
        assert client.cancel_job(job_id, "stop").state == J.JOB_STATE_CANCELLED
    finished = client.wait_job(client.submit(spec(task_spec("true")))).id
    refused(lambda: client.cancel_job(finished), grpc.StatusCode.FAILED_PRECONDITION,
            f"job {finished} is Finished; cancel is allowed only when it is Configuring, Queued or Running")


def test_task_cancel_cancels_one_task_and_its_dependents(client: Client, tmp_path: Path) -> None:
    wait, go = gate(tmp_path)
    job_id = client.submit(spec(task_spec(wait, name="slow"), task_spec("true", name="after", depends_on=["slow"]),
                                task_spec("echo other", name="other")))
    eventually(lambda: client.get_job(job_id).tasks[0].state == T.TASK_STATE_RUNNING, what="the slow task to run")
    task = client.cancel_task(TaskId(job_id, 1), "not needed")
    assert task.state == T.TASK_STATE_CANCELLED
    job = client.wait_job(job_id)
    assert [t.state for t in job.tasks] == [T.TASK_STATE_CANCELLED, T.TASK_STATE_CANCELLED, T.TASK_STATE_FINISHED]
    assert job.tasks[1].reason == "dependency slow cancelled"
    assert job.state == J.JOB_STATE_FAILED  # not every task finished
    refused(lambda: client.cancel_task(TaskId(job_id, 3)), grpc.StatusCode.FAILED_PRECONDITION, "is Failed")


def test_requeue_reruns_only_what_failed(client: Client, tmp_path: Path) -> None:
    marker = tmp_path / "fixed"
    job_id = client.submit(spec(
        task_spec(f"echo ok >> {tmp_path}/runs1"),
        task_spec(f"echo try >> {tmp_path}/runs2; test -e {marker}"),
    ))
    assert client.wait_job(job_id).state == J.JOB_STATE_FAILED
    refused(lambda: client.configure_job(client.wait_job(client.submit(spec(task_spec("true")))).id),
            grpc.StatusCode.FAILED_PRECONDITION, "is Finished; configure is allowed only when it is Failed or Cancelled")
    marker.touch()
    requeued = client.requeue_job(job_id)
    assert requeued.state in (J.JOB_STATE_QUEUED, J.JOB_STATE_RUNNING)
    job = client.wait_job(job_id)
    assert job.state == J.JOB_STATE_FINISHED
    assert (tmp_path / "runs1").read_text() == "ok\n", "the finished task kept its result and did not re-run"
    assert (tmp_path / "runs2").read_text() == "try\ntry\n"
    assert job.tasks[1].attempt == 2
    refused(lambda: client.requeue_job(job_id), grpc.StatusCode.FAILED_PRECONDITION,
            f"job {job_id} is Finished; requeue is allowed only when it is Failed or Cancelled")


def test_requeue_chosen_tasks_of_a_cancelled_job(client: Client, tmp_path: Path) -> None:
    job_id = client.submit(spec(task_spec(f"echo a >> {tmp_path}/a"), task_spec("sleep 300")))
    eventually(lambda: (tmp_path / "a").exists(), what="task 1 to run")
    eventually(lambda: client.get_job(job_id).tasks[0].state == T.TASK_STATE_FINISHED, what="task 1 to finish")
    client.cancel_job(job_id)
    client.requeue_job(job_id, [TaskId(job_id, 1)])
    job = client.wait_job(job_id)
    assert (tmp_path / "a").read_text() == "a\na\n", "the chosen finished task ran again"
    assert job.tasks[1].state == T.TASK_STATE_CANCELLED and job.state == J.JOB_STATE_FAILED


def test_configure_fix_and_resubmit(client: Client) -> None:
    job_id = client.submit(spec(task_spec("echo good"), task_spec("exit 4")))
    assert client.wait_job(job_id).state == J.JOB_STATE_FAILED
    assert client.configure_job(job_id).state == J.JOB_STATE_CONFIGURING
    client.modify_task(TaskId(job_id, 2), task_spec("echo fixed"), ["command_line"])
    client.submit_existing(job_id)
    job = client.wait_job(job_id)
    assert job.state == J.JOB_STATE_FINISHED and out(client, TaskId(job_id, 2)) == "fixed\n"


def test_clone_of_a_finished_job(client: Client) -> None:
    source = client.wait_job(client.submit(spec(
        task_spec("echo plain", name="p"), task_spec("echo v*", sweep=(1, 3, 1), name="s", depends_on=["p"]),
        name="original", priority=J.PRIORITY_ABOVE_NORMAL)))
    assert source.state == J.JOB_STATE_FINISHED
    copy = client.clone_job(source.id)
    assert copy.state == J.JOB_STATE_CONFIGURING and copy.id != source.id and copy.name == "original"
    assert copy.spec.priority == J.PRIORITY_ABOVE_NORMAL
    view = client.get_job(copy.id)
    assert [t.spec for t in view.tasks] == [t.spec for t in source.tasks]
    assert view.tasks[1].instance_count == 3
    with Client(client.address, user="mallory") as other:
        refused(lambda: other.clone_job(source.id), grpc.StatusCode.PERMISSION_DENIED,
                f"mallory may not clone job {source.id}: it is {source.owner}'s")
    client.submit_existing(copy.id)
    assert client.wait_job(copy.id).state == J.JOB_STATE_FINISHED
    assert out(client, TaskId(copy.id, 2, 3)) == "v3\n"


def test_modify_hold_release(client: Client, tmp_path: Path) -> None:
    job_id = client.submit(spec(task_spec("echo held"), hold=True))
    eventually(lambda: client.get_job(job_id).pending_reason.startswith("held by"), what="the hold reason")
    job = client.modify_job(job_id, spec(name="renamed", priority=J.PRIORITY_HIGHEST), ["name", "priority"])
    assert job.name == "renamed" and job.spec.priority == J.PRIORITY_HIGHEST
    refused(lambda: client.hold_job(job_id), grpc.StatusCode.FAILED_PRECONDITION, "already held")
    client.release_job(job_id)
    assert client.wait_job(job_id).state == J.JOB_STATE_FINISHED
    refused(lambda: client.modify_job(job_id, spec(name="late"), ["name"]), grpc.StatusCode.FAILED_PRECONDITION,
            "is Finished; it can be modified only while it is Configuring or Queued")
    refused(lambda: client.release_job(job_id), grpc.StatusCode.FAILED_PRECONDITION, "is not held")
    refused(lambda: client.hold_job(job_id), grpc.StatusCode.FAILED_PRECONDITION,
            "is Finished; it can be held only while it is Queued")


def test_jobs_queued_behind_a_blocked_one_on_a_full_cluster_say_so(client: Client, tmp_path: Path) -> None:
    wait, go = gate(tmp_path, "go")
    blocker = client.submit(spec(task_spec(wait, cores=2), task_spec(wait, cores=2)))
    eventually(lambda: client.get_job(blocker).task_counts.running == 2, what="the cluster to fill")
    first = client.submit(spec(task_spec("true", cores=2)))
    eventually(lambda: client.get_job(first).tasks[0].pending_reason.startswith("waiting for resources"),
               what="the first job to be blocked")
    # The head need not plan again for these (the cluster is full, the queue still starts
    # with the blocked job), and their reasons are what a pass would give them.
    later = [client.submit(spec(task_spec("true"))) for _ in range(3)]
    for job_id in later:
        eventually(lambda j=job_id: client.get_job(j).tasks[0].pending_reason  # type: ignore[misc]
                   == f"waiting behind job {first}, ahead in the queue (it has the reservation)",
                   what="a later job's reason")
    go.touch()
    for job_id in (blocker, first, *later):
        assert client.wait_job(job_id).state == J.JOB_STATE_FINISHED


def test_priority_orders_the_queue(client: Client, tmp_path: Path) -> None:
    first_wait, first_go = gate(tmp_path, "go1")
    second_wait, second_go = gate(tmp_path, "go2")
    blocker = client.submit(spec(task_spec(first_wait, cores=2), task_spec(second_wait, cores=2)))
    eventually(lambda: client.get_job(blocker).task_counts.running == 2, what="the cluster to fill")
    low = client.submit(spec(task_spec("true", cores=2), priority=J.PRIORITY_LOWEST))
    high = client.submit(spec(task_spec("true", cores=2), priority=J.PRIORITY_HIGHEST))
    eventually(lambda: "waiting behind job" in client.get_job(low).pending_reason, what="low to wait behind high")
    first_go.touch()  # one node frees: only one of the two can start, and it must be high
    high_job = client.wait_job(high)
    low_job = client.wait_job(low)  # runs on that node once high is done
    assert high_job.start_time.ToNanoseconds() < low_job.start_time.ToNanoseconds()
    assert high_job.tasks[0].node == low_job.tasks[0].node
    second_go.touch()
    client.wait_job(blocker)


# -- task kinds ------------------------------------------------------------------------------


def test_sweep_1_to_1000_by_7_substitutes_every_asterisk(client: Client, tmp_path: Path) -> None:
    job_id = client.submit(spec(task_spec(
        "echo value *; echo $SHOAL_PARAMETRIC_VALUE > out_****.txt", sweep=(1, 1000, 7),
        working_directory=str(tmp_path), stdout_path="stdout_*.txt")))
    job = client.wait_job(job_id)
    values = list(range(1, 1001, 7))
    assert job.state == J.JOB_STATE_FINISHED and job.task_counts.finished == len(values) == 143
    files = sorted(tmp_path.glob("out_*.txt"))
    assert [f.name for f in files] == [f"out_{v:04d}.txt" for v in values]
    assert all(f.read_text() == f"{v}\n" for f, v in zip(files, values))
    assert (tmp_path / "stdout_995.txt").read_text() == "value 995\n"
    units = list(client.list_instances(job_id, page_size=50))
    assert [u.ref.instance_id for u in units] == list(range(1, 144))
    assert [u.parametric_value for u in units] == values
    assert units[1].command_line.startswith("echo value 8;") and units[1].state == T.TASK_STATE_FINISHED
    assert out(client, TaskId(job_id, 1, 143)) == "value 995\n"


def test_multi_instance_task_with_4_instances_reads_its_variables(client: Client, tmp_path: Path) -> None:
    job_id = client.submit(spec(task_spec(
        f"echo $SHOAL_TASK_INSTANCE of $SHOAL_TASK_INSTANCE_COUNT on $SHOAL_NODE at $(date +%s.%N) "
        f"> {tmp_path}/i$SHOAL_TASK_INSTANCE; sleep 0.3", instances=4)))
    job = client.wait_job(job_id)
    assert job.state == J.JOB_STATE_FINISHED and job.tasks[0].instance_count == 4
    seen = sorted((tmp_path / f"i{i}").read_text().split()[:3] for i in range(1, 5))
    assert seen == [[str(i), "of", "4"] for i in range(1, 5)]
    starts = [u.start_time.ToNanoseconds() for u in client.list_instances(job_id)]
    ends = [u.end_time.ToNanoseconds() for u in client.list_instances(job_id)]
    assert max(starts) < min(ends), "the 4 instances ran at the same time"


def test_three_level_dag_runs_in_order(client: Client) -> None:
    job_id = client.submit(spec(
        task_spec("sleep 0.2", name="fetch"),
        task_spec("sleep 0.2", name="left", depends_on=["fetch"]),
        task_spec("sleep 0.2", name="right", depends_on=["fetch"]),
        task_spec("sleep 0.1", name="merge", depends_on=["left", "right"]),
    ))
    job = client.wait_job(job_id)
    assert job.state == J.JOB_STATE_FINISHED
    t = {task.spec.name: task for task in job.tasks}
    start, end = ({n: t[n].start_time.ToNanoseconds() for n in t}, {n: t[n].end_time.ToNanoseconds() for n in t})
    assert end["fetch"] <= start["left"] and end["fetch"] <= start["right"]
    assert max(end["left"], end["right"]) <= start["merge"]
    assert start["left"] < end["right"] and start["right"] < end["left"], "independent branches overlap"


def test_dag_errors_are_refused_at_submit(client: Client) -> None:
    before = [j.id for j in client.list_jobs()]
    refused(lambda: client.submit(spec(task_spec("a", name="a", depends_on=["b"]),
                                       task_spec("b", name="b", depends_on=["a"]))),
            grpc.StatusCode.INVALID_ARGUMENT, "form a dependency cycle")
    refused(lambda: client.submit(spec(task_spec("a", name="a", depends_on=["ghost"]))),
            grpc.StatusCode.INVALID_ARGUMENT, "depends on 'ghost', but no task of the job has that name")
    refused(lambda: client.submit(spec(task_spec("a", name="a", depends_on=["a"]))),
            grpc.StatusCode.INVALID_ARGUMENT, "depends on itself")
    assert [j.id for j in client.list_jobs()] == before


def test_valid_exit_codes_and_fail_on_task_failure(client: Client, tmp_path: Path) -> None:
    ok = client.wait_job(client.submit(spec(task_spec("exit 3", valid_exit_codes="0,3"))))
    assert ok.state == J.JOB_STATE_FINISHED and ok.tasks[0].exit_code == 3
    wait, _ = gate(tmp_path)
    fast = client.submit(spec(task_spec("exit 2"), task_spec(wait), fail_on_task_failure=True))
    job = client.wait_job(fast)
    assert job.state == J.JOB_STATE_FAILED and job.reason == f"task {fast}.1 failed: exit code 2"
    assert job.tasks[1].state == T.TASK_STATE_CANCELLED


def test_task_and_job_runtime_limits(client: Client, tmp_path: Path) -> None:
    task = client.wait_job(client.submit(spec(task_spec("sleep 30", runtime_limit=0.5))))
    assert task.state == J.JOB_STATE_FAILED and task.tasks[0].reason == "runtime limit 0.5s exceeded"
    job_id = client.submit(jobs_pb2.JobSpec(tasks=[task_spec("sleep 30")], runtime_limit={"nanos": 600_000_000}))
    job = client.wait_job(job_id)
    assert job.state == J.JOB_STATE_FAILED and job.reason == "runtime limit 0.6s exceeded"
    assert job.tasks[0].state == T.TASK_STATE_CANCELLED


def test_stdin_stdout_stderr_files_on_the_node(client: Client, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("from a file\n")
    job = client.wait_job(client.submit(spec(task_spec(
        "cat; echo oops >&2", working_directory=str(tmp_path), stdin_path="in.txt", stdout_path="out.txt",
        stderr_path="err.txt"))))
    assert job.state == J.JOB_STATE_FINISHED
    assert (tmp_path / "out.txt").read_text() == "from a file\n" and (tmp_path / "err.txt").read_text() == "oops\n"
    assert out(client, TaskId(job.id, 1)) == "from a file\n", "the head keeps its copy too"
    missing = client.wait_job(client.submit(spec(task_spec("cat", working_directory=str(tmp_path),
                                                           stdin_path="nope.txt"))))
    assert "could not start: cannot open stdin file" in missing.tasks[0].reason


# -- dependencies between jobs ---------------------------------------------------------------


def test_after_ok_after_any_after_not_ok(client: Client, tmp_path: Path) -> None:
    wait, go = gate(tmp_path)
    parent = client.submit(spec(task_spec(f"{wait}; exit 1")))
    dep = lambda kind: [jobs_pb2.JobDependency(kind=kind, job_id=parent)]  # noqa: E731
    after_ok = client.submit(spec(task_spec("true"), dependencies=dep(J.DEPENDENCY_KIND_AFTER_OK)))
    after_any = client.submit(spec(task_spec("true"), dependencies=dep(J.DEPENDENCY_KIND_AFTER_ANY)))
    after_not_ok = client.submit(spec(task_spec("true"), dependencies=dep(J.DEPENDENCY_KIND_AFTER_NOT_OK)))
    doomed = client.submit(spec(task_spec("true"), dependencies=dep(J.DEPENDENCY_KIND_AFTER_OK),
                                cancel_on_unsatisfiable_dependency=True))
    eventually(lambda: client.get_job(after_ok).pending_reason == f"waiting for job {parent} (after-ok; it is Running)",
               what="the dependency to be the pending reason")
    go.touch()
    assert client.wait_job(after_any).state == J.JOB_STATE_FINISHED
    assert client.wait_job(after_not_ok).state == J.JOB_STATE_FINISHED
    cancelled = client.wait_job(doomed)
    assert cancelled.state == J.JOB_STATE_CANCELLED
    assert cancelled.reason == f"dependency can never be satisfied: job {parent} Failed (after-ok)"
    waiting = client.get_job(after_ok)
    assert waiting.state == J.JOB_STATE_QUEUED
    assert waiting.pending_reason == f"dependency can never be satisfied: job {parent} Failed (after-ok)"
    refused(lambda: client.submit(spec(task_spec("true"), dependencies=[jobs_pb2.JobDependency(job_id=999_999)])),
            grpc.StatusCode.INVALID_ARGUMENT, "spec.dependencies[0]: job 999999 does not exist")


# -- templates, watch ------------------------------------------------------------------------


def test_templates_start_a_submission(client: Client) -> None:
    from shoal.v1 import templates_pb2

    template = templates_pb2.Template(
        name="greeter", description="says hello",
        job=jobs_pb2.JobSpec(name="from-template", project="demo", tasks=[task_spec("echo template task")]),
        task=task_spec("", environment={"GREETING": "hello"}),
    )
    client.create_template(template)
    refused(lambda: client.create_template(template), grpc.StatusCode.ALREADY_EXISTS, "already exists")
    assert [t.name for t in client.list_templates()] == ["greeter"]
    plain = client.wait_job(client.submit(jobs_pb2.JobSpec(template="greeter")))
    assert plain.name == "from-template" and plain.spec.project == "demo"
    assert out(client, TaskId(plain.id, 1)) == "template task\n"
    own = client.wait_job(client.submit(jobs_pb2.JobSpec(template="greeter", name="mine", tasks=[
        task_spec("echo $GREETING world")])))
    assert own.name == "mine" and out(client, TaskId(own.id, 1)) == "hello world\n"
    client.delete_template("greeter")
    refused(lambda: client.submit(jobs_pb2.JobSpec(template="greeter")), grpc.StatusCode.NOT_FOUND,
            "template 'greeter' does not exist")


def test_watch_all_jobs_sees_changes_from_now_on(client: Client) -> None:
    watch = client.watch_jobs()
    job_id = client.submit(spec(task_spec("true")))
    seen = []
    for event in watch:
        if event.job_id == job_id:
            seen.append(event)
            if not event.HasField("task") and event.job_state == J.JOB_STATE_FINISHED:
                break
    assert [e.seq for e in seen] == list(range(1, len(seen) + 1))


def test_a_watch_of_all_jobs_own_events_sees_their_states_live(client: Client) -> None:
    watch = client.watch_jobs(job_events_only=True)
    job_id = client.submit(spec(task_spec("true"), task_spec("true")))
    states = []
    for event in watch:
        assert not event.HasField("task"), "a task's change on a watch of jobs' own events"
        if event.job_id == job_id:
            states.append(event.job_state)
            if event.job_state == J.JOB_STATE_FINISHED:
                break
    # Its four own changes (configuring, queued, running, finished), each with the job's
    # state once its step was committed (submission is one step: queued twice).
    assert states == [J.JOB_STATE_QUEUED, J.JOB_STATE_QUEUED, J.JOB_STATE_RUNNING, J.JOB_STATE_FINISHED]


def test_a_watch_of_all_jobs_ends_sees_each_job_once_as_it_ends(client: Client) -> None:
    watch = client.watch_jobs(ends_only=True)
    done = client.submit(spec(task_spec("true"), task_spec("true")))
    held = client.submit(jobs_pb2.JobSpec(hold=True, tasks=[task_spec("true")]))
    client.cancel_job(held)
    seen = {}
    for event in watch:
        if event.job_id in (done, held):
            assert event.job_id not in seen and not event.HasField("task"), event
            seen[event.job_id] = event.job_state
            if len(seen) == 2:
                break
    assert seen == {done: J.JOB_STATE_FINISHED, held: J.JOB_STATE_CANCELLED}
    # Nothing more of theirs comes, and only ends: up to the end of a job submitted after them.
    last = client.submit(spec(task_spec("true")))
    for event in watch:
        assert event.job_id not in seen and event.job_state in ENDED and not event.HasField("task"), event
        if event.job_id == last:
            break


def test_a_batched_watch_sends_what_piled_up_together_and_in_order(client: Client) -> None:
    """WatchJobsRequest.batched: events that pile up come in one message's `more`; the SDK's
    watch_jobs hands them out one by one, each job's in history order."""
    raw = client._jobs.WatchJobs(jobs_pb2.WatchJobsRequest(batched=True))
    raw.initial_metadata()
    flat = client.watch_jobs()
    ids = client.submit_many([spec(task_spec("true")) for _ in range(20)])  # one commit: one pile
    first = next(raw)
    assert len(first.more) > 0, "the twenty jobs' queued events came in one message"
    raw.cancel()
    seqs: dict[int, list[int]] = {i: [] for i in ids}
    ended: set[int] = set()
    for event in flat:
        assert not event.more
        if event.job_id in seqs:
            seqs[event.job_id].append(event.seq)
            if not event.HasField("task") and event.job_state == J.JOB_STATE_FINISHED:
                ended.add(event.job_id)
                if ended == set(ids):
                    break
    for got in seqs.values():
        assert got == list(range(1, len(got) + 1))


def test_many_jobs_are_submitted_in_one_durable_step_or_none_are(client: Client) -> None:
    specs = [jobs_pb2.JobSpec(name=f"batch{i}", tasks=[task_spec("true")]) for i in range(5)]
    ids = client.submit_many(specs, batch=3)
    assert len(ids) == 5 and ids == sorted(ids)
    assert [client.get_job(i).name for i in ids] == [f"batch{i}" for i in range(5)]
    before = len(list(client.list_jobs()))
    bad = [specs[0], jobs_pb2.JobSpec(tasks=[task_spec("true", memory_mb=0)])]
    refused(lambda: client.submit_many(bad), grpc.StatusCode.INVALID_ARGUMENT,
            "specs[1]: spec.tasks[0].resources.memory_mb must be at least 1")
    assert len(list(client.list_jobs())) == before, "nothing of a refused batch was queued"
    refused(lambda: client.submit_many([]), grpc.StatusCode.INVALID_ARGUMENT, "specs is empty")
    for i in ids:
        assert client.wait_job(i).state == jobs_pb2.JOB_STATE_FINISHED


def test_jobs_submitted_each_as_its_own_request_come_back_in_order(client: Client) -> None:
    """submit_each: one SubmitJobStream call, a request per job; the ids come back in the
    specs' order, and a refused request stops the stream there: every job before it is
    queued (and named by the exception), none after it."""
    specs = [jobs_pb2.JobSpec(name=f"each{i}", tasks=[task_spec("true")]) for i in range(40)]
    ids = client.submit_each(specs, window=8)
    assert len(set(ids)) == 40 and ids == sorted(ids)
    assert [client.get_job(i, full=False).name for i in ids] == [f"each{i}" for i in range(40)]
    before = len(list(client.list_jobs()))
    bad = [*specs[:3], jobs_pb2.JobSpec(tasks=[task_spec("true", memory_mb=0)]), *specs[3:6]]
    with pytest.raises(RequestFailed) as e:
        client.submit_each(bad, window=2)
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert e.value.message == "request 4 of the stream: spec.tasks[0].resources.memory_mb must be at least 1, got 0"
    assert len(e.value.queued) == 3 and min(e.value.queued) > max(ids)
    assert [client.get_job(i, full=False).name for i in e.value.queued] == ["each0", "each1", "each2"]
    assert len(list(client.list_jobs())) == before + 3, "nothing after the refused request was queued"
    assert client.submit_each([]) == []
    existing = client.create_job(jobs_pb2.JobSpec(name="configuring")).id
    with grpc.insecure_channel(client.address) as channel, pytest.raises(grpc.RpcError) as raw:
        stub = jobs_pb2_grpc.JobServiceStub(channel)
        list(stub.SubmitJobStream(iter([jobs_pb2.SubmitJobRequest(job_id=existing)]),
                                  metadata=((USER_METADATA, "someone"),)))
    assert raw.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "request 1 of the stream: SubmitJobStream queues new jobs: give spec, not job_id" in raw.value.details()


def test_each_request_of_a_submission_stream_counts_against_the_rate_limit(tmp_path: Path, monkeypatch) -> None:
    """A stream of submissions is not a way around rate_limit: each request counts as a call."""
    from shoal.local import LocalCluster

    monkeypatch.setenv("SHOAL_HEAD_RATE_LIMIT", "10")  # bursts of 20, then 10 a second
    held = jobs_pb2.JobSpec(hold=True, tasks=[task_spec("true")])
    with LocalCluster(tmp_path, nodes=0, cores=1) as c:
        with Client(c.address, user="dave") as client, pytest.raises(RequestFailed) as e:
            client.submit_each([held] * 200, window=200)
        assert e.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "of the stream: too many requests from dave: at most 10 per second" in e.value.message
        assert 19 <= len(e.value.queued) < 100
        with Client(c.address, user="erin") as other:  # dave's allowance is spent
            assert sorted(j.id for j in other.list_jobs()) == e.value.queued
