"""AdminService: the nodes as the head sees them, their management, and tokens (admins only)."""

from __future__ import annotations

import grpc

from common import tokens
from common.constraints import check_token
from common.errors import InvalidArgument, quote
from common.formats import format_duration
from common.tls import ROLES
from common.wire import timestamp
from headnode.api import node_convert as convert
from headnode.api.errors import WriteGate, maps_errors
from headnode.api.identity import ADMIN, Authority, Principal
from headnode.domain.cluster import Cluster
from headnode.services.nodes import NodeAdmin
from headnode.services.validation import reason_text
from shoal.v1 import admin_pb2, admin_pb2_grpc

JOIN_TTL = 3600.0
USER_TTL = 30 * 86400.0


@maps_errors
class AdminServicer(admin_pb2_grpc.AdminServiceServicer):
    # Answered while the head cannot write (headnode/api/errors.py): reads, and user tokens, which
    # are signed, not stored (a join token's uses are stored).
    SERVED_WHILE_FULL = frozenset({"ListNodes", "GetNode", "ListJoinTokens", "CreateUserToken"})

    def __init__(self, cluster: Cluster, nodes: NodeAdmin, auth: Authority, gate: WriteGate | None = None) -> None:
        self.gate = gate
        self.cluster = cluster
        self.nodes = nodes
        self.auth = auth

    async def ListNodes(self, request: admin_pb2.ListNodesRequest, context: grpc.aio.ServicerContext):
        self.auth.user(context)
        nodes = sorted(self.cluster.nodes.values(), key=lambda n: n.name)
        return admin_pb2.ListNodesResponse(nodes=[convert.node_msg(n) for n in nodes])

    async def GetNode(self, request: admin_pb2.GetNodeRequest, context: grpc.aio.ServicerContext):
        self.auth.user(context)
        return convert.node_msg(self.cluster.node(request.name), heartbeats=True)

    def _admin(self, context: grpc.aio.ServicerContext, action: str) -> str:
        return self.auth.require(context, ADMIN, action).name

    def _expiry(self, p: Principal, ttl: object, given: bool, default: float) -> float:
        """A minted token's end: its ttl (at most max_token_ttl), and never after the end of the
        credential that mints it."""
        expires = self.auth.clock.now() + _ttl(ttl, given, default, self.auth.config.max_token_ttl)
        return min(expires, p.expires) if p.expires else expires

    async def DrainNode(self, request: admin_pb2.DrainNodeRequest, context: grpc.aio.ServicerContext):
        by = self._admin(context, f"drain node {request.name}")
        return convert.node_msg(await self.nodes.drain(request.name, reason_text(request.reason), by))

    async def SetNodeOnline(self, request: admin_pb2.SetNodeOnlineRequest, context: grpc.aio.ServicerContext):
        by = self._admin(context, f"set node {request.name} online")
        return convert.node_msg(await self.nodes.online(request.name, reason_text(request.reason), by))

    async def SetNodeOffline(self, request: admin_pb2.SetNodeOfflineRequest, context: grpc.aio.ServicerContext):
        by = self._admin(context, f"set node {request.name} offline")
        return convert.node_msg(await self.nodes.offline(request.name, reason_text(request.reason), request.force, by))

    async def RemoveNode(self, request: admin_pb2.RemoveNodeRequest, context: grpc.aio.ServicerContext):
        await self.nodes.remove(request.name, self._admin(context, f"remove node {request.name}"))
        # Its old agent cannot come back with its node token; a new join token is needed.
        await self.auth.revocations.revoke(f"node:{request.name}")
        return admin_pb2.RemoveNodeResponse()

    async def AddNodesToGroup(self, request: admin_pb2.NodeGroupRequest, context: grpc.aio.ServicerContext):
        by = self._admin(context, f"add nodes to group {request.group}")
        nodes = await self.nodes.group(request.group, list(request.nodes), True, by)
        return admin_pb2.NodeGroupResponse(nodes=[convert.node_msg(n) for n in nodes])

    async def RemoveNodesFromGroup(self, request: admin_pb2.NodeGroupRequest, context: grpc.aio.ServicerContext):
        by = self._admin(context, f"remove nodes from group {request.group}")
        nodes = await self.nodes.group(request.group, list(request.nodes), False, by)
        return admin_pb2.NodeGroupResponse(nodes=[convert.node_msg(n) for n in nodes])

    async def LabelNode(self, request: admin_pb2.LabelNodeRequest, context: grpc.aio.ServicerContext):
        by = self._admin(context, f"label node {request.name}")
        return convert.node_msg(await self.nodes.label(request.name, list(request.add), list(request.remove), by))

    async def CreateJoinToken(self, request: admin_pb2.CreateJoinTokenRequest, context: grpc.aio.ServicerContext):
        p = self.auth.require(context, ADMIN, "create a node join token")
        expires = self._expiry(p, request.ttl, request.HasField("ttl"), JOIN_TTL)
        groups = list(dict.fromkeys(request.groups))
        for group in groups:
            if why := check_token(group, "group"):
                raise InvalidArgument(why)
        record = await self.auth.join_tokens.create(request.uses or 1, list(request.names), groups, expires, p.name)
        token = tokens.sign(self.auth.token_key, tokens.Claims("join", record.id, groups=tuple(groups),
                                                               expires=expires, issued=self.auth.clock.now(),
                                                               parents=_parents(p)))
        return admin_pb2.TokenResponse(token=token, expire_time=timestamp(expires), id=record.id)

    async def ListJoinTokens(self, request: admin_pb2.ListJoinTokensRequest, context: grpc.aio.ServicerContext):
        self.auth.require(context, ADMIN, "list join tokens")
        now = self.auth.clock.now()
        return admin_pb2.ListJoinTokensResponse(tokens=[admin_pb2.JoinToken(
            id=t.id, uses=t.uses, uses_left=0 if t.revoked or t.expires < now else t.left, admitted=t.admitted,
            names=t.names, groups=t.groups, create_time=timestamp(t.created), expire_time=timestamp(t.expires),
            created_by=t.created_by, revoked=t.revoked) for t in self.auth.join_tokens.list()])

    async def CreateUserToken(self, request: admin_pb2.CreateUserTokenRequest, context: grpc.aio.ServicerContext):
        p = self.auth.user(context)
        user = request.user or p.name
        role = request.role or "User"
        if role not in ROLES:
            raise InvalidArgument(f"role {role!r} is not one of {', '.join(ROLES)}")
        if user != p.name or not p.at_least(role):
            self._admin(context, f"create a {role} token for {user}")
        expires = self._expiry(p, request.ttl, request.HasField("ttl"), USER_TTL)
        token = tokens.sign(self.auth.token_key, tokens.Claims("user", user, role, expires=expires,
                                                               issued=self.auth.clock.now(), parents=_parents(p)))
        return admin_pb2.TokenResponse(token=token, expire_time=timestamp(expires))

    async def Revoke(self, request: admin_pb2.RevokeRequest, context: grpc.aio.ServicerContext):
        if request.join_token_id:
            if request.user or request.node or request.join_tokens or request.certificate_serial:
                raise InvalidArgument("give exactly one of user, node, join_tokens, join_token_id or "
                                      "certificate_serial")
            self._admin(context, f"revoke join token {quote(request.join_token_id, 64)}")
            record = await self.auth.join_tokens.revoke(request.join_token_id)
            return admin_pb2.RevokeResponse(revoked=f"join token {record.id}", time=timestamp(self.auth.clock.now()))
        given = [(f"user:{request.user}", f"tokens of {request.user}") if request.user else None,
                 (f"node:{request.node}", f"node {request.node}'s credential") if request.node else None,
                 ("join:*", "join tokens") if request.join_tokens else None,
                 (f"cert:{request.certificate_serial.lower().lstrip('0') or '0'}",
                  f"certificate {request.certificate_serial}") if request.certificate_serial else None]
        chosen = [g for g in given if g is not None]
        if len(chosen) != 1:
            raise InvalidArgument("give exactly one of user, node, join_tokens, join_token_id or "
                                  "certificate_serial")
        key, what = chosen[0]
        if key.startswith("cert:") and not all(c in "0123456789abcdef" for c in key[5:]):
            raise InvalidArgument(f"certificate_serial {request.certificate_serial[:64]!r} is not a hexadecimal "
                                  "serial number")
        if len(key) > 300:
            raise InvalidArgument("the name to revoke is longer than 256 characters")
        self._admin(context, f"revoke {what}")
        at = await self.auth.revocations.revoke(key)
        issued = "" if key.startswith("cert:") else " issued until now"
        return admin_pb2.RevokeResponse(revoked=f"{what}{issued}", time=timestamp(at))


def _ttl(duration: object, given: bool, default: float, most: float) -> float:
    if not given:
        return min(default, most)
    seconds = duration.ToNanoseconds() / 1e9  # type: ignore[attr-defined]
    if seconds <= 0:
        raise InvalidArgument(f"ttl must be positive, got {seconds:g}s")
    if seconds > most:
        raise InvalidArgument(f"ttl must be at most {format_duration(most)} (the head's max_token_ttl), "
                              f"got {format_duration(seconds)}")
    return seconds


def _parents(p: Principal) -> tuple[str, ...]:
    """What revokes a token `p` mints: whatever revokes `p`'s own credential (bounded: a chain
    of tokens minted from tokens names each minter once)."""
    return tuple(dict.fromkeys(p.chain))[-16:]
