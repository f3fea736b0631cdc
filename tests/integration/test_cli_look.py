"""How `shoal` looks to the person typing it and to the script reading it, against a real
cluster: progress while a job runs (a live bar on a terminal, plain lines otherwise),
tables coloured only on a terminal, --json everywhere it reads, and hints that name the
next command on stderr."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys

import pytest

from common.clock import SystemClock
from tests.conftest import run_cli

pytestmark = pytest.mark.cluster

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def on_terminal(*args: str, head: str, timeout: float = 60.0) -> tuple[int, str]:
    """Run `shoal ARGS` with a pseudo-terminal as its stdin, stdout and stderr; returns its exit
    code and everything it wrote (escape codes removed, carriage returns as line ends)."""
    main, child = pty.openpty()
    env = dict(os.environ, SHOAL_HEAD=head, TERM="xterm-256color", COLUMNS="120")
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen([sys.executable, "-m", "shoal", *args], stdin=child, stdout=child, stderr=child,
                            env=env, close_fds=True)
    os.close(child)
    clock = SystemClock()
    deadline = clock.monotonic() + timeout
    data = b""
    try:
        while True:
            left = deadline - clock.monotonic()
            assert left > 0, f"shoal {' '.join(args)} still running after {timeout:g}s:\n{data.decode()}"
            ready, _, _ = select.select([main], [], [], left)
            if not ready:
                continue
            try:
                chunk = os.read(main, 65536)
            except OSError:  # EIO: every writer has closed the terminal
                break
            if not chunk:
                break
            data += chunk
        code = proc.wait(timeout=30)
    finally:
        os.close(main)
        if proc.poll() is None:
            proc.kill()
    return code, data.decode(errors="replace")


def plain(text: str) -> list[str]:
    return [line.rstrip() for line in ANSI.sub("", text).replace("\r", "\n").splitlines() if line.strip()]


def ok(*args: str, head: str) -> subprocess.CompletedProcess[str]:
    r = run_cli(*args, head=head)
    assert r.returncode == 0, f"{args}: {r.stderr}"
    return r


def test_job_wait_prints_progress_lines_then_the_end_off_a_terminal(cluster: object) -> None:
    head = cluster.address  # type: ignore[attr-defined]
    job = ok("job", "submit", "--parametric", "1-6", "--", "sleep 0.2", head=head).stdout.strip()
    r = run_cli("job", "wait", job, head=head)
    assert r.returncode == 0 and r.stdout == "", r.stderr
    lines = r.stderr.splitlines()
    assert all(line.startswith(f"job {job}: ") for line in lines[:-1]) and len(lines) >= 2, lines
    assert lines[-2] == f"job {job}: 6/6 done, 0 failed, 0 running, 0 queued"
    assert lines[-1].startswith(f"job {job} Finished")
    # --json: no progress, the ended job on stdout.
    r = run_cli("job", "wait", job, "--json", head=head)
    assert r.returncode == 0 and r.stderr == "" and json.loads(r.stdout)["state"] == "JOB_STATE_FINISHED"
    # The watch log carries the counts after each change.
    watched = ok("job", "watch", job, head=head).stdout.splitlines()
    assert watched[-1].split()[1:4] == ["job", job, "Finished"]
    assert watched[-1].endswith("[6/6 done, 0 failed, 0 running, 0 queued]")


def test_a_failed_wait_exits_4_and_says_where_to_look(cluster: object) -> None:
    head = cluster.address  # type: ignore[attr-defined]
    r = run_cli("job", "submit", "--wait", "--", "echo broken >&2; exit 3", head=head)
    job = r.stdout.strip()
    assert r.returncode == 4 and job.isdigit(), r.stderr
    assert f"job {job} Failed: " in r.stderr
    assert r.stderr.splitlines()[-1] == (f"see why with `shoal job view {job}` and `shoal task output "
                                         f"{job}.1 --stderr`; re-run what failed with "
                                         f"`shoal job requeue {job}`")
    assert ok("task", "output", f"{job}.1", "--stderr", head=head).stdout == "broken\n"
    assert run_cli("job", "wait", job, head=head).returncode == 4


def test_a_live_progress_bar_on_a_terminal(cluster: object) -> None:
    head = cluster.address  # type: ignore[attr-defined]
    # Four one-second instances on the cluster's four cores: longer than the bar's delay.
    code, out = on_terminal("job", "submit", "--wait", "--parametric", "1-4", "--", "sleep 1", head=head)
    lines = plain(out)
    assert code == 0, out
    job = lines[0]
    assert job.isdigit(), lines
    bars = [line for line in lines if line.startswith(f"job {job} ") and " done, " in line]
    assert bars and "━" in bars[-1], lines
    assert re.search(r"4/4 done, 0 failed, 0 running, 0 queued", bars[-1]), bars[-1]
    assert lines[-1].startswith(f"job {job} Finished"), lines
    # On a terminal, `watch` draws the bar under the event log.
    code, out = on_terminal("job", "watch", job, head=head)
    lines = plain(out)
    assert code == 0 and any(line.split()[1:4] == ["job", job, "Finished"] for line in lines), lines
    assert any("4/4 done" in line and "━" in line for line in lines), lines


def test_tables_are_coloured_only_on_a_terminal(cluster: object) -> None:
    head = cluster.address  # type: ignore[attr-defined]
    code, out = on_terminal("node", "list", head=head)
    assert code == 0 and "\x1b[32mOnline" in out, out
    assert [line.split()[0] for line in plain(out)[2:]] == ["node1", "node2"]
    piped = ok("node", "list", head=head).stdout
    assert "\x1b" not in piped and piped.splitlines()[0].split()[:2] == ["NAME", "STATE"]
    job = ok("job", "submit", "--wait", "--", "true", head=head).stdout.strip()
    code, out = on_terminal("job", "view", job, head=head)
    assert code == 0 and "\x1b[32mFinished" in out and f"Job {job}" in plain(out)[0], out


def test_hints_say_what_to_do_next_on_stderr_and_not_with_json(cluster: object) -> None:
    head = cluster.address  # type: ignore[attr-defined]
    r = ok("job", "new", "--name", "later", head=head)
    job = r.stdout.strip()
    assert r.stderr == (f"job {job} is Configuring: add tasks with `shoal job add {job} -- CMD`, "
                        f"then submit it with `shoal job submit {job}`\n")
    made = ok("job", "new", "--name", "quiet", "--json", head=head)
    assert made.stderr == "" and json.loads(made.stdout)["state"] == "JOB_STATE_CONFIGURING"
    r = ok("job", "add", job, "--", "true", head=head)
    assert r.stdout == f"{job}.1\n" and f"`shoal job submit {job}`" in r.stderr
    ok("job", "submit", job, "--wait", head=head)
    again = run_cli("job", "submit", job, head=head)
    assert again.returncode == 1 and again.stderr.count("\n") == 1, again.stderr
    assert f"job {job} is Finished; submit is allowed only when it is Configuring" in again.stderr
    assert f"copy it with `shoal job clone {job}`" in again.stderr
    held = ok("job", "submit", "--hold", "--", "true", head=head)
    held_id = held.stdout.strip()
    assert f"release it with `shoal job release {held_id}`" in held.stderr
    released = json.loads(ok("job", "release", held_id, "--json", head=head).stdout)
    assert released["held"] is False and int(released["id"]) == int(held_id)
    r = run_cli("job", "add", held_id, "--", "true", head=head)
    assert r.returncode == 1 and "tasks can be added only while it is Configuring" in r.stderr
    assert r.stderr.count("\n") == 1 and "`shoal job" in r.stderr, r.stderr


def test_template_view_reads_as_text_or_json(cluster: object) -> None:
    head = cluster.address  # type: ignore[attr-defined]
    ok("template", "create", "look", "--description", "four cores", "--cores", "4", "--project", "p9",
       head=head)
    text = ok("template", "view", "look", head=head).stdout
    assert text.splitlines()[0] == "Template look" and "project=p9" in text and "resources.cores=4" in text
    viewed = json.loads(ok("template", "view", "look", "--json", head=head).stdout)
    assert viewed["task"]["resources"]["cores"] == 4
    ok("template", "delete", "look", head=head)
