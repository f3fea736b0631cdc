// Development mock of the head node's dashboard API (../API.md): fixture JSON and fake
// server-sent event streams, so the pages can be developed without a cluster. Not shipped.
//
//   node dev/mock.js            API on http://127.0.0.1:8089 (+ the built dashboard at /)
//   npm run dev                 Vite dev server, proxying /api to the mock
//
// Environment: PORT (8089), MOCK_JOBS (100000 jobs), MOCK_AUTH=1 (ask for a log-in first),
// MOCK_SECURE=1 (log in with a token).
import { createServer } from 'node:http';
import { readFileSync, existsSync, statSync } from 'node:fs';
import { join, dirname, extname, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';

const PORT = Number(process.env.PORT || 8089);
const N = Number(process.env.MOCK_JOBS || 100000);
const AUTH = process.env.MOCK_AUTH === '1';
const SECURE = process.env.MOCK_SECURE === '1';
const STATIC = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'headnode', 'web', 'static');
const STATES = ['Configuring', 'Queued', 'Running', 'Finished', 'Failed', 'Cancelled'];
const CODE = { Configuring: 'C', Queued: 'Q', Running: 'R', Finished: 'F', Failed: 'X', Cancelled: 'K' };
const OWNERS = ['alice', 'bob', 'carol', 'dave'];
const NAMES = ['train', 'etl-nightly', 'render', 'sweep-params', 'blast', 'compile'];
const now = () => Date.now() / 1000;
const iso = (t) => new Date(t * 1000).toISOString();
const T0 = now() - N * 30; // job i was submitted at T0 + 30 i

// Deterministic pseudo-random numbers.
function rnd(seed) {
  let x = (seed * 2654435761) >>> 0;
  x ^= x << 13;
  x ^= x >>> 17;
  x ^= x << 5;
  return (x >>> 0) / 4294967296;
}

// ---- nodes
const nodes = Array.from({ length: 6 }, (_, i) => {
  const name = `node-${String(i + 1).padStart(2, '0')}`;
  const state = i === 3 ? 'DRAINING' : i === 5 ? 'UNREACHABLE' : 'ONLINE';
  return {
    name,
    state: 'NODE_STATE_' + state,
    reason: i === 3 ? 'kernel upgrade, ticket OPS-42 (alice)' : i === 5 ? 'no heartbeat for 90s' : '',
    connected: i !== 5,
    capacity: { cores: 16, memory_mb: '65536', generic: i === 4 ? { gpu: '4' } : {} },
    allocated: { cores: i === 5 ? 0 : 4 + i, memory_mb: String(4096 * (i + 1)), generic: i === 4 ? { gpu: '2' } : {} },
    running_tasks: i === 5 ? 0 : 2 + i,
    last_heartbeat: iso(now() - (i === 5 ? 95 : 2)),
    registered_time: iso(now() - 86400 * 3),
    hostname: `${name}.cluster.local`,
    agent_version: '0.1.0',
    groups: i < 3 ? ['cpu'] : ['cpu', 'big'],
    labels: i === 4 ? ['gpu', 'a100'] : [],
    state_time: iso(now() - 3600),
    history: [],
    tasks: [],
  };
});
function nodeDetail(n) {
  const beats = [];
  let t = now() - 60 * 5;
  for (let i = 0; i < 60; i++) {
    t += i === 40 ? 22 : 5;
    beats.push({ time: iso(t), tasks: Math.max(0, Math.round(n.running_tasks + Math.sin(i / 5) * 2)) });
  }
  return {
    ...n,
    last_heartbeat: beats[beats.length - 1].time,
    history: [
      { time: iso(now() - 86400 * 3), state: 'NODE_STATE_ONLINE', reason: 'registered' },
      ...(n.state !== 'NODE_STATE_ONLINE' ? [{ time: iso(now() - 3600), state: n.state, reason: n.reason }] : []),
    ],
    tasks: Array.from({ length: n.running_tasks }, (_, k) => (k === 0 ? `${N - 1}.1.${k + 7}` : `${N - 2 - k}.1`)),
    heartbeats: beats,
  };
}

// ---- jobs: generic ones computed from the id; the newest three are special and mutable.
const SWEEP = 100000;
const special = new Map();
function counts(by) {
  return {
    configuring: by.Configuring || 0,
    queued: by.Queued || 0,
    running: by.Running || 0,
    finished: by.Finished || 0,
    failed: by.Failed || 0,
    cancelled: by.Cancelled || 0,
  };
}
function genericState(id) {
  const age = N - id;
  if (age < 20) return rnd(id) < 0.5 ? 'Queued' : 'Running';
  if (age < 60) return ['Running', 'Finished', 'Queued'][Math.floor(rnd(id) * 3)];
  const r = rnd(id);
  return r < 0.9 ? 'Finished' : r < 0.97 ? 'Failed' : 'Cancelled';
}
const overrides = new Map(); // id -> state changed by the event generator
function genericJob(id) {
  const state = overrides.get(id) || genericState(id);
  const submit = T0 + id * 30;
  const started = state !== 'Queued' && state !== 'Configuring';
  const ended = ['Finished', 'Failed', 'Cancelled'].includes(state);
  return {
    id: String(id),
    name: `${NAMES[id % NAMES.length]}-${id}`,
    owner: OWNERS[id % OWNERS.length],
    state: 'JOB_STATE_' + state.toUpperCase(),
    reason: state === 'Failed' ? 'task 1 failed: exit code 2' : '',
    pending_reason: state === 'Queued' ? 'waiting for 4 cores (2 free)' : '',
    create_time: iso(submit),
    submit_time: iso(submit),
    ...(started ? { start_time: iso(submit + 5) } : {}),
    ...(ended ? { end_time: iso(submit + 5 + 20 + (id % 300)) } : {}),
    task_counts: counts({ [state]: 1 }),
    tasks: [],
    history: [],
    spec: { name: '', project: id % 3 ? 'physics' : 'bio', priority: 'PRIORITY_NORMAL', priority_offset: 0 },
    held: false,
    task_total: 1,
    allocated_nodes: [],
  };
}
function task(jobId, id, name, state, deps, extra = {}) {
  return {
    ref: { job_id: String(jobId), task_id: id, instance_id: 0 },
    spec: { name, command_line: extra.cmd || `./run.sh ${name}`, depends_on: deps, ...(extra.sweep ? { sweep: extra.sweep } : {}), instances: 0 },
    state: 'TASK_STATE_' + state.toUpperCase(),
    reason: state === 'Failed' ? 'exit code 1' : '',
    pending_reason: state === 'Queued' ? (deps.length ? `waiting for ${deps.join(', ')}` : 'waiting for cores') : '',
    node: state === 'Running' || state === 'Finished' ? 'node-02' : '',
    attempt: 1,
    ...(state === 'Finished' ? { exit_code: 0 } : state === 'Failed' ? { exit_code: 1 } : {}),
    signal: 0,
    ...(state !== 'Queued' ? { start_time: iso(now() - 600) } : {}),
    ...(state === 'Finished' || state === 'Failed' ? { end_time: iso(now() - 300) } : {}),
    history: [
      { time: iso(now() - 900), state: 'TASK_STATE_QUEUED', reason: '', seq: String(id * 3), instance_id: 0 },
      ...(state !== 'Queued' ? [{ time: iso(now() - 600), state: 'TASK_STATE_RUNNING', reason: 'on node-02', seq: String(id * 3 + 1), instance_id: 0 }] : []),
    ],
    stdout_bytes: '2048',
    stderr_bytes: '0',
    instance_count: extra.count || 1,
    instance_counts: counts(extra.by || { [state]: 1 }),
    other_nodes: [],
  };
}
// The DAG job: prep -> {a, b, c} -> merge -> report, plus lint (a second root).
function dagJob() {
  const id = N;
  const s = special.get(id) || { tick: 0 };
  special.set(id, s);
  const order = ['prep', 'lint', 'sim-a', 'sim-b', 'sim-c', 'merge', 'report'];
  const deps = { prep: [], lint: [], 'sim-a': ['prep'], 'sim-b': ['prep'], 'sim-c': ['prep', 'lint'], merge: ['sim-a', 'sim-b', 'sim-c'], report: ['merge'] };
  const stateOf = (name) => {
    const depth = { prep: 0, lint: 0, 'sim-a': 1, 'sim-b': 1, 'sim-c': 1, merge: 2, report: 3 }[name];
    const t = Math.floor(s.tick / 20) % 6;
    if (depth < t - 1) return name === 'sim-b' ? 'Failed' : 'Finished';
    if (depth === t - 1 || (depth === 0 && t === 0)) return 'Running';
    return 'Queued';
  };
  const tasks = order.map((n, i) => task(id, i + 1, n, stateOf(n), deps[n]));
  const by = {};
  for (const t of tasks) {
    const st = t.state.replace('TASK_STATE_', '');
    const k = st.charAt(0) + st.slice(1).toLowerCase();
    by[k] = (by[k] || 0) + 1;
  }
  const state = by.Running ? 'Running' : by.Queued ? 'Running' : by.Failed ? 'Failed' : 'Finished';
  return {
    ...genericJob(id),
    name: 'pipeline-dag',
    owner: 'alice',
    state: 'JOB_STATE_' + state.toUpperCase(),
    pending_reason: '',
    start_time: iso(now() - 900),
    task_counts: counts(by),
    tasks,
    task_total: tasks.length,
    history: [
      { time: iso(now() - 1000), state: 'JOB_STATE_QUEUED', reason: 'submitted by alice', seq: '1' },
      { time: iso(now() - 900), state: 'JOB_STATE_RUNNING', reason: '', seq: '2' },
    ],
  };
}
// The sweep job: 100,000 instances moving Queued -> Running -> Finished (some Failed).
const sweepStates = new Uint8Array(SWEEP).fill(CODE.Queued.charCodeAt(0));
let sweepDone = 0;
function advanceSweep(k) {
  const R = 82, F = 70, X = 88, Q = 81;
  let changed = 0;
  for (let i = sweepDone; i < Math.min(SWEEP, sweepDone + 64) && changed < k; i++) {
    if (sweepStates[i] === R) {
      sweepStates[i] = rnd(i) < 0.03 ? X : F;
      changed++;
    }
  }
  while (sweepDone < SWEEP && (sweepStates[sweepDone] === F || sweepStates[sweepDone] === X)) sweepDone++;
  let running = 0;
  for (let i = sweepDone; i < Math.min(SWEEP, sweepDone + 200); i++) if (sweepStates[i] === R) running++;
  for (let i = sweepDone; i < SWEEP && running < 40; i++) {
    if (sweepStates[i] === Q) {
      sweepStates[i] = R;
      running++;
    }
  }
}
// Start a good part of the way in, so the grid shows several states.
for (let i = 0; i < 30000; i++) sweepStates[i] = rnd(i) < 0.03 ? 88 : 70;
sweepDone = 30000;
advanceSweep(0);
function sweepCounts() {
  const by = {};
  for (const c of sweepStates) {
    const s = { 67: 'Configuring', 81: 'Queued', 82: 'Running', 70: 'Finished', 88: 'Failed', 75: 'Cancelled' }[c];
    by[s] = (by[s] || 0) + 1;
  }
  return by;
}
function sweepJob() {
  const id = N - 1;
  const by = sweepCounts();
  const t = task(id, 1, 'sweep', 'Running', [], { sweep: { start: '1', end: String(SWEEP), step: '1' }, count: SWEEP, by, cmd: 'python sim.py --seed ******' });
  t.node = '';
  t.history.push({ time: iso(now() - 500), state: 'TASK_STATE_FAILED', reason: 'exit code 3', seq: '9', instance_id: 17 });
  return {
    ...genericJob(id),
    name: 'big-sweep',
    owner: 'bob',
    state: 'JOB_STATE_RUNNING',
    pending_reason: '',
    start_time: iso(now() - 7200),
    task_counts: counts(by),
    tasks: [t],
    task_total: 1,
    history: [
      { time: iso(now() - 7300), state: 'JOB_STATE_QUEUED', reason: 'submitted by bob', seq: '1' },
      { time: iso(now() - 7200), state: 'JOB_STATE_RUNNING', reason: '', seq: '2' },
    ],
  };
}
function job(id) {
  if (id === N) return dagJob();
  if (id === N - 1) return sweepJob();
  if (id < 1 || id > N) return null;
  const j = genericJob(id);
  const st = j.state.replace('JOB_STATE_', '');
  const k = st.charAt(0) + st.slice(1).toLowerCase();
  j.tasks = [task(id, 1, 'main', k, [], { cmd: `echo hello from job ${id}` })];
  j.history = [
    { time: j.submit_time, state: 'JOB_STATE_QUEUED', reason: `submitted by ${j.owner}`, seq: '1' },
    ...(j.start_time ? [{ time: j.start_time, state: 'JOB_STATE_RUNNING', reason: '', seq: '4' }] : []),
    ...(j.end_time ? [{ time: j.end_time, state: j.state, reason: j.reason, seq: '6' }] : []),
  ];
  return j;
}
function summary(j) {
  const { tasks, history, ...rest } = j;
  return { ...rest, tasks: [], history: [] };
}
function grid(id) {
  const j = job(id);
  if (!j) return null;
  if (id === N - 1) return { job_id: id, tasks: [{ task_id: 1, name: 'sweep', count: SWEEP, first: 1, step: 1, states: Buffer.from(sweepStates).toString('latin1') }] };
  return {
    job_id: id,
    tasks: j.tasks.map((t) => {
      const st = t.state.replace('TASK_STATE_', '');
      return { task_id: t.ref.task_id, name: t.spec.name, count: 1, first: 1, step: 1, states: CODE[st.charAt(0) + st.slice(1).toLowerCase()] };
    }),
  };
}
function listJobs(q) {
  const states = q.getAll('state').flatMap((s) => s.split(',')).filter(Boolean);
  const owner = q.get('owner') || '';
  const name = q.get('name') || '';
  const size = Math.min(1000, Number(q.get('page_size') || 50));
  const offset = Number(q.get('page_token') || 0);
  const out = [];
  let total = 0;
  for (let id = N; id >= 1; id--) {
    const j = id >= N - 1 ? job(id) : null;
    const st = j ? j.state : 'JOB_STATE_' + (overrides.get(id) || genericState(id)).toUpperCase();
    const short = st.replace('JOB_STATE_', '');
    if (states.length && !states.some((s) => s.toUpperCase() === short)) continue;
    if (owner && (j ? j.owner : OWNERS[id % OWNERS.length]) !== owner) continue;
    if (name && !(j ? j.name : `${NAMES[id % NAMES.length]}-${id}`).includes(name)) continue;
    if (total >= offset && out.length < size) out.push(summary(j || genericJob(id)));
    total++;
  }
  return { jobs: out, next_page_token: offset + size < total ? String(offset + size) : '', total: String(total) };
}

// ---- cluster overview, series and throughput
const series = [];
const throughput = [];
function sample(t) {
  const u = (Math.sin(t / 300) + 1) / 2;
  return {
    t,
    cores_used: Math.round(20 + 50 * u),
    cores_total: 96,
    memory_used_mb: Math.round(60000 + 200000 * u),
    memory_total_mb: 393216,
    gpus_used: Math.round(4 * u),
    gpus_total: 4,
    queued: Math.round(70000 * (1 - u / 3)),
    running: Math.round(40 + 20 * u),
  };
}
{
  const t = Math.floor(now() / 2) * 2;
  for (let s = t - 3600; s <= t; s += 2) series.push(sample(s));
  const m = Math.floor(now() / 60) * 60;
  for (let s = m - 59 * 60; s <= m; s += 60) throughput.push({ t: s, finished: Math.round(20 + 15 * rnd(s)), failed: rnd(s + 1) < 0.2 ? 2 : 0 });
}
function overview() {
  const last = series[series.length - 1];
  const byState = { Online: 0, Draining: 0, Offline: 0, Unreachable: 0 };
  for (const n of nodes) {
    const s = n.state.replace('NODE_STATE_', '');
    byState[s.charAt(0) + s.slice(1).toLowerCase()]++;
  }
  const jobs = { Configuring: 0, Queued: 0, Running: 0, Finished: 0, Failed: 0, Cancelled: 0 };
  for (let id = Math.max(1, N - 2000); id <= N; id++) jobs[overrides.get(id) || genericState(id)]++;
  jobs.Finished += Math.max(0, N - 2000);
  const sc = sweepCounts();
  return {
    time: now(),
    nodes: { total: nodes.length, connected: nodes.filter((n) => n.connected).length, by_state: byState },
    cores: { used: last.cores_used, total: last.cores_total },
    memory_mb: { used: last.memory_used_mb, total: last.memory_total_mb },
    gpus: { used: last.gpus_used, total: last.gpus_total },
    jobs,
    tasks: { Configuring: 0, Queued: sc.Queued || 0, Running: sc.Running || 0, Finished: (sc.Finished || 0) + N, Failed: sc.Failed || 0, Cancelled: 0 },
    series,
    throughput,
    finished_last_hour: throughput.reduce((a, m) => a + m.finished, 0),
  };
}

// ---- usage
function usage(q) {
  const by = q.get('by') || 'owner';
  const keys = by === 'project' ? ['physics', 'bio', ''] : OWNERS;
  const rows = keys.map((key, i) => ({
    key,
    jobs: String(1000 + i * 377),
    tasks: String(5000 + i * 1234),
    failed: String(12 * i),
    core_seconds: 3600 * (500 + 300 * i),
    wall_seconds: 3600 * (200 + 90 * i),
    max_memory_mb: String(4096 * (i + 1)),
    nonzero_exits: String(12 * i),
    owner: '',
    project: '',
    name: '',
    state: 'JOB_STATE_UNSPECIFIED',
    exit_codes: '',
  }));
  const sum = (f) => rows.reduce((a, r) => a + Number(r[f]), 0);
  return {
    rows,
    total: { key: '', jobs: String(sum('jobs')), tasks: String(sum('tasks')), failed: String(sum('failed')), core_seconds: sum('core_seconds'), wall_seconds: sum('wall_seconds'), max_memory_mb: '16384', nonzero_exits: String(sum('nonzero_exits')) },
    truncated: false,
  };
}
function usageSeries(q) {
  const bucket = q.get('bucket') === 'day' ? 'day' : 'hour';
  const n = Number(q.get('buckets') || 24);
  const step = bucket === 'day' ? 86400 : 3600;
  const start = Math.floor(now() / step) * step - (n - 1) * step;
  const owner = q.get('owner') || '';
  const points = Array.from({ length: n }, (_, i) => {
    const t = start + i * step;
    const r = rnd(t + owner.length);
    return { t, core_seconds: Math.round(step * 8 * r * (owner ? 1 : 3)), jobs: Math.round(30 * r), failed: r < 0.2 ? 1 : 0, wall_seconds: step * r };
  });
  return { owner, bucket, points };
}

// ---- HTTP
function send(res, status, body, headers = {}) {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers });
  res.end(JSON.stringify(body));
}
const fail = (res, status, code, error) => send(res, status, { error, code, ...(status === 401 ? { secure: SECURE } : {}) });
function cookieUser(req) {
  const m = /(?:^|;\s*)shoal_session=([^;]+)/.exec(req.headers.cookie || '');
  return m ? decodeURIComponent(m[1]) : AUTH ? '' : 'alice';
}
function sse(res) {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
  res.write(': hello\n\n');
  return (event, data) => res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
}
const clients = new Set();

function events(req, res, q) {
  const topics = new Set((q.get('topics') || '').split(',').filter(Boolean));
  const emit = sse(res);
  const client = { topics, emit };
  clients.add(client);
  const ka = setInterval(() => res.write(': keepalive\n\n'), 15000);
  req.on('close', () => {
    clients.delete(client);
    clearInterval(ka);
  });
}
function broadcast(topic, data) {
  for (const c of clients) if (c.topics.has(topic)) c.emit(topic, data);
}
// Every 2 s: a cluster sample and the node list.
setInterval(() => {
  const p = sample(Math.floor(now() / 2) * 2);
  if (p.t > series[series.length - 1].t) {
    series.push(p);
    while (series[0].t < p.t - 3600) series.shift();
  }
  const m = Math.floor(now() / 60) * 60;
  let last = throughput[throughput.length - 1];
  if (last.t !== m) {
    last = { t: m, finished: 0, failed: 0 };
    throughput.push(last);
    while (throughput[0].t < m - 59 * 60) throughput.shift();
  }
  last.finished += Math.round(rnd(p.t) * 2);
  for (const n of nodes) if (n.connected) n.last_heartbeat = iso(now());
  const { series: _s, throughput: _t, ...ov } = overview();
  broadcast('cluster', { ...ov, point: p, minute: last });
  broadcast('nodes', { nodes });
}, 2000);
// Every 250 ms: a batch of job events (the sweep advances; recent jobs change state).
let tick = 0;
setInterval(() => {
  tick++;
  const evs = [];
  advanceSweep(8);
  const sj = sweepJob();
  evs.push({ time: iso(now()), job_id: String(N - 1), job_state: sj.state, task: { job_id: String(N - 1), task_id: 1, instance_id: sweepDone + 1 }, task_state: 'TASK_STATE_FINISHED', reason: '', task_counts: sj.task_counts, seq: String(tick) });
  const dj = special.get(N) || { tick: 0 };
  dj.tick++;
  special.set(N, dj);
  if (dj.tick % 20 === 0) {
    const j = dagJob();
    evs.push({ time: iso(now()), job_id: String(N), job_state: j.state, task_counts: j.task_counts, seq: String(tick) });
  }
  if (tick % 4 === 0) {
    const id = N - 2 - Math.floor(rnd(tick) * 40);
    const cur = overrides.get(id) || genericState(id);
    const next = cur === 'Queued' ? 'Running' : cur === 'Running' ? (rnd(tick + 7) < 0.1 ? 'Failed' : 'Finished') : cur;
    if (next !== cur) {
      overrides.set(id, next);
      evs.push({ time: iso(now()), job_id: String(id), job_state: 'JOB_STATE_' + next.toUpperCase(), task_counts: counts({ [next]: 1 }), seq: String(tick) });
    }
  }
  broadcast('jobs', evs);
}, 250);

function output(req, res, q, jobId, taskId) {
  const inst = Number(q.get('instance') || 0);
  const stream = q.get('stream') || 'stdout';
  let offset = Number(q.get('offset') || 0);
  const emit = sse(res);
  const j = job(jobId);
  if (!j) {
    emit('error', { error: `job ${jobId} not found`, code: 'NOT_FOUND' });
    return res.end();
  }
  const lines = stream === 'stderr' ? 3 : jobId === N - 2 ? 100000 : 60;
  const line = (i) => (stream === 'stderr' ? `warning ${i}: instance ${inst} of task ${taskId} is a mock\n` : `[${iso(now())}] job ${jobId} task ${taskId}.${inst} step ${i}: ${'x'.repeat(i % 40)}\n`);
  let i = 0;
  let bytesSoFar = 0;
  // Skip what the client already has.
  while (i < lines && bytesSoFar + Buffer.byteLength(line(i)) <= offset) bytesSoFar += Buffer.byteLength(line(i++));
  offset = bytesSoFar;
  const burst = jobId === N - 2 ? 400 : 2;
  const timer = setInterval(() => {
    let text = '';
    for (let k = 0; k < burst && i < lines; k++) text += line(i++);
    if (text) {
      emit('chunk', { offset, text });
      offset += Buffer.byteLength(text);
    }
    if (i >= lines) {
      emit('end', {});
      clearInterval(timer);
      res.end();
    }
  }, 100);
  req.on('close', () => clearInterval(timer));
}

function serveStatic(req, res, path) {
  const file = normalize(join(STATIC, path === '/' ? 'index.html' : path));
  if (!file.startsWith(STATIC) || !existsSync(file) || !statSync(file).isFile()) {
    res.writeHead(404, { 'content-type': 'text/plain' });
    return res.end('not found (run `npm run build` to serve the dashboard from the mock)');
  }
  const type = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.txt': 'text/plain' }[extname(file)] || 'application/octet-stream';
  res.writeHead(200, { 'content-type': type });
  res.end(readFileSync(file));
}

createServer(async (req, res) => {
  const u = new URL(req.url, 'http://x');
  const path = u.pathname;
  const q = u.searchParams;
  if (!path.startsWith('/api/')) return serveStatic(req, res, path);
  if (path === '/api/session') {
    if (req.method === 'POST') {
      let body = '';
      for await (const c of req) body += c;
      const b = JSON.parse(body || '{}');
      const user = SECURE ? (String(b.token || '').startsWith('shoal1.') ? 'alice' : '') : String(b.user || '').trim();
      if (!user) return fail(res, 401, 'UNAUTHENTICATED', SECURE ? 'that token is not valid: create one with `shoal user token`' : 'give a user name');
      return send(res, 200, { user, role: 'Admin', secure: SECURE, version: '0.1.0-mock' }, { 'set-cookie': `shoal_session=${encodeURIComponent(user)}; Path=/; HttpOnly; SameSite=Strict` });
    }
    if (req.method === 'DELETE') return send(res, 200, {}, { 'set-cookie': 'shoal_session=; Path=/; Max-Age=0' });
  }
  const user = cookieUser(req);
  if (!user) return fail(res, 401, 'UNAUTHENTICATED', 'log in first');
  let m;
  if (path === '/api/session') return send(res, 200, { user, role: 'Admin', secure: SECURE, version: '0.1.0-mock' });
  if (path === '/api/overview') return send(res, 200, overview());
  if (path === '/api/nodes') return send(res, 200, { nodes });
  if ((m = /^\/api\/nodes\/([^/]+)$/.exec(path))) {
    const n = nodes.find((x) => x.name === decodeURIComponent(m[1]));
    return n ? send(res, 200, nodeDetail(n)) : fail(res, 404, 'NOT_FOUND', `no node ${m[1]}`);
  }
  if (path === '/api/jobs') return send(res, 200, listJobs(q));
  if ((m = /^\/api\/jobs\/(\d+)$/.exec(path))) {
    const j = job(Number(m[1]));
    return j ? send(res, 200, j) : fail(res, 404, 'NOT_FOUND', `job ${m[1]} not found`);
  }
  if ((m = /^\/api\/jobs\/(\d+)\/grid$/.exec(path))) {
    const g = grid(Number(m[1]));
    return g ? send(res, 200, g) : fail(res, 404, 'NOT_FOUND', `job ${m[1]} not found`);
  }
  if ((m = /^\/api\/jobs\/(\d+)\/tasks\/(\d+)\/output$/.exec(path))) return output(req, res, q, Number(m[1]), Number(m[2]));
  if (path === '/api/usage') return send(res, 200, usage(q));
  if (path === '/api/usage/series') return send(res, 200, usageSeries(q));
  if (path === '/api/events') return events(req, res, q);
  return fail(res, 404, 'NOT_FOUND', `no route ${path}`);
}).listen(PORT, '127.0.0.1', () => console.log(`shoal dashboard mock on http://127.0.0.1:${PORT}/ (${N} jobs)`));
