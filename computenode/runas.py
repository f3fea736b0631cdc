"""Whose Unix identity a task runs under (Slurm and HPC Pack run tasks as the submitting user).

When the agent runs as root and `run_as = "owner"` (the default), each task runs as its
owner's Unix user with that user's groups, started through `setpriv` (PLATFORM-NOTES: a
fork with uid switching next to grpc.aio crashes; setpriv after exec does not), with HOME,
USER and LOGNAME set and the owner's home as the default working directory. A task owned by
root is refused unless `allow_root_tasks`. An owner with no account on the node fails the
task ("user alice has no account on node n1"). When the agent does not run as root, or with
`run_as = "agent"`, tasks run as the agent's own user.

`setpriv` is found on the agent's own PATH, once, and run by its full path: the task's
environment (which a job may give a PATH of its own) is what the task sees, never what
chooses the program the agent runs as root.
"""

from __future__ import annotations

import functools
import os
import pwd
import shutil
from dataclasses import dataclass

from common.config import NodeConfig
from computenode.launcher import LaunchError


@dataclass(frozen=True)
class RunAs:
    user: str
    uid: int
    gid: int
    home: str

    def prefix(self) -> list[str]:
        return [_setpriv(), f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups", "--"]

    def environment(self) -> dict[str, str]:
        return {"HOME": self.home, "USER": self.user, "LOGNAME": self.user}


@functools.cache
def _setpriv() -> str:
    found = shutil.which("setpriv")
    if found is None:
        raise LaunchError("setpriv (util-linux) is not installed on this node, so tasks cannot run as their owner")
    return found


def resolve(owner: str, config: NodeConfig, node: str) -> RunAs | None:
    """Who the task runs as; None: as the agent itself."""
    if config.run_as != "owner" or os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(owner)
    except KeyError:
        raise LaunchError(f"user {owner} has no account on node {node}") from None
    if entry.pw_uid == 0:
        if not config.allow_root_tasks:
            raise LaunchError(f"tasks do not run as root on node {node} (its agent's allow_root_tasks is off)")
        return None
    return RunAs(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir)
