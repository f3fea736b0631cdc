// #/jobs?state=Running&owner=bob&name=x — one server page (50 jobs) at a time; rows kept
// current by `jobs` events, the first page refetched when a new matching job shows up.
import { useEffect, useRef, useState } from 'preact/hooks';
import { get, session } from '../api.js';
import { jobEvents, subscribe } from '../events.js';
import { Badge, ErrorBox, Progress } from '../components.jsx';
import { RUN_STATES, fmtDuration, fmtFullTime, fmtNum, fmtTime, num, stateName, toMs } from '../format.js';
import { setHash, useNow, useRefresher } from '../hooks.js';

const PAGE_SIZE = 50;
const TERMINAL = new Set(['Finished', 'Failed', 'Cancelled']);

function filtersOf(query) {
  const states = query.getAll('state').flatMap((s) => s.split(',')).map(stateName).filter((s) => RUN_STATES.includes(s));
  return { states, owner: query.get('owner') || '', name: query.get('name') || '' };
}

function toQuery(f) {
  const q = new URLSearchParams();
  for (const s of f.states) q.append('state', s);
  if (f.owner) q.set('owner', f.owner);
  if (f.name) q.set('name', f.name);
  return q;
}

export function JobDuration({ job, now }) {
  const st = stateName(job.state);
  const start = toMs(job.start_time);
  if (Number.isFinite(start)) {
    let end = toMs(job.end_time);
    if (!Number.isFinite(end) && TERMINAL.has(st)) end = job._ended ?? start;
    return <span>{fmtDuration(((Number.isFinite(end) ? end : now) - start) / 1000)}</span>;
  }
  const sub = toMs(job.submit_time);
  if (!TERMINAL.has(st) && Number.isFinite(sub))
    return <span class="muted">waiting {fmtDuration((now - sub) / 1000)}</span>;
  return <span class="muted">—</span>;
}

function Filters({ filters }) {
  const [owner, setOwner] = useState(filters.owner);
  const [name, setName] = useState(filters.name);
  const timer = useRef(null);
  useEffect(() => setOwner(filters.owner), [filters.owner]);
  useEffect(() => setName(filters.name), [filters.name]);
  const apply = (next) => setHash('/jobs', toQuery({ ...filters, ...next }), true);
  const typed = (next) => {
    clearTimeout(timer.current);
    timer.current = setTimeout(() => apply(next), 300);
  };
  const toggle = (s) => {
    const on = filters.states.includes(s);
    apply({ states: on ? filters.states.filter((x) => x !== s) : RUN_STATES.filter((x) => x === s || filters.states.includes(x)) });
  };
  const me = session.get()?.user;
  return (
    <div class="filters" data-testid="job-filters">
      <div class="toggles">
        {RUN_STATES.map((s) => (
          <button
            key={s}
            type="button"
            class={'toggle st-' + s + (filters.states.includes(s) ? ' on' : '')}
            aria-pressed={filters.states.includes(s)}
            data-testid="state-filter"
            data-state={s}
            onClick={() => toggle(s)}
          >
            {s}
          </button>
        ))}
      </div>
      <input
        type="search"
        placeholder="Owner"
        data-testid="owner-filter"
        value={owner}
        onInput={(e) => {
          setOwner(e.currentTarget.value);
          typed({ owner: e.currentTarget.value.trim() });
        }}
      />
      {me && (
        <button type="button" class="link small" onClick={() => apply({ owner: filters.owner === me ? '' : me })}>
          {filters.owner === me ? 'everyone' : 'mine'}
        </button>
      )}
      <input
        type="search"
        placeholder="Name contains"
        data-testid="name-filter"
        value={name}
        onInput={(e) => {
          setName(e.currentTarget.value);
          typed({ name: e.currentTarget.value });
        }}
      />
      {(filters.states.length > 0 || filters.owner || filters.name) && (
        <button type="button" class="link small" onClick={() => setHash('/jobs', null, true)}>
          clear filters
        </button>
      )}
    </div>
  );
}

export function JobList({ query }) {
  const filters = filtersOf(query);
  const fkey = toQuery(filters).toString();
  const [tokens, setTokens] = useState([]); // page tokens of the pages before this one's, '' first
  const [data, setData] = useState(null); // {jobs, next, total, fkey, token}
  const [error, setError] = useState(null);
  const [loading, setLoading] = useState(false);
  const now = useNow(1000);
  const st = useRef({});
  st.current = { filters, fkey, tokens, data };
  const seq = useRef(0);

  const token = tokens.length ? tokens[tokens.length - 1] : '';
  const load = async () => {
    const { filters: f, tokens: tk, fkey: k } = st.current;
    const t = tk.length ? tk[tk.length - 1] : '';
    const my = ++seq.current;
    setLoading(true);
    try {
      const d = await get('api/jobs', { state: f.states, owner: f.owner, name: f.name, page_size: PAGE_SIZE, page_token: t });
      if (my !== seq.current) return;
      setData({ jobs: d.jobs || [], next: d.next_page_token || '', total: num(d.total), fkey: k, token: t });
      setError(null);
    } catch (e) {
      if (my === seq.current) setError(e);
    } finally {
      if (my === seq.current) setLoading(false);
    }
  };
  const refetch = useRefresher(load, 500);

  // New filters: back to the first page.
  useEffect(() => {
    setTokens([]);
    st.current.tokens = [];
    load();
  }, [fkey]);

  useEffect(
    () =>
      subscribe(
        'jobs',
        (payload) => {
          const { data: d, filters: f, tokens: tk } = st.current;
          if (!d) return;
          const byId = new Map();
          for (const ev of jobEvents(payload)) byId.set(String(ev.job_id), ev); // latest per job
          let dirty = false;
          let changed = false;
          const rows = d.jobs.map((j) => {
            const ev = byId.get(String(j.id));
            if (!ev) return j;
            byId.delete(String(j.id));
            changed = true;
            const state = ev.job_state || j.state;
            const s = stateName(state);
            if (f.states.length && !f.states.includes(s)) dirty = true; // left the filter: page changes
            const next = { ...j, state, task_counts: ev.task_counts || j.task_counts };
            if (TERMINAL.has(s) && !TERMINAL.has(stateName(j.state))) next._ended = toMs(ev.time) || Date.now();
            return next;
          });
          if (changed) setData({ ...d, jobs: rows });
          if (!dirty && tk.length === 0 && byId.size) {
            // Jobs not on the page: refetch the first page if one may now belong on it.
            const full = d.jobs.length >= PAGE_SIZE;
            const minId = d.jobs.reduce((m, j) => Math.min(m, num(j.id)), Infinity);
            for (const [id, ev] of byId) {
              if (f.states.length && !f.states.includes(stateName(ev.job_state))) continue;
              if (full && num(id) < minId) continue; // newest first: it sorts below this page
              dirty = true;
              break;
            }
          }
          if (dirty) refetch();
        },
        refetch,
      ),
    [],
  );

  const go = (nextTokens) => {
    setTokens(nextTokens);
    st.current.tokens = nextTokens;
    load();
    window.scrollTo(0, 0);
  };

  const jobs = data ? data.jobs : [];
  const pageNo = tokens.length + 1;
  const total = data ? data.total : 0;
  const first = (pageNo - 1) * PAGE_SIZE;
  return (
    <div class="page">
      <h1>
        Jobs{' '}
        <span class="muted small" data-testid="jobs-total" data-total={total}>
          {data ? `${fmtNum(total)} matching` : ''}
        </span>
        {loading && <span class="spinner" title="loading" />}
      </h1>
      <Filters filters={filters} />
      <ErrorBox error={error} />
      <table class="table jobs" data-testid="jobs-table" data-page={pageNo} data-token={token}>
        <thead>
          <tr>
            <th class="num">ID</th>
            <th>Name</th>
            <th>Owner</th>
            <th>State</th>
            <th>Progress</th>
            <th>Submitted</th>
            <th>Duration</th>
          </tr>
        </thead>
        <tbody>
          {jobs.map((j) => {
            const s = stateName(j.state);
            return (
              <tr key={j.id} data-testid="job-row" data-job-id={String(j.id)} data-state={s}>
                <td class="num">
                  <a href={'#/jobs/' + j.id}>{j.id}</a>
                </td>
                <td class="name">
                  <a href={'#/jobs/' + j.id}>{j.name || <span class="muted">(unnamed)</span>}</a>
                  {j.held && <span class="tag">held</span>}
                </td>
                <td>{j.owner}</td>
                <td>
                  <Badge state={s} />
                  {(j.pending_reason || (s === 'Failed' && j.reason)) && (
                    <span class="muted small reason-inline" title={j.pending_reason || j.reason}>
                      {' '}
                      {j.pending_reason || j.reason}
                    </span>
                  )}
                </td>
                <td>
                  <Progress counts={j.task_counts} />
                </td>
                <td title={fmtFullTime(j.submit_time)}>{fmtTime(j.submit_time)}</td>
                <td>
                  <JobDuration job={j} now={now} />
                </td>
              </tr>
            );
          })}
          {data && jobs.length === 0 && (
            <tr>
              <td colSpan={7} class="muted">
                No jobs match.
              </td>
            </tr>
          )}
        </tbody>
      </table>
      <div class="pager">
        <button type="button" data-testid="prev-page" disabled={tokens.length === 0} onClick={() => go(tokens.slice(0, -1))}>
          ← Prev
        </button>
        <span class="muted small">
          {jobs.length ? `${fmtNum(first + 1)}–${fmtNum(first + jobs.length)} of ${fmtNum(total)}` : ''} · page {pageNo}
        </span>
        <button
          type="button"
          data-testid="next-page"
          disabled={!data || !data.next}
          onClick={() => go([...tokens, data.next])}
        >
          Next →
        </button>
      </div>
    </div>
  );
}
