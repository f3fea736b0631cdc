// #/ — the cluster at a glance, kept current by `cluster` events.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { get } from '../api.js';
import { subscribe } from '../events.js';
import { BarChart, ErrorBox, Loading } from '../components.jsx';
import { TimeChart } from '../Chart.jsx';
import { NODE_STATES, RUN_STATES, STATE_COLORS, fmtMB, fmtNum, num, pct } from '../format.js';

const HOUR = 3600;

function Meter({ used, total, fmt = fmtNum }) {
  const p = pct(used, total);
  return (
    <>
      <div class="big">
        {fmt(used)} <span class="of">/ {fmt(total)}</span>
      </div>
      <div class="meter" title={p + '%'}>
        <span style={{ width: Math.min(100, p) + '%' }} />
      </div>
      <div class="muted small">{p}% in use</div>
    </>
  );
}

function StateCounts({ states, counts, link }) {
  return (
    <ul class="state-counts">
      {states.map((s) => (
        <li key={s} data-state={s} data-count={num(counts && counts[s])}>
          <i class="swatch" style={{ background: STATE_COLORS[s] }} />
          {link ? <a href={link(s)}>{s}</a> : s}
          <b>{fmtNum(counts && counts[s])}</b>
        </li>
      ))}
    </ul>
  );
}

function sum(obj) {
  return Object.values(obj || {}).reduce((a, b) => a + num(b), 0);
}

export function Overview() {
  const [ov, setOv] = useState(null);
  const [series, setSeries] = useState([]);
  const [throughput, setThroughput] = useState([]);
  const [error, setError] = useState(null);

  const load = async () => {
    try {
      const d = await get('api/overview');
      setOv(d);
      setSeries(d.series || []);
      setThroughput(d.throughput || []);
      setError(null);
    } catch (e) {
      setError(e);
    }
  };

  useEffect(() => {
    load();
    return subscribe(
      'cluster',
      (d) => {
        setOv((old) => ({ ...(old || {}), ...d }));
        if (d.point) {
          setSeries((old) => {
            const last = old[old.length - 1];
            if (last && d.point.t <= last.t) return old;
            const cut = d.point.t - HOUR;
            let i = 0;
            while (i < old.length && old[i].t < cut) i++;
            return [...old.slice(i), d.point];
          });
        }
        if (d.minute) {
          setThroughput((old) => {
            const last = old[old.length - 1];
            if (last && last.t === d.minute.t) return [...old.slice(0, -1), d.minute];
            if (last && d.minute.t < last.t) return old;
            const cut = d.minute.t - HOUR;
            return [...old.filter((m) => m.t > cut), d.minute];
          });
        }
      },
      load,
    );
  }, []);

  const hasGpus = series.some((p) => p.gpus_total > 0) || num(ov?.gpus?.total) > 0;

  const usageData = useMemo(() => {
    const xs = series.map((p) => p.t);
    const cols = [xs, series.map((p) => (p.cores_total ? (100 * p.cores_used) / p.cores_total : 0)),
      series.map((p) => (p.memory_total_mb ? (100 * p.memory_used_mb) / p.memory_total_mb : 0))];
    if (hasGpus) cols.push(series.map((p) => (p.gpus_total ? (100 * p.gpus_used) / p.gpus_total : 0)));
    return cols;
  }, [series, hasGpus]);

  const queueData = useMemo(
    () => [series.map((p) => p.t), series.map((p) => p.queued || 0), series.map((p) => p.running || 0)],
    [series],
  );

  const latest = useRef(series);
  latest.current = series;
  const usageSeries = useMemo(() => {
    const abs = (fmtU, u, t) => (plot, v, si, idx) => {
      const p = latest.current[idx];
      if (!p) return '--';
      return `${fmtU(p[u])} / ${fmtU(p[t])}`;
    };
    const out = [
      { label: 'Cores', color: STATE_COLORS.Running, fill: true, value: abs(fmtNum, 'cores_used', 'cores_total') },
      { label: 'Memory', color: '#a371f7', value: abs(fmtMB, 'memory_used_mb', 'memory_total_mb') },
    ];
    if (hasGpus) out.push({ label: 'GPUs', color: '#d4a72c', value: abs(fmtNum, 'gpus_used', 'gpus_total') });
    return out;
  }, [hasGpus]);

  const bars = useMemo(
    () =>
      throughput.map((m) => {
        const d = new Date(m.t * 1000);
        const hm = `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
        return {
          label: d.getMinutes() % 10 === 0 ? hm : '',
          title: `${hm}: ${m.finished || 0} finished, ${m.failed || 0} failed`,
          values: { finished: m.finished || 0, failed: m.failed || 0 },
        };
      }),
    [throughput],
  );

  if (!ov) return error ? <ErrorBox error={error} /> : <Loading />;

  const nodes = ov.nodes || {};
  const jobs = ov.jobs || {};
  const tasks = ov.tasks || {};
  return (
    <div class="page" data-testid="overview">
      <ErrorBox error={error} />
      <div class="cards">
        <section class="card" data-testid="card-nodes">
          <h3>
            <a href="#/nodes">Nodes</a>
          </h3>
          <div class="big">
            {fmtNum(nodes.total)} <span class="of">{fmtNum(nodes.connected)} connected</span>
          </div>
          <StateCounts states={NODE_STATES} counts={nodes.by_state} />
        </section>
        <section class="card" data-testid="card-cores" data-used={String(num(ov.cores?.used))}
          data-total={String(num(ov.cores?.total))}>
          <h3>Cores</h3>
          <Meter used={num(ov.cores?.used)} total={num(ov.cores?.total)} />
        </section>
        <section class="card" data-testid="card-memory">
          <h3>Memory</h3>
          <Meter used={num(ov.memory_mb?.used)} total={num(ov.memory_mb?.total)} fmt={fmtMB} />
        </section>
        <section class="card" data-testid="card-gpus">
          <h3>GPUs</h3>
          {num(ov.gpus?.total) > 0 ? (
            <Meter used={num(ov.gpus?.used)} total={num(ov.gpus?.total)} />
          ) : (
            <div class="big muted">none</div>
          )}
        </section>
        <section class="card" data-testid="card-jobs">
          <h3>
            <a href="#/jobs">Jobs</a> <span class="muted small">{fmtNum(sum(jobs))}</span>
          </h3>
          <StateCounts states={RUN_STATES} counts={jobs} link={(s) => '#/jobs?state=' + s} />
        </section>
        <section class="card" data-testid="card-tasks">
          <h3>Run units (tasks) by state</h3>
          <StateCounts states={RUN_STATES} counts={tasks} />
        </section>
      </div>

      <div class="panels">
        <section class="panel wide">
          <h3>Resources in use, last hour</h3>
          <TimeChart
            testid="chart-usage"
            data={usageData}
            series={usageSeries}
            yRange={[0, 100]}
            yValues={(v) => v + '%'}
          />
        </section>
        <section class="panel">
          <h3>Run units queued and running</h3>
          <TimeChart
            testid="chart-queue"
            data={queueData}
            series={[
              { label: 'Queued', color: STATE_COLORS.Queued },
              { label: 'Running', color: STATE_COLORS.Running, fill: true },
            ]}
          />
        </section>
        <section class="panel">
          <h3>
            Throughput per minute, last hour
            <span class="figure" data-testid="finished-last-hour">
              {fmtNum(ov.finished_last_hour)} <span class="muted small">finished last hour</span>
            </span>
          </h3>
          <BarChart
            testid="chart-throughput"
            items={bars}
            keys={['finished', 'failed']}
            colors={{ finished: STATE_COLORS.Finished, failed: STATE_COLORS.Failed }}
            height={220}
            yLabel="run units ended per minute"
          />
          <div class="muted small">
            <i class="swatch" style={{ background: STATE_COLORS.Finished }} /> finished{' '}
            <i class="swatch" style={{ background: STATE_COLORS.Failed }} /> failed
          </div>
        </section>
      </div>
    </div>
  );
}
