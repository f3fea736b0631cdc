"""Job-level reservations during one pass (pure): HPC Pack's "jobs reserve the resources
their tasks need".

A job with a reservation holds a pool: cores (or whole nodes) set aside for it on some
nodes. It turns Running once its minimum is held, and that first grab is all or nothing
(and, first come first served, holds up the queue until it succeeds, unless the nodes it
may use could never hold the minimum). Its tasks run only inside the pool. When a task of
the job finds no room in the pool, the pool grows by what the task needs, up to the
maximum, if some node has it free. The instances of a multi-instance task start together
or not at all, here too (what the pool grew for them is undone with them). When the job
has nothing left to run, cores no running task uses are given back, down to the minimum;
when the job ends, everything is. In the cores unit the pool holds cores only (a task's
memory and named resources come from the node as usual); in the nodes unit it holds the
whole node.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from common.resources import ZERO, Resources, fits, plural
from headnode.scheduling.board import Board
from headnode.scheduling.feasibility import explain, static_check
from headnode.scheduling.snapshot import PoolView, TaskRequest

NODES = "nodes"


@dataclass(frozen=True, slots=True)
class Grant:
    """Resources reserved for (or given back by) a job on one node."""

    job: int
    node: str
    resources: Resources


@dataclass(eq=False)
class Pool:
    view: PoolView
    held: dict[str, Resources]
    free: dict[str, Resources]  # held minus what running instances use
    grabbed_minimum: bool = False

    @property
    def unit_nodes(self) -> bool:
        return self.view.unit == NODES

    def amount(self) -> int:
        return len(self.held) if self.unit_nodes else sum(r.cores for r in self.held.values())

    def describe(self, n: int) -> str:
        return plural(n, "node" if self.unit_nodes else "core")


@dataclass
class Outcome:
    """What a pooled request came to: placements are (node, given, charged to the node)."""

    placed: list[tuple[str, Resources, Resources]] = field(default_factory=list)
    reason: str = ""
    block: bool = False


class Pools:
    def __init__(self, board: Board, views: dict[int, PoolView]) -> None:
        self.board = board
        self.pools: dict[int, Pool] = {}
        self.reserve: list[Grant] = []
        self.release: list[Grant] = []
        self.started: list[int] = []
        for job, v in views.items():
            held = dict(v.held)
            free = {n: r - v.in_use.get(n, ZERO) for n, r in held.items()}
            self.pools[job] = Pool(v, held, free)

    def __contains__(self, job: int) -> bool:
        return job in self.pools

    # -- placing -------------------------------------------------------------------------

    def place(self, r: TaskRequest) -> Outcome:
        pool = self.pools[r.job]
        out = Outcome()
        if pool.amount() < pool.view.minimum and not self._grab_minimum(pool, r, out):
            return out
        need = r.resources
        if not pool.unit_nodes and need.cores > pool.view.maximum:
            out.reason = (f"needs {plural(need.cores, 'core')}; the job's allocation is at most "
                          f"{pool.describe(pool.view.maximum)}")
            return out
        if r.gang:  # all or nothing: undo what its instances took (growth included) if one fails
            self.board.mark()
            saved = dict(pool.held), dict(pool.free), len(self.reserve)
        for _ in range(r.count):
            name = self._room(pool, r) or self._grow(pool, r, out)
            if name is None:
                break
            out.placed.append(self._use(pool, r, name))
        if r.gang:
            if len(out.placed) == r.count:
                self.board.commit()
            else:
                self.board.rollback()
                pool.held, pool.free = saved[0], saved[1]
                del self.reserve[saved[2]:]
                out.placed = []
                out.reason = f"its {r.count} instances must start together: {out.reason}"
        return out

    def _room(self, pool: Pool, r: TaskRequest) -> str | None:
        best: tuple[int, str] | None = None
        for name, pf in pool.free.items():
            view = self.board.view.get(name)
            if view is None or static_check(view, r) is not None:
                continue
            if pool.unit_nodes:
                ok = fits(r.resources, pf)
            else:
                ok = pf.cores >= r.resources.cores and fits(r.resources.with_cores(0), self.board.free[name])
            if ok and (best is None or (pf.cores, name) < best):
                best = (pf.cores, name)
        return best[1] if best else None

    def _use(self, pool: Pool, r: TaskRequest, name: str) -> tuple[str, Resources, Resources]:
        pf = pool.free[name]
        cores = min(max(r.max_cores, r.resources.cores), pf.cores)
        given = r.resources.with_cores(cores)
        if pool.unit_nodes:
            pool.free[name] = pf - given
            charged = ZERO
        else:
            pool.free[name] = pf - Resources(cores)
            charged = given.with_cores(0)
            self.board.take(name, charged, r.job, pool.view.exclusive)
        return name, given, charged

    def _grow(self, pool: Pool, r: TaskRequest, out: Outcome) -> str | None:
        step = 1 if pool.unit_nodes else r.resources.cores
        if pool.amount() + step > pool.view.maximum:
            out.reason = (f"the job's allocation is at its maximum ({pool.describe(pool.view.maximum)}) "
                          f"and in use")
            return None
        if pool.unit_nodes:
            whole = self._whole_free(pool, r)
            name = whole[0] if whole else None
            grant = self.board.view[name].capacity if name else ZERO
        else:
            name = self.board.best(r)
            grant = Resources(r.resources.cores)
        if name is None:
            rejections = self.board.rejections(r)
            out.reason = "waiting to grow the job's allocation: " + explain(r.resources, rejections, self.board.nodes)
            return None
        self._hold(pool, name, grant)
        return name

    def _grab_minimum(self, pool: Pool, r: TaskRequest, out: Outcome) -> bool:
        want = pool.view.minimum - pool.amount()
        probe = TaskRequest(r.id, Resources(1), constraints=pool.view.constraints, job_exclusive=pool.view.exclusive)
        if pool.unit_nodes:
            picks = [(n, self.board.view[n].capacity) for n in self._whole_free(pool, probe)[:want]]
            got = len(picks)
        else:
            usable = [n.name for n in self.board.nodes if static_check(n, probe) is None
                      and self.board.free[n.name].cores > 0 and not self.board.job_rejects(probe, n.name)]
            usable.sort(key=lambda n: (-self.board.free[n].cores, n))
            picks, got = [], 0
            for n in usable:
                if got >= want:
                    break
                take = min(want - got, self.board.free[n].cores)
                picks.append((n, Resources(take)))
                got += take
        if got < want and not pool.view.started:
            could = self._could_hold(pool, probe)
            if could < pool.view.minimum:  # never, even on empty nodes: do not hold up the queue
                out.reason = (f"the job's minimum allocation of {pool.describe(pool.view.minimum)} is more than "
                              f"the nodes it may use have ({pool.describe(could)})")
                return False
            out.reason = (f"waiting for the job's minimum allocation of {pool.describe(pool.view.minimum)}; "
                          f"{pool.describe(got)} free on the nodes it may use")
            out.block = True
            return False
        for name, grant in picks:
            self._hold(pool, name, grant)
        if not pool.view.started and not pool.grabbed_minimum:
            pool.grabbed_minimum = True
            self.started.append(pool.view.job)
        return True

    def _could_hold(self, pool: Pool, probe: TaskRequest) -> int:
        """How much the nodes the pool may use would hold were they empty (cores or nodes)."""
        nodes = [n for n in self.board.nodes if static_check(n, probe) is None]
        return len(nodes) if pool.unit_nodes else sum(n.capacity.cores for n in nodes)

    def _whole_free(self, pool: Pool, r: TaskRequest) -> list[str]:
        b = self.board
        return [n.name for n in b.nodes if n.name not in pool.held and static_check(n, r) is None
                and not b.jobs[n.name] and b.free[n.name] == n.capacity and not b.job_rejects(r, n.name)]

    def _hold(self, pool: Pool, name: str, grant: Resources) -> None:
        self.board.take(name, grant, pool.view.job, pool.view.exclusive)
        pool.held[name] = pool.held.get(name, ZERO) + grant
        pool.free[name] = pool.free.get(name, ZERO) + grant
        self.reserve.append(Grant(pool.view.job, name, grant))

    # -- giving back ---------------------------------------------------------------------

    def shrink(self) -> list[Grant]:
        for pool in self.pools.values():
            job = pool.view.job
            if pool.view.ended:
                self.release += [Grant(job, n, r) for n, r in pool.held.items() if r != ZERO]
                continue
            if pool.view.pending:
                continue
            spare = pool.amount() - pool.view.minimum
            for name in sorted(pool.free, key=lambda n: (-pool.free[n].cores, n)):
                if spare <= 0:
                    break
                idle = pool.free[name]
                if pool.unit_nodes:
                    if idle != pool.held[name]:
                        continue  # something still runs there
                    give, spare = pool.held[name], spare - 1
                else:
                    cores = min(idle.cores, spare)
                    if cores <= 0:
                        continue
                    give, spare = Resources(cores), spare - cores
                self.release.append(Grant(job, name, give))
        return self.release
