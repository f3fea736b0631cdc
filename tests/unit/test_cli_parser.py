"""The `shoal` command's surface, from its argparse tree (nothing is run against a head node):
every command's --help has an example, every read command has --json, the completion
scripts are made from the same tree and work in the shells, and the plain and terminal
renderings and progress lines say what they should."""

from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
import sys

import pytest

from common.clock import FakeClock
from shoal.cli import completion, hints, progress, render
from shoal.cli.main import GROUPS, build_parser, group_of
from shoal.v1 import admin_pb2, jobs_pb2

# Commands that only read; each must offer --json. (`task output` prints the task's own bytes,
# `job export` writes a job file in the --format asked for: neither is a view to make JSON of.)
READ_COMMANDS = {
    "shoal job view", "shoal job list", "shoal job watch", "shoal job wait",
    "shoal task list", "shoal task view",
    "shoal node list", "shoal node view",
    "shoal template list", "shoal template view",
    "shoal simulate",
    "shoal report usage", "shoal config show head", "shoal config show node",
}


def commands(parser: argparse.ArgumentParser, path: str = "shoal") -> dict[str, argparse.ArgumentParser]:
    """Every parser in the tree that runs something (has a handler), by command path."""
    found = {path: parser} if parser.get_default("func") else {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found.update(commands(child, f"{path} {name}"))
    return found


def test_every_command_has_an_example_in_its_help() -> None:
    found = commands(build_parser())
    assert {"shoal job submit", "shoal job wait", "shoal node", "shoal completion"} <= set(found)
    missing = sorted(path for path, p in found.items() if "example:" not in (p.epilog or ""))
    assert not missing, f"no `example:` in the --help of {missing}"
    # The examples are printed as written, one command a line (not re-wrapped).
    text = found["shoal job wait"].format_help()
    assert "example:\n  shoal job wait 12\n  shoal job wait 12 --json > job12.json\n" in text
    assert "4 (--wait, job wait) the job ended Failed or Cancelled" in text


def test_every_read_command_has_json() -> None:
    found = commands(build_parser())
    assert READ_COMMANDS <= set(found), READ_COMMANDS - set(found)
    without = sorted(path for path in READ_COMMANDS
                     if "--json" not in found[path]._option_string_actions)
    assert not without, f"read commands without --json: {without}"


def _helps(parser: argparse.ArgumentParser) -> dict[str, str]:
    return {path: p.format_help() + repr(sorted(p._defaults.items())) for path, p in commands(parser).items()}


def test_a_tree_built_for_one_group_holds_that_group_whole() -> None:
    # Every command builds only the group it names: the group must come out as in the full tree.
    full = _helps(build_parser())
    for group in GROUPS:
        one = _helps(build_parser(only=group))
        mine = {path: text for path, text in full.items() if path.split()[1] == group}
        assert mine and {path: one.get(path) for path in mine} == mine, group
        assert set(one) == set(mine), f"{group}: other groups were filled in too"


@pytest.mark.parametrize(("argv", "group"), [
    (["job", "submit", "--wait"], "job"),
    (["--head", "h:1", "task", "list", "3"], "task"),
    (["--head=h:1", "--json", "node", "list"], "node"),
    (["--tok", "job", "template", "list"], "template"),  # a unique prefix of --token takes a value
    (["--ca", "c.pem", "--cert", "u.pem", "--key", "u.key", "config", "show", "head"], "config"),
    (["-h"], None), (["nosuch", "job"], None), ([], None),
])
def test_the_command_group_is_the_first_word_past_the_top_level_options(argv: list[str], group: str | None) -> None:
    assert group_of(argv) == group


def test_the_completion_tree_follows_the_parser() -> None:
    tree = completion.tree(build_parser())
    assert "submit" in tree["shoal job"].words and "wait" in tree["shoal job"].words
    assert "--json" in tree["shoal job list"].options and "--state" in tree["shoal job list"].valued
    assert tree["shoal job export"].choices["--format"] == ["json", "xml"]
    assert tree["shoal completion"].words == ["bash", "zsh", "fish"]
    assert "--head" in tree["shoal"].valued


def _bash(script: str, line: list[str]) -> list[str]:
    """What the bash completion offers for the last word of `line`."""
    words = " ".join(f"'{w}'" for w in line)
    run = (f"{script}\nCOMP_WORDS=({words}); COMP_CWORD={len(line) - 1}; _shoal; "
           'printf "%s\\n" "${COMPREPLY[@]}"')
    out = subprocess.run(["bash", "-c", run], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return [w for w in out.stdout.splitlines() if w]


def test_bash_completion_offers_commands_options_and_choices() -> None:
    made = subprocess.run([sys.executable, "-m", "shoal", "completion", "bash"], capture_output=True,
                          text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    script = made.stdout
    assert "submit" in script and "--json" in script
    source = f"source <({sys.executable} -m shoal completion bash); complete -p shoal"
    loaded = subprocess.run(["bash", "-c", source], capture_output=True, text=True, timeout=60)
    assert loaded.returncode == 0 and "-F _shoal shoal" in loaded.stdout, loaded.stderr
    assert _bash(script, ["shoal", "job", "su"]) == ["submit"]
    assert _bash(script, ["shoal", "--head", "h:1", "job", "list", "--js"]) == ["--json"]
    assert _bash(script, ["shoal", "job", "export", "12", "--format", ""]) == ["json", "xml"]
    assert _bash(script, ["shoal", "completion", "z"]) == ["zsh"]
    # The task's command after `--` is the shell's to complete (file names), not ours.
    assert _bash(script, ["shoal", "job", "submit", "--", "su"]) == []


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_zsh_completion_offers_subcommands() -> None:
    script = completion.zsh(completion.tree(build_parser()))
    # compadd is zsh's own (it filters by what is typed); stand in for it to see what is offered.
    run = ("autoload -U compinit && compinit -u -d /dev/null\n" + script +
           "\ncompadd() { [[ $1 == -- ]] && shift; print -rl -- $@; }\n"
           "words=(shoal job su); CURRENT=3; _shoal")
    out = subprocess.run(["zsh", "-f", "-c", run], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "submit" in out.stdout.split() and "wait" in out.stdout.split()


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish is not installed")
def test_fish_completion_offers_subcommands() -> None:
    script = completion.fish(completion.tree(build_parser()))
    out = subprocess.run(["fish", "--no-config", "-c", f"{script}\ncomplete -C 'shoal job su'"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert [line.split("\t")[0] for line in out.stdout.splitlines()] == ["submit"]


# -- rendering ---------------------------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _nodes() -> list[admin_pb2.Node]:
    return [admin_pb2.Node(name="n1", state=admin_pb2.NODE_STATE_ONLINE, connected=True),
            admin_pb2.Node(name="n2", state=admin_pb2.NODE_STATE_OFFLINE, reason="disk swap")]


def test_tables_are_plain_off_a_terminal_and_coloured_on_one(monkeypatch: pytest.MonkeyPatch) -> None:
    plain = io.StringIO()
    render.show(render.node_rows(_nodes(), 0.0), plain)
    lines = plain.getvalue().splitlines()
    assert "\x1b" not in plain.getvalue()
    assert lines[0].split()[:2] == ["NAME", "STATE"]
    assert lines[2].split()[:3] == ["n2", "Offline", "(disconnected)"]
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("COLUMNS", "120")
    tty = Terminal()
    render.show(render.node_rows(_nodes(), 0.0), tty)
    out = tty.getvalue()
    assert "\x1b[32mOnline" in out and "\x1b[31mOffline" in out, out
    job = jobs_pb2.Job(id=42, name="sim", state=jobs_pb2.JOB_STATE_FAILED, owner="alice")
    tty = Terminal()
    render.show(render.job_doc(job, 0.0), tty)
    assert "Failed" in tty.getvalue() and "\x1b[1;31mFailed" in tty.getvalue()
    assert render.job_view(job, 0.0).splitlines()[0] == "Job 42  sim  Failed"


def test_progress_lines_change_at_most_once_a_second_and_end_with_the_final_counts() -> None:
    clock = FakeClock()
    out = io.StringIO()
    job = jobs_pb2.Job(id=42, task_counts=jobs_pb2.TaskCounts(queued=4))
    lines = progress._Lines(out, job, log=False, clock=clock)

    def event(**counts: int) -> jobs_pb2.JobEvent:
        return jobs_pb2.JobEvent(job_id=42, task_counts=jobs_pb2.TaskCounts(**counts))

    lines.event(jobs_pb2.JobEvent(job_id=42))  # replayed history: no counts
    lines.event(event(running=2, queued=2))  # within the same second: held back
    clock.advance(1.0)
    lines.event(event(finished=1, running=2, queued=1))
    lines.event(event(finished=2, failed=1, running=1))
    lines.end(jobs_pb2.Job(id=42, state=jobs_pb2.JOB_STATE_FAILED,
                           task_counts=jobs_pb2.TaskCounts(finished=3, failed=1)))
    assert out.getvalue().splitlines() == [
        "job 42: 0/4 done, 0 failed, 0 running, 4 queued",
        "job 42: 1/4 done, 0 failed, 2 running, 1 queued",
        "job 42: 3/4 done, 1 failed, 0 running, 0 queued",
    ]


def test_hints_name_the_next_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert hints.created(42) == ("job 42 is Configuring: add tasks with `shoal job add 42 -- CMD`, "
                                 "then submit it with `shoal job submit 42`")
    assert "`shoal job release 42`" in hints.held(42)
    assert "`shoal job wait 42`" in hints.refusal("submit", 42, jobs_pb2.JOB_STATE_RUNNING)
    assert "`shoal job clone 42`" in hints.refusal("submit", 42, jobs_pb2.JOB_STATE_FINISHED)
    assert hints.refusal("submit", 42, jobs_pb2.JOB_STATE_CONFIGURING) == ""
    failed = jobs_pb2.Job(id=42, state=jobs_pb2.JOB_STATE_FAILED)
    failed.tasks.add(state=jobs_pb2.TASK_STATE_FINISHED).ref.task_id = 1
    failed.tasks.add(state=jobs_pb2.TASK_STATE_FAILED, instance_count=1).ref.task_id = 2
    assert "`shoal job view 42` and `shoal task output 42.2 --stderr`" in hints.ended_badly(failed)
    hints.hint(argparse.Namespace(json=True), "not with --json")
    hints.hint(argparse.Namespace(), "to stderr")
    assert capsys.readouterr() == ("", "to stderr\n")


def test_json_of_a_list_has_one_record_to_a_line_and_the_same_content() -> None:
    from google.protobuf import json_format

    jobs = jobs_pb2.ListJobsResponse(jobs=[jobs_pb2.Job(id=1, name='quote " and }, {'), jobs_pb2.Job(id=2)])
    text = render.to_json(jobs)
    assert json.loads(text) == json_format.MessageToDict(
        jobs, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
    lines = text.splitlines()
    assert lines[0] == "{" and lines[1] == '  "jobs": [' and lines[-1] == "}"
    assert [json.loads(line.strip().rstrip(","))["id"] for line in lines[2:4]] == ["1", "2"]
    assert json.loads(render.to_json(jobs_pb2.ListJobsResponse()))["jobs"] == []
    one = render.to_json(jobs_pb2.Job(id=3))
    assert one.startswith('{\n  "id": "3",')  # a single record stays indented throughout


def test_submit_start_up_leaves_out_what_it_does_not_use():
    """`shoal job submit --wait`'s start-up is what its user waits for: building its parser and
    loading its command and the client import none of the modules kept out of that path."""
    code = ("import sys; from shoal.cli.main import build_parser; build_parser('job').parse_args(['job', 'list']); "
            "import shoal.cli.jobs, shoal.cli.progress, shoal.client; "
            "print(sorted({'shutil', 'getpass'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_os_user_is_the_one_getpass_finds(monkeypatch):
    import getpass

    from shoal.client import os_user

    assert os_user() == getpass.getuser()
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.delenv(name, raising=False)
    assert os_user() == getpass.getuser()  # from the password database
    monkeypatch.setenv("USERNAME", "someone")
    assert os_user() == getpass.getuser() == "someone"


def test_help_is_wrapped_to_columns(monkeypatch):
    from shoal.cli import main

    monkeypatch.setenv("COLUMNS", "60")
    assert main._width() == 58
    monkeypatch.setattr(main, "_WIDTH", 58)
    parser = build_parser("job")
    job = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["job"]
    submit = next(a for a in job._actions if isinstance(a, argparse._SubParsersAction)).choices["submit"]
    assert {p._get_formatter()._width for p in (parser, job, submit)} == {58}
    usage = submit.format_help().split("\n\n")[0]
    assert usage.count("\n") > 3 and max(map(len, usage.splitlines())) <= 58
