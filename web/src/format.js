// Small pure helpers: proto JSON enums and int64 strings, times, sizes, durations.

export const RUN_STATES = ['Configuring', 'Queued', 'Running', 'Finished', 'Failed', 'Cancelled'];
export const NODE_STATES = ['Online', 'Draining', 'Offline', 'Unreachable'];

// The grid's one-letter codes (see API.md) and back.
export const GRID_CODES = { C: 'Configuring', Q: 'Queued', R: 'Running', F: 'Finished', X: 'Failed', K: 'Cancelled' };

// State colours, shared by badges, the grid canvas, the DAG and the charts (keep in sync
// with the --st-* variables in style.css).
export const STATE_COLORS = {
  Configuring: '#a371f7',
  Queued: '#d4a72c',
  Running: '#1f6feb',
  Finished: '#2da44e',
  Failed: '#cf222e',
  Cancelled: '#8c959f',
  Online: '#2da44e',
  Draining: '#d4a72c',
  Offline: '#8c959f',
  Unreachable: '#cf222e',
  Unknown: '#d0d7de',
};

/** "JOB_STATE_RUNNING" / "TASK_STATE_QUEUED" / "NODE_STATE_ONLINE" / "Running" -> "Running". */
export function stateName(value) {
  if (value === undefined || value === null || value === '') return 'Unknown';
  const s = String(value);
  const m = /^(?:JOB|TASK|NODE)_STATE_(.+)$/.exec(s);
  const word = m ? m[1] : s;
  if (word === 'UNSPECIFIED') return 'Unknown';
  return word.charAt(0).toUpperCase() + word.slice(1).toLowerCase();
}

/** int64-as-string (or number, or missing) -> number. */
export function num(value) {
  if (value === undefined || value === null || value === '') return 0;
  const n = Number(value);
  return Number.isFinite(n) ? n : 0;
}

/** TaskCounts proto JSON -> {Queued: n, ...} with every state present. */
export function countsByState(tc) {
  const out = {};
  for (const s of RUN_STATES) out[s] = num(tc && tc[s.toLowerCase()]);
  return out;
}

export function countsTotal(tc) {
  let t = 0;
  for (const s of RUN_STATES) t += num(tc && tc[s.toLowerCase()]);
  return t;
}

/** RFC 3339 string or epoch seconds -> epoch milliseconds (NaN when unset). */
export function toMs(value) {
  if (value === undefined || value === null || value === '') return NaN;
  if (typeof value === 'number') return value * 1000;
  return Date.parse(value);
}

const pad = (n) => String(n).padStart(2, '0');

/** A compact local time: "14:03:07" today, "Nov 21 14:03" otherwise. */
export function fmtTime(value) {
  const ms = toMs(value);
  if (!Number.isFinite(ms)) return '';
  const d = new Date(ms);
  const now = new Date();
  const hms = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  if (d.toDateString() === now.toDateString()) return hms;
  const mon = d.toLocaleString('en', { month: 'short' });
  const year = d.getFullYear() === now.getFullYear() ? '' : ` ${d.getFullYear()}`;
  return `${mon} ${d.getDate()}${year} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export function fmtFullTime(value) {
  const ms = toMs(value);
  if (!Number.isFinite(ms)) return '';
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** Seconds -> "45s", "3m 05s", "2h 04m", "3d 02h". */
export function fmtDuration(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return '';
  const s = Math.floor(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${pad(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${pad(Math.floor((s % 3600) / 60))}m`;
  return `${Math.floor(s / 86400)}d ${pad(Math.floor((s % 86400) / 3600))}h`;
}

/** Duration between two times (RFC 3339 or epoch s); to unset: until now. */
export function span(from, to, nowMs = Date.now()) {
  const a = toMs(from);
  if (!Number.isFinite(a)) return '';
  const b = toMs(to);
  return fmtDuration(((Number.isFinite(b) ? b : nowMs) - a) / 1000);
}

export function fmtAge(value, nowMs = Date.now()) {
  const ms = toMs(value);
  if (!Number.isFinite(ms)) return 'never';
  return `${fmtDuration(Math.max(0, (nowMs - ms) / 1000))} ago`;
}

export function fmtMB(mb) {
  const n = num(mb);
  if (n >= 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} TB`;
  if (n >= 1024) return `${(n / 1024).toFixed(n >= 10240 ? 0 : 1)} GB`;
  return `${n} MB`;
}

export function fmtNum(n) {
  return num(n).toLocaleString('en');
}

export function fmtBytes(b) {
  const n = num(b);
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  if (n < 1024 * 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MB`;
  return `${(n / 1024 / 1024 / 1024).toFixed(1)} GB`;
}

/** Resources proto JSON -> generic count of GPUs (key "gpu" or "gpus"). */
export function gpus(res) {
  const g = (res && res.generic) || {};
  return num(g.gpu ?? g.gpus);
}

export function pct(used, total) {
  return total > 0 ? Math.round((used / total) * 100) : 0;
}
