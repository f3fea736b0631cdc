// Hash routing and a few small hooks.
import { useEffect, useRef, useState } from 'preact/hooks';
import { jobEvents, subscribe } from './events.js';

/** "#/jobs/12?state=Running" -> {path: "/jobs/12", parts: ["jobs", "12"], query}. */
export function parseHash(hash) {
  const raw = (hash || '').replace(/^#/, '') || '/';
  const i = raw.indexOf('?');
  const path = i < 0 ? raw : raw.slice(0, i);
  const query = new URLSearchParams(i < 0 ? '' : raw.slice(i + 1));
  return { path, parts: path.split('/').filter(Boolean).map(decodeURIComponent), query };
}

export function useRoute() {
  const [route, setRoute] = useState(() => parseHash(location.hash));
  useEffect(() => {
    const on = () => setRoute(parseHash(location.hash));
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return route;
}

/** Replace the hash (no new history entry when replace is true). */
export function setHash(path, query, replace = false) {
  const q = query && query.toString();
  const hash = '#' + path + (q ? '?' + q : '');
  if (hash === location.hash) return;
  if (replace) {
    history.replaceState(null, '', hash);
    dispatchEvent(new HashChangeEvent('hashchange'));
  } else location.hash = hash;
}

/**
 * A refetch trigger for push events: calls run() at most once per `ms` (trailing), never
 * two at a time (a trigger during a run schedules one more after it).
 */
export function useRefresher(run, ms) {
  const ref = useRef(null);
  if (!ref.current) {
    const r = { run, timer: null, inflight: false, dirty: false, dead: false };
    const fire = async () => {
      r.timer = null;
      if (r.dead) return;
      if (r.inflight) {
        r.dirty = true;
        return;
      }
      r.inflight = true;
      try {
        await r.run();
      } catch {
        /* the page shows its own errors */
      } finally {
        r.inflight = false;
        if (r.dirty && !r.dead) {
          r.dirty = false;
          r.trigger();
        }
      }
    };
    r.trigger = () => {
      if (r.timer || r.dead) return;
      r.timer = setTimeout(fire, r.ms);
    };
    ref.current = r;
  }
  ref.current.run = run;
  ref.current.ms = ms;
  useEffect(
    () => () => {
      ref.current.dead = true;
      clearTimeout(ref.current.timer);
    },
    [],
  );
  return ref.current.trigger;
}

/** Re-render every `ms` (for "3s ago" ages). */
export function useNow(ms = 1000) {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}

/** Width of an element, kept up to date (ResizeObserver). */
export function useWidth(ref, fallback = 800) {
  const [width, setWidth] = useState(fallback);
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    setWidth(el.clientWidth || fallback);
    if (typeof ResizeObserver === 'undefined') return;
    const ro = new ResizeObserver(() => setWidth(el.clientWidth || fallback));
    ro.observe(el);
    return () => ro.disconnect();
  }, [ref.current]);
  return width;
}

/** load() now, and again (at most every `ms`) after events about job `jobId` or a stream resync. */
export function useJobFollow(jobId, load, ms, deps) {
  const refresh = useRefresher(load, ms);
  useEffect(() => {
    load();
    return subscribe(
      'jobs',
      (payload) => {
        if (jobEvents(payload).some((ev) => String(ev.job_id) === String(jobId))) refresh();
      },
      refresh,
    );
  }, deps);
}
