"""A single-host Slurm for side-by-side benchmarks, started and stopped by the benchmark.

Debian's `slurm-wlm` and `munge` (22.05 on Debian 12): munged, slurmctld and one slurmd on
loopback, all pointed at a slurm.conf in a temporary directory, state there too, no cgroups,
no accounting. Tuned as PLATFORM-NOTES measured (stock Slurm serves about 0.7 trivial jobs/s
here because a job's end only queues a scheduling request served every 3 s):
`batch_sched_delay=0`, an `Epilog` so slurmd reports at once, sched/builtin, priority/basic,
`MinJobAge=5`, quiet logs. One node with this machine's cores, as the issue asks.

`Slurm.start()` returns None and a reason where it cannot run (not installed, not root), so
a benchmark says so and still measures Shoal.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

CONF = """\
ClusterName=bench
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
AuthType=auth/munge
AuthInfo=socket={dir}/munge/munge.socket
CryptoType=crypto/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmctldPidFile={dir}/slurmctld.pid
SlurmdPidFile={dir}/slurmd.pid
SlurmdSpoolDir={dir}/spool
StateSaveLocation={dir}/state
SlurmUser=root
SlurmdUser=root
SchedulerType=sched/builtin
SchedulerParameters=batch_sched_delay=0,default_queue_depth=1000,sched_max_job_start=0
PriorityType=priority/basic
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=5
MaxJobCount=200000
MaxArraySize=200001
Epilog=/bin/true
SlurmctldDebug=error
SlurmdDebug=error
SlurmctldLogFile={dir}/slurmctld.log
SlurmdLogFile={dir}/slurmd.log
SlurmdParameters=config_overrides
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN
PartitionName=bench Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Slurm:
    def __init__(self, cpus: int | None = None) -> None:
        self.cpus = cpus or os.cpu_count() or 1
        self.dir = Path(tempfile.mkdtemp(prefix="shoal-bench-slurm-"))
        self.env = dict(os.environ, SLURM_CONF=str(self.dir / "slurm.conf"))
        self.procs: list[subprocess.Popen[bytes]] = []
        self.reason = ""

    @staticmethod
    def unavailable() -> str:
        """Why Slurm cannot run here ('' when it can)."""
        missing = [c for c in ("munged", "slurmctld", "slurmd", "sbatch") if shutil.which(c) is None]
        if missing:
            return f"Slurm is not installed ({', '.join(missing)} missing; apt-get install slurm-wlm munge)"
        if os.geteuid() != 0:
            return "Slurm's daemons need root here"
        if not Path("/etc/munge/munge.key").exists():
            return "no /etc/munge/munge.key"
        return ""

    def start(self, timeout: float = 30.0) -> bool:
        self.reason = self.unavailable()
        if self.reason:
            return False
        host = socket.gethostname().split(".")[0]
        ctld, d = _free_port(), _free_port()
        for sub in ("spool", "state"):
            (self.dir / sub).mkdir()
        (self.dir / "slurm.conf").write_text(CONF.format(host=host, ctld_port=ctld, d_port=d, dir=self.dir,
                                                         cpus=self.cpus))
        # Our own munged on our own socket: nothing shared with another Slurm on this host.
        munge = self.dir / "munge"
        self.dir.chmod(0o755)  # munged runs as munge and must reach its directory
        munge.mkdir(mode=0o755)
        shutil.chown(munge, "munge", "munge")
        sock = munge / "munge.socket"
        self._spawn(["runuser", "-u", "munge", "--", "munged", "-F", f"--socket={sock}",
                     f"--pid-file={munge}/munged.pid", f"--seed-file={munge}/munged.seed",
                     f"--log-file={munge}/munged.log", "--num-threads=4"], "munged")
        deadline = time.monotonic() + timeout
        while not sock.exists():
            if time.monotonic() > deadline or self.procs[0].poll() is not None:
                self.reason = f"munged did not start (logs in {munge})"
                self.stop(keep=True)
                return False
            time.sleep(0.02)
        self._spawn(["slurmctld", "-D", "-i"], "slurmctld")
        self._spawn(["slurmd", "-D", "-N", host], "slurmd")
        while time.monotonic() < deadline:
            out = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, env=self.env)
            if out.returncode == 0 and out.stdout.strip() in ("idle", "mix", "alloc"):
                return True
            if any(p.poll() is not None for p in self.procs):
                break
            time.sleep(0.1)
        self.reason = f"Slurm did not come up within {timeout:g}s (logs in {self.dir})"
        self.stop(keep=True)
        return False

    def _spawn(self, args: list[str], name: str) -> None:
        log = open(self.dir / f"{name}.out", "ab")  # noqa: SIM115 - owned by the child
        self.procs.append(subprocess.Popen(args, env=self.env, stdout=log, stderr=log))
        log.close()

    def run(self, *args: str, check: bool = True) -> str:
        done = subprocess.run(list(args), capture_output=True, text=True, env=self.env)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def idle(self) -> bool:
        """Nothing queued or running."""
        return not self.run("squeue", "-h", "-o", "%i").strip()

    def wait_idle(self, timeout: float = 600.0, interval: float = 0.25) -> None:
        """Poll squeue until nothing is left. Each squeue costs about 4 ms of CPU here, and
        slurmctld's time to answer it: polled every 50 ms, that slowed Slurm's own throughput
        by 3-5% (and the benchmark with it). Every 0.25 s, a run of about a minute ends at
        most a quarter of a second late (0.4%)."""
        deadline = time.monotonic() + timeout
        while not self.idle():
            if time.monotonic() > deadline:
                raise RuntimeError(f"Slurm still busy after {timeout:g}s")
            time.sleep(interval)

    def stop(self, keep: bool = False) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
        for p in reversed(self.procs):
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        self.procs = []
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Slurm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
