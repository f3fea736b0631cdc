// One task's run units as cells on a <canvas>: one square per instance, wrapping, drawn
// straight into an ImageData buffer (100,000 cells take a few milliseconds). Hover names
// the instance, click opens its output.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { GRID_CODES, RUN_STATES, STATE_COLORS, fmtNum } from './format.js';
import { useWidth } from './hooks.js';

const LITTLE = new Uint8Array(new Uint32Array([0x11223344]).buffer)[0] === 0x44;

function packed(hex) {
  const n = parseInt(hex.slice(1), 16);
  const r = (n >> 16) & 255;
  const g = (n >> 8) & 255;
  const b = n & 255;
  return (LITTLE ? ((255 << 24) | (b << 16) | (g << 8) | r) : ((r << 24) | (g << 16) | (b << 8) | 255)) >>> 0;
}

const CODE_COLORS = (() => {
  const table = new Uint32Array(128).fill(packed(STATE_COLORS.Unknown));
  for (const [code, state] of Object.entries(GRID_CODES)) table[code.charCodeAt(0)] = packed(STATE_COLORS[state]);
  return table;
})();

// [pitch, cell] in CSS pixels, largest first; the first that keeps the grid under MAX_H wins.
const SIZES = [
  [16, 14],
  [12, 10],
  [8, 7],
  [6, 5],
  [4, 3],
  [3, 2],
  [2, 2],
  [1, 1],
];
const MAX_H = 800;

export function countStates(states) {
  const by = {};
  for (const s of RUN_STATES) by[s] = 0;
  const raw = new Uint32Array(128);
  for (let i = 0; i < states.length; i++) raw[states.charCodeAt(i) & 127]++;
  for (const [code, state] of Object.entries(GRID_CODES)) by[state] = raw[code.charCodeAt(0)];
  return by;
}

export function layoutGrid(count, width) {
  for (const [pitch, cell] of SIZES) {
    const cols = Math.max(1, Math.floor(width / pitch));
    if (Math.ceil(count / cols) * pitch <= MAX_H) return { pitch, cell, cols };
  }
  const [pitch, cell] = SIZES[SIZES.length - 1];
  return { pitch, cell, cols: Math.max(1, Math.floor(width / pitch)) };
}

/** grid: {task_id, name, count, first, step, states}; plain: instance 0 for its one unit. */
export function TaskGrid({ jobId, grid, plain, sweep, compact }) {
  const wrap = useRef(null);
  const canvas = useRef(null);
  const width = useWidth(wrap, 800);
  const [hover, setHover] = useState(null);
  const states = grid.states || '';
  const count = Math.max(Number(grid.count) || 0, states.length);
  const counts = useMemo(() => countStates(states), [states]);
  const { pitch, cell, cols } = compact
    ? { pitch: 16, cell: 14, cols: Math.max(1, Math.min(count, 12)) }
    : layoutGrid(count, Math.max(50, width - 2));
  const rows = Math.ceil(count / cols);

  useEffect(() => {
    const el = canvas.current;
    if (!el) return;
    const dpr = Math.max(1, Math.min(3, Math.round(window.devicePixelRatio || 1)));
    const p = pitch * dpr;
    const c = cell * dpr;
    const W = Math.max(1, cols * p);
    const H = Math.max(1, rows * p);
    el.width = W;
    el.height = H;
    el.style.width = W / dpr + 'px';
    el.style.height = H / dpr + 'px';
    const ctx = el.getContext && el.getContext('2d');
    let drawn = 0;
    if (ctx && count > 0) {
      const img = ctx.createImageData(W, H);
      const buf = new Uint32Array(img.data.buffer);
      const unknown = packed(STATE_COLORS.Unknown);
      for (let i = 0; i < count; i++) {
        const code = i < states.length ? states.charCodeAt(i) : 0;
        const color = code < 128 && code ? CODE_COLORS[code] : unknown;
        const x0 = (i % cols) * p;
        const y0 = ((i / cols) | 0) * p;
        for (let dy = 0; dy < c; dy++) {
          const at = (y0 + dy) * W + x0;
          buf.fill(color, at, at + c);
        }
        drawn++;
      }
      ctx.putImageData(img, 0, 0);
    }
    el.dataset.drawn = String(drawn);
  }, [states, count, pitch, cell, cols, rows]);

  const at = (e) => {
    const r = canvas.current.getBoundingClientRect();
    const col = Math.floor((e.clientX - r.left) / pitch);
    const row = Math.floor((e.clientY - r.top) / pitch);
    if (col < 0 || col >= cols || row < 0) return -1;
    const i = row * cols + col;
    return i < count ? i : -1;
  };
  const instanceOf = (i) => (plain ? 0 : i + 1);
  const onMove = (e) => {
    const i = at(e);
    if (i < 0) return setHover(null);
    const r = canvas.current.getBoundingClientRect();
    const wr = wrap.current.getBoundingClientRect();
    setHover({ i, x: e.clientX - wr.left, y: r.top - wr.top + Math.floor((e.clientY - r.top) / pitch) * pitch });
  };
  const onClick = (e) => {
    const i = at(e);
    if (i >= 0) location.hash = `#/jobs/${jobId}/tasks/${grid.task_id}/${instanceOf(i)}/output`;
  };

  const first = Number(grid.first ?? 1);
  const step = Number(grid.step ?? 1) || 1;
  const done = counts.Finished + counts.Failed + counts.Cancelled;
  return (
    <div class={'grid-task' + (compact ? ' compact' : '')} title={compact ? `${grid.name} (#${grid.task_id})` : undefined}>
      <div class="grid-head">
        <b>
          {grid.name || 'task ' + grid.task_id} <span class="muted small">#{grid.task_id}</span>
        </b>
        {!compact && (
          <span class="muted small">
            {' '}
            {fmtNum(count)} run unit{count === 1 ? '' : 's'}, {fmtNum(done)} ended
            {counts.Running ? `, ${fmtNum(counts.Running)} running` : ''}
            {counts.Failed ? `, ${fmtNum(counts.Failed)} failed` : ''}
          </span>
        )}
      </div>
      <div class="grid-wrap" ref={wrap} onMouseLeave={() => setHover(null)}>
        <canvas
          ref={canvas}
          data-testid="grid"
          data-task-id={String(grid.task_id)}
          data-count={count}
          onMouseMove={onMove}
          onClick={onClick}
        />
        {hover && (
          <div class="tip" style={{ left: (compact ? hover.x + 8 : Math.min(hover.x + 12, Math.max(0, width - 220))) + 'px', top: hover.y + pitch + 4 + 'px' }}>
            {plain ? 'the task' : `instance ${fmtNum(hover.i + 1)}`}
            {sweep && !plain ? ` · value ${first + hover.i * step}` : ''} ·{' '}
            <b>{GRID_CODES[states[hover.i]] || 'Unknown'}</b>
            <div class="muted small">click for its output</div>
          </div>
        )}
      </div>
    </div>
  );
}

/** The job's grid legend: run units by state over all its tasks. */
export function GridLegend({ tasks }) {
  const total = {};
  for (const s of RUN_STATES) total[s] = 0;
  for (const g of tasks) {
    const c = countStates(g.states || '');
    for (const s of RUN_STATES) total[s] += c[s];
  }
  return (
    <span class="legend" data-testid="grid-legend">
      {RUN_STATES.map((s) => (
        <span key={s} class={'legend-item' + (total[s] ? '' : ' zero')} data-state={s} data-count={total[s]}>
          <i class="swatch" style={{ background: STATE_COLORS[s] }} />
          {s} <b>{fmtNum(total[s])}</b>
        </span>
      ))}
    </span>
  );
}
