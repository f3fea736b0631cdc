"""Placement in the scheduling core: properties over random snapshots (no over-commit,
constraints, exclusivity, gangs, multi-node tasks, job reservations), the board's heaps
against a naive full scan, and hand-built cases for spreading, whole nodes, pools and the
pending reasons users see."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from common.constraints import NONE, Constraints, make, merge, why_not
from common.ids import TaskId
from common.resources import GPU, ZERO, Resources, fits, generic_of
from headnode.scheduling.core import Placement, Plan, schedule
from headnode.scheduling.feasibility import dynamic_check, static_check
from headnode.scheduling.policy import Policy
from headnode.scheduling.pools import Grant
from headnode.scheduling.ranking import score
from headnode.scheduling.snapshot import NodeView, PoolView, Running, Snapshot, TaskRequest

NOW = 1_700_000_000.0
NAMES = tuple(f"n{i}" for i in range(8))  # in name order, as the head node gives them
GROUPS = ("g1", "g2")
LABELS = ("avx", "ssd", "rack=1")
JOBS = (1, 2, 3, 4)
OUTSIDER = 99  # a job with work on a node but nothing queued


def res(cores: int, memory: int = 0, gpu: int = 0) -> Resources:
    return Resources(cores, memory, generic_of({GPU: gpu}))


def free_node(name: str, cores: int, memory: int = 4096, gpu: int = 0, groups: tuple[str, ...] = (),
              labels: tuple[str, ...] = ()) -> NodeView:
    return NodeView(name, res(cores, memory, gpu), ZERO, groups=frozenset(groups), labels=frozenset(labels))


def request(job: int, number: int = 1, cores: int = 1, memory: int = 0, gpu: int = 0, **kw) -> TaskRequest:
    return TaskRequest(TaskId(job, number), res(cores, memory, gpu), **kw)


# -- random snapshots ------------------------------------------------------------------------


# Strategies built once: building them inside the composites costs more than the tests.
_CHANCE = {n: st.integers(0, n - 1) for n in (1, 2, 3, 4, 5, 6, 7, 10)}
_UP_TO = {n: st.integers(0, n) for n in range(17)}
_NODE_CORES = st.sampled_from([1, 2, 4, 8, 8, 16])
_NODE_MEMORY = st.sampled_from([0, 4096, 8192, 16384])
_NODE_GPUS = st.sampled_from([0, 0, 1, 2, 4])
_OWNER = st.sampled_from((*JOBS, OUTSIDER))
_NODE_GROUPS, _NODE_LABELS = st.frozensets(st.sampled_from(GROUPS)), st.frozensets(st.sampled_from(LABELS))
_RULE_GROUPS = st.frozensets(st.sampled_from(GROUPS), max_size=1)
_RULE_REQUIRE = st.frozensets(st.sampled_from(LABELS), max_size=2)
_RULE_AVOID = st.frozensets(st.sampled_from(LABELS), max_size=1)
_RULE_NODES = st.frozensets(st.sampled_from(NAMES), max_size=3)
_JOB = st.sampled_from(JOBS)
_UNIT = st.sampled_from(["cores", "nodes"])
_CORES = st.sampled_from([1, 1, 1, 2, 2, 3, 4, 6, 12, 24])
_MEMORY = st.sampled_from([0, 0, 0, 512, 2048, 6000])
_GPUS = st.sampled_from([0, 0, 0, 0, 1, 2, 8])
_COUNT = st.integers(1, 4)
_MAX_EXTRA = st.sampled_from([None, None, 1, 4])
_WHOLE = st.integers(1, 3)


def chance(draw, n: int) -> bool:
    """True one time in n."""
    return draw(_CHANCE[n]) == 0


def up_to(draw, n: int) -> int:
    """0 to n."""
    return draw(_UP_TO[n])


@st.composite
def node_views(draw, count: int) -> tuple[NodeView, ...]:
    views = []
    for name in NAMES[:count]:
        cores, memory, gpus = draw(_NODE_CORES), draw(_NODE_MEMORY), draw(_NODE_GPUS)
        capacity = res(cores, memory, gpus)
        used, jobs, exclusive_job = ZERO, frozenset(), 0
        if chance(draw, 3):  # already running something
            used = res(1 + up_to(draw, cores - 1), memory * up_to(draw, 4) // 4, up_to(draw, gpus))
            owner = draw(_OWNER)
            jobs = frozenset({owner})
            if chance(draw, 4):
                exclusive_job = owner
        unavailable = "Draining" if chance(draw, 6) else ""
        views.append(NodeView(name, capacity, used, unavailable, draw(_NODE_GROUPS), draw(_NODE_LABELS), jobs,
                              exclusive_job))
    return tuple(views)


@st.composite
def placement_rules(draw) -> Constraints:
    if not chance(draw, 3):
        return NONE
    return make(draw(_RULE_GROUPS), draw(_RULE_REQUIRE), draw(_RULE_AVOID), draw(_RULE_NODES))


_RULES = placement_rules()


@st.composite
def snapshots(draw, pool_chance: int = 4) -> Snapshot:
    """Up to 8 nodes and 12 queued tasks of 4 jobs; each job has a reservation one time in
    `pool_chance`."""
    nodes = draw(node_views(up_to(draw, 8)))
    job_rules = {j: draw(_RULES) if chance(draw, 4) else NONE for j in JOBS}
    job_exclusive = {j: chance(draw, 5) for j in JOBS}
    pools: dict[int, PoolView] = {}
    for j in JOBS:
        if chance(draw, pool_chance):
            unit = draw(_UNIT)
            minimum = 1 + up_to(draw, 1 if unit == "nodes" else 5)
            maximum = minimum + up_to(draw, 2 if unit == "nodes" else 6)
            pools[j] = PoolView(j, unit, minimum, maximum, {}, {}, started=False, pending=True,
                                constraints=job_rules[j], exclusive=job_exclusive[j])
    numbers: Counter[int] = Counter()
    queue = []
    for _ in range(up_to(draw, 12)):
        job = draw(_JOB)
        numbers[job] += 1
        cores = draw(_CORES)
        extra = draw(_MAX_EXTRA)
        pooled = job in pools
        queue.append(TaskRequest(
            TaskId(job, numbers[job]),
            res(cores, draw(_MEMORY), draw(_GPUS)),
            count=draw(_COUNT),
            max_cores=0 if extra is None else cores + extra,
            # A reservation's tasks run on one node each (validation), and exclusivity inside a
            # pool is not defined by the core: both only for tasks outside pools.
            exclusive=not pooled and chance(draw, 7),
            gang=chance(draw, 4),
            constraints=merge(job_rules[job], draw(_RULES)),
            job_exclusive=job_exclusive[job],
            nodes=0 if pooled or not chance(draw, 10) else draw(_WHOLE),
        ))
    return Snapshot(nodes, tuple(queue), pools)


@settings(max_examples=300, deadline=None)
@given(snapshots(), st.sampled_from(["fcfs", "easy"]), st.lists(st.floats(0, 7200), min_size=8, max_size=8))
def test_a_pass_without_reasons_makes_the_same_plan(snap: Snapshot, name: str, ends: list[float]) -> None:
    """schedule(reasons=False), the trace replay's, places, reserves, preempts and sets aside
    what a pass with reasons does, and leaves the same tasks pending, each with no text.
    What runs on the nodes ends at random times, so EASY reserves and backfills."""
    running = tuple(Running(TaskId(100 + i, 1), ((n.name, n.used),), ends[i]) for i, n in enumerate(snap.nodes)
                    if n.used.cores > 0)
    snap = Snapshot(snap.nodes, snap.queue, snap.pools, running)
    full = schedule(snap, 100.0, Policy(name=name))
    bare = schedule(snap, 100.0, Policy(name=name), reasons=False)
    assert bare.pending.keys() == full.pending.keys()
    assert not any(bare.pending.values()) and not bare.everyone
    assert replace(bare, pending={}, everyone="") == replace(full, pending={}, everyone="")


def parts(p: Placement) -> list[tuple[str, Resources]]:
    return [(p.node, p.resources), *p.extra]


@settings(max_examples=400, deadline=None)
@given(snapshots(), st.sampled_from(["pack", "spread"]))
def test_random_plans_respect_every_placement_rule(snap: Snapshot, policy: str) -> None:
    check_plan(snap, policy)


@settings(max_examples=150, deadline=None)
@given(snapshots(pool_chance=1), st.sampled_from(["pack", "spread"]))
def test_random_plans_of_jobs_with_reservations(snap: Snapshot, policy: str) -> None:
    check_plan(snap, policy)


def check_plan(snap: Snapshot, policy: str) -> None:
    plan = schedule(snap, NOW, policy)
    views = {n.name: n for n in snap.nodes}
    requests = {r.id: r for r in snap.queue}
    assert len(requests) == len(tuple(snap.queue))

    # Deterministic, and the same whether the queue is a tuple or read lazily once.
    assert schedule(snap, NOW, policy) == plan
    assert schedule(Snapshot(snap.nodes, iter(tuple(snap.queue)), snap.pools), NOW, policy) == plan

    # Reservations first (they must fit what is free), then every placement in plan order.
    free = {n.name: n.free for n in snap.nodes}
    on_node: dict[str, list[int]] = defaultdict(list)  # jobs given something there, in order
    held: dict[tuple[int, str], Resources] = defaultdict(lambda: ZERO)
    assert plan.release == ()  # every pool is pending and holds nothing yet
    for g in plan.reserve:
        pool = snap.pools[g.job]
        view = views[g.node]
        assert not view.unavailable
        assert why_not(pool.constraints, g.node, view.groups, view.labels) == ""
        assert g.resources.cores >= 1
        assert fits(g.resources, free[g.node]), f"{g} over-commits {g.node}"
        if pool.unit == "nodes":
            assert g.resources == view.capacity and free[g.node] == view.capacity and not view.jobs
        assert not (view.exclusive_job and view.exclusive_job != g.job)
        free[g.node] -= g.resources
        on_node[g.node].append(g.job)
        held[g.job, g.node] += g.resources
    for job, pool in snap.pools.items():
        nodes_held = [n for (j, n) in held if j == job]
        amount = len(nodes_held) if pool.unit == "nodes" else sum(held[job, n].cores for n in nodes_held)
        assert amount <= pool.maximum
        if nodes_held:
            assert job in plan.started and amount >= pool.minimum
        assert (job in plan.started) == bool(nodes_held)

    in_pool: dict[tuple[int, str], Resources] = defaultdict(lambda: ZERO)
    for p in plan.placements:
        r = requests[p.task]
        pooled = p.charged is not None
        assert pooled == (r.job in snap.pools)
        charges = [(p.node, p.charged)] if pooled else parts(p)
        for name, part in charges:
            view = views[name]
            assert not view.unavailable, f"{p} on an unavailable node"
            assert why_not(r.constraints, name, view.groups, view.labels) == "", f"{p} breaks {r.constraints}"
            assert not (view.exclusive_job and view.exclusive_job != r.job), f"{p} on another job's exclusive node"
            if r.exclusive or r.nodes:
                assert free[name] == view.capacity and not view.jobs and not on_node[name], \
                    f"{p}: {name} was not a whole free node"
                assert part == view.capacity
            assert fits(part, free[name]), f"{p} over-commits {name}"
            free[name] -= part
            on_node[name].append(r.job)
        if pooled:
            in_pool[r.job, p.node] += p.resources
            unit = snap.pools[r.job].unit
            assert p.charged == (ZERO if unit == "nodes" else p.resources.with_cores(0))
            assert r.resources.cores <= p.resources.cores <= max(r.max_cores, r.resources.cores)
        elif r.nodes:
            assert len({n for n, _ in parts(p)}) == len(parts(p)) == r.nodes
        elif p.extra and not r.exclusive:  # spread over nodes: exactly the cores asked for
            assert sum(g.cores for _, g in parts(p)) == r.resources.cores
            assert all(g.with_cores(0) == r.resources.with_cores(0) for _, g in parts(p))
        elif not r.exclusive:
            assert p.resources.with_cores(0) == r.resources.with_cores(0)
            assert r.resources.cores <= p.resources.cores <= max(r.max_cores, r.resources.cores)
    for (job, name), used in in_pool.items():
        if snap.pools[job].unit == "nodes":
            assert fits(used, views[name].capacity) and held[job, name] == views[name].capacity
        else:
            assert used.cores <= held[job, name].cores, f"job {job} uses more of {name} than its pool holds"

    # Exclusive work: the node hosts nothing else in the whole plan.
    for p in plan.placements:
        r = requests[p.task]
        for name, _ in parts(p) if p.charged is None else [(p.node, p.charged)]:
            if r.exclusive or r.nodes:
                assert on_node[name] == [r.job], f"{name} shared with exclusive {p}"
            if r.job_exclusive:
                assert set(on_node[name]) == {r.job}, f"job {r.job} is exclusive but {name} hosts {on_node[name]}"
                assert views[name].jobs <= {r.job}

    # Gangs, counts and pending reasons, in queue order up to where the pass stopped.
    placed = Counter(p.task for p in plan.placements)
    looked = True
    for r in snap.queue:
        if not looked:
            assert placed[r.id] == 0 and r.id not in plan.pending, f"{r.id} is behind the block"
            continue
        assert placed[r.id] <= r.count
        if r.gang:
            assert placed[r.id] in (0, r.count), f"gang {r.id} partly started"
        if placed[r.id] < r.count:
            assert plan.pending.get(r.id) or plan.everyone, f"{r.id} not placed and no reason"
        else:
            assert r.id not in plan.pending
        if r.id == plan.blocked_at:
            looked = False
    if plan.blocked_at is not None:
        assert could_start_on_empty(snap, requests[plan.blocked_at]), "a task that never could start blocks"
    # What the plan would have set aside could not start even on empty nodes (or is held by
    # its owner's limit), started nothing, and says why.
    for t in plan.never:
        assert placed[t] == 0 and plan.pending.get(t), f"{t} set aside but placed or without a reason"
        assert not could_start_on_empty(snap, requests[t]), f"{t} set aside for good but could start"
    for t, _ in plan.held:
        assert placed[t] == 0 and plan.pending[t].startswith("held back by the owner limit")


def could_start_on_empty(snap: Snapshot, r: TaskRequest) -> bool:
    """Whether `r` (a gang: all its instances at once; a pooled task: its job's minimum)
    could start were every node empty."""
    if r.job in snap.pools:
        pool = snap.pools[r.job]
        probe = TaskRequest(r.id, Resources(1), constraints=pool.constraints)
        eligible = [n for n in snap.nodes if static_check(n, probe) is None]
        return (len(eligible) if pool.unit == "nodes" else sum(n.capacity.cores for n in eligible)) >= pool.minimum
    times = r.count if r.gang else 1
    if r.nodes:
        return sum(static_check(n, r, spanning=True) is None for n in snap.nodes) >= r.nodes * times
    single = [n for n in snap.nodes if static_check(n, r) is None]
    if single:
        return sum(1 if r.exclusive else _room_on_empty(r, n) for n in single) >= times
    span = [n for n in snap.nodes if static_check(n, r, spanning=True) is None]
    return sum(n.capacity.cores for n in span) >= r.resources.cores * times


# -- the heaps against a full scan -----------------------------------------------------------


def _spans(r: TaskRequest, nodes: tuple[NodeView, ...]) -> bool:
    """Whether the core would spread `r` over several nodes (outside the reference)."""
    if any(static_check(n, r) is None for n in nodes):
        return False
    span = [n for n in nodes if static_check(n, r, spanning=True) is None]
    return bool(span) and sum(n.capacity.cores for n in span) >= r.resources.cores


def _room_on_empty(r: TaskRequest, node: NodeView) -> int:
    room, left = 0, node.capacity
    while fits(r.resources, left):
        room, left = room + 1, left - r.resources
    return room


def reference(nodes: tuple[NodeView, ...], queue: tuple[TaskRequest, ...], policy: str) -> Plan:
    """A naive FCFS scheduler for single-node, non-exclusive, unpooled requests: every
    instance scans every node."""
    free = {n.name: n.free for n in nodes}
    jobs = {n.name: set(n.jobs) for n in nodes}
    placements: list[Placement] = []
    pending: dict[TaskId, str] = {}
    for r in queue:
        static = [n for n in nodes if static_check(n, r) is None]
        trial_free, trial_jobs = dict(free), {k: set(v) for k, v in jobs.items()}
        placed = []
        for _ in range(r.count):
            best = None
            for n in static:
                if dynamic_check(n, trial_free[n.name], trial_jobs[n.name], n.exclusive_job, r) is None:
                    key = (-score(n.capacity, trial_free[n.name] - r.resources, policy), n.name)
                    if best is None or key < best:
                        best = key
            if best is None:
                break
            name = best[1]
            given = r.resources.with_cores(min(max(r.max_cores, r.resources.cores), trial_free[name].cores))
            trial_free[name] -= given
            trial_jobs[name].add(r.job)
            placed.append(Placement(r.id, name, given))
        if len(placed) == r.count or not r.gang:
            placements += placed
            free, jobs = trial_free, trial_jobs
        if len(placed) == r.count:
            continue
        pending[r.id] = "?"
        if r.gang:
            if sum(_room_on_empty(r, n) for n in static) >= r.count:
                return Plan(tuple(placements), pending, r.id)
        elif static:  # some node could take it once work ends there: wait, first come first served
            return Plan(tuple(placements), pending, r.id)
    return Plan(tuple(placements), pending)


_SIMPLE_CORES = st.sampled_from([1, 1, 1, 2, 3, 4, 9])
_SIMPLE_MEMORY = st.sampled_from([0, 0, 1024, 3000])
_SIMPLE_GPUS = st.sampled_from([0, 0, 0, 1])
_SIMPLE_COUNT = st.sampled_from([1, 1, 2, 3, 6])
_GANG_COUNT = st.sampled_from([2, 3, 8, 40])  # 40: often more than the cluster holds at once
_SIMPLE_EXTRA = st.sampled_from([None, None, 2])
_SIMPLE_LENGTH = st.integers(0, 25)


@st.composite
def simple_queues(draw, nodes: tuple[NodeView, ...]) -> tuple[TaskRequest, ...]:
    queue = []
    for number in range(1, draw(_SIMPLE_LENGTH) + 1):
        cores = draw(_SIMPLE_CORES)
        extra = draw(_SIMPLE_EXTRA)
        gang = chance(draw, 4)
        r = TaskRequest(
            TaskId(draw(_JOB), number),
            res(cores, draw(_SIMPLE_MEMORY), draw(_SIMPLE_GPUS)),
            count=draw(_GANG_COUNT if gang else _SIMPLE_COUNT),
            max_cores=0 if extra is None else cores + extra,
            gang=gang,
            constraints=draw(_RULES),
        )
        if not _spans(r, nodes):
            queue.append(r)
    return tuple(queue)


@settings(max_examples=400, deadline=None)
@given(st.data(), st.sampled_from(["pack", "spread"]))
def test_board_choice_equals_a_full_scan(data: st.DataObject, policy: str) -> None:
    nodes = data.draw(node_views(data.draw(_UP_TO[8])))
    queue = data.draw(simple_queues(nodes))
    plan = schedule(Snapshot(nodes, queue), NOW, policy)
    expected = reference(nodes, queue, policy)
    assert plan.placements == expected.placements
    assert plan.blocked_at == expected.blocked_at
    # Where no node takes work, one reason stands for every task's (Plan.everyone).
    assert (set(plan.pending) if not plan.everyone else {r.id for r in queue}) == set(expected.pending)


# -- hand-built cases ------------------------------------------------------------------------


def test_a_node_one_job_holds_exclusively_still_serves_that_job() -> None:
    held = NodeView("a", res(4, 4096), res(1, 0), jobs=frozenset({2}), exclusive_job=2)
    plan = schedule(Snapshot((held, free_node("b", 4)), (request(1), request(2), request(2, 2))), NOW)
    # Job 1 may not use a, so it skips it; the same shape of task from job 2 then packs onto a.
    assert [(p.task, p.node) for p in plan.placements] == [(TaskId(1, 1), "b"), (TaskId(2, 1), "a"),
                                                           (TaskId(2, 2), "a")]


def test_a_gang_that_can_never_start_gives_back_what_it_tried() -> None:
    never = request(1, count=5, gang=True)  # 4 cores in all
    plan = schedule(Snapshot((free_node("a", 2), free_node("b", 2)), (never, request(2, count=4))), NOW)
    assert plan.blocked_at is None
    assert [p.node for p in plan.placements] == ["a", "a", "b", "b"]
    assert all(p.task == TaskId(2, 1) for p in plan.placements)


def test_a_task_wider_than_any_node_spreads_over_the_most_free_first() -> None:
    nodes = (free_node("a", 4), free_node("b", 8), NodeView("c", res(8, 4096), res(2, 0), jobs=frozenset({7})),
             free_node("d", 2))
    wide = request(1, cores=12, memory=100)
    plan = schedule(Snapshot(nodes, (wide,)), NOW)
    (p,) = plan.placements
    assert p.node == "b" and p.resources == res(8, 100)
    assert p.extra == (("c", res(4, 100)),)
    assert p.resources.cores + sum(g.cores for _, g in p.extra) == 12
    assert plan.pending == {} and plan.blocked_at is None


def test_nodes_two_takes_two_whole_free_nodes() -> None:
    nodes = (NodeView("a", res(4, 4096), res(1, 0), jobs=frozenset({7})), free_node("b", 4, 1000),
             free_node("c", 4, 2000), free_node("d", 4))
    plan = schedule(Snapshot(nodes, (request(1, nodes=2), request(2))), NOW)
    first, second = plan.placements
    assert (first.node, first.resources, first.extra) == ("b", res(4, 1000), (("c", res(4, 2000)),))
    assert (second.task, second.node) == (TaskId(2, 1), "a"), "the other task does not land on b or c"


def test_more_whole_nodes_than_the_cluster_has_does_not_hold_up_the_queue() -> None:
    nodes = (free_node("a", 4), free_node("b", 4), free_node("c", 4, groups=("g1",)))
    for big in (request(1, nodes=3, constraints=make(groups=["g1"])),
                request(1, nodes=2, count=2, gang=True),
                request(1, nodes=4)):
        plan = schedule(Snapshot(nodes, (big, request(2))), NOW)
        assert plan.blocked_at is None, plan
        assert [p.task for p in plan.placements] == [TaskId(2, 1)]
        assert "whole nodes at once" in plan.pending[big.id]
    plan = schedule(Snapshot(nodes, (request(1, nodes=4), request(2))), NOW)
    assert plan.pending[TaskId(1, 1)] == "needs 4 whole nodes at once: only 3 of the 3 nodes can take it"
    busy = (NodeView("a", res(4, 4096), res(1, 0), jobs=frozenset({7})), free_node("b", 4))
    plan = schedule(Snapshot(busy, (request(1, nodes=2), request(2))), NOW)
    assert plan.blocked_at == TaskId(1, 1) and plan.placements == (), "two nodes exist: it waits for them"


def test_a_pooled_job_grabs_its_minimum_runs_inside_and_grows_to_its_maximum() -> None:
    nodes = (free_node("a", 8), free_node("b", 8))
    pool = PoolView(1, "cores", 4, 6, pending=True)
    sweep = request(1, count=10, memory=100)
    plan = schedule(Snapshot(nodes, (sweep, request(2, cores=8)), {1: pool}), NOW)
    assert plan.started == (1,)
    assert plan.reserve[0] == Grant(1, "a", Resources(4)), "the minimum at once, most free node first"
    assert sum(g.resources.cores for g in plan.reserve) == 6, "grows to the maximum, not beyond"
    mine = [p for p in plan.placements if p.task == sweep.id]
    assert len(mine) == 6
    assert all(p.charged == res(0, 100) and p.resources == res(1, 100) for p in mine)
    assert plan.pending[sweep.id] == "the job's allocation is at its maximum (6 cores) and in use"
    other = [p for p in plan.placements if p.task.job == 2]
    assert [(p.node, p.charged) for p in other] == [("b", None)], "the pool does not hold up the queue"


def test_a_pooled_job_waits_for_its_whole_minimum_and_holds_up_the_queue() -> None:
    nodes = (free_node("a", 4), NodeView("b", res(4, 4096), res(3, 0), jobs=frozenset({7})))
    pool = PoolView(1, "cores", 6, 8, pending=True)
    plan = schedule(Snapshot(nodes, (request(1), request(2)), {1: pool}), NOW)
    assert plan.placements == () and plan.reserve == () and plan.started == ()
    assert plan.blocked_at == TaskId(1, 1)
    assert plan.pending[TaskId(1, 1)] == ("waiting for the job's minimum allocation of 6 cores; "
                                          "5 cores free on the nodes it may use")


def test_a_minimum_the_cluster_could_never_hold_does_not_hold_up_the_queue() -> None:
    nodes = (free_node("a", 4), free_node("b", 4), free_node("c", 4, groups=("g1",)))
    for pool, reason in (
        (PoolView(1, "cores", 14, 16, pending=True), "14 cores is more than the nodes it may use have (12 cores)"),
        (PoolView(1, "nodes", 2, 2, pending=True, constraints=make(groups=["g1"])),
         "2 nodes is more than the nodes it may use have (1 node)"),
    ):
        plan = schedule(Snapshot(nodes, (request(1), request(2)), {1: pool}), NOW)
        assert plan.pending[TaskId(1, 1)] == f"the job's minimum allocation of {reason}"
        assert plan.blocked_at is None and plan.reserve == () and plan.started == ()
        assert [p.task for p in plan.placements] == [TaskId(2, 1)]


def test_a_pool_of_whole_nodes() -> None:
    nodes = (NodeView("a", res(4, 4096), res(1, 0), jobs=frozenset({7})), free_node("b", 4), free_node("c", 4),
             free_node("d", 4))
    pool = PoolView(1, "nodes", 1, 2, pending=True)
    plan = schedule(Snapshot(nodes, (request(1, count=12),), {1: pool}), NOW)
    assert plan.started == (1,)
    assert plan.reserve == (Grant(1, "b", res(4, 4096)), Grant(1, "c", res(4, 4096)))
    assert len(plan.placements) == 8 and {p.node for p in plan.placements} == {"b", "c"}
    assert all(p.charged == ZERO for p in plan.placements)
    assert plan.pending[TaskId(1, 1)] == "the job's allocation is at its maximum (2 nodes) and in use"


def test_a_pooled_gang_starts_together_or_not_at_all() -> None:
    nodes = (free_node("a", 8), free_node("b", 8))
    pool = PoolView(1, "cores", 2, 3, pending=True)
    gang = request(1, count=4, gang=True)
    plan = schedule(Snapshot(nodes, (gang, request(2)), {1: pool}), NOW)
    assert plan.placements[0].task == TaskId(2, 1) and len(plan.placements) == 1
    assert plan.started == (1,) and sum(g.resources.cores for g in plan.reserve) == 2, "keeps only its minimum"
    assert plan.pending[gang.id] == ("its 4 instances must start together: "
                                     "the job's allocation is at its maximum (3 cores) and in use")
    roomy = PoolView(1, "cores", 2, 4, pending=True)
    plan = schedule(Snapshot(nodes, (gang,), {1: roomy}), NOW)
    assert len(plan.placements) == 4 and sum(g.resources.cores for g in plan.reserve) == 4


def test_shrink_gives_back_idle_cores_down_to_the_minimum() -> None:
    nodes = (NodeView("a", res(8, 4096), res(4, 0), jobs=frozenset({1})),
             NodeView("b", res(8, 4096), res(4, 0), jobs=frozenset({1})))
    held = {"a": Resources(4), "b": Resources(4)}
    idle = PoolView(1, "cores", 2, 8, held, {"a": Resources(3), "b": Resources(0)}, started=True, pending=False)
    plan = schedule(Snapshot(nodes, (), {1: idle}), NOW)
    assert plan.release == (Grant(1, "b", Resources(4)), Grant(1, "a", Resources(1)))
    still = PoolView(1, "cores", 2, 8, held, {"a": Resources(3)}, started=True, pending=True)
    assert schedule(Snapshot(nodes, (), {1: still}), NOW).release == (), "work still queued: keep it"
    busy = PoolView(1, "cores", 2, 8, held, {"a": Resources(4), "b": Resources(4)}, started=True, pending=False)
    assert schedule(Snapshot(nodes, (), {1: busy}), NOW).release == ()
    ended = PoolView(1, "cores", 2, 8, held, {"a": Resources(4)}, started=True, ended=True)
    assert schedule(Snapshot(nodes, (), {1: ended}), NOW).release == (
        Grant(1, "a", Resources(4)), Grant(1, "b", Resources(4)))


def test_constraint_reasons_name_the_rule() -> None:
    nodes = (free_node("a", 4, groups=("g1",), labels=("ssd",)),)
    cases = {
        "not in group g2": make(groups=["g2"]),
        "lacks label avx": make(require=["avx"]),
        "has avoided label ssd": make(avoid=["ssd"]),
        "not one of the requested nodes": make(nodes=["b"]),
    }
    for rule, constraints in cases.items():
        plan = schedule(Snapshot(nodes, (request(1, constraints=constraints), request(2))), NOW)
        assert plan.pending[TaskId(1, 1)] == f"no node satisfies its placement constraints (a: {rule})"
        assert [p.task for p in plan.placements] == [TaskId(2, 1)], "a task no node may take does not block"


def test_more_gpus_than_any_node_has() -> None:
    nodes = (free_node("a", 8, gpu=2), free_node("b", 8, gpu=2), free_node("c", 8))
    plan = schedule(Snapshot(nodes, (request(1, gpu=8), request(2, gpu=2))), NOW)
    assert plan.pending[TaskId(1, 1)] == "no node has gpu=8; largest has gpu=2"
    assert [(p.task, p.node, p.resources) for p in plan.placements] == [(TaskId(2, 1), "a", res(1, 0, 2))]
