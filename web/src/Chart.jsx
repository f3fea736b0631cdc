// uPlot wrapper: one time-series chart, created once, fed new data with setData and
// resized with its container.
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { useEffect, useRef } from 'preact/hooks';
import { useWidth } from './hooks.js';
import { fmtFullTime, fmtTime } from './format.js';

/** 1234 -> "1.2k", 70000 -> "70k", 1500000 -> "1.5M", 0.0012 -> "0.0012". */
export function compact(v) {
  const a = Math.abs(v);
  if (a > 0 && a < 0.01) return String(+v.toPrecision(2)); // a short job's core-hours is not 0
  if (a >= 1e6) return +(v / 1e6).toFixed(a >= 1e7 ? 0 : 1) + 'M';
  if (a >= 1e3) return +(v / 1e3).toFixed(a >= 1e4 ? 0 : 1) + 'k';
  return String(+v.toFixed(2));
}

// Legend values: the hovered point, or the newest one when the cursor is elsewhere.
const lastIdx = (u, idx) => (idx == null ? u.data[0].length - 1 : idx);

/**
 * data: [xs (epoch seconds), ys1, ys2, ...]; series: [{label, color, value?, bars?, fill?}];
 * yRange: [min, max] or undefined (auto); yValues: tick formatter.
 */
export function TimeChart({ data, series, height = 220, testid, yRange, yValues }) {
  const wrap = useRef(null);
  const plot = useRef(null);
  const width = useWidth(wrap, 700);
  const key = series.map((s) => s.label).join('|');
  const bars = series.some((s) => s.bars);

  useEffect(() => {
    if (!wrap.current) return;
    const opts = {
      width: Math.max(200, width),
      height,
      cursor: { drag: { x: false, y: false }, points: { size: 6 } },
      legend: { live: true },
      scales: {
        x: {
          time: true,
          // Bars start at their bucket's time: leave room for the last bucket's width.
          ...(bars ? { range: (u, min, max) => [min, max + (u.data[0].length > 1 ? u.data[0][1] - u.data[0][0] : 3600)] } : {}),
        },
        y: yRange ? { range: () => yRange } : { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] },
      },
      axes: [
        { stroke: '#57606a', grid: { stroke: '#eaeef2', width: 1 }, ticks: { stroke: '#eaeef2' } },
        {
          stroke: '#57606a',
          grid: { stroke: '#eaeef2', width: 1 },
          ticks: { stroke: '#eaeef2' },
          size: 48,
          values: (u, vals) => vals.map(yValues || compact),
        },
      ],
      series: [
        {
          label: 'Time',
          value: (u, v, si, idx) => {
            const i = lastIdx(u, idx);
            return i < 0 ? '--' : (bars ? fmtFullTime : fmtTime)(u.data[0][i]);
          },
        },
        ...series.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: s.bars ? 0 : 1.5,
          fill: s.bars ? s.color : s.fill ? s.color + '22' : undefined,
          points: { show: false },
          ...(s.bars ? { paths: uPlot.paths.bars({ size: [0.7, 60], align: 1 }) } : {}),
          value: (u, v, si, idx) => {
            const i = lastIdx(u, idx);
            if (i < 0 || u.data[si][i] == null) return '--';
            return s.value ? s.value(u, u.data[si][i], si, i) : compact(u.data[si][i]);
          },
        })),
      ],
    };
    plot.current = new uPlot(opts, data, wrap.current);
    return () => {
      plot.current.destroy();
      plot.current = null;
    };
  }, [key]);

  useEffect(() => {
    if (plot.current) plot.current.setData(data);
  }, [data]);

  useEffect(() => {
    if (plot.current && width > 0) plot.current.setSize({ width: Math.max(200, width), height });
  }, [width, height]);

  return <div class="chart" ref={wrap} data-testid={testid} data-points={data[0] ? data[0].length : 0} />;
}
