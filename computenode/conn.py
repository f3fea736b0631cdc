"""One Connect stream's state on the agent's side, and how a session can end.

`Conn` is what the agent's writer and reader share for one stream: control messages waiting
to go, output offsets sent, exits waiting on their output, unanswered heartbeats (for lease
renewal, keeper.py), and `end()`, by which the agent leaves a session itself (a silent head, a
lapsed lease). `Refused` is the head saying no for a reason retrying does not fix.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

import grpc

from common.addr import HEAD_CHANNEL_OPTIONS
from computenode import state as st
from shoal.v1 import nodes_pb2

HEARTBEAT = object()  # queued in Conn.control: the writer makes the heartbeat when it goes

CHANNEL_OPTIONS = [
    *HEAD_CHANNEL_OPTIONS,  # keepalive included
    # Each agent its own connection, even with many agents in one process (swarm.py).
    ("grpc.use_local_subchannel_pool", 1),
]


# How long an agent refused because its name is in use keeps trying. The session in the way
# may be its own predecessor's, killed a moment ago, that the head has not yet seen end (a
# restarted agent is a new instance); a second live agent with the name gives up after this.
NAME_IN_USE_GRACE = 10.0


class Refused(Exception):
    """The head refused this agent for a reason retrying will not fix (`name_in_use`: unless
    the other agent with its name turns out to be gone, see NAME_IN_USE_GRACE)."""

    def __init__(self, message: str, name_in_use: bool = False) -> None:
        super().__init__(message)
        self.name_in_use = name_in_use


@dataclass(eq=False)
class Conn:
    call: grpc.aio.StreamStreamCall
    address: str = ""
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    # Heartbeats sent and not yet answered: number -> when (lease clock), for the renewal.
    beats: dict[int, float] = field(default_factory=dict)
    heard: float = 0.0  # monotonic time of the head's last message
    ended: str = ""  # why the agent ended the session itself (the call is cancelled then)
    control: deque[object] = field(default_factory=deque)
    # Output offsets sent on this connection, for tasks the head knows about.
    sent: dict[tuple[st.Key, str], int] = field(default_factory=dict)
    # Exits to report once their output is all sent.
    exits: set[st.Key] = field(default_factory=set)
    # Tasks whose output may have grown past what was sent: the writer looks at these alone,
    # not at every task in `sent` (two fstat calls each, on every wake: a tenth of a busy
    # agent's CPU with a few tasks queued ahead). The spool's inotify watch marks them.
    dirty: dict[st.Key, None] = field(default_factory=dict)  # ordered: round robin among them
    # Starts not yet reported. They wait for the next write rather than make one of their
    # own (a heartbeat's at the latest): the head learns little from them it does not already
    # know, and a short task's exit, which implies its start, then goes out instead.
    started: dict[st.Key, nodes_pb2.AgentMessage] = field(default_factory=dict)

    def push(self, message: object) -> None:
        self.control.append(message)
        self.wake.set()

    def end(self, why: str) -> None:
        if not self.ended:
            self.ended = why
            self.call.cancel()


