"""Job files: JSON/TOML as JobSpec, HPC Pack XML in and out (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.errors import InvalidArgument
from shoal import jobfile
from shoal.v1 import jobs_pb2

HPC_2008 = """<?xml version="1.0" encoding="utf-8"?>
<Job xmlns="http://schemas.microsoft.com/HPCS2008/scheduler/" Name="old" Project="p" Priority="Highest"
     RuntimeSeconds="3600" FailOnTaskFailure="true" Id="5" State="Finished" SubmitTime="x">
  <Dependencies />
  <Tasks>
    <Task Name="s" CommandLine="run *" IsParametric="true" StartValue="10" EndValue="20" IncrementValue="5"
          WorkDirectory="/data/*" StdOutFilePath="out_**.txt" MinCores="2" MaxCores="4" IsExclusive="true" />
    <Task Name="t" CommandLine="post" DependsOn="s;x" ValidExitCodes="0,3..5" IsRerunnable="false">
      <EnvironmentVariables>
        <Variable><Name>A</Name><Value>1</Value></Variable>
        <Variable><Name>B</Name><Value></Value></Variable>
      </EnvironmentVariables>
    </Task>
  </Tasks>
</Job>"""


def test_hpc_pack_xml_reads_the_fields_that_matter() -> None:
    spec = jobfile.from_hpc_xml(HPC_2008)
    assert (spec.name, spec.project, spec.priority) == ("old", "p", jobs_pb2.PRIORITY_HIGHEST)
    assert spec.runtime_limit.seconds == 3600 and spec.fail_on_task_failure
    s, t = spec.tasks
    assert (s.sweep.start, s.sweep.end, s.sweep.step) == (10, 20, 5)
    assert s.working_directory == "/data/*" and s.stdout_path == "out_**.txt"
    assert s.resources.cores == 2 and s.max_cores == 4 and s.exclusive
    assert list(t.depends_on) == ["s", "x"] and t.valid_exit_codes == "0,3..5"
    assert dict(t.environment) == {"A": "1", "B": ""} and t.HasField("rerunnable") and not t.rerunnable


def test_xml_export_reads_back_the_same() -> None:
    spec = jobfile.from_hpc_xml(HPC_2008)
    spec.tasks[1].instances = 0
    again = jobfile.from_hpc_xml(jobfile.to_hpc_xml(spec))
    for field in ("name", "project", "priority", "fail_on_task_failure"):
        assert getattr(again, field) == getattr(spec, field)
    assert again.tasks[0].sweep == spec.tasks[0].sweep and again.tasks[1].environment == spec.tasks[1].environment


def test_hpc_pack_job_resources_become_a_reservation_and_placement() -> None:
    xml = ('<Job Name="r" UnitType="Node" MinNodes="2" MaxNodes="4" IsExclusive="true" NodeGroups="gpu, bigmem" '
           'RequestedNodes="n1,n2"><Tasks><Task CommandLine="x" RequiredNodes="n2" /></Tasks></Job>')
    spec = jobfile.from_hpc_xml(xml)
    assert spec.reservation == jobs_pb2.JobReservation(unit=jobs_pb2.RESERVATION_UNIT_NODES, min=2, max=4)
    assert spec.exclusive and list(spec.placement.groups) == ["gpu", "bigmem"]
    assert list(spec.placement.nodes) == ["n1", "n2"] and list(spec.tasks[0].placement.nodes) == ["n2"]
    again = jobfile.from_hpc_xml(jobfile.to_hpc_xml(spec))
    assert (again.reservation, again.exclusive, again.placement) == (spec.reservation, True, spec.placement)
    assert again.tasks[0].placement == spec.tasks[0].placement
    cores = jobfile.from_hpc_xml('<Job MinCores="4" MaxCores="8"><Tasks/></Job>')
    assert cores.reservation == jobs_pb2.JobReservation(unit=jobs_pb2.RESERVATION_UNIT_CORES, min=4, max=8)
    with pytest.raises(ValueError, match="UnitType='Socket' is not Core or Node"):
        jobfile.from_hpc_xml('<Job UnitType="Socket"><Tasks/></Job>')


def test_json_and_toml_are_jobspec(tmp_path: Path) -> None:
    (tmp_path / "j.json").write_text('{"name": "n", "tasks": [{"command_line": "x", "sweep": {"start": 1, "end": 2}}]}')
    (tmp_path / "j.toml").write_text('name = "n"\n[[tasks]]\ncommand_line = "x"\nsweep = { start = 1, end = 2 }\n')
    assert jobfile.load(tmp_path / "j.json") == jobfile.load(tmp_path / "j.toml")


@pytest.mark.parametrize("name, content, message", [
    ("a.json", '{"tasks": [{"bogus": 1}]}', "bogus"),
    ("a.xml", "<Tasks/>", "the root element is <Tasks>, not <Job>"),
    ("a.xml", '<Job Priority="Urgent"/>', "Priority='Urgent' is not one of"),
    ("a.xml", "<Job><Tasks><Task ValidExitCodes='zero'/></Tasks></Job>", "exit codes 'zero'"),
    ("a.ini", "", "unknown type .ini"),
])
def test_bad_files_say_what_is_wrong(tmp_path: Path, name: str, content: str, message: str) -> None:
    (tmp_path / name).write_text(content)
    with pytest.raises(InvalidArgument, match=message):
        jobfile.load(tmp_path / name)
