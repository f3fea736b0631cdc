"""AdminService: the nodes as the head sees them, and their management (admins only)."""

from __future__ import annotations

import grpc

from headnode.api import node_convert as convert
from headnode.api.errors import maps_errors
from headnode.api.identity import require_admin
from headnode.domain.cluster import Cluster
from headnode.services.nodes import NodeAdmin
from shoal.v1 import admin_pb2, admin_pb2_grpc


@maps_errors
class AdminServicer(admin_pb2_grpc.AdminServiceServicer):
    def __init__(self, cluster: Cluster, nodes: NodeAdmin, admins: tuple[str, ...]) -> None:
        self.cluster = cluster
        self.nodes = nodes
        self.admins = admins

    async def ListNodes(self, request: admin_pb2.ListNodesRequest, context: grpc.aio.ServicerContext):
        nodes = sorted(self.cluster.nodes.values(), key=lambda n: n.name)
        return admin_pb2.ListNodesResponse(nodes=[convert.node_msg(n) for n in nodes])

    async def GetNode(self, request: admin_pb2.GetNodeRequest, context: grpc.aio.ServicerContext):
        return convert.node_msg(self.cluster.node(request.name))

    async def DrainNode(self, request: admin_pb2.DrainNodeRequest, context: grpc.aio.ServicerContext):
        by = require_admin(context, self.admins)
        return convert.node_msg(await self.nodes.drain(request.name, request.reason, by))

    async def SetNodeOnline(self, request: admin_pb2.SetNodeOnlineRequest, context: grpc.aio.ServicerContext):
        by = require_admin(context, self.admins)
        return convert.node_msg(await self.nodes.online(request.name, request.reason, by))

    async def SetNodeOffline(self, request: admin_pb2.SetNodeOfflineRequest, context: grpc.aio.ServicerContext):
        by = require_admin(context, self.admins)
        return convert.node_msg(await self.nodes.offline(request.name, request.reason, request.force, by))

    async def RemoveNode(self, request: admin_pb2.RemoveNodeRequest, context: grpc.aio.ServicerContext):
        await self.nodes.remove(request.name, require_admin(context, self.admins))
        return admin_pb2.RemoveNodeResponse()

    async def AddNodesToGroup(self, request: admin_pb2.NodeGroupRequest, context: grpc.aio.ServicerContext):
        by = require_admin(context, self.admins)
        nodes = await self.nodes.group(request.group, list(request.nodes), True, by)
        return admin_pb2.NodeGroupResponse(nodes=[convert.node_msg(n) for n in nodes])

    async def RemoveNodesFromGroup(self, request: admin_pb2.NodeGroupRequest, context: grpc.aio.ServicerContext):
        by = require_admin(context, self.admins)
        nodes = await self.nodes.group(request.group, list(request.nodes), False, by)
        return admin_pb2.NodeGroupResponse(nodes=[convert.node_msg(n) for n in nodes])

    async def LabelNode(self, request: admin_pb2.LabelNodeRequest, context: grpc.aio.ServicerContext):
        by = require_admin(context, self.admins)
        return convert.node_msg(await self.nodes.label(request.name, list(request.add), list(request.remove), by))
