"""NodeService.Connect: one bidirectional stream per agent.

The first message must be Hello; Membership opens a session for it. From then on a reader
task hands each agent message to Membership, while this handler writes the session's
outbox down the stream. Either side ending closes the session.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc

from common import log
from headnode.api import node_convert as convert
from headnode.api.errors import maps_errors
from headnode.api.identity import Authority
from headnode.services.membership import Membership, Session
from shoal.v1 import nodes_pb2, nodes_pb2_grpc

_log = log.get("node_api")


@maps_errors
class NodeServicer(nodes_pb2_grpc.NodeServiceServicer):
    def __init__(self, membership: Membership, auth: Authority) -> None:
        self.membership = membership
        self.auth = auth

    async def Connect(
        self, request_iterator: AsyncIterator[nodes_pb2.AgentMessage], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[nodes_pb2.HeadMessage]:
        first = await anext(aiter(request_iterator), None)
        if first is None:
            return
        hello = convert.hello(first)
        groups, node_token = self.auth.admit_node(context, hello.node_name, hello.node_name in self.membership.cluster.nodes)
        session = await self.membership.open_session(hello, groups, node_token)
        reader = asyncio.create_task(self._read(session, request_iterator))
        try:
            while True:
                item = await session.outbox.get()
                if item is None:
                    break
                yield convert.head_message(*item)
        finally:
            reader.cancel()
            self.membership.close_session(session)

    async def _read(self, session: Session, messages: AsyncIterator[nodes_pb2.AgentMessage]) -> None:
        try:
            async for msg in messages:
                event = convert.agent_event(msg)
                if event is not None:
                    await self.membership.handle(session, event)
        except asyncio.CancelledError:
            raise
        except grpc.aio.AioRpcError:
            pass  # the agent went away; the finally below ends the session
        except Exception:
            _log.exception("agent_message_failed", node=session.node)
        finally:
            self.membership.close_session(session)
