// #/nodes and #/nodes/NAME, kept current by `nodes` events.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { get } from '../api.js';
import { subscribe } from '../events.js';
import { Badge, ErrorBox, Loading } from '../components.jsx';
import { fmtAge, fmtDuration, fmtFullTime, fmtMB, fmtTime, gpus, num, stateName, toMs } from '../format.js';
import { useNow, useRefresher, useWidth } from '../hooks.js';

function usage(n) {
  const cap = n.capacity || {};
  const alloc = n.allocated || {};
  return {
    cores: [num(alloc.cores), num(cap.cores)],
    mem: [num(alloc.memory_mb), num(cap.memory_mb)],
    gpus: [gpus(alloc), gpus(cap)],
  };
}

function Connected({ on }) {
  return <span class={'dot ' + (on ? 'ok' : 'bad')} title={on ? 'connected' : 'not connected'} />;
}

export function NodeList() {
  const [nodes, setNodes] = useState(null);
  const [error, setError] = useState(null);
  const now = useNow(1000);

  const load = async () => {
    try {
      const d = await get('api/nodes');
      setNodes(d.nodes || []);
      setError(null);
    } catch (e) {
      setError(e);
    }
  };
  useEffect(() => {
    load();
    return subscribe('nodes', (d) => d && Array.isArray(d.nodes) && setNodes(d.nodes), load);
  }, []);

  const sorted = useMemo(() => (nodes ? [...nodes].sort((a, b) => (a.name < b.name ? -1 : 1)) : []), [nodes]);
  if (!nodes) return error ? <ErrorBox error={error} /> : <Loading />;
  return (
    <div class="page">
      <h1>
        Nodes <span class="muted small">{sorted.length}</span>
      </h1>
      <ErrorBox error={error} />
      <table class="table" data-testid="nodes-table">
        <thead>
          <tr>
            <th>Name</th>
            <th>State</th>
            <th>Conn.</th>
            <th class="num">Cores</th>
            <th class="num">Memory</th>
            <th class="num">GPUs</th>
            <th class="num">Tasks</th>
            <th>Last heartbeat</th>
            <th>Groups</th>
          </tr>
        </thead>
        <tbody>
          {sorted.map((n) => {
            const st = stateName(n.state);
            const u = usage(n);
            return (
              <tr key={n.name} data-testid="node-row" data-name={n.name} data-state={st}>
                <td>
                  <a href={'#/nodes/' + encodeURIComponent(n.name)}>{n.name}</a>
                  {n.reason && st === 'Draining' && <span class="muted small"> — {n.reason}</span>}
                </td>
                <td>
                  <Badge state={st} />
                </td>
                <td>
                  <Connected on={n.connected} />
                </td>
                <td class="num">
                  {u.cores[0]} / {u.cores[1]}
                </td>
                <td class="num">
                  {fmtMB(u.mem[0])} / {fmtMB(u.mem[1])}
                </td>
                <td class="num">{u.gpus[1] ? `${u.gpus[0]} / ${u.gpus[1]}` : '—'}</td>
                <td class="num">{num(n.running_tasks)}</td>
                <td title={fmtFullTime(n.last_heartbeat)}>{fmtAge(n.last_heartbeat, now)}</td>
                <td>{(n.groups || []).join(', ')}</td>
              </tr>
            );
          })}
          {sorted.length === 0 && (
            <tr>
              <td colSpan={9} class="muted">
                No nodes have joined yet.
              </td>
            </tr>
          )}
        </tbody>
      </table>
    </div>
  );
}

/** "12.3" / "12.3.7" -> link to the job (and the run unit's output). */
function TaskLink({ id }) {
  const [job, task, inst] = String(id).split('.');
  return (
    <li>
      <a href={'#/jobs/' + job}>{id}</a>{' '}
      {task && (
        <a class="small" href={`#/jobs/${job}/tasks/${task}/${inst || 0}/output`}>
          output
        </a>
      )}
    </li>
  );
}

/** The latest heartbeats as a strip: one bar per heartbeat, height by task count, coloured by the gap before it. */
export function Heartbeats({ beats }) {
  const ref = useRef(null);
  const width = useWidth(ref, 600);
  const pts = (beats || []).map((b) => ({ t: toMs(b.time), tasks: num(b.tasks) })).filter((b) => Number.isFinite(b.t));
  const gaps = pts.slice(1).map((b, i) => (b.t - pts[i].t) / 1000);
  const sortedGaps = [...gaps].sort((a, b) => a - b);
  const median = sortedGaps.length ? sortedGaps[Math.floor(sortedGaps.length / 2)] : 0;
  const maxGap = sortedGaps.length ? sortedGaps[sortedGaps.length - 1] : 0;
  const maxTasks = Math.max(1, ...pts.map((p) => p.tasks));
  const h = 60;
  const t0 = pts.length ? pts[0].t : 0;
  const t1 = pts.length ? pts[pts.length - 1].t : 1;
  const range = Math.max(1, t1 - t0);
  const x = (t) => 6 + ((t - t0) / range) * (width - 12);
  return (
    <div class="heartbeats" ref={ref} data-testid="node-heartbeats" data-count={pts.length}>
      {pts.length === 0 ? (
        <div class="muted">No heartbeats recorded.</div>
      ) : (
        <>
          <svg width={width} height={h + 14}>
            <line x1="0" x2={width} y1={h} y2={h} class="grid-line" />
            {pts.map((p, i) => {
              const gap = i ? gaps[i - 1] : 0;
              const cls = i && median && gap > 5 * median ? 'hb bad' : i && median && gap > 2 * median ? 'hb warn' : 'hb';
              const bh = 4 + (p.tasks / maxTasks) * (h - 8);
              return (
                <g key={i}>
                  <title>{`${fmtFullTime(p.t / 1000)} — ${p.tasks} task${p.tasks === 1 ? '' : 's'}${i ? `, ${gap.toFixed(1)}s after the previous` : ''}`}</title>
                  <rect class={cls} x={x(p.t) - 2} y={h - bh} width="4" height={bh} />
                </g>
              );
            })}
            <text x="2" y={h + 12} class="axis">
              {fmtTime(t0 / 1000)}
            </text>
            <text x={width - 2} y={h + 12} class="axis" text-anchor="end">
              {fmtTime(t1 / 1000)}
            </text>
          </svg>
          <div class="muted small">
            {pts.length} heartbeats over {fmtDuration(range / 1000)} · median gap {median.toFixed(1)}s · longest gap{' '}
            {maxGap.toFixed(1)}s · bar height: tasks reported running (max {maxTasks})
          </div>
        </>
      )}
    </div>
  );
}

export function NodePage({ name }) {
  const [node, setNode] = useState(null);
  const [error, setError] = useState(null);
  const now = useNow(1000);

  const load = async () => {
    try {
      setNode(await get('api/nodes/' + encodeURIComponent(name)));
      setError(null);
    } catch (e) {
      setError(e);
    }
  };
  const refresh = useRefresher(load, 3000);
  useEffect(() => {
    load();
    return subscribe(
      'nodes',
      (d) => {
        const n = d && Array.isArray(d.nodes) && d.nodes.find((x) => x.name === name);
        if (!n) return;
        setNode((old) => {
          if (!old) return old;
          const changed =
            old.state !== n.state || old.last_heartbeat !== n.last_heartbeat || old.running_tasks !== n.running_tasks;
          if (changed) refresh();
          // The event's Node has no history/heartbeats/tasks: keep ours until the refetch.
          return { ...old, ...n, history: old.history, heartbeats: old.heartbeats, tasks: n.tasks?.length ? n.tasks : old.tasks };
        });
      },
      load,
    );
  }, [name]);

  if (!node) return error ? <ErrorBox error={error} /> : <Loading />;
  const st = stateName(node.state);
  const u = usage(node);
  const history = node.history || [];
  return (
    <div class="page" data-testid="node-page" data-name={node.name} data-state={st}>
      <div class="crumbs">
        <a href="#/nodes">Nodes</a> /
      </div>
      <h1>
        {node.name} <Badge state={st} /> <Connected on={node.connected} />
      </h1>
      <ErrorBox error={error} />
      {(st === 'Draining' || (st !== 'Online' && node.reason)) && (
        <div class={'reason ' + (st === 'Draining' ? 'draining' : '')} data-testid="node-reason">
          <b>{st === 'Draining' ? 'Draining: ' : st + ': '}</b>
          {node.reason || 'no reason given'}
          {node.state_time && <span class="muted small"> — since {fmtFullTime(node.state_time)}</span>}
        </div>
      )}
      <div class="details">
        <dl>
          <dt>Hostname</dt>
          <dd>{node.hostname || '—'}</dd>
          <dt>Agent</dt>
          <dd>{node.agent_version || '—'}</dd>
          <dt>Cores</dt>
          <dd>
            {u.cores[0]} / {u.cores[1]} in use
          </dd>
          <dt>Memory</dt>
          <dd>
            {fmtMB(u.mem[0])} / {fmtMB(u.mem[1])}
          </dd>
          <dt>GPUs</dt>
          <dd>{u.gpus[1] ? `${u.gpus[0]} / ${u.gpus[1]}` : 'none'}</dd>
        </dl>
        <dl>
          <dt>Last heartbeat</dt>
          <dd title={fmtFullTime(node.last_heartbeat)}>{fmtAge(node.last_heartbeat, now)}</dd>
          <dt>Registered</dt>
          <dd>{fmtFullTime(node.registered_time) || '—'}</dd>
          <dt>State since</dt>
          <dd>
            {fmtFullTime(node.state_time) || '—'}
            {node.reason && <span class="muted"> — {node.reason}</span>}
          </dd>
          <dt>Groups</dt>
          <dd>{(node.groups || []).join(', ') || '—'}</dd>
          <dt>Labels</dt>
          <dd>{(node.labels || []).join(', ') || '—'}</dd>
        </dl>
      </div>

      <div class="panels">
        <section class="panel">
          <h3>
            Running tasks <span class="muted small">{(node.tasks || []).length}</span>
          </h3>
          {(node.tasks || []).length ? (
            <ul class="task-links" data-testid="node-tasks">
              {node.tasks.map((t) => (
                <TaskLink key={t} id={t} />
              ))}
            </ul>
          ) : (
            <div class="muted">None.</div>
          )}
        </section>
        <section class="panel">
          <h3>Heartbeats</h3>
          <Heartbeats beats={node.heartbeats} />
        </section>
      </div>

      <section class="panel">
        <h3>State changes</h3>
        <table class="table" data-testid="node-history">
          <thead>
            <tr>
              <th>Time</th>
              <th>State</th>
              <th>Reason</th>
            </tr>
          </thead>
          <tbody>
            {[...history].reverse().map((h, i) => (
              <tr key={i}>
                <td>{fmtFullTime(h.time)}</td>
                <td>
                  <Badge state={stateName(h.state)} />
                </td>
                <td>{h.reason}</td>
              </tr>
            ))}
            {history.length === 0 && (
              <tr>
                <td colSpan={3} class="muted">
                  No state changes recorded.
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </section>
    </div>
  );
}
