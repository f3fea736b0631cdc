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
from common.errors import DiskFull
from headnode.api import node_convert as convert
from headnode.api.errors import maps_errors
from headnode.api.identity import Authority
from headnode.services.membership import Membership, Session
from shoal.v1 import nodes_pb2, nodes_pb2_grpc

_log = log.get("node_api")
MAX_BATCH = 256  # head messages in one write


@maps_errors
class NodeServicer(nodes_pb2_grpc.NodeServiceServicer):
    AGENTS = True  # errors.py checks an agent's credential (auth.agent) before its Hello is read

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
        known = hello.node_name in self.membership.cluster.nodes
        admission = self.auth.admit_node(context, hello.node_name, known, tuple(hello.groups))
        try:
            session = await self.membership.open_session(hello, admission.groups, admission.node_token)
        except BaseException:
            if admission.join_token:
                self.auth.join_tokens.release(admission.join_token, hello.node_name)
            raise
        if admission.join_token:
            # Durable before the agent can read its credential (the Welcome waits in the outbox).
            try:
                await self.auth.join_tokens.save()
            except BaseException:
                self.auth.join_tokens.release(admission.join_token, hello.node_name)
                self.membership.close_session(session)
                raise
        reader = asyncio.create_task(self._read(session, request_iterator))
        try:
            done, limit = False, 1  # the Welcome goes alone: the agent reads it first, by itself
            while not done:
                items = [await session.outbox.get()]
                while len(items) < limit and not session.outbox.empty():
                    items.append(session.outbox.get_nowait())  # what piled up goes in one write
                if None in items:
                    done = True
                    items = items[:items.index(None)]
                limit = MAX_BATCH
                if len(items) == 1:
                    yield convert.head_message(*items[0])
                elif items:
                    yield nodes_pb2.HeadMessage(batch=nodes_pb2.HeadBatch(
                        items=[convert.head_message(*i) for i in items]))
        finally:
            reader.cancel()
            self.membership.close_session(session)

    async def _read(self, session: Session, messages: AsyncIterator[nodes_pb2.AgentMessage]) -> None:
        try:
            async for msg in messages:
                for one in msg.batch.items if msg.WhichOneof("kind") == "batch" else (msg,):
                    event = convert.agent_event(one)
                    if event is not None:
                        await self.membership.handle(session, event)
        except asyncio.CancelledError:
            raise
        except grpc.aio.AioRpcError:
            pass  # the agent went away; the finally below ends the session
        except DiskFull as e:
            # Output the head had no room for: the session ends, and the reconnecting agent
            # sends it again from the offsets the head has (its spool keeps it meanwhile).
            _log.warning("agent_output_not_stored", node=session.node, error=e.message)
        except Exception:
            _log.exception("agent_message_failed", node=session.node)
        finally:
            self.membership.close_session(session)
