// Small shared pieces: state badges, progress bars, error boxes, SVG bar charts.
import { useRef } from 'preact/hooks';
import { RUN_STATES, countsByState, countsTotal, fmtNum } from './format.js';
import { useWidth } from './hooks.js';

export function Badge({ state }) {
  return (
    <span class={'badge st-' + state} data-state={state}>
      {state}
    </span>
  );
}

/** A stacked bar of run units by state (TaskCounts proto JSON). */
export function Progress({ counts }) {
  const by = countsByState(counts);
  const total = countsTotal(counts);
  const done = by.Finished + by.Failed + by.Cancelled;
  const title = RUN_STATES.filter((s) => by[s]).map((s) => `${s} ${fmtNum(by[s])}`).join(', ') || 'no tasks';
  return (
    <div class="progress" title={title}>
      <div class="progress-bar">
        {total > 0 &&
          ['Finished', 'Failed', 'Cancelled', 'Running', 'Queued', 'Configuring'].map((s) =>
            by[s] ? <span key={s} class={'seg st-bg-' + s} style={{ width: (by[s] / total) * 100 + '%' }} /> : null,
          )}
      </div>
      <span class="progress-text">
        {fmtNum(done)}/{fmtNum(total)}
      </span>
    </div>
  );
}

export function ErrorBox({ error }) {
  if (!error || error.status === 401) return null;
  return (
    <div class="error" role="alert">
      {error.message || String(error)}
    </div>
  );
}

export function Loading() {
  return <div class="muted pad">Loading…</div>;
}

/**
 * A small stacked SVG bar chart: items [{label, title, values: {key: n}}], keys drawn bottom
 * up in `keys` order with `colors`.
 */
export function BarChart({ items, keys, colors, height = 140, testid, yLabel }) {
  const ref = useRef(null);
  const width = useWidth(ref, 600);
  const max = Math.max(1, ...items.map((it) => keys.reduce((a, k) => a + (it.values[k] || 0), 0)));
  const padL = 34;
  const padB = 18;
  const plotW = Math.max(10, width - padL - 4);
  const plotH = height - padB - 6;
  const n = Math.max(items.length, 1);
  const bw = plotW / n;
  const ticks = niceTicks(max);
  const top = ticks[ticks.length - 1] || max;
  return (
    <div class="barchart" ref={ref} data-testid={testid}>
      <svg width={width} height={height} role="img" aria-label={yLabel}>
        {ticks.map((t) => {
          const y = 6 + plotH - (t / top) * plotH;
          return (
            <g key={t}>
              <line x1={padL} x2={width - 4} y1={y} y2={y} class="grid-line" />
              <text x={padL - 4} y={y + 3} class="axis" text-anchor="end">
                {t}
              </text>
            </g>
          );
        })}
        {items.map((it, i) => {
          let y = 6 + plotH;
          return (
            <g key={i}>
              <title>{it.title}</title>
              <rect x={padL + i * bw} y={6} width={bw} height={plotH} fill="transparent" />
              {keys.map((k) => {
                const v = it.values[k] || 0;
                if (!v) return null;
                const h = (v / top) * plotH;
                y -= h;
                return <rect key={k} x={padL + i * bw + 0.5} y={y} width={Math.max(1, bw - 1.5)} height={h} fill={colors[k]} />;
              })}
              {it.label && (
                <text x={padL + i * bw + bw / 2} y={height - 4} class="axis" text-anchor="middle">
                  {it.label}
                </text>
              )}
            </g>
          );
        })}
      </svg>
    </div>
  );
}

function niceTicks(max) {
  const raw = max / 4;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
  const out = [];
  for (let v = 0; v <= max + step * 0.999; v += step) out.push(+v.toFixed(6));
  return out;
}
