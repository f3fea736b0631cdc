"""Node management by admins: drain, online, offline, remove, groups and labels.

Each operation is a transition in the node table (domain/states.py), stamped with the
head's clock and a reason, stored with the node, and followed by a scheduling pass (a node
coming online may let work start; one going away may let nothing more land). Taking a node
offline with --force stops its runs and requeues them as for a lost node ("node n1 taken
offline; requeued (retry 1 of 3)"); without it, a node still running work is refused.
"""

from __future__ import annotations

from collections.abc import Callable

from common import log
from common.clock import Clock
from common.constraints import check_token
from common.errors import FailedPrecondition, InvalidArgument
from headnode.domain.cluster import Cluster
from headnode.domain.lifecycle import Outcome
from headnode.domain.node import Kill, Node
from headnode.domain.states import NodeEvent, NodeState, next_node_state
from headnode.services.effects import Effects
from headnode.services.journal import Journal
from headnode.services.membership import Membership

_log = log.get("nodes")


class NodeAdmin:
    def __init__(self, cluster: Cluster, effects: Effects, journal: Journal, membership: Membership, clock: Clock,
                 kick: Callable[[], None]) -> None:
        self.cluster = cluster
        self.effects = effects
        self.journal = journal
        self.membership = membership
        self.clock = clock
        self._kick = kick

    async def drain(self, name: str, reason: str, by: str) -> Node:
        node = self.cluster.node(name)
        why = f"drained by {by}" + (f": {reason}" if reason else "")
        self._move(node, NodeEvent.DRAIN, why if node.state is not NodeState.UNREACHABLE else why + " (unreachable)")
        _log.info("node_drain", node=name, by=by, reason=reason, running=node.running())
        await self.membership.settle(node)
        await self._save(node)
        return node

    async def online(self, name: str, reason: str, by: str) -> Node:
        node = self.cluster.node(name)
        if node.state is NodeState.UNREACHABLE:
            raise FailedPrecondition(f"node {name} is Unreachable; it comes back Online when its agent reconnects")
        self._move(node, NodeEvent.ONLINE, f"set online by {by}" + (f": {reason}" if reason else ""))
        _log.info("node_online", node=name, by=by)
        await self._save(node)
        return node

    async def offline(self, name: str, reason: str, force: bool, by: str) -> Node:
        node = self.cluster.node(name)
        running = node.running() + sum(1 for a in node.allocations.values() if a.secondary)
        if running and not force:
            raise FailedPrecondition(
                f"node {name} has {running} running task(s); drain it (`shoal node drain {name}`) to let them "
                f"finish, or use --force to stop and requeue them")
        why = f"set offline by {by}" + (f": {reason}" if reason else "")
        self._move(node, NodeEvent.OFFLINE, why)
        _log.info("node_offline", node=name, by=by, force=force, stopped=running)
        if node.allocations:
            for task, alloc in list(node.allocations.items()):
                if not alloc.secondary:
                    self.membership.send(name, Kill(task, alloc.attempt, f"node {name} taken offline"))
            await self.membership.lose(node, list(node.allocations.values()), [], persist_node=False,
                                        what="taken offline")
        for job in list(node.reserved):
            node.unreserve(job)
        await self._save(node)
        return node

    async def remove(self, name: str, by: str) -> None:
        node = self.cluster.node(name)
        if node.state not in (NodeState.OFFLINE, NodeState.UNREACHABLE):
            raise FailedPrecondition(f"node {name} is {node.state.value}; take it offline first "
                                     f"(`shoal node offline {name}`)")
        if node.connected:
            raise FailedPrecondition(f"node {name}'s agent is still connected; stop the agent, then remove the node")
        if node.allocations or node.reserved:
            raise FailedPrecondition(f"node {name} still holds resources for {len(node.allocations)} task(s)")
        del self.cluster.nodes[name]
        _log.info("node_removed", node=name, by=by)
        await self.journal.record(deleted_nodes=[name])

    async def group(self, group: str, names: list[str], add: bool, by: str) -> list[Node]:
        if why := check_token(group, "group"):
            raise InvalidArgument(why)
        if not names:
            raise InvalidArgument("give at least one node")
        nodes = [self.cluster.node(n) for n in names]
        for node in nodes:
            if not add and group in node.agent_groups and group not in node.groups:
                raise FailedPrecondition(f"node {node.name} declares group {group} in its agent's config; "
                                         f"remove it there")
        for node in nodes:
            node.groups = node.groups | {group} if add else node.groups - {group}
        _log.info("node_group", group=group, nodes=names, add=add, by=by)
        await self._save(*nodes)
        return nodes

    async def label(self, name: str, add: list[str], remove: list[str], by: str) -> Node:
        node = self.cluster.node(name)
        for label in (*add, *remove):
            if why := check_token(label, "label"):
                raise InvalidArgument(why)
        if not add and not remove:
            raise InvalidArgument("give labels to add or remove")
        if fixed := [x for x in remove if x in node.agent_labels and x not in node.labels]:
            raise FailedPrecondition(f"node {name} declares label {fixed[0]} in its agent's config; remove it there")
        node.labels = (node.labels | set(add)) - set(remove)
        _log.info("node_label", node=name, add=add, remove=remove, by=by)
        await self._save(node)
        return node

    def _move(self, node: Node, event: NodeEvent, reason: str) -> None:
        node.set_state(next_node_state(node.state, event, f"node {node.name}"), reason, self.clock.now())

    async def _save(self, *nodes: Node) -> None:
        await self.effects.apply(Outcome(), nodes=nodes)
        self._kick()
