"""The `shoal` command: argument parsing and dispatch.

Imports are lazy (grpc alone costs ~100 ms), so `shoal job submit` starts fast. Exit codes:
  0  success
  1  the head node refused the request (the message says why)
  2  bad usage or bad local input (bad flag, bad id, bad config)
  3  the head node could not be reached
  4  `--wait`: the job ended, but not Finished (Failed or Cancelled)
"""

from __future__ import annotations

import argparse
import os
import sys

# Must precede any import of grpc in this process (see shared/PLATFORM-NOTES.md).
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_JOB_FAILED = 0, 1, 2, 3, 4

EPILOG = """exit codes: 0 ok, 1 refused by the head node, 2 bad usage, 3 head node unreachable,
4 (--wait) the job ended Failed or Cancelled"""


def _head_option(p: argparse.ArgumentParser, suppress: bool = True) -> None:
    p.add_argument(
        "--head",
        metavar="HOST:PORT",
        default=argparse.SUPPRESS if suppress else None,
        help="head node address (default: $SHOAL_HEAD, else localhost:7676)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shoal", description="Shoal cluster job scheduler", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _head_option(parser, suppress=False)
    sub = parser.add_subparsers(dest="group", metavar="COMMAND", required=True)

    head = sub.add_parser("head", help="run the head node", description="Run the head node in the foreground.")
    from headnode.flags import add_arguments as head_arguments

    head_arguments(head)
    head.set_defaults(func="headnode")

    node = sub.add_parser(
        "node", help="run a compute-node agent, or list nodes",
        description="Without a subcommand: run a compute-node agent in the foreground.\n"
        "  shoal node --head HOST:PORT [--name NAME] [--cores N] [--memory-mb M]\n"
        "  shoal node list [--json]",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from computenode.flags import add_arguments as node_arguments

    node_arguments(node)
    node.set_defaults(func="agent")
    node_sub = node.add_subparsers(dest="node_command", metavar="SUBCOMMAND")
    nl = node_sub.add_parser("list", help="list the nodes with their state and load")
    _head_option(nl)
    nl.add_argument("--json", action="store_true", help="print one JSON document")
    nl.set_defaults(func="node_list")

    job = sub.add_parser("job", help="submit, view, list and cancel jobs")
    job_sub = job.add_subparsers(dest="job_command", metavar="SUBCOMMAND", required=True)
    js = job_sub.add_parser(
        "submit", help="submit a one-task job", epilog="example: shoal job submit --cores 2 -- python train.py --epochs 3",
        description="Submit a job with one task running CMD ARGS... (through /bin/sh -c); prints the job id.",
    )
    _head_option(js)
    js.add_argument("--name", default="", help="job name")
    js.add_argument("--cores", type=int, help="cores for the task (default 1)")
    js.add_argument("--memory-mb", type=int, help="memory for the task in MB (default: no reservation)")
    js.add_argument("--env", action="append", default=[], metavar="VAR=VALUE", help="set in the task (repeatable)")
    js.add_argument("--workdir", help="working directory on the node (default: the current directory)")
    js.add_argument("--wait", action="store_true", help="follow the job to its end; exit 0 only if it Finished")
    js.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD [ARGS...]")
    js.set_defaults(func="job_submit")

    jv = job_sub.add_parser("view", help="show a job, its tasks and its history")
    _head_option(jv)
    jv.add_argument("job", help="job id")
    jv.add_argument("--json", action="store_true", help="print one JSON document")
    jv.set_defaults(func="job_view")

    jl = job_sub.add_parser("list", help="list jobs")
    _head_option(jl)
    jl.add_argument("--state", action="append", default=[], help="only jobs in this state (repeatable)")
    jl.add_argument("--owner", default="", help="only jobs of this owner")
    jl.add_argument("--json", action="store_true", help="print one JSON document")
    jl.set_defaults(func="job_list")

    jc = job_sub.add_parser("cancel", help="cancel a job and stop its running tasks")
    _head_option(jc)
    jc.add_argument("job", help="job id")
    jc.add_argument("--reason", default="", help="recorded in the job's history")
    jc.set_defaults(func="job_cancel")

    task = sub.add_parser("task", help="task output")
    task_sub = task.add_subparsers(dest="task_command", metavar="SUBCOMMAND", required=True)
    to = task_sub.add_parser("output", help="print a task's stdout (or stderr)",
                             epilog="example: shoal task output 12.1 --follow")
    _head_option(to)
    to.add_argument("task", metavar="JOB.TASK", help="task id, e.g. 12.1")
    to.add_argument("--stderr", action="store_true", help="print stderr instead of stdout")
    to.add_argument("--follow", "-f", action="store_true", help="keep printing until the task has ended")
    to.set_defaults(func="task_output")

    up = sub.add_parser("up", help="run a local cluster (head node + agents) in the foreground")
    up.add_argument("--nodes", type=int, default=2, help="number of agents (default 2)")
    up.add_argument("--listen", default="127.0.0.1:7676", help="head node address (default 127.0.0.1:7676)")
    up.add_argument("--state-dir", help="keep state here (default: a temporary directory, removed at exit)")
    up.add_argument("--cores", type=int, help="cores each agent offers (default: detected)")
    up.add_argument("--memory-mb", type=int, help="memory each agent offers (default: detected)")
    up.set_defaults(func="up")

    demo = sub.add_parser("demo", help="start a local cluster, run a sample job, show it, stop")
    demo.set_defaults(func="demo")
    return parser


def main(argv: list[str] | None = None) -> None:
    sys.exit(run(argv if argv is not None else sys.argv[1:]))


def run(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    head = getattr(args, "head", None) or os.environ.get("SHOAL_HEAD") or "localhost:7676"
    from common.errors import ShoalError

    try:
        if args.func == "headnode":
            from headnode.main import run as run_head

            return run_head(args)
        if args.func == "agent":
            from computenode.main import run as run_agent

            return run_agent(args, getattr(args, "head", None) or os.environ.get("SHOAL_HEAD"))
        from shoal.cli import commands

        return getattr(commands, args.func)(args, head)
    except ShoalError as e:
        print(f"shoal: {e.message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `shoal task output ... | head`: the reader left; that is not an error.
        sys.stderr.close()
        return EXIT_OK
