"""The agent's spool records and the wrapper shell that leaves a task's exit code behind.

Both run for real: files in a temporary directory, and /bin/sh."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from computenode import spool as spool_module
from computenode.launcher import SUBSHELL_WRAPPER, WRAPPER, cd_failed, wrapper_for
from computenode.spool import Meta, Spool


def create(spool: Spool, m: Meta) -> None:
    """A record, with the task's descriptors closed (as the runner closes them once the task has them)."""
    for fd in spool.create(m):
        os.close(fd)


def meta(instance: int = 1, **fields: object) -> Meta:
    return Meta(**{"task": f"7.1.{instance}", "attempt": 1, "run_id": "r" * 32, **fields})  # type: ignore[arg-type]


def test_a_record_is_rewritten_in_place_and_read_back_whole(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    m = meta(user_files={"stdout": "/somewhere/with/a/long/name/out.txt"}, error="x" * 50)
    create(spool, m)
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


def slot(spool: Spool, m: Meta) -> str:
    """The stem of the record's files (its slot), while the spool holds it."""
    return Path(spool.file(m.key, "meta")).stem


def files(spool: Spool, stem: str) -> list[str]:
    return sorted(p.name for p in spool.root.iterdir() if p.name.startswith(stem + "."))


def test_remove_takes_the_whole_record_of_a_task_that_wrote_output(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.watch(lambda key: None)
    a, b = meta(1), meta(2)
    out_a, _ = spool.create(a)
    create(spool, b)
    os.write(out_a, b"x")
    Path(spool.status_path(a.key)).write_text("0\n")
    Path(spool.hostfile_path(a.key)).write_text("n1 slots=2\n")
    sa, sb = slot(spool, a), slot(spool, b)
    assert files(spool, sa) == [f"{sa}.{kind}" for kind in ("hostfile", "meta", "status", "stderr", "stdout")]
    spool.remove(a.key)
    assert files(spool, sa) == []
    assert len(files(spool, sb)) == 3, "the other record is untouched"
    spool.remove(b.key)
    spool.remove(b.key)  # twice is harmless
    assert files(spool, sb) == [f"{sb}.meta", f"{sb}.stderr", f"{sb}.stdout"], "no output: kept, free"
    assert Path(f"{spool.root}/{sb}.meta").read_text().strip() == "", "blanked: no record"
    spool.close()


def test_a_removed_record_without_output_lends_its_files_to_the_next(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    first = meta(1, error="e" * 200, user_files={"stdout": "/a/long/path"})
    create(spool, first)
    spool.save(first)  # as after the start
    Path(spool.status_path(first.key)).write_text(f"3 {first.run_id}\n")  # as the wrapper leaves it
    Path(spool.hostfile_path(first.key)).write_text("n1 slots=2\n")
    stem, inode = slot(spool, first), os.stat(spool.file(first.key, "stdout")).st_ino
    spool.remove(first.key)
    assert files(spool, stem) == [f"{stem}.meta", f"{stem}.status", f"{stem}.stderr", f"{stem}.stdout"], \
        "all but the hostfile, the status for the next task's wrapper to write over"
    second = meta(2, run_id="s" * 32)
    create(spool, second)
    assert slot(spool, second) == stem and os.stat(spool.file(second.key, "stdout")).st_ino == inode
    assert spool.exit_status(second.key, second.run_id) is None, "nothing of the last occupant's exit"
    assert (spool.size(second.key, "stdout"), spool.size(second.key, "stderr")) == (0, 0)
    assert json.loads(Path(spool.file(second.key, "meta")).read_text()) == vars(second)
    assert Spool(tmp_path / "spool").existing() == [second], "the shorter record, whole"
    spool.close()


def test_a_reused_slots_status_is_its_new_tasks_own(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    first, second = meta(1), meta(2, run_id="s" * 32)
    create(spool, first)
    status = Path(spool.status_path(first.key))
    assert run(WRAPPER, "exit 125", status, first.run_id) == (125, f"125 {first.run_id}")
    assert spool.exit_status(first.key, first.run_id) == 125
    inode = status.stat().st_ino
    spool.remove(first.key)
    create(spool, second)
    assert spool.status_path(second.key) == str(status), "the same slot"
    assert spool.exit_status(second.key, second.run_id) is None, "not the last occupant's 125"
    assert run(WRAPPER, "true", status, second.run_id) == (0, f"0 {second.run_id}")
    assert spool.exit_status(second.key, second.run_id) == 0, "its own line, not what the longer one left after it"
    assert status.stat().st_ino == inode, "written over, not made again"
    spool.close()


def test_a_record_whose_task_wrote_output_is_deleted_not_reused(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    first = meta(1)
    out, err = spool.create(first)
    os.write(err, b"oops")
    os.close(out)
    os.close(err)
    stem = slot(spool, first)
    spool.remove(first.key)
    assert files(spool, stem) == []
    second = meta(2)
    create(spool, second)
    assert slot(spool, second) != stem and spool.size(second.key, "stderr") == 0
    spool.close()


def test_a_slot_is_not_reused_while_any_process_holds_its_files(tmp_path: Path) -> None:
    """Issue 33, item 2: a detached process of one user's task keeps its output open; the next
    task (another user's) must get files it can neither read nor write. The kernel is asked
    (a write lease) whether anyone but the agent holds the slot's output or status."""
    spool = Spool(tmp_path / "spool")
    first = meta(1)
    out, err = spool.create(first)
    # What the first task left running: it holds the task's stdout, writes into it later and
    # reads back whatever the file holds.
    left = subprocess.Popen(["sh", "-c", "read go; echo injected; cat </proc/$$/fd/1 >&2"],
                            stdin=subprocess.PIPE, stdout=out, stderr=subprocess.PIPE, start_new_session=True)
    os.close(out)
    os.close(err)
    try:
        stem = slot(spool, first)
        spool.remove(first.key)
        assert files(spool, stem) == [], "deleted, not kept for the next record"
        second = meta(2, run_id="s" * 32)
        out2, err2 = spool.create(second)
        os.write(out2, b"secret of the second task\n")
        stolen = left.communicate(b"go\n", timeout=30)[1]
        assert spool.read(second.key, "stdout", 0, 4096) == b"secret of the second task\n", "nothing injected"
        assert b"secret" not in stolen, "nothing read"
        os.close(out2)
        os.close(err2)
    finally:
        left.kill()
        left.wait()
    status = Path(spool.status_path(second.key))
    status.write_text(f"0 {second.run_id}\n")
    os.chmod(status, 0o644)
    holder = os.open(status, os.O_RDONLY)  # the status held, by path, by someone else
    try:
        stem = slot(spool, second)
        spool.remove(second.key)
        assert files(spool, stem) == [], "a held status is not handed on either"
    finally:
        os.close(holder)
    third = meta(3, run_id="t" * 32)
    create(spool, third)
    stem = slot(spool, third)
    Path(spool.status_path(third.key)).write_text(f"0 {third.run_id}\n")
    spool.remove(third.key)  # no one holds it
    assert len(files(spool, stem)) == 4, "kept, free"
    assert os.stat(f"{spool.root}/{stem}.status").st_mode & 0o077 == 0, "the agent's alone while free"
    spool.close()


def test_a_free_slot_is_no_record_to_a_restarted_agent(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    kept, freed = meta(1), meta(2)
    create(spool, kept)
    create(spool, freed)
    spool.remove(freed.key)
    spool.close()  # the agent stops, or is killed
    again = Spool(tmp_path / "spool")
    assert again.existing() == [kept]
    assert sorted(p.suffix for p in again.root.iterdir()) == [".meta", ".stderr", ".stdout"], "the free slot went"
    new = meta(3)
    create(again, new)
    assert slot(again, new) not in {slot(again, kept), "s1", "s2"}, "no name an earlier agent used"
    again.close()


def test_an_agent_killed_while_it_frees_a_slot_leaves_no_record_and_no_status(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spool = Spool(tmp_path / "spool")
    m = meta()
    create(spool, m)
    Path(spool.status_path(m.key)).write_text(f"0 {m.run_id}\n")
    Path(spool.hostfile_path(m.key)).write_text("n1 slots=1\n")  # the one file remove() unlinks after the blank

    class Killed(BaseException):
        pass

    def killed(path: str) -> None:
        raise Killed  # the agent dies just after the blank

    monkeypatch.setattr(spool_module, "_unlink", killed)
    with pytest.raises(Killed):
        spool.remove(m.key)
    monkeypatch.undo()
    for fd in os.listdir("/proc/self/fd"):  # what the dead agent held
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith(str(spool.root)):
                os.close(int(fd))
        except FileNotFoundError:  # listdir's own
            pass
    assert Path(f"{spool.root}/s1.status").exists()
    assert Spool(tmp_path / "spool").existing() == []
    assert list(spool.root.iterdir()) == [], "the status with the rest of the slot"


def test_few_slots_are_kept_free_and_a_held_record_keeps_two_descriptors(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spool_module, "MAX_FREE", 2)
    spool = Spool(tmp_path / "spool")
    before = len(os.listdir("/proc/self/fd"))
    ms = [meta(i) for i in range(1, 5)]
    for m in ms:
        create(spool, m)
        spool.save(m)  # as after the start: the .meta is closed
    assert len(os.listdir("/proc/self/fd")) == before + 2 * len(ms)
    for m in ms:
        spool.remove(m.key)
    assert len(list(spool.root.glob("*.meta"))) == 2, "the other two deleted"
    assert len(os.listdir("/proc/self/fd")) == before + 3 * 2, "a free slot's three"
    spool.close()
    assert len(os.listdir("/proc/self/fd")) == before


def test_a_record_an_older_agent_left_under_its_key_is_adopted_and_removed_whole(tmp_path: Path) -> None:
    m = meta(pid=4242)
    root = tmp_path / "spool"
    root.mkdir()
    (root / "7.1.1.1.meta").write_text(json.dumps(vars(m)))
    (root / "7.1.1.1.stdout").write_text("")
    (root / "7.1.1.1.stderr").write_text("")
    (root / "7.1.1.1.status").write_text("0\n")
    (root / "7.1.1.1.hostfile").write_text("n1 slots=1\n")
    spool = Spool(root)
    assert spool.existing() == [m]
    assert spool.file(m.key, "meta") == f"{root}/7.1.1.1.meta" and spool.exit_status(m.key, m.run_id) == 0, \
        "a bare code, as agents before run ids wrote it"
    spool.remove(m.key)  # no output, but its descriptors are read-only: not reused
    assert list(root.iterdir()) == []
    spool.close()


def test_files_an_agent_left_without_a_record_are_deleted_at_start_up(tmp_path: Path) -> None:
    root = tmp_path / "spool"
    root.mkdir()
    for name in ("s4.stdout", "s4.stderr", "s4.status", "7.1.1.1.stdout"):  # killed while removing
        (root / name).write_text("x")
    spool = Spool(root)
    assert spool.existing() == [] and list(root.iterdir()) == []
    m = meta()
    create(spool, m)
    assert slot(spool, m) == "s5"
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
    os.close(out)
    os.close(err)
    spool.remove(m.key)
    assert spool.read(m.key, "stdout", 0, 100) == b"", "the record and its descriptors gone"
    spool.close()


def test_a_fresh_record_keeps_nothing_of_one_left_under_its_name(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    long = meta(error="e" * 200, user_files={"stdout": "/a/long/path"})
    out, _ = spool.create(long)
    os.write(out, b"stale output")
    Path(spool.status_path(long.key)).write_text(f"3 {long.run_id}\n")
    spool.close()  # the agent died before starting it; the same attempt is launched again
    again = Spool(tmp_path / "spool")
    short = meta()
    create(again, short)
    assert json.loads(Path(again.file(short.key, "meta")).read_text()) == vars(short)
    assert (again.size(short.key, "stdout"), again.exit_status(short.key, short.run_id)) == (0, None)
    again.close()


def test_a_cut_short_record_is_dropped_as_never_started(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    m = meta()
    create(spool, m)
    Path(spool.file(m.key, "meta")).write_text("")  # the agent died before its first write
    stem = slot(spool, m)
    assert Spool(tmp_path / "spool").existing() == []
    assert files(spool, stem) == []


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
    stdout_a = spool.file(a.key, "stdout")
    spool.remove(a.key)
    Path(stdout_a).write_text("late")  # a removed record wakes no one
    grown.clear()
    spool.pump()
    assert grown == []
    spool.close()


def test_growth_lost_to_an_overflowing_event_queue_is_signalled_for_every_task(tmp_path: Path) -> None:
    """The agent sends only the output of tasks signalled as grown, so events the kernel drops
    must not leave a task's output unsent."""
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    grown: set[object] = set()
    spool = Spool(tmp_path / "spool")
    spool.watch(grown.add)
    a, b, c = meta(1), meta(2), meta(3)
    out_a, _ = spool.create(a)
    out_b, _ = spool.create(b)
    out_c, _ = spool.create(c)
    for _ in range(limit // 2 + 1):  # alternating, so that the kernel cannot merge them
        os.write(out_a, b"x")
        os.write(out_b, b"y")
    os.write(out_c, b"z")  # past the queue's end: its event is lost
    spool.pump()
    assert c.key in grown
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
    assert spool.exit_status(m.key, m.run_id) == 0
    spool.close()


RUN = "r" * 32


def run(wrapper: str, command: str, status: Path, run_id: str = RUN) -> tuple[int, str | None]:
    """(the wrapper's exit code, the first line of the status it left)."""
    code = subprocess.run(["/bin/sh", "-c", wrapper, "shoal-task", command, str(status), str(status.parent), run_id],
                          capture_output=True).returncode
    return code, status.read_text().splitlines()[0] if status.exists() else None


@pytest.mark.parametrize("wrapper", [WRAPPER, SUBSHELL_WRAPPER], ids=["trap", "subshell"])
@pytest.mark.parametrize(("command", "code"), [
    ("true", 0), ("false", 1), ("exit 3", 3), ("set -e; false; echo no", 1), ("nosuchcommand", 127),
    ("if then", 2), ('sh -c "kill -9 \\$\\$"', 137),
])
def test_both_wrappers_leave_the_exit_code_behind(tmp_path: Path, wrapper: str, command: str, code: int) -> None:
    assert run(wrapper, command, tmp_path / "status") == (code, f"{code} {RUN}")


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
        assert run(wrapper_for(command, str(tmp_path / "s")), command, tmp_path / "s") == (4, f"4 {RUN}")
        (tmp_path / "s").unlink()
    assert wrapper_for("true", "/spool/status") == WRAPPER
    assert wrapper_for("true", "/it's/status") == SUBSHELL_WRAPPER, "a quote would break the trap's text"
    weird = tmp_path / "with space"
    weird.mkdir()
    assert run(WRAPPER, "exit 5", weird / "status") == (5, f"5 {RUN}")
