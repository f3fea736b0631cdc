"""The agent's spool records and the wrapper shell that leaves a task's exit code behind.

Both run for real: files in a temporary directory, and /bin/sh."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from computenode.launcher import SUBSHELL_WRAPPER, WRAPPER, cd_failed, wrapper_for
from computenode.spool import Meta, Spool


def meta(instance: int = 1, **fields: object) -> Meta:
    return Meta(task=f"7.1.{instance}", attempt=1, run_id="r" * 32, **fields)  # type: ignore[arg-type]


def test_a_record_is_rewritten_in_place_and_read_back_whole(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    m = meta(user_files={"stdout": "/somewhere/with/a/long/name/out.txt"}, error="x" * 50)
    spool.create(m)
    m.user_files, m.error, m.pid, m.start_time = {}, "", 4242, 12.5  # shorter than before
    spool.save(m)
    text = Path(spool.file(m.key, "meta")).read_text()
    assert text.rstrip() == json.dumps(vars(m)), "the new record, padded with blanks over the old"
    assert Spool(tmp_path / "spool").existing() == [m], "an agent started afresh reads it back"


def test_a_record_from_an_earlier_agent_is_saved_over_without_a_remnant(tmp_path: Path) -> None:
    m = meta(error="e" * 80)
    first = Spool(tmp_path / "spool")
    first.create(m)
    first.close()
    again = Spool(tmp_path / "spool")
    [adopted] = again.existing()
    adopted.error, adopted.pid = "", 99
    again.save(adopted)
    assert Spool(tmp_path / "spool").existing() == [adopted]


def files(spool: Spool, m: Meta) -> list[str]:
    return sorted(p.name for p in spool.root.iterdir() if p.name.startswith(spool.name(m.key) + "."))


def test_remove_takes_the_whole_record(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.watch(lambda key: None)
    a, b = meta(1), meta(2)
    for m in (a, b):
        spool.create(m)
    Path(spool.status_path(a.key)).write_text("0\n")
    Path(spool.file(a.key, "hostfile")).write_text("n1 slots=2\n")
    assert files(spool, a) == ["7.1.1.1.hostfile", "7.1.1.1.meta", "7.1.1.1.status", "7.1.1.1.stderr", "7.1.1.1.stdout"]
    spool.remove(a.key)
    assert files(spool, a) == []
    assert len(files(spool, b)) == 3, "the other record is untouched"
    spool.remove(b.key)
    spool.remove(b.key)  # twice is harmless
    assert list((tmp_path / "spool").iterdir()) == []
    spool.close()


def test_what_the_task_writes_through_its_descriptors_is_read_back_by_the_spool(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    m = meta()
    out, err = spool.create(m)
    os.write(out, b"hello ")
    os.write(err, b"oops")
    os.write(out, b"world")  # appended, whatever the agent read meanwhile
    assert spool.read(m.key, "stdout", 0, 100) == b"hello world"
    assert (spool.size(m.key, "stdout"), spool.read(m.key, "stderr", 2, 100)) == (11, b"ps")
    spool.remove(m.key)
    with pytest.raises(OSError):
        os.fstat(out)  # the spool's descriptors, closed with the record
    spool.close()


def test_a_fresh_record_keeps_nothing_of_one_left_under_its_name(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    long = meta(error="e" * 200, user_files={"stdout": "/a/long/path"})
    out, _ = spool.create(long)
    os.write(out, b"stale output")
    Path(spool.status_path(long.key)).write_text("3\n")
    spool.close()  # the agent died before starting it; the same attempt is launched again
    again = Spool(tmp_path / "spool")
    short = meta()
    again.create(short)
    assert json.loads(Path(again.file(short.key, "meta")).read_text()) == vars(short)
    assert (again.size(short.key, "stdout"), again.exit_status(short.key)) == (0, None)
    again.close()


def test_a_cut_short_record_is_dropped_as_never_started(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    m = meta()
    spool.create(m)
    Path(spool.file(m.key, "meta")).write_text("")  # the agent died before its first write
    assert Spool(tmp_path / "spool").existing() == []
    assert files(spool, m) == []


def test_growth_of_a_tasks_output_is_signalled_for_that_task_only(tmp_path: Path) -> None:
    grown: list[object] = []
    spool = Spool(tmp_path / "spool")
    spool.watch(grown.append)
    a, b = meta(1), meta(2)
    out_a, _ = spool.create(a)
    _, err_b = spool.create(b)
    spool.save(a)  # its record, not its output: no one is woken
    spool.pump()
    assert grown == []
    os.write(out_a, b"x")
    os.write(err_b, b"y")
    spool.pump()
    assert sorted(grown, key=str) == sorted([a.key, b.key], key=str)
    spool.remove(a.key)
    Path(spool.file(a.key, "stdout")).write_text("late")  # a removed record wakes no one
    grown.clear()
    spool.pump()
    assert grown == []
    spool.close()


def test_a_record_an_older_agent_kept_in_a_directory_is_moved_out_and_adopted(tmp_path: Path) -> None:
    m = meta(pid=4242)
    old = tmp_path / "spool" / "7.1.1.1"
    old.mkdir(parents=True)
    (old / "meta.json").write_text(json.dumps(vars(m)))
    (old / "stdout").write_text("before the upgrade\n")
    (old / "stderr").write_text("")
    (old / "status").write_text("0\n")
    spool = Spool(tmp_path / "spool")
    assert spool.existing() == [m]
    assert not old.exists()
    assert spool.read(m.key, "stdout", 0, 100) == b"before the upgrade\n"
    assert spool.exit_status(m.key) == 0
    spool.close()


def run(wrapper: str, command: str, status: Path) -> tuple[int, str | None]:
    code = subprocess.run(["/bin/sh", "-c", wrapper, "shoal-task", command, str(status), str(status.parent)],
                          capture_output=True).returncode
    return code, status.read_text().strip() if status.exists() else None


@pytest.mark.parametrize("wrapper", [WRAPPER, SUBSHELL_WRAPPER], ids=["trap", "subshell"])
@pytest.mark.parametrize(("command", "code"), [
    ("true", 0), ("false", 1), ("exit 3", 3), ("set -e; false; echo no", 1), ("nosuchcommand", 127),
    ("if then", 2), ('sh -c "kill -9 \\$\\$"', 137),
])
def test_both_wrappers_leave_the_exit_code_behind(tmp_path: Path, wrapper: str, command: str, code: int) -> None:
    assert run(wrapper, command, tmp_path / "status") == (code, str(code))


@pytest.mark.parametrize("wrapper", [WRAPPER, SUBSHELL_WRAPPER], ids=["trap", "subshell"])
def test_the_command_sees_no_trace_of_the_wrapper(tmp_path: Path, wrapper: str) -> None:
    out = subprocess.run(["/bin/sh", "-c", wrapper, "shoal-task", 'echo "$0 $# ${__shoal_cmd-unset} $PWD"',
                          str(tmp_path / "s"), str(tmp_path)], capture_output=True, text=True).stdout
    assert out == f"shoal-task 0 unset {tmp_path}\n"


@pytest.mark.parametrize("wrapper", [WRAPPER, SUBSHELL_WRAPPER], ids=["trap", "subshell"])
def test_a_working_directory_that_cannot_be_entered_is_said_so_and_nothing_runs(tmp_path: Path, wrapper: str) -> None:
    for where in (tmp_path / "gone", tmp_path / "a-file"):
        (tmp_path / "a-file").touch()
        done = subprocess.run(["/bin/sh", "-c", wrapper, "shoal-task", f"touch {tmp_path}/ran", str(tmp_path / "s"),
                               str(where)], capture_output=True)
        assert done.returncode == 2 and done.stderr.endswith(cd_failed(str(where)))
        assert not (tmp_path / "ran").exists() and not (tmp_path / "s").exists()


def test_commands_that_would_escape_the_trap_run_in_a_subshell(tmp_path: Path) -> None:
    for command in ('exec sh -c "exit 4"', 'trap "echo mine" EXIT; exit 4'):
        assert wrapper_for(command, "/spool/status") == SUBSHELL_WRAPPER
        assert run(wrapper_for(command, str(tmp_path / "s")), command, tmp_path / "s") == (4, "4")
        (tmp_path / "s").unlink()
    assert wrapper_for("true", "/spool/status") == WRAPPER
    assert wrapper_for("true", "/it's/status") == SUBSHELL_WRAPPER, "a quote would break the trap's text"
    weird = tmp_path / "with space"
    weird.mkdir()
    assert run(WRAPPER, "exit 5", weird / "status") == (5, "5")
