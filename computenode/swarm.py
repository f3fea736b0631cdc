"""Many real agents in one process, faking their launches: a cluster of a thousand nodes on
one machine, for benchmarking the head node (bench/nodes.py).

    python -m computenode.swarm --head 127.0.0.1:7070 --count 250 --first 0 --state-dir DIR

Each agent is the real Agent (its own gRPC connection, Hello, heartbeats, reports) with
FakeRunner in place of processes (fake.py). The swarm prints "ready N" on stdout once all its
agents have connected, then one line "tasks N" per second with the tasks its agents started,
and stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from common import log
from common.clock import SystemClock
from common.config import NodeConfig
from common.resources import Resources
from computenode.agent import Agent


async def _run(args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    clock = SystemClock()
    agents = []
    for i in range(args.first, args.first + args.count):
        name = f"{args.prefix}{i:05d}"
        config = NodeConfig(head=args.head, name=name, cores=args.cores, memory_mb=args.memory_mb,
                            state_dir=Path(args.state_dir) / name, plaintext=True, log_level=args.log_level)
        agents.append(Agent(config.validate(), Resources(args.cores, args.memory_mb), clock, fake_launch=True))
    runs = [asyncio.create_task(a.run(stop)) for a in agents]
    while sum(a.connected for a in agents) < len(agents):
        if stop.is_set() or any(r.done() for r in runs):
            break
        await asyncio.sleep(0.1)
    print(f"ready {sum(a.connected for a in agents)}", flush=True)
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), 1.0)
        except TimeoutError:
            print(f"tasks {sum(a.runner.started for a in agents)}", flush=True)
    codes = await asyncio.gather(*runs, return_exceptions=True)
    return 0 if all(c == 0 for c in codes) else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m computenode.swarm", description=__doc__.split("\n\n")[0])
    p.add_argument("--head", required=True, help="head node HOST:PORT (plaintext)")
    p.add_argument("--count", type=int, default=100, help="agents in this process")
    p.add_argument("--first", type=int, default=0, help="number of the first agent (names are PREFIX00000...)")
    p.add_argument("--prefix", default="sim-")
    p.add_argument("--cores", type=int, default=4)
    p.add_argument("--memory-mb", type=int, default=8192)
    p.add_argument("--state-dir", required=True)
    p.add_argument("--log-level", default="warning")
    args = p.parse_args(argv)
    log.configure(args.log_level)
    return asyncio.run(_run(args))


if __name__ == "__main__":
    sys.exit(main())
