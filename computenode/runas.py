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

The files the agent opens for such a task (its stdin, stdout and stderr paths) it opens as
the owner would (`RunAs.files()`): a job naming /etc/shadow as its stdout or stdin gets
"Permission denied", as the owner's own shell would, not root's access to it.
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import pwd
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from common.config import NodeConfig
from computenode.launcher import LaunchError

# setgroups(2) by number: glibc's setgroups() changes every thread of the process, and only
# the calling thread's identity may change here, for as long as one open takes.
_SETGROUPS = {"x86_64": 116, "aarch64": 159, "ppc64le": 81, "s390x": 206}.get(platform.machine())
_libc = ctypes.CDLL(None, use_errno=True)


def _thread_groups(groups: tuple[int, ...] | list[int]) -> None:
    if _SETGROUPS is None:
        raise LaunchError(f"cannot switch a thread's groups on {platform.machine()}")
    ids = (ctypes.c_uint * max(1, len(groups)))(*groups)
    if _libc.syscall(_SETGROUPS, len(groups), ids) != 0:
        e = ctypes.get_errno()
        raise LaunchError(f"cannot switch to the task's groups: {os.strerror(e)}")


@dataclass(frozen=True)
class RunAs:
    user: str
    uid: int
    gid: int
    home: str
    groups: tuple[int, ...] = ()

    @property
    def ids(self) -> list[int]:
        """What a spool record keeps, for an agent that adopts the task (from_ids())."""
        return [self.uid, self.gid, *self.groups]

    @classmethod
    def from_ids(cls, ids: list[int]) -> RunAs:
        return cls("", ids[0], ids[1], "", tuple(ids[2:]))

    @contextmanager
    def files(self) -> Iterator[None]:
        """While inside, this thread opens and creates files as the user: Linux's per-thread
        file-system ids (setfsuid, which also sets aside root's file capabilities) and
        supplementary groups. Everything else, and every other thread, stays root."""
        own_groups, own_gid = os.getgroups(), os.getegid()
        _thread_groups(self.groups or (self.gid,))
        _libc.setfsgid(self.gid)
        _libc.setfsuid(self.uid)
        try:
            yield
        finally:
            _libc.setfsuid(0)
            _libc.setfsgid(own_gid)
            _thread_groups(own_groups)

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
    return RunAs(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir,
                 tuple(os.getgrouplist(entry.pw_name, entry.pw_gid)))
