"""AdminService: the nodes as the head sees them."""

from __future__ import annotations

import grpc

from headnode.api import node_convert as convert
from headnode.api.errors import maps_errors
from headnode.domain.cluster import Cluster
from shoal.v1 import admin_pb2, admin_pb2_grpc


@maps_errors
class AdminServicer(admin_pb2_grpc.AdminServiceServicer):
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    async def ListNodes(self, request: admin_pb2.ListNodesRequest, context: grpc.aio.ServicerContext):
        nodes = sorted(self.cluster.nodes.values(), key=lambda n: n.name)
        return admin_pb2.ListNodesResponse(nodes=[convert.node_msg(n) for n in nodes])

    async def GetNode(self, request: admin_pb2.GetNodeRequest, context: grpc.aio.ServicerContext):
        return convert.node_msg(self.cluster.node(request.name))
