// A job's tasks as a graph: layered left to right (layer = longest path from a root along
// depends_on), ordered within layers by a few barycenter sweeps, edges as curves.
import { STATE_COLORS, countsByState, countsTotal, fmtNum, stateName } from './format.js';

const BOX_W = 168;
const BOX_H = 40;
const GAP_X = 56;
const GAP_Y = 14;
const PAD = 8;

/** tasks: [{id, name, deps: [names]}] -> {nodes: [{...task, layer, x, y}], edges, width, height}. */
export function layout(tasks) {
  const byName = new Map();
  for (const t of tasks) if (!byName.has(t.name)) byName.set(t.name, t);
  const layerOf = new Map();
  const visiting = new Set();
  const depth = (t) => {
    if (layerOf.has(t)) return layerOf.get(t);
    if (visiting.has(t)) return 0; // a cycle cannot be submitted; do not loop if one shows up
    visiting.add(t);
    let l = 0;
    for (const d of t.deps) {
      const p = byName.get(d);
      if (p && p !== t) l = Math.max(l, depth(p) + 1);
    }
    visiting.delete(t);
    layerOf.set(t, l);
    return l;
  };
  // Iterative-friendly: deep chains recurse once per link, fine for jobs of a few thousand tasks.
  tasks.forEach(depth);

  const layers = [];
  for (const t of tasks) {
    const l = layerOf.get(t);
    if (!layers[l]) layers[l] = [];
    layers[l].push(t);
  }
  for (let l = 0; l < layers.length; l++) if (!layers[l]) layers[l] = [];

  const parents = new Map(tasks.map((t) => [t, t.deps.map((d) => byName.get(d)).filter((p) => p && p !== t)]));
  const children = new Map(tasks.map((t) => [t, []]));
  for (const t of tasks) for (const p of parents.get(t)) children.get(p).push(t);

  const pos = new Map();
  const index = () => layers.forEach((layer) => layer.forEach((t, i) => pos.set(t, i)));
  index();
  const sweep = (from, to, step, rel) => {
    for (let l = from; l !== to; l += step) {
      const layer = layers[l];
      const bary = new Map();
      for (const t of layer) {
        const ns = rel.get(t);
        bary.set(t, ns.length ? ns.reduce((a, n) => a + pos.get(n), 0) / ns.length : pos.get(t));
      }
      layer.sort((a, b) => bary.get(a) - bary.get(b) || pos.get(a) - pos.get(b));
      layer.forEach((t, i) => pos.set(t, i));
    }
  };
  for (let pass = 0; pass < 3; pass++) {
    sweep(1, layers.length, 1, parents);
    sweep(layers.length - 2, -1, -1, children);
  }

  const tallest = Math.max(1, ...layers.map((l) => l.length));
  const height = PAD * 2 + tallest * BOX_H + (tallest - 1) * GAP_Y;
  const width = PAD * 2 + layers.length * BOX_W + Math.max(0, layers.length - 1) * GAP_X;
  const nodes = [];
  const at = new Map();
  layers.forEach((layer, l) => {
    const colH = layer.length * BOX_H + (layer.length - 1) * GAP_Y;
    const top = PAD + (height - PAD * 2 - colH) / 2;
    layer.forEach((t, i) => {
      const n = { ...t, layer: l, x: PAD + l * (BOX_W + GAP_X), y: top + i * (BOX_H + GAP_Y) };
      at.set(t, n);
      nodes.push(n);
    });
  });
  const edges = [];
  for (const t of tasks)
    for (const p of parents.get(t)) {
      const a = at.get(p);
      const b = at.get(t);
      const x1 = a.x + BOX_W;
      const y1 = a.y + BOX_H / 2;
      const x2 = b.x;
      const y2 = b.y + BOX_H / 2;
      const mx = (x1 + x2) / 2;
      edges.push({ from: p.name, to: t.name, d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2 - 4},${y2}` });
    }
  return { nodes, edges, width, height };
}

function clip(s, n) {
  return s.length > n ? s.slice(0, n - 1) + '…' : s;
}

/** job.tasks (proto JSON) -> the SVG graph. */
export function Dag({ tasks }) {
  const input = tasks.map((t) => ({
    id: t.ref?.task_id,
    name: t.spec?.name || `task ${t.ref?.task_id}`,
    deps: t.spec?.depends_on || [],
    state: stateName(t.state),
    counts: t.instance_counts,
    total: Number(t.instance_count) || 0,
  }));
  const g = layout(input);
  return (
    <div class="dag-wrap">
      <svg
        data-testid="dag"
        width={g.width}
        height={g.height}
        viewBox={`0 0 ${g.width} ${g.height}`}
        data-nodes={g.nodes.length}
        data-edges={g.edges.length}
      >
        <defs>
          <marker id="dag-arrow" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="7" markerHeight="7" orient="auto">
            <path d="M0,0 L8,4 L0,8 z" fill="#8c959f" />
          </marker>
        </defs>
        {g.edges.map((e, i) => (
          <path key={i} class="dag-edge" d={e.d} marker-end="url(#dag-arrow)" data-from={e.from} data-to={e.to} />
        ))}
        {g.nodes.map((n) => {
          const color = STATE_COLORS[n.state] || STATE_COLORS.Unknown;
          const by = countsByState(n.counts);
          const total = countsTotal(n.counts) || n.total;
          const done = by.Finished + by.Failed + by.Cancelled;
          return (
            <g
              key={n.name}
              class="dag-node"
              data-testid="dag-node"
              data-task={n.name}
              data-task-id={n.id}
              data-state={n.state}
              transform={`translate(${n.x},${n.y})`}
              onClick={() => document.getElementById('task-' + n.id)?.scrollIntoView({ behavior: 'smooth', block: 'center' })}
            >
              <title>{`${n.name} (#${n.id}): ${n.state}${n.deps.length ? '\nafter ' + n.deps.join(', ') : ''}`}</title>
              <rect width={BOX_W} height={BOX_H} rx="4" fill={color + '1f'} stroke={color} />
              <rect width="4" height={BOX_H} rx="2" fill={color} />
              <text x="10" y="16" class="dag-name">
                {clip(n.name, 22)}
              </text>
              <text x="10" y="31" class="dag-sub">
                {n.state}
                {total > 1 ? ` · ${fmtNum(done)}/${fmtNum(total)}` : ''}
              </text>
            </g>
          );
        })}
      </svg>
    </div>
  );
}
