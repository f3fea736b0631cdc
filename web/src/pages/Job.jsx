// #/jobs/ID — header, tasks, the run-unit grid, the task DAG and the history; refetched
// (throttled) when `jobs` events name this job.
import { useMemo, useState } from 'preact/hooks';
import { get } from '../api.js';
import { Badge, ErrorBox, Loading, Progress } from '../components.jsx';
import { GridLegend, TaskGrid } from '../Grid.jsx';
import { Dag } from '../Dag.jsx';
import { JobDuration } from './Jobs.jsx';
import { RUN_STATES, countsByState, fmtBytes, fmtFullTime, fmtNum, num, span, stateName, toMs } from '../format.js';
import { useJobFollow, useNow } from '../hooks.js';

const HISTORY_STEP = 500;

function priorityName(p) {
  const w = String(p || '').replace(/^PRIORITY_/, '');
  if (!w || w === 'UNSPECIFIED') return 'Normal';
  const s = w.toLowerCase().replace(/_/g, ' ');
  return s.charAt(0).toUpperCase() + s.slice(1);
}

export function isSweep(task) {
  const s = task && task.spec && task.spec.sweep;
  return !!s && (num(s.start) !== 0 || num(s.end) !== 0 || num(s.step) !== 0);
}

/** A plain task has one run unit, addressed as instance 0. */
export function isPlain(task) {
  return !isSweep(task) && num(task?.spec?.instances) <= 1;
}

export function outputHref(jobId, taskId, instance, stream) {
  return `#/jobs/${jobId}/tasks/${taskId}/${instance}/output${stream === 'stderr' ? '?stream=stderr' : ''}`;
}

function Times({ job, now }) {
  const rows = [
    ['Created', job.create_time],
    ['Submitted', job.submit_time],
    ['Started', job.start_time],
    ['Ended', job.end_time],
  ].filter(([, t]) => t);
  return (
    <dl>
      {rows.map(([k, t]) => [<dt key={k + 't'}>{k}</dt>, <dd key={k + 'd'}>{fmtFullTime(t)}</dd>])}
      <dt>Duration</dt>
      <dd>
        <JobDuration job={job} now={now} />
      </dd>
    </dl>
  );
}

function Header({ job, now }) {
  const st = stateName(job.state);
  const by = countsByState(job.task_counts);
  const spec = job.spec || {};
  return (
    <>
      <div class="crumbs">
        <a href="#/jobs">Jobs</a> /
      </div>
      <h1>
        <span class="muted">#{job.id}</span> {job.name || '(unnamed)'} <Badge state={st} />
        {job.held && <span class="tag">held</span>}
      </h1>
      {job.pending_reason && (
        <div class="reason" data-testid="pending-reason">
          <b>Waiting: </b>
          {job.pending_reason}
        </div>
      )}
      {job.reason && (
        <div class={'reason ' + (st === 'Failed' ? 'failed' : '')} data-testid="job-reason">
          <b>Reason: </b>
          {job.reason}
        </div>
      )}
      <div class="details">
        <dl>
          <dt>Owner</dt>
          <dd>{job.owner}</dd>
          <dt>Project</dt>
          <dd>{spec.project || '—'}</dd>
          <dt>Priority</dt>
          <dd>
            {priorityName(spec.priority)}
            {num(spec.priority_offset) ? ` +${spec.priority_offset}` : ''}
          </dd>
          {job.allocated_nodes?.length > 0 && [<dt key="n">Nodes</dt>, <dd key="v">{job.allocated_nodes.join(', ')}</dd>]}
        </dl>
        <Times job={job} now={now} />
        <dl>
          <dt>Tasks</dt>
          <dd>
            {fmtNum(job.task_total || (job.tasks || []).length)} task{(job.task_total || (job.tasks || []).length) === 1 ? '' : 's'}
          </dd>
          <dt>Run units</dt>
          <dd>
            <Progress counts={job.task_counts} />
          </dd>
          <dd class="small counts" data-testid="job-counts">
            {RUN_STATES.filter((s) => by[s]).map((s) => (
              <span key={s} data-state={s} data-count={by[s]}>
                <span class={'st-fg-' + s}>{s}</span> {fmtNum(by[s])}{' '}
              </span>
            ))}
          </dd>
        </dl>
      </div>
    </>
  );
}

const TASK_ROWS_STEP = 500;

function TasksTable({ job, now }) {
  const [limit, setLimit] = useState(TASK_ROWS_STEP);
  const all = job.tasks || [];
  const tasks = all.length > limit ? all.slice(0, limit) : all;
  return (
    <>
      <table class="table" data-testid="tasks-table">
        <thead>
          <tr>
            <th class="num">#</th>
            <th>Name</th>
            <th>State</th>
            <th>Run units</th>
            <th>Node</th>
            <th class="num">Exit</th>
            <th>Started</th>
            <th>Duration</th>
            <th>Command</th>
            <th>Output</th>
          </tr>
        </thead>
        <tbody>
          {tasks.map((t) => {
            const id = t.ref?.task_id;
            const st = stateName(t.state);
            const plain = isPlain(t);
            const inst = plain ? 0 : 1;
            // The reason of a plain "exit code 0" is noise: show why it waits, failed or was cancelled.
            const why = t.pending_reason || (st === 'Failed' || st === 'Cancelled' ? t.reason : '');
            return (
              <tr key={id} id={'task-' + id} data-testid="task-row" data-task-id={String(id)} data-state={st}>
                <td class="num">{id}</td>
                <td class="name">
                  {t.spec?.name || <span class="muted">task {id}</span>}
                  {t.spec?.depends_on?.length > 0 && <div class="muted small">after {t.spec.depends_on.join(', ')}</div>}
                </td>
                <td>
                  <Badge state={st} />
                  {why && <div class="muted small reason-inline" title={why}>{why}</div>}
                </td>
                <td>{plain ? <span class="muted">1</span> : <Progress counts={t.instance_counts} />}</td>
                <td>{t.node ? <a href={'#/nodes/' + encodeURIComponent(t.node)}>{t.node}</a> : ''}</td>
                <td class="num">{t.exit_code ?? ''}</td>
                <td title={fmtFullTime(t.start_time)}>{t.start_time ? fmtFullTime(t.start_time).slice(11) : ''}</td>
                <td>{t.start_time ? span(t.start_time, t.end_time, now) : ''}</td>
                <td class="cmd">
                  <code title={t.spec?.command_line}>{t.spec?.command_line}</code>
                </td>
                <td class="nowrap">
                  <a data-testid="output-link" href={outputHref(job.id, id, inst)}>
                    stdout{plain ? '' : ' #1'}
                  </a>{' '}
                  <a class="small" href={outputHref(job.id, id, inst, 'stderr')}>
                    stderr
                  </a>
                  {(num(t.stdout_bytes) > 0 || num(t.stderr_bytes) > 0) && (
                    <div class="muted small">
                      {fmtBytes(t.stdout_bytes)} / {fmtBytes(t.stderr_bytes)}
                    </div>
                  )}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      {all.length > tasks.length && (
        <button type="button" class="link" onClick={() => setLimit(limit + TASK_ROWS_STEP)}>
          Show {fmtNum(Math.min(TASK_ROWS_STEP, all.length - tasks.length))} more of {fmtNum(all.length - tasks.length)} tasks
        </button>
      )}
    </>
  );
}

function History({ job }) {
  const [limit, setLimit] = useState(HISTORY_STEP);
  const all = useMemo(() => {
    const names = new Map((job.tasks || []).map((t) => [t.ref?.task_id, t.spec?.name || '']));
    const rows = (job.history || []).map((h) => ({ ...h, what: 'job', kind: 'job' }));
    for (const t of job.tasks || []) {
      const id = t.ref?.task_id;
      for (const h of t.history || []) {
        const inst = num(h.instance_id);
        rows.push({ ...h, kind: 'task', what: `task ${id} ${names.get(id) || ''}${inst ? ' #' + inst : ''}`, href: inst ? outputHref(job.id, id, inst) : null });
      }
    }
    rows.sort((a, b) => num(b.seq) - num(a.seq) || toMs(b.time) - toMs(a.time));
    return rows;
  }, [job]);
  const shown = all.slice(0, limit);
  return (
    <>
      <table class="table" data-testid="history" data-count={all.length}>
        <thead>
          <tr>
            <th class="num">Seq</th>
            <th>Time</th>
            <th>What</th>
            <th>State</th>
            <th>Reason</th>
          </tr>
        </thead>
        <tbody>
          {shown.map((h, i) => (
            <tr key={i} class={h.kind === 'job' ? 'job-event' : ''}>
              <td class="num muted">{h.seq}</td>
              <td class="nowrap">{fmtFullTime(h.time)}</td>
              <td>{h.href ? <a href={h.href}>{h.what}</a> : h.what}</td>
              <td>
                <Badge state={stateName(h.state)} />
              </td>
              <td>{h.reason}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {all.length > shown.length && (
        <button type="button" class="link" onClick={() => setLimit(limit + HISTORY_STEP)}>
          Show {fmtNum(Math.min(HISTORY_STEP, all.length - shown.length))} more of {fmtNum(all.length - shown.length)} older
        </button>
      )}
    </>
  );
}

const GRID_TASKS_STEP = 300;
const SMALL = 12; // tasks of at most this many run units are drawn side by side

function Grids({ job, grid, taskById }) {
  const [limit, setLimit] = useState(GRID_TASKS_STEP);
  const all = grid.tasks || [];
  const shown = all.slice(0, limit);
  const item = (g, compact) => {
    const t = taskById.get(String(g.task_id));
    const n = Math.max(num(g.count), (g.states || '').length);
    return (
      <TaskGrid
        key={g.task_id}
        jobId={job.id}
        grid={g}
        compact={compact}
        plain={t ? isPlain(t) : n <= 1}
        sweep={t ? isSweep(t) : n > 1}
      />
    );
  };
  // Keep the task order; runs of small tasks share a wrapping row.
  const blocks = [];
  for (const g of shown) {
    const small = Math.max(num(g.count), (g.states || '').length) <= SMALL;
    const last = blocks[blocks.length - 1];
    if (small && last && last.small) last.items.push(g);
    else blocks.push({ small, items: [g] });
  }
  return (
    <>
      {blocks.map((b, i) =>
        b.small ? (
          <div key={i} class="grid-row">
            {b.items.map((g) => item(g, true))}
          </div>
        ) : (
          item(b.items[0], false)
        ),
      )}
      {all.length > shown.length && (
        <button type="button" class="link" onClick={() => setLimit(limit + GRID_TASKS_STEP)}>
          Draw {fmtNum(Math.min(GRID_TASKS_STEP, all.length - shown.length))} more of {fmtNum(all.length - shown.length)} tasks
        </button>
      )}
    </>
  );
}

export function JobPage({ id }) {
  const [job, setJob] = useState(null);
  const [grid, setGrid] = useState(null);
  const [error, setError] = useState(null);
  const now = useNow(1000);

  const load = async () => {
    try {
      const [j, g] = await Promise.all([
        get('api/jobs/' + encodeURIComponent(id)),
        get('api/jobs/' + encodeURIComponent(id) + '/grid'),
      ]);
      setJob(j);
      setGrid(g);
      setError(null);
    } catch (e) {
      setError(e);
    }
  };
  useJobFollow(id, load, 400, [id]);

  if (!job) return error ? <ErrorBox error={error} /> : <Loading />;
  const st = stateName(job.state);
  const tasks = job.tasks || [];
  const taskById = new Map(tasks.map((t) => [String(t.ref?.task_id), t]));
  return (
    <div class="page" data-testid="job-page" data-job-id={String(job.id)} data-state={st}>
      <ErrorBox error={error} />
      <Header job={job} now={now} />

      <section class="panel">
        <h3>
          Tasks <span class="muted small">{tasks.length}</span>
        </h3>
        <TasksTable job={job} now={now} />
      </section>

      {tasks.length > 1 && (
        <section class="panel">
          <h3>Dependencies</h3>
          <Dag tasks={tasks} />
        </section>
      )}

      <section class="panel" data-testid="grid-panel">
        <h3>
          Run units <span class="muted small">one cell per instance; hover for details, click for its output</span>
          {grid && <GridLegend tasks={grid.tasks || []} />}
        </h3>
        {grid ? <Grids job={job} grid={grid} taskById={taskById} /> : <Loading />}
      </section>

      <section class="panel">
        <h3>History</h3>
        <History job={job} />
      </section>
    </div>
  );
}
