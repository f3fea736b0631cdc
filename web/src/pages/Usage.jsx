// #/usage?owner=alice&bucket=day&by=project — core-hours over time for one owner (or
// everyone), and the accounting table by owner or project.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { get, session } from '../api.js';
import { jobEvents, subscribe } from '../events.js';
import { ErrorBox, Loading } from '../components.jsx';
import { TimeChart } from '../Chart.jsx';
import { STATE_COLORS, fmtMB, fmtNum, num, stateName } from '../format.js';
import { parseHash, setHash, useRefresher } from '../hooks.js';

const BUCKETS = { hour: { n: 48, s: 3600, label: 'last 48 hours' }, day: { n: 30, s: 86400, label: 'last 30 days' } };
const PERIODS = { all: ['all time', 0], '24h': ['last 24 hours', 86400], '7d': ['last 7 days', 7 * 86400], '30d': ['last 30 days', 30 * 86400] };
const TERMINAL = new Set(['Finished', 'Failed', 'Cancelled']);

const hours = (s) => num(s) / 3600;
const fmtH = (h) => (h >= 100 ? fmtNum(Math.round(h)) : h.toFixed(h >= 10 ? 1 : 2));

function useQuery() {
  const [q, setQ] = useState(() => parseHash(location.hash).query);
  useEffect(() => {
    const on = () => setQ(parseHash(location.hash).query);
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return q;
}

export function UsagePage() {
  const q = useQuery();
  const me = session.get()?.user || '';
  const owner = q.has('owner') ? q.get('owner') : me;
  const bucket = q.get('bucket') === 'day' ? 'day' : 'hour';
  const by = q.get('by') === 'project' ? 'project' : 'owner';
  const period = PERIODS[q.get('period')] ? q.get('period') : 'all';
  const [typed, setTyped] = useState(owner);
  const [points, setPoints] = useState(null);
  const [report, setReport] = useState(null);
  const [error, setError] = useState(null);
  const timer = useRef(null);
  const args = useRef({});
  args.current = { owner, bucket, by, period };

  const update = (patch) => {
    const next = new URLSearchParams(q);
    for (const [k, v] of Object.entries(patch)) next.set(k, v);
    setHash('/usage', next, true);
  };
  useEffect(() => setTyped(owner), [owner]);

  const loadSeries = async () => {
    const a = args.current;
    try {
      const d = await get('api/usage/series', { owner: a.owner, bucket: a.bucket, buckets: BUCKETS[a.bucket].n });
      setPoints(d.points || []);
      setError(null);
    } catch (e) {
      setError(e);
    }
  };
  const loadReport = async () => {
    const a = args.current;
    const secs = PERIODS[a.period][1];
    try {
      const since = secs ? new Date(Date.now() - secs * 1000).toISOString() : undefined;
      setReport(await get('api/usage', { by: a.by, since }));
      setError(null);
    } catch (e) {
      setError(e);
    }
  };
  useEffect(() => {
    loadSeries();
  }, [owner, bucket]);
  useEffect(() => {
    loadReport();
  }, [by, period]);

  // Usage is recorded when a job ends: refresh (at most every 5 s) when one does.
  const refresh = useRefresher(() => Promise.all([loadSeries(), loadReport()]), 5000);
  useEffect(
    () =>
      subscribe('jobs', (payload) => {
        if (jobEvents(payload).some((ev) => !ev.task && TERMINAL.has(stateName(ev.job_state)))) refresh();
      }),
    [],
  );

  const data = useMemo(() => {
    const ps = points || [];
    return [ps.map((p) => num(p.t)), ps.map((p) => hours(p.core_seconds))];
  }, [points]);
  const latest = useRef(points);
  latest.current = points;
  const series = useMemo(
    () => [
      {
        label: 'Core-hours',
        color: STATE_COLORS.Running,
        bars: true,
        value: (u, v, si, idx) => {
          const ps = latest.current || [];
          const p = ps[idx];
          if (!p) return '--';
          return `${fmtH(hours(p.core_seconds))} (${fmtNum(p.jobs)} jobs, ${fmtNum(p.failed)} failed)`;
        },
      },
    ],
    [],
  );
  const rows = useMemo(
    () => [...((report && report.rows) || [])].sort((a, b) => num(b.core_seconds) - num(a.core_seconds)),
    [report],
  );
  const total = report && report.total;
  const totalHours = (points || []).reduce((a, p) => a + hours(p.core_seconds), 0);
  const owners = by === 'owner' ? rows.map((r) => r.key).filter(Boolean) : [];

  return (
    <div class="page" data-testid="usage-page">
      <h1>Usage</h1>
      <ErrorBox error={error} />
      <form
        class="filters"
        onSubmit={(e) => {
          e.preventDefault();
          update({ owner: typed.trim() });
        }}
      >
        <label class="small">
          Owner{' '}
          <input
            type="search"
            list="usage-owners"
            data-testid="usage-owner"
            placeholder="everyone"
            value={typed}
            onInput={(e) => {
              const v = e.currentTarget.value;
              setTyped(v);
              clearTimeout(timer.current);
              timer.current = setTimeout(() => update({ owner: v.trim() }), 400);
            }}
          />
        </label>
        <datalist id="usage-owners">
          {owners.map((o) => (
            <option key={o} value={o} />
          ))}
        </datalist>
        {me && owner !== me && (
          <button type="button" class="link small" onClick={() => update({ owner: me })}>
            me
          </button>
        )}
        {owner !== '' && (
          <button type="button" class="link small" onClick={() => update({ owner: '' })}>
            everyone
          </button>
        )}
        <div class="seg-toggle" role="group" aria-label="bucket">
          {['hour', 'day'].map((b) => (
            <button key={b} type="button" data-testid={'bucket-' + b} class={bucket === b ? 'on' : ''} onClick={() => update({ bucket: b })}>
              by {b}
            </button>
          ))}
        </div>
      </form>

      <section class="panel">
        <h3>
          <span>
            Core-hours per {bucket} of {owner ? <b>{owner}</b> : 'everyone you may see'}, {BUCKETS[bucket].label}
          </span>
          <span class="figure">
            {fmtH(totalHours)} <span class="muted small">core-hours</span>
          </span>
        </h3>
        {points ? (
          <TimeChart testid="chart-user-usage" data={data} series={series} height={220} />
        ) : (
          <Loading />
        )}
      </section>

      <section class="panel">
        <h3>
          <span>
            Accounting by {by}, {PERIODS[period][0]}
          </span>
          <span class="seg-toggle" role="group" aria-label="group by">
            {['owner', 'project'].map((b) => (
              <button key={b} type="button" data-testid={'by-' + b} class={by === b ? 'on' : ''} onClick={() => update({ by: b })}>
                by {b}
              </button>
            ))}
          </span>
          <select class="small" value={period} onChange={(e) => update({ period: e.currentTarget.value })}>
            {Object.entries(PERIODS).map(([k, [label]]) => (
              <option key={k} value={k}>
                {label}
              </option>
            ))}
          </select>
        </h3>
        {!report ? (
          <Loading />
        ) : (
          <table class="table" data-testid="usage-table" data-by={by}>
            <thead>
              <tr>
                <th>{by === 'owner' ? 'Owner' : 'Project'}</th>
                <th class="num">Jobs</th>
                <th class="num">Run units</th>
                <th class="num">Failed</th>
                <th class="num">Core-hours</th>
                <th class="num">Wall hours</th>
                <th class="num">Max memory</th>
                <th class="num">Non-zero exits</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((r) => (
                <tr key={r.key} data-testid="usage-row" data-key={r.key}>
                  <td>
                    {by === 'owner' ? (
                      <a
                        href="#"
                        onClick={(e) => {
                          e.preventDefault();
                          update({ owner: r.key });
                        }}
                      >
                        {r.key}
                      </a>
                    ) : (
                      r.key || <span class="muted">(none)</span>
                    )}
                  </td>
                  <td class="num">{fmtNum(r.jobs)}</td>
                  <td class="num">{fmtNum(r.tasks)}</td>
                  <td class="num">{fmtNum(r.failed)}</td>
                  <td class="num">{fmtH(hours(r.core_seconds))}</td>
                  <td class="num">{fmtH(hours(r.wall_seconds))}</td>
                  <td class="num">{num(r.max_memory_mb) ? fmtMB(r.max_memory_mb) : '—'}</td>
                  <td class="num">{fmtNum(r.nonzero_exits)}</td>
                </tr>
              ))}
              {rows.length === 0 && (
                <tr>
                  <td colSpan={8} class="muted">
                    No ended jobs recorded in this period.
                  </td>
                </tr>
              )}
            </tbody>
            {total && rows.length > 0 && (
              <tfoot>
                <tr>
                  <td>Total{report.truncated ? ' (more rows than shown)' : ''}</td>
                  <td class="num">{fmtNum(total.jobs)}</td>
                  <td class="num">{fmtNum(total.tasks)}</td>
                  <td class="num">{fmtNum(total.failed)}</td>
                  <td class="num">{fmtH(hours(total.core_seconds))}</td>
                  <td class="num">{fmtH(hours(total.wall_seconds))}</td>
                  <td class="num">{num(total.max_memory_mb) ? fmtMB(total.max_memory_mb) : '—'}</td>
                  <td class="num">{fmtNum(total.nonzero_exits)}</td>
                </tr>
              </tfoot>
            )}
          </table>
        )}
      </section>
    </div>
  );
}
