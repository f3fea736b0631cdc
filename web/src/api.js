// The HTTP side of the contract in ../API.md: JSON GETs, the session, and the log-in prompt
// that any 401 raises. URLs are relative ("api/..."), so the dashboard also works when a
// proxy serves it under a path prefix.
import { store } from './store.js';

export class ApiError extends Error {
  constructor(status, code, message, body) {
    super(message);
    this.status = status;
    this.code = code;
    this.body = body;
  }
}

/** The signed-in user: null until known, else {user, role, secure, version}. */
export const session = store(null);
/** Set when the server said 401: {secure: true|false|undefined, error: string}. */
export const loginPrompt = store(null);
/** Bumped after each successful log-in, so pages remount and fetch again. */
export const epoch = store(0);

export function url(path, params) {
  let u = path.replace(/^\//, '');
  if (params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) {
      if (v === undefined || v === null || v === '') continue;
      if (Array.isArray(v)) v.forEach((x) => q.append(k, x));
      else q.append(k, v);
    }
    const s = q.toString();
    if (s) u += (u.includes('?') ? '&' : '?') + s;
  }
  return u;
}

async function request(method, path, { params, body, signal } = {}) {
  let res;
  try {
    res = await fetch(url(path, params), {
      method,
      signal,
      credentials: 'same-origin',
      headers: body ? { 'content-type': 'application/json', accept: 'application/json' } : { accept: 'application/json' },
      body: body ? JSON.stringify(body) : undefined,
    });
  } catch (e) {
    if (e && e.name === 'AbortError') throw e;
    throw new ApiError(0, 'UNAVAILABLE', 'cannot reach the head node: ' + (e && e.message ? e.message : e));
  }
  let data = null;
  const text = await res.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const code = (data && data.code) || String(res.status);
    const message = (data && data.error) || `${res.status} ${res.statusText}`;
    const err = new ApiError(res.status, code, message, data);
    if (res.status === 401 && !(method === 'POST' && path === 'api/session')) {
      const secure = data && typeof data.secure === 'boolean' ? data.secure : session.get()?.secure;
      loginPrompt.set({ secure, error: '' });
    }
    throw err;
  }
  return data;
}

export const get = (path, params, signal) => request('GET', path, { params, signal });

export async function loadSession() {
  try {
    const s = await get('api/session');
    session.set(s);
    return s;
  } catch (e) {
    if (e.status !== 401) throw e;
    return null;
  }
}

/** Log in with what was typed: a `shoal1.` token, or a user name on plaintext clusters. */
export async function logIn(text, secure) {
  const value = text.trim();
  const asToken = secure === true || (secure !== false && value.startsWith('shoal1.'));
  const s = await request('POST', 'api/session', { body: asToken ? { token: value } : { user: value } });
  session.set(s);
  loginPrompt.set(null);
  epoch.set(epoch.get() + 1);
  return s;
}

export async function logOut() {
  try {
    await request('DELETE', 'api/session');
  } catch {
    /* forgotten either way */
  }
  const secure = session.get()?.secure;
  session.set(null);
  loginPrompt.set({ secure, error: '' });
}
