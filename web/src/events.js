// The one shared push stream (GET api/events?topics=...). Pages subscribe to the topics they
// need; the connection is reopened only when the set of topics changes. With no subscriber
// it still follows `cluster`, so the header's live dot always says whether the head node is
// reachable. `live` is true while the EventSource is open.
import { get, loginPrompt } from './api.js';
import { store } from './store.js';

export const live = store(false);

const TOPICS = ['jobs', 'cluster', 'nodes'];
const subscribers = new Map(); // topic -> Set<{fn, resync}>
let es = null; // the stream wanted now
let previous = null; // the one it replaces, kept until the new one is open (the dot stays green)
let openKey = '';
let liveTopics = new Set(); // topics of the stream that is open
let wasDown = false;
let syncQueued = false;
let retryTimer = null;

function wanted() {
  const topics = TOPICS.filter((t) => subscribers.get(t)?.size); // ('error' is not a topic to ask for)
  return (topics.length ? topics : ['cluster']).join(',');
}

function retire(source) {
  if (source) {
    source.onopen = source.onerror = null;
    source.close();
  }
}

function close() {
  retire(previous);
  retire(es);
  previous = es = null;
  openKey = '';
  liveTopics = new Set();
  live.set(false);
}

function resync(topics) {
  for (const [topic, set] of subscribers) {
    if (topics && !topics.has(topic)) continue;
    for (const s of set) if (s.resync) s.resync();
  }
}

function open(key) {
  if (typeof EventSource === 'undefined') return;
  retire(previous);
  previous = es && es.readyState === 1 ? es : null;
  if (es && !previous) retire(es);
  openKey = key;
  const source = new EventSource('api/events?topics=' + key);
  es = source;
  source.onopen = () => {
    retire(previous);
    previous = null;
    live.set(true);
    const topics = new Set(key.split(','));
    // Changes may have been missed while the stream was down, or, for a topic just added,
    // between the page's first fetch and now: let those pages refetch.
    if (wasDown) resync(null);
    else resync(new Set([...topics].filter((t) => !liveTopics.has(t))));
    wasDown = false;
    liveTopics = topics;
  };
  source.onerror = (e) => {
    if (e && typeof e.data === 'string') {
      // The server's own `event: error` ({"error", "code"}), e.g. a topic the user may not
      // follow: the stream stays open; pages that care subscribe to `error`.
      let body = null;
      try {
        body = JSON.parse(e.data);
      } catch {
        body = { error: e.data };
      }
      for (const s of subscribers.get('error') || []) s.fn(body);
      return;
    }
    retire(previous);
    previous = null;
    live.set(false);
    wasDown = true;
    if (source.readyState === 2 /* CLOSED: refused, e.g. 401; EventSource gives up */) {
      close();
      get('api/session').catch(() => {}); // a 401 brings up the log-in form
      clearTimeout(retryTimer);
      retryTimer = setTimeout(sync, 3000);
    }
  };
  for (const topic of TOPICS) {
    source.addEventListener(topic, (e) => {
      let data;
      try {
        data = JSON.parse(e.data);
      } catch {
        return;
      }
      const set = subscribers.get(topic);
      if (!set) return;
      for (const s of [...set]) {
        try {
          s.fn(data);
        } catch (err) {
          console.error('shoal: handling a', topic, 'event failed', err);
        }
      }
    });
  }
}

function sync() {
  syncQueued = false;
  if (loginPrompt.get()) {
    close();
    return;
  }
  const key = wanted();
  if (es && key === openKey) return;
  open(key);
}

function queueSync() {
  if (syncQueued) return;
  syncQueued = true;
  // Coalesce the unsubscribe + subscribe of a page change into one reconnect.
  setTimeout(sync, 0);
}

/** Call fn(data) for each event of the topic; resync() after the stream was down. */
export function subscribe(topic, fn, resync) {
  if (!subscribers.has(topic)) subscribers.set(topic, new Set());
  const entry = { fn, resync };
  subscribers.get(topic).add(entry);
  queueSync();
  return () => {
    subscribers.get(topic).delete(entry);
    queueSync();
  };
}

export function start() {
  loginPrompt.subscribe(queueSync);
  queueSync();
}

/** A jobs event's payload -> flat list of JobEvent (also unpacks a `more` field). */
export function jobEvents(data) {
  const list = Array.isArray(data) ? data : data && Array.isArray(data.events) ? data.events : data ? [data] : [];
  const out = [];
  for (const ev of list) {
    out.push(ev);
    if (Array.isArray(ev.more)) out.push(...ev.more);
  }
  return out;
}
