"""The scheduler's working state for one pass: what is free on each node, and which node
suits a request best (pure; no I/O).

Finding the best node must not cost a scan of every node for every instance: a pass over
100,000 queued tasks on 1,000 nodes would take minutes. Requests that ask for the same
thing (resources, exclusivity, constraints) form a class; each class keeps the nodes that
pass its static filters once per pass, and a heap of (score, name) over those that fit now.
When a placement changes a node, the node gets a new version and a fresh entry in the heap
of every class that includes it; entries of an older version are dropped when they surface.
The order is the same as a full scan's: highest score, then the lowest name.

Multi-instance tasks are placed all or nothing: `mark()` and `rollback()` undo placements
made since the mark.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field

from common.resources import Resources, fits
from headnode.scheduling.feasibility import Rejection, Why, dynamic_check, static_check
from headnode.scheduling.ranking import score
from headnode.scheduling.snapshot import NodeView, TaskRequest

SINGLE, SPAN, WHOLE_NODES = "single", "span", "nodes"


@dataclass(eq=False)
class Klass:
    """Requests alike in what they need and where they may go."""

    resources: Resources
    exclusive: bool
    mode: str
    candidates: list[str]  # pass the static filters, in name order
    rejected: list[Rejection]  # the static rejections of every other node
    heap: list[tuple[float, str, int]] = field(default_factory=list)


class Board:
    def __init__(self, nodes: tuple[NodeView, ...], policy: str) -> None:
        self.nodes = nodes
        self.policy = policy
        self.view = {n.name: n for n in nodes}
        self.free = {n.name: n.free for n in nodes}
        self.jobs: dict[str, set[int]] = {n.name: set(n.jobs) for n in nodes}
        self.excl = {n.name: n.exclusive_job for n in nodes}
        self.version = dict.fromkeys(self.view, 0)
        # Cores free on available nodes in all: a cheap stop (and a cheap refusal) for backfill.
        self.free_cores = sum(max(0, f.cores) for n, f in self.free.items() if not self.view[n].unavailable)
        self._classes: dict[tuple, Klass] = {}
        self._seen: dict[int, tuple[TaskRequest, Klass]] = {}
        self._member: dict[str, list[Klass]] = {n.name: [] for n in nodes}
        self._undo: list[tuple[str, Resources, set[int], int]] | None = None

    # -- classes -------------------------------------------------------------------------

    def klass(self, r: TaskRequest) -> Klass:
        # By identity first: hashing the key (resources, constraints) costs more than the
        # rest of a backfill check. The request is kept with it, so its id is not reused.
        seen = self._seen.get(id(r))
        if seen is not None and seen[0] is r:
            return seen[1]
        key = (r.resources, r.exclusive, r.constraints, r.nodes)
        k = self._classes.get(key)
        if k is None:
            k = self._classes[key] = self._build(r)
        self._seen[id(r)] = (r, k)
        return k

    def _build(self, r: TaskRequest) -> Klass:
        mode = WHOLE_NODES if r.nodes > 0 else SINGLE
        candidates, rejected = self._filter(r, spanning=mode == WHOLE_NODES)
        if mode == SINGLE and not candidates:
            # More cores than any one node has: spread the task over nodes (MPI-style).
            span, span_rejected = self._filter(r, spanning=True)
            if span and sum(self.view[n].capacity.cores for n in span) >= r.resources.cores:
                mode, candidates, rejected = SPAN, span, span_rejected
        k = Klass(r.resources, r.exclusive, mode, candidates, rejected)
        if mode == SINGLE:
            for name in candidates:
                self._member[name].append(k)
                self._push(k, name)
        return k

    def _filter(self, r: TaskRequest, spanning: bool) -> tuple[list[str], list[Rejection]]:
        candidates, rejected = [], []
        for node in self.nodes:
            rejection = static_check(node, r, spanning)
            if rejection is None:
                candidates.append(node.name)
            else:
                rejected.append(rejection)
        return candidates, rejected

    def _fits(self, k: Klass, name: str) -> bool:
        free = self.free[name]
        if k.exclusive:
            return not self.jobs[name] and free == self.view[name].capacity
        return fits(k.resources, free)

    def _push(self, k: Klass, name: str) -> None:
        if self._fits(k, name):
            s = score(self.view[name].capacity, self.free[name] - k.resources, self.policy)
            heapq.heappush(k.heap, (-s, name, self.version[name]))

    # -- choosing ------------------------------------------------------------------------

    def best(self, r: TaskRequest, where: Callable[[str], bool] | None = None) -> str | None:
        """The best node for one instance of a single-node request (that also satisfies
        `where`, when given), or None."""
        k = self.klass(r)
        heap, version = k.heap, self.version
        skipped: list[tuple[float, str, int]] = []
        chosen = None
        while heap:
            entry = heapq.heappop(heap)
            name = entry[1]
            if entry[2] != version[name]:
                continue
            if self.job_rejects(r, name) or (where is not None and not where(name)):
                skipped.append(entry)  # may suit another request of the same class
                continue
            chosen = name
            heapq.heappush(heap, entry)  # still valid until take() supersedes it
            break
        for entry in skipped:
            heapq.heappush(heap, entry)
        return chosen

    def job_rejects(self, r: TaskRequest, name: str) -> bool:
        excl = self.excl[name]
        if excl and excl != r.job:
            return True
        return r.job_exclusive and any(j != r.job for j in self.jobs[name])

    def multi(self, r: TaskRequest) -> list[tuple[str, Resources]] | None:
        """Nodes for one multi-node instance (first: where it runs), or None if it cannot start now."""
        k = self.klass(r)
        per_node = r.resources.with_cores(0)
        if k.mode == WHOLE_NODES:
            whole = [n for n in k.candidates if not self.jobs[n] and self.free[n] == self.view[n].capacity
                     and not self.job_rejects(r, n)]
            if len(whole) < r.nodes:
                return None
            return [(n, self.view[n].capacity) for n in whole[:r.nodes]]
        usable = []
        for n in k.candidates:
            free = self.free[n]
            if self.job_rejects(r, n) or free.cores < 1 or not fits(per_node, free):
                continue
            if r.exclusive and (self.jobs[n] or free != self.view[n].capacity):
                continue
            usable.append(n)
        usable.sort(key=lambda n: (-self.free[n].cores, n))
        parts, left = [], r.resources.cores
        for n in usable:
            if left <= 0:
                break
            if r.exclusive:
                parts.append((n, self.view[n].capacity))
                left -= self.view[n].capacity.cores
            else:
                take = min(left, self.free[n].cores)
                parts.append((n, r.resources.with_cores(take)))
                left -= take
        return parts if left <= 0 else None

    def given(self, r: TaskRequest, name: str) -> Resources:
        """What one single-node instance gets on the chosen node."""
        if r.exclusive:
            return self.view[name].capacity
        cores = min(max(r.max_cores, r.resources.cores), self.free[name].cores)
        return r.resources.with_cores(cores)

    # -- changing ------------------------------------------------------------------------

    def take(self, name: str, given: Resources, job: int, job_exclusive: bool) -> None:
        if self._undo is not None:
            self._undo.append((name, self.free[name], set(self.jobs[name]), self.excl[name]))
        self.free_cores -= max(0, self.free[name].cores) - max(0, self.free[name].cores - given.cores) \
            if not self.view[name].unavailable else 0
        self.free[name] = self.free[name] - given
        self.jobs[name].add(job)
        if job_exclusive:
            self.excl[name] = job
        self._changed(name)

    def _changed(self, name: str) -> None:
        self.version[name] += 1
        for k in self._member[name]:
            self._push(k, name)

    def mark(self) -> None:
        self._undo = []

    def commit(self) -> None:
        self._undo = None

    def rollback(self) -> None:
        undo, self._undo = self._undo or [], None
        for name, free, jobs, excl in reversed(undo):
            if not self.view[name].unavailable:
                self.free_cores += max(0, free.cores) - max(0, self.free[name].cores)
            self.free[name], self.jobs[name], self.excl[name] = free, jobs, excl
            self._changed(name)

    # -- why not -------------------------------------------------------------------------

    def rejections(self, r: TaskRequest) -> list[Rejection]:
        """Every node's reason for not taking one instance of `r` now."""
        k = self.klass(r)
        out = list(k.rejected)
        need = r.resources.with_cores(1) if k.mode == SPAN else None
        for name in k.candidates:
            view = self.view[name]
            if k.mode == WHOLE_NODES:
                probe = TaskRequest(r.id, view.capacity, exclusive=True, job_exclusive=r.job_exclusive)
                rejection = dynamic_check(view, self.free[name], self.jobs[name], self.excl[name], probe)
            else:
                rejection = dynamic_check(view, self.free[name], self.jobs[name], self.excl[name], r, need)
            if rejection is None and k.mode != SINGLE:
                rejection = Rejection(name, Why.BUSY, "too few nodes free at once")
            if rejection is not None:
                out.append(rejection)
        return out
