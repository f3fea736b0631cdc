"""The `shoal` command: argument parsing and dispatch.

Imports are lazy (grpc alone costs ~100 ms), so `shoal job submit` starts fast: each command
names its handler as "module:function" and only that module is imported. Exit codes:
  0  success
  1  the head node refused the request (the message says why)
  2  bad usage or bad local input (bad flag, bad id, bad job file, bad config)
  3  the head node could not be reached
  4  `--wait` and `shoal job wait`: the job ended, but not Finished (Failed or Cancelled)
"""

from __future__ import annotations

import argparse
import functools
import importlib
import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn

# Must precede any import of grpc in this process (see shared/PLATFORM-NOTES.md).
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

from shoal.cli.base import EXIT_OK, EXIT_USAGE  # noqa: E402
from shoal.cli.options import add_job_options, add_task_options  # noqa: E402

EPILOG = """exit codes: 0 ok, 1 refused by the head node, 2 bad usage, 3 head node unreachable,
4 (--wait, job wait) the job ended Failed or Cancelled

shell completion: source <(shoal completion bash)   (or zsh; fish: shoal completion fish | source)"""
EXIT_CODES = ("exit codes: 0 ok, 1 refused by the head node, 2 bad usage, 3 head node unreachable,\n"
              "  4 (--wait, job wait) the job ended Failed or Cancelled")


class _Help(argparse.HelpFormatter):
    """Wraps descriptions to the terminal, but prints an "example:" epilog line by line as
    written (a wrapped command line is one nobody can copy)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("example:"):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def _width() -> int:
    """The width argparse's formatters wrap help to: shutil.get_terminal_size's columns less 2,
    reckoned as it does ($COLUMNS, else standard output's terminal, else 80)."""
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return (columns or 80) - 2


class _Parser(argparse.ArgumentParser):
    """Every parser of the tree (add_subparsers makes its children of the same class) gives
    its formatter the width up front: argparse makes a formatter at each add_argument, and
    one not given a width imports shutil (with bz2 and lzma) to ask the terminal, about 6 ms
    of `shoal job submit`'s start-up."""

    def __init__(self, *args: Any, formatter_class: type[argparse.HelpFormatter] = argparse.HelpFormatter,
                 **kwargs: Any) -> None:
        super().__init__(*args, formatter_class=functools.partial(formatter_class, width=_WIDTH),  # type: ignore[arg-type]
                         **kwargs)


_WIDTH = _width()


def _examples(*commands: str, exits: bool = False) -> str:
    """An epilog: "example:" and one command a line (then the exit codes, with `exits`)."""
    return "example:\n" + "".join(f"  {c}\n" for c in commands) + (f"\n{EXIT_CODES}" if exits else "")


def _head(p: argparse.ArgumentParser) -> None:
    # SUPPRESS: a subcommand's --head must not overwrite `shoal --head X ...` with its default.
    p.add_argument("--head", metavar="HOST:PORT", default=argparse.SUPPRESS,
                   help="head node address (default: $SHOAL_HEAD, else localhost:7676)")


def _json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON document")


def _command(sub: argparse._SubParsersAction, name: str, func: str, help: str, example: str = "",
             **kwargs: object) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help, description=kwargs.pop("description", help), formatter_class=_Help,
                       epilog=_examples(*example.split("\n"), exits=True) if example else None, **kwargs)
    _head(p)
    p.set_defaults(func=func)
    return p


def _node_commands(sub: argparse._SubParsersAction) -> None:
    """Node management (admins only, once roles exist; see the head node's `admins`)."""
    p = _command(sub, "view", "nodes:view_node", "show one node: state history, groups, labels, tasks",
                 "shoal node view n1")
    p.add_argument("node")
    _json(p)
    p = _command(sub, "drain", "nodes:drain_node", "take no new work; running tasks go on; Offline when empty",
                 "shoal node drain n1 --reason 'disk swap'")
    p.add_argument("node")
    p.add_argument("--reason", default="", help="recorded with the state change")
    _json(p)
    p = _command(sub, "online", "nodes:online_node", "let a drained or offline node take work again",
                 "shoal node online n1")
    p.add_argument("node")
    p.add_argument("--reason", default="", help="recorded with the state change")
    _json(p)
    p = _command(sub, "offline", "nodes:offline_node", "take a node out of service now",
                 "shoal node offline n1 --force")
    p.add_argument("node")
    p.add_argument("--reason", default="", help="recorded with the state change")
    p.add_argument("--force", action="store_true", help="stop its running tasks and requeue them")
    _json(p)
    p = _command(sub, "remove", "nodes:remove_node", "forget an offline node whose agent is stopped",
                 "shoal node remove n1")
    p.add_argument("node")
    p = _command(sub, "group", "nodes:group_nodes", "add nodes to a node group, or remove them",
                 "shoal node group add gpu n1 n2")
    p.add_argument("action", choices=("add", "remove"))
    p.add_argument("group")
    p.add_argument("nodes", nargs="+", metavar="NODE")
    _json(p)
    p = _command(sub, "label", "nodes:label_node", "add labels to a node (or --remove them)",
                 "shoal node label n1 avx512 rack=3")
    p.add_argument("node")
    p.add_argument("labels", nargs="*", metavar="LABEL")
    p.add_argument("--remove", action="append", default=[], metavar="LABEL", help="take this label off (repeatable)")
    _json(p)


# The options `shoal` takes before its command word, each followed by a value: declared from
# here, and skipped by group_of when it looks for the command word.
TOP_OPTIONS: dict[str, dict[str, object]] = {
    "--head": {"metavar": "HOST:PORT", "default": None,
               "help": "head node address (default: $SHOAL_HEAD, else localhost:7676)"},
    "--ca": {"metavar": "FILE", "help": "the cluster CA certificate: talk TLS (default $SHOAL_CA; "
             "without it, plaintext to a development cluster)"},
    "--cert": {"metavar": "FILE", "help": "your certificate (default $SHOAL_CERT)"},
    "--key": {"metavar": "FILE", "help": "your certificate's key (default $SHOAL_KEY)"},
    "--token": {"metavar": "TOKEN", "help": "your user token (default $SHOAL_TOKEN)"},
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command tree; with `only`, that command group is filled in and every other
    group is left bare (its name and help: enough for usage lines and errors). Building all of
    it takes ~20 ms, a tenth of `shoal job submit --wait`'s wall time."""
    parser = _Parser(
        prog="shoal", description="Shoal cluster job scheduler", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for option, kwargs in TOP_OPTIONS.items():
        parser.add_argument(option, **kwargs)
    sub = parser.add_subparsers(dest="group", metavar="COMMAND", required=True)
    for name, (kwargs, fill) in GROUPS.items():
        p = sub.add_parser(name, **kwargs)
        if only is None or only == name:
            fill(p)
    return parser


def group_of(argv: list[str]) -> str | None:
    """The command group `argv` names (its first word past the top-level options), or None
    if it names none that exists; then the whole tree is built and argparse says what is wrong."""
    skip = False
    for word in argv:
        if skip:
            skip = False
        elif word.startswith("-"):
            # argparse takes any unambiguous prefix of an option (--tok for --token).
            skip = "=" not in word and len(word) > 2 and any(o.startswith(word) for o in TOP_OPTIONS)
        else:
            return word if word in GROUPS else None
    return None


def _fill_head(head: argparse.ArgumentParser) -> None:
    from headnode.flags import add_arguments as head_arguments

    head_arguments(head)
    head.set_defaults(func="headnode")


def _fill_node(node: argparse.ArgumentParser) -> None:
    from computenode.flags import add_arguments as node_arguments

    node_arguments(node)
    node.set_defaults(func="agent")
    node_sub = node.add_subparsers(dest="node_command", metavar="SUBCOMMAND")
    _json(_command(node_sub, "list", "nodes:list_nodes", "list the nodes with their state and load",
                   "shoal node list\nshoal node list --json"))
    _node_commands(node_sub)
    token = node_sub.add_parser("token", help="join tokens for new agents (admins)").add_subparsers(
        dest="token_command", metavar="SUBCOMMAND", required=True)
    p = _command(token, "create", "security:node_token", "print a token that lets new agents join (one, unless "
                 "--uses)", "(umask 077; shoal node token create --ttl 2h --group gpu > join.token)\n"
                 "shoal node token create --uses 8 --name 'gpu-*' --group gpu > join.token")
    p.add_argument("--ttl", metavar="TIME", help="how long it lets agents join (default 1h)")
    p.add_argument("--uses", type=int, default=1, metavar="N", help="how many new nodes it admits (default 1)")
    p.add_argument("--name", action="append", metavar="NAME",
                   help="admit only nodes of this name (a shell pattern such as 'gpu-*'; repeatable)")
    p.add_argument("--group", action="append", metavar="GROUP",
                   help="node group a node joining with it is put in (its agent may then ask for no others)")
    _json(_command(token, "list", "security:list_join_tokens", "list join tokens: uses left and the nodes they "
                   "admitted", "shoal node token list"))
    p = _command(token, "revoke", "security:revoke_join_tokens", "stop accepting one join token, or every one "
                 "issued so far", "shoal node token revoke jt-1a2b3c4d\nshoal node token revoke --all")
    p.add_argument("id", nargs="?", help="the token's id (`shoal node token list`)")
    p.add_argument("--all", action="store_true", help="every join token issued so far")


def _fill_user(group: argparse.ArgumentParser) -> None:
    user = group.add_subparsers(dest="user_command", metavar="SUBCOMMAND", required=True)
    p = _command(user, "token", "security:user_token", "print a signed token for a user (for you, or as Admin "
                 "for anyone)", "shoal user token alice --ttl 30d")
    p.add_argument("user", nargs="?", help="default: you")
    p.add_argument("--role", choices=("User", "JobAdmin", "Admin"), help="default User")
    p.add_argument("--ttl", metavar="TIME", help="how long it is valid (default 30d)")
    p = _command(user, "revoke", "security:revoke_user", "stop accepting every token of a user issued so far "
                 "(admins)", "shoal user revoke alice")
    p.add_argument("user")


def _fill_certs(group: argparse.ArgumentParser) -> None:
    certs = group.add_subparsers(dest="certs_command", metavar="SUBCOMMAND", required=True)
    p = certs.add_parser("init", help="create the cluster CA and the head node's certificate",
                         epilog="example: shoal certs init --dir /var/lib/shoal/head/tls --name head1.example.org")
    p.add_argument("--dir", default="tls", help="where to write them (default ./tls)")
    p.add_argument("--name", action="append", metavar="HOST",
                   help="a name or address agents and users reach the head node by (repeatable; localhost, "
                        "127.0.0.1 and this host's name are always in)")
    p.add_argument("--days", type=int, default=3650, help="validity (default 3650)")
    p.set_defaults(func="security:certs_init")
    p = certs.add_parser("issue", help="issue a node or user certificate signed by the cluster CA",
                         epilog="example: shoal certs issue --dir tls --node n1;  shoal certs issue --dir tls "
                                "--user alice --role JobAdmin")
    p.add_argument("--dir", default="tls", help="the CA's directory (default ./tls)")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--node", metavar="NAME", help="for the agent of node NAME")
    who.add_argument("--user", metavar="NAME", help="for user NAME")
    p.add_argument("--role", choices=("User", "JobAdmin", "Admin"), help="a user's role (default User)")
    p.add_argument("--days", type=int, default=365, help="validity (default 365)")
    p.set_defaults(func="security:certs_issue")
    p = _command(certs, "revoke", "security:certs_revoke", "stop accepting a certificate (admins)",
                 "shoal certs revoke tls/user-alice.crt")
    p.add_argument("certificate", help="the certificate file, or its serial number in hex")


def _fill_report(group: argparse.ArgumentParser) -> None:
    report = group.add_subparsers(dest="report_command", metavar="SUBCOMMAND", required=True)
    p = _command(report, "usage", "report:usage", "what jobs that ended used, by owner, project or job "
                 "(kept after the jobs are purged)", "shoal report usage --by project --since 30d")
    p.add_argument("--by", choices=("owner", "project", "job"), default="owner", help="default owner")
    p.add_argument("--since", metavar="DATE", help="jobs that ended at or after DATE: YYYY-MM-DD, an ISO "
                   "date-time or a time ago (7d, 12h)")
    p.add_argument("--until", metavar="DATE", help="jobs that ended before (same forms; default now)")
    p.add_argument("--owner", default="", help="only this owner's jobs")
    p.add_argument("--project", default="", help="only this project's jobs")
    p.add_argument("--limit", type=int, default=0, help="at most this many rows (default 10,000)")
    _json(p)


def _fill_up(up: argparse.ArgumentParser) -> None:
    up.add_argument("--nodes", type=int, default=2, help="number of agents (default 2)")
    up.add_argument("--listen", default="127.0.0.1:7676", help="head node address (default 127.0.0.1:7676)")
    up.add_argument("--state-dir", help="keep state here (default: a temporary directory, removed at exit)")
    up.add_argument("--cores", type=int, help="cores each agent offers (default: detected)")
    up.add_argument("--memory-mb", type=int, help="memory each agent offers (default: detected)")
    up.add_argument("--web-listen", default="127.0.0.1:7680", metavar="HOST:PORT",
                    help="the web dashboard's address (default 127.0.0.1:7680; port 0: any free one; "
                         "empty: no dashboard)")
    up.set_defaults(func="local:up")


def _fill_completion(p: argparse.ArgumentParser) -> None:
    p.add_argument("shell", choices=("bash", "zsh", "fish"))
    p.set_defaults(func="completion:script")


def _fill_simulate(sim: argparse.ArgumentParser) -> None:
    sim.add_argument("trace", help="the trace file")
    sim.add_argument("--policy", choices=("fcfs", "easy"), default="easy", help="default easy")
    sim.add_argument("--cores", type=int, help="the machine's cores (default: the trace's MaxProcs or MaxNodes)")
    sim.add_argument("--limit-jobs", type=int, metavar="K", help="only the first K jobs")
    sim.add_argument("--default-runtime", type=float, default=3600.0, metavar="SECONDS",
                     help="runtime assumed for jobs without one (default 3600)")
    _json(sim)
    sim.set_defaults(func="simulate:simulate")


def _subcommands(fill: Callable[[argparse._SubParsersAction], None], dest: str) -> Callable[[argparse.ArgumentParser], None]:
    """A group filler for a group that is only subcommands (`shoal job SUBCOMMAND`)."""
    return lambda group: fill(group.add_subparsers(dest=dest, metavar="SUBCOMMAND", required=True))


def _config_commands(sub: argparse._SubParsersAction) -> None:
    show = sub.add_parser("show", help="print each key of a daemon's config, its value and where it came from",
                          description="Print the config `shoal head` or `shoal node` would run with, given the "
                          "same flags, config file ($SHOAL_CONFIG) and environment (SHOAL_HEAD_<KEY>, "
                          "SHOAL_NODE_<KEY>): each key's value and its source (default, file, env or flag).")
    roles = show.add_subparsers(dest="role", metavar="DAEMON", required=True)
    from computenode.flags import add_arguments as node_arguments
    from headnode.flags import add_arguments as head_arguments

    for role, add, example in (("head", head_arguments, "shoal config show head --config /etc/shoal/shoal.toml"),
                               ("node", node_arguments, "SHOAL_NODE_CORES=8 shoal config show node --plaintext")):
        p = roles.add_parser(role, help=f"the config of `shoal {role}`", epilog=f"example: {example}")
        add(p)
        _json(p)
        p.set_defaults(func="config:show")


def _job_commands(sub: argparse._SubParsersAction) -> None:
    p = _command(sub, "new", "jobs:new", "create a job in Configuring (add tasks, then submit it)",
                 "shoal job new --name sim --priority AboveNormal")
    add_job_options(p)
    _json(p)
    p = _command(sub, "add", "jobs:add", "add a task to a Configuring job: shoal job add JOB [options] -- CMD [ARGS...]",
                 "shoal job add 12 --name prep -- ./prep.sh")
    p.add_argument("job", help="job id")
    add_task_options(p)
    p = _command(
        sub, "submit", "jobs:submit", "submit: a command as a new job, a job file, or a Configuring job",
        "shoal job submit --cores 2 --parametric 1-100 -- ./sim --case '*'",
        description="Submit a new one-task job running CMD (through /bin/sh -c), a job file (--file "
        "job.json|job.toml|job.xml), or an existing Configuring job (shoal job submit JOB). Prints the job id.",
    )
    add_job_options(p, runtime_flags=("--job-runtime",))
    add_task_options(p, name_flags=("--task-name",))
    p.add_argument("--file", help="a job file: JSON or TOML (JobSpec fields) or HPC Pack job XML")
    p.add_argument("--wait", action="store_true", help="follow the job to its end (a progress bar on a "
                   "terminal); exit 0 only if it Finished, 4 if not")
    p.add_argument("job", nargs="?", help="an existing Configuring job to submit (otherwise give -- CMD [ARGS...])")
    p = _command(sub, "wait", "jobs:wait", "wait for a job to end: exit 0 if it Finished, 4 if it Failed "
                 "or was Cancelled", "shoal job wait 12\nshoal job wait 12 --json > job12.json",
                 description="Follow a job until it ends, with a live progress bar on a terminal (tasks "
                 "done, failed, running and queued; rate; time left) or a line per change otherwise, on "
                 "stderr. Exit 0 if it Finished, 4 if it Failed or was Cancelled.")
    p.add_argument("job", help="job id")
    p.add_argument("--json", action="store_true", help="no progress; print the ended job as one JSON "
                   "document")
    p = _command(sub, "view", "jobs:view", "show a job, its tasks and its history", "shoal job view 12")
    p.add_argument("job", help="job id")
    _json(p)
    p = _command(sub, "list", "jobs:list_jobs", "list jobs", "shoal job list --state Running --owner alice")
    p.add_argument("--state", action="append", default=[], help="only jobs in this state (repeatable)")
    p.add_argument("--owner", default="", help="only jobs of this owner")
    p.add_argument("--name", default="", help="only jobs whose name contains this")
    _json(p)
    p = _command(sub, "cancel", "jobs:cancel", "cancel a job and stop its running tasks", "shoal job cancel 12")
    p.add_argument("job", help="job id")
    p.add_argument("--reason", default="", help="recorded in the job's history")
    _json(p)
    p = _command(sub, "requeue", "jobs:requeue", "put a Failed or Cancelled job back in the queue",
                 "shoal job requeue 12 --task 12.3",
                 description="Re-run what did not finish (finished tasks keep their results), or only the "
                 "tasks or instances given with --task (whatever their state).")
    p.add_argument("job", help="job id")
    p.add_argument("--task", action="append", default=[], metavar="JOB.TASK[.INSTANCE]", help="only these")
    _json(p)
    for name, func, text in (("configure", "jobs:configure", "move a Failed or Cancelled job back to Configuring"),
                             ("clone", "jobs:clone", "copy a job with all its tasks into a new Configuring job"),
                             ("release", "jobs:release", "let a held job start")):
        p = _command(sub, name, func, text, f"shoal job {name} 12")
        p.add_argument("job", help="job id")
        _json(p)
    p = _command(sub, "hold", "jobs:hold", "keep a queued job from starting", "shoal job hold 12 --reason 'disk full'")
    p.add_argument("job", help="job id")
    p.add_argument("--reason", default="")
    _json(p)
    p = _command(sub, "modify", "jobs:modify", "change a job that has not started", "shoal job modify 12 --priority Highest")
    p.add_argument("job", help="job id")
    add_job_options(p)
    _json(p)
    p = _command(sub, "export", "jobs:export", "write a job out as a job file", "shoal job export 12 --format xml")
    p.add_argument("job", help="job id")
    p.add_argument("--format", choices=("json", "xml"), default="json")
    p.add_argument("-o", "--output", help="file to write (default: standard output)")
    p = _command(sub, "watch", "jobs:watch", "print job and task changes as they happen",
                 "shoal job watch 12\nshoal job watch --owner alice --json",
                 description="With JOB: its history, then its changes until it ends, each with the job's "
                 "progress after it (under a live progress bar on a terminal). Without: every change to "
                 "every job from now on. --json prints one JSON object per line.")
    p.add_argument("job", nargs="?", help="job id")
    p.add_argument("--owner", default="", help="without JOB: only jobs of this owner")
    p.add_argument("--jobs-only", action="store_true",
                   help="only jobs' own changes (their states), none of their tasks'")
    p.add_argument("--ends-only", action="store_true",
                   help="without JOB: only jobs' changes into an end state (Finished, Failed, Cancelled)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")


def _task_commands(sub: argparse._SubParsersAction) -> None:
    p = _command(sub, "output", "tasks:output", "print a task's stdout (or stderr)", "shoal task output 12.1 --follow")
    p.add_argument("task", metavar="JOB.TASK[.INSTANCE]", help="task id, e.g. 12.1, or an instance, e.g. 12.2.7")
    p.add_argument("--stderr", action="store_true", help="print stderr instead of stdout")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing until the task has ended")
    p = _command(sub, "list", "tasks:list_tasks", "list a job's tasks, or its instances", "shoal task list 12 --instances")
    p.add_argument("job", help="job id")
    p.add_argument("--task", type=int, default=0, help="only this task (its instances with --instances)")
    p.add_argument("--state", action="append", default=[], help="only in this state (repeatable)")
    p.add_argument("--instances", action="store_true", help="list run units: plain tasks and every instance")
    _json(p)
    p = _command(sub, "view", "tasks:view", "show a task or one instance with its history", "shoal task view 12.2.7")
    p.add_argument("task", metavar="JOB.TASK[.INSTANCE]")
    _json(p)
    p = _command(sub, "cancel", "tasks:cancel", "cancel a task (or one instance) of a job", "shoal task cancel 12.3")
    p.add_argument("task", metavar="JOB.TASK[.INSTANCE]")
    p.add_argument("--reason", default="")
    _json(p)
    p = _command(sub, "modify", "tasks:modify",
                 "change a task while its job is Configuring: shoal task modify JOB.TASK [options] [-- CMD [ARGS...]]",
                 "shoal task modify 12.1 --cores 4 -- ./run.sh --fast")
    p.add_argument("task", metavar="JOB.TASK")
    add_task_options(p)
    _json(p)


def _template_commands(sub: argparse._SubParsersAction) -> None:
    p = _command(sub, "create", "templates:create", "store a named template",
                 "shoal template create sim --file sim.toml --cores 4 --user alice --user bob",
                 description="Job-level defaults (and tasks) from --file and job options; defaults for every "
                 "task from task options. Only Admins create templates; --user limits who may use one.")
    p.add_argument("name")
    p.add_argument("--file", help="a job file whose fields become the template's job defaults")
    p.add_argument("--description", default="")
    p.add_argument("--replace", action="store_true", help="replace a template of that name")
    p.add_argument("--user", dest="users", action="append", metavar="USER",
                   help="a user who may submit with it (repeatable; default: everyone)")
    add_job_options(p, name_flags=("--job-name",), runtime_flags=("--job-runtime",))
    add_task_options(p, name_flags=("--task-name",))
    _json(p)
    _json(_command(sub, "list", "templates:list_templates", "list templates", "shoal template list"))
    p = _command(sub, "view", "templates:view", "show a template",
                 "shoal template view sim\nshoal template view sim --json")
    p.add_argument("name")
    _json(p)
    p = _command(sub, "delete", "templates:delete", "delete a template", "shoal template delete sim")
    p.add_argument("name")



GROUPS: dict[str, tuple[dict[str, Any], Callable[[argparse.ArgumentParser], None]]] = {
    "head": (dict(help="run the head node", description="Run the head node in the foreground.", formatter_class=_Help,
                  epilog=_examples("shoal head --state-dir /var/lib/shoal/head --listen 0.0.0.0:7676",
                                   "shoal head --plaintext --state-dir /tmp/shoal-dev   # development only")),
             _fill_head),
    "node": (dict(help="run a compute-node agent, or list nodes",
                  description="Without a subcommand: run a compute-node agent in the foreground.\n"
                  "  shoal node --head HOST:PORT [--name NAME] [--cores N] [--memory-mb M]\n"
                  "  shoal node list [--json]\n"
                  "  shoal node view|drain|online|offline|remove|group|label ... (see shoal node SUBCOMMAND --help)",
                  formatter_class=argparse.RawDescriptionHelpFormatter,
                  epilog=_examples("shoal node --head head1:7676 --join-token-file join.token --group gpu",
                                   "shoal node --head localhost:7676 --plaintext --name n1 --cores 4   # development")),
             _fill_node),
    "user": (dict(help="user tokens"), _fill_user),
    "certs": (dict(help="the cluster CA and TLS certificates"), _fill_certs),
    "job": (dict(help="create, submit, change and inspect jobs"), _subcommands(_job_commands, "job_command")),
    "task": (dict(help="inspect, change and cancel tasks; read their output"),
             _subcommands(_task_commands, "task_command")),
    "template": (dict(help="named job and task templates"), _subcommands(_template_commands, "template_command")),
    "report": (dict(help="accounting: what ended jobs used"), _fill_report),
    "up": (dict(help="run a local cluster (head node + agents) in the foreground", formatter_class=_Help,
                epilog=_examples("shoal up --nodes 3 --state-dir ./dev-cluster")), _fill_up),
    "demo": (dict(help="start a local cluster, run a sample job, show it, stop", formatter_class=_Help,
                  epilog=_examples("shoal demo")), lambda p: p.set_defaults(func="local:demo")),
    "completion": (dict(help="print a shell completion script", formatter_class=_Help,
                        description="Print a completion script for bash, zsh or fish, made from this "
                        "command's parser.",
                        epilog=_examples("source <(shoal completion bash)     # in ~/.bashrc",
                                         "source <(shoal completion zsh)      # in ~/.zshrc, after compinit",
                                         "shoal completion fish > ~/.config/fish/completions/shoal.fish")),
                   _fill_completion),
    "simulate": (dict(help="replay a workload trace (SWF) through the scheduler in simulated time",
                      description="Replay a Standard Workload Format trace (.swf or .swf.gz) through the same "
                      "scheduling core in simulated time, and print its makespan, utilization, mean wait and mean "
                      "bounded slowdown.", epilog="example: shoal simulate SDSC-SP2-1998-4.2-cln.swf.gz --policy easy"),
                 _fill_simulate),
    "config": (dict(help="the daemons' configuration: what is in force and why"),
               _subcommands(_config_commands, "config_command")),
}

def main(argv: list[str] | None = None) -> None:
    ran: list[Callable[..., int]] = []
    code = run(argv if argv is not None else sys.argv[1:], ran)
    if ran and getattr(ran[0], "talks_to_head", False):
        _exit_now(code)
    sys.exit(code)


def _exit_now(code: int) -> NoReturn:
    """Leave without the interpreter's finalization. A command that only talked to the head
    node has nothing left to tidy (its channel is closed, its files written), and tearing down
    grpc's and protobuf's modules took 40-60 ms of `shoal job submit --wait`'s ~300 on a slow
    hour here. Not for the daemons (`shoal head`, `shoal node`, `shoal up`): their logs are
    flushed at exit."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader that left, or a stream already closed
            pass
    os._exit(code)


def run(argv: list[str], ran: list[Callable[..., int]] | None = None) -> int:
    """Parse and run one command; returns its exit code. `ran`: given the command's handler."""
    # Everything after the first `--` is the task's command, taken as it is: argparse is
    # never shown it, so it can hold anything, options included.
    command: list[str] | None = None
    if "--" in argv:
        split = argv.index("--")
        argv, command = argv[:split], argv[split + 1:]
    parser = build_parser(group_of(argv))
    args = parser.parse_args(argv)
    args.command = command
    head = getattr(args, "head", None) or os.environ.get("SHOAL_HEAD") or "localhost:7676"
    # Credentials reach every client the command makes through the environment.
    for flag, variable in (("ca", "SHOAL_CA"), ("cert", "SHOAL_CERT"), ("key", "SHOAL_KEY"), ("token", "SHOAL_TOKEN")):
        if getattr(args, flag, None):
            os.environ[variable] = getattr(args, flag)
    from common.errors import ShoalError

    try:
        if args.func == "headnode":
            from headnode.main import run as run_head

            return run_head(args)
        if args.func == "agent":
            from computenode.main import run as run_agent

            return run_agent(args, getattr(args, "head", None) or os.environ.get("SHOAL_HEAD"))
        module, function = args.func.split(":")
        handler = getattr(importlib.import_module(f"shoal.cli.{module}"), function)
        if ran is not None:
            ran.append(handler)
        return handler(args, head)
    except ShoalError as e:
        print(f"shoal: {e.message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `shoal task output ... | head`: the reader left; that is not an error.
        sys.stderr.close()
        return EXIT_OK
