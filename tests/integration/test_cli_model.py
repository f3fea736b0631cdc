"""The job model through the `shoal` command, as users type it."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tests.conftest import eventually, run_cli

pytestmark = pytest.mark.cluster


def ok(*args: str, head: str, cwd: Path | None = None) -> str:
    r = run_cli(*args, head=head, cwd=cwd)
    assert r.returncode == 0, f"{args}: {r.stderr}"
    return r.stdout


def view(job_id: str, head: str) -> dict:
    return json.loads(ok("job", "view", job_id, "--json", head=head))


def test_new_add_modify_submit_wait(cluster: object, tmp_path: Path) -> None:
    head = cluster.address  # type: ignore[attr-defined]
    job = ok("job", "new", "--name", "pipeline", "--priority", "AboveNormal+5", head=head).strip()
    assert ok("job", "add", job, "--name", "prep", "--", "echo", "prep done", head=head, cwd=tmp_path).strip() \
        == f"{job}.1"
    assert ok("job", "add", job, "--name", "run", "--depend", "prep", "--env", "X=1", "--", "echo run $X",
              head=head).strip() == f"{job}.2"
    ok("task", "modify", f"{job}.2", "--cores", "1-2", "--", "echo run again $X", head=head)
    listed = json.loads(ok("task", "list", job, "--json", head=head))["tasks"]
    assert listed[1]["spec"]["command_line"] == "echo run again $X" and listed[1]["spec"]["max_cores"] == 2
    assert listed[1]["spec"]["depends_on"] == ["prep"]
    r = run_cli("job", "submit", job, "--wait", head=head)
    assert r.returncode == 0 and r.stdout.strip() == job, r.stderr
    assert ok("task", "output", f"{job}.2", head=head) == "run again 1\n"
    v = view(job, head)
    assert v["spec"]["priority"] == "PRIORITY_ABOVE_NORMAL" and v["spec"]["priority_offset"] == 5
    bad = run_cli("task", "modify", f"{job}.1", "--cores", "3", head=head)
    assert bad.returncode == 1 and "tasks can be modified only while it is Configuring" in bad.stderr


def test_sweep_from_the_command_line(cluster: object, tmp_path: Path) -> None:
    head = cluster.address  # type: ignore[attr-defined]
    job = ok("job", "submit", "--parametric", "1-10:3", "--stdout", "o_**.txt", "--wait", "--", "echo case *",
             head=head, cwd=tmp_path).strip()
    assert sorted(p.name for p in tmp_path.glob("o_*.txt")) == ["o_01.txt", "o_04.txt", "o_07.txt", "o_10.txt"]
    assert (tmp_path / "o_07.txt").read_text() == "case 7\n"
    table = ok("task", "list", job, "--instances", head=head)
    assert f"{job}.1.4" in table and "echo case 10" in table
    instance = json.loads(ok("task", "view", f"{job}.1.3", "--json", head=head))
    assert instance["state"] == "TASK_STATE_FINISHED" and instance["ref"]["instance_id"] == 3
    assert [h["state"] for h in instance["history"]] == ["TASK_STATE_RUNNING", "TASK_STATE_FINISHED"]
    assert ok("task", "output", f"{job}.1.2", head=head) == "case 4\n"
    r = run_cli("task", "output", f"{job}.1", head=head)
    assert r.returncode == 1 and "has 4 instances; name one" in r.stderr


JSON_JOB = {"name": "from-json", "priority": "PRIORITY_HIGHEST", "tasks": [
    {"name": "a", "command_line": "echo json a"},
    {"name": "b", "command_line": "echo json b", "depends_on": ["a"], "resources": {"cores": 1},
     "runtime_limit": "60s"}]}

TOML_JOB = textwrap.dedent("""
    name = "from-toml"
    project = "physics"

    [[tasks]]
    name = "sweep"
    command_line = "echo toml *"
    sweep = { start = 1, end = 3 }

    [[tasks]]
    name = "after"
    command_line = "echo after"
    depends_on = ["sweep"]
""")

HPC_XML_JOB = textwrap.dedent("""\
    <?xml version="1.0" encoding="utf-8"?>
    <Job xmlns="http://schemas.microsoft.com/HPCS2008R2/scheduler/" Name="from-xml" Priority="BelowNormal"
         RuntimeSeconds="600" FailOnTaskFailure="false" State="Finished" Id="77">
      <Dependencies />
      <Tasks>
        <Task Name="first" CommandLine="echo xml $WHO" MinCores="1" MaxCores="2" IsRerunnable="false">
          <EnvironmentVariables><Variable><Name>WHO</Name><Value>hpc</Value></Variable></EnvironmentVariables>
        </Task>
        <Task Name="sweep" Type="ParametricSweep" StartValue="2" EndValue="6" IncrementValue="2"
              CommandLine="echo value *" DependsOn="first" />
      </Tasks>
    </Job>
""")


@pytest.mark.parametrize("name, content", [("job.json", json.dumps(JSON_JOB)), ("job.toml", TOML_JOB),
                                           ("job.xml", HPC_XML_JOB)])
def test_job_files_submit_what_a_grpc_client_builds(cluster: object, tmp_path: Path, name: str, content: str) -> None:
    head = cluster.address  # type: ignore[attr-defined]
    path = tmp_path / name
    path.write_text(content)
    job = ok("job", "submit", "--file", str(path), "--wait", head=head).strip()
    v = view(job, head)
    assert v["state"] == "JOB_STATE_FINISHED", v["reason"]
    if name.endswith("json"):
        assert v["name"] == "from-json" and v["spec"]["priority"] == "PRIORITY_HIGHEST"
        assert v["tasks"][1]["spec"]["runtime_limit"] == "60s"
        assert ok("task", "output", f"{job}.2", head=head) == "json b\n"
    elif name.endswith("toml"):
        assert v["spec"]["project"] == "physics" and v["tasks"][0]["instance_count"] == 3
        assert ok("task", "output", f"{job}.1.3", head=head) == "toml 3\n"
    else:
        assert v["name"] == "from-xml" and v["spec"]["priority"] == "PRIORITY_BELOW_NORMAL"
        assert v["spec"]["runtime_limit"] == "600s" and v["tasks"][0]["spec"]["rerunnable"] is False
        assert ok("task", "output", f"{job}.1", head=head) == "xml hpc\n"
        assert ok("task", "output", f"{job}.2.3", head=head) == "value 6\n"
    # Export and submit again: the same job.
    for fmt in ("json", "xml"):
        exported = tmp_path / f"again.{fmt}"
        ok("job", "export", job, "--format", fmt, "-o", str(exported), head=head)
        again = ok("job", "submit", "--file", str(exported), "--wait", head=head).strip()
        v2 = view(again, head)
        assert [t["spec"] for t in v2["tasks"]] == [t["spec"] for t in v["tasks"]], fmt
        assert v2["name"] == v["name"] and v2["spec"]["priority"] == v["spec"]["priority"]


def test_bad_job_files_are_one_line_errors(cluster: object, tmp_path: Path) -> None:
    head = cluster.address  # type: ignore[attr-defined]
    cases = [("bad.json", '{"tasks": [{"comand_line": "x"}]}', "comand_line"),
             ("bad.toml", "name = ", "bad.toml: Invalid value"),
             ("bad.xml", "<Job><Tasks><Task MinCores='x'/></Tasks></Job>", "MinCores='x' is not a whole number"),
             ("job.yaml", "name: x", "unknown type .yaml")]
    for name, content, message in cases:
        (tmp_path / name).write_text(content)
        r = run_cli("job", "submit", "--file", str(tmp_path / name), head=head)
        assert r.returncode == 2 and message in r.stderr and r.stderr.count("\n") == 1, (name, r.stderr)


def test_requeue_configure_clone_hold_release(cluster: object, tmp_path: Path) -> None:
    head = cluster.address  # type: ignore[attr-defined]
    marker = tmp_path / "fixed"
    job = ok("job", "submit", "--", f"test -e {marker}", head=head).strip()
    eventually(lambda: view(job, head)["state"] == "JOB_STATE_FAILED", what="the job to fail")
    marker.touch()
    assert ok("job", "requeue", job, "--task", f"{job}.1", head=head).startswith(f"job {job} ")
    eventually(lambda: view(job, head)["state"] == "JOB_STATE_FINISHED", what="the requeued job to finish")
    clone = ok("job", "clone", job, head=head).strip()
    assert view(clone, head)["state"] == "JOB_STATE_CONFIGURING"
    ok("job", "modify", clone, "--name", "copy", "--priority", "Lowest", head=head)
    assert view(clone, head)["name"] == "copy"
    r = run_cli("job", "hold", clone, head=head)
    assert r.returncode == 1 and "it can be held only while it is Queued" in r.stderr
    held = ok("job", "submit", "--hold", "--", "true", head=head).strip()
    assert "held by" in ok("job", "view", held, head=head)
    ok("job", "release", held, head=head)
    eventually(lambda: view(held, head)["state"] == "JOB_STATE_FINISHED", what="the released job to finish")
    failed = ok("job", "submit", "--", "false", head=head).strip()
    eventually(lambda: view(failed, head)["state"] == "JOB_STATE_FAILED", what="the job to fail")
    assert "Configuring" in ok("job", "configure", failed, head=head)
    r = run_cli("job", "requeue", job, head=head)
    assert r.returncode == 1 and f"job {job} is Finished; requeue is allowed only when it is Failed or Cancelled" \
        in r.stderr


def test_templates_and_watch(cluster: object, tmp_path: Path) -> None:
    head = cluster.address  # type: ignore[attr-defined]
    ok("template", "create", "quick", "--description", "two cores", "--cores", "2", "--project", "p1", head=head)
    assert "quick" in ok("template", "list", head=head)
    assert json.loads(ok("template", "view", "quick", "--json", head=head))["task"]["resources"]["cores"] == 2
    job = ok("job", "submit", "--template", "quick", "--", "echo $SHOAL_CORES", head=head).strip()
    lines = ok("job", "watch", job, head=head).splitlines()
    assert "Configuring" in lines[0] and lines[-1].split()[1:4] == ["job", job, "Finished"]
    assert ok("task", "output", f"{job}.1", head=head) == "2\n"
    assert view(job, head)["spec"]["project"] == "p1"
    events = [json.loads(line) for line in ok("job", "watch", job, "--json", head=head).splitlines()]
    assert [int(e["seq"]) for e in events] == list(range(1, len(events) + 1))
    r = run_cli("job", "watch", job, "--ends-only", head=head)
    assert r.returncode == 2 and f"--ends-only is for a watch of every job; for job {job}'s end, run " \
        f"`shoal job wait {job}`" in r.stderr
    ok("template", "delete", "quick", head=head)
    r = run_cli("template", "view", "quick", head=head)
    assert r.returncode == 1 and "template 'quick' does not exist" in r.stderr
