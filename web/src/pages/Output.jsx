// #/jobs/ID/tasks/TASK/INSTANCE/output[?stream=stderr] — a run unit's output, followed live
// over server-sent events. Text is appended to the <pre> directly (once per frame), and
// only the last ~2 MB is kept in the page.
import { Component } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { get, url } from '../api.js';
import { ErrorBox } from '../components.jsx';
import { fmtBytes, num, stateName } from '../format.js';
import { useJobFollow } from '../hooks.js';
import { outputHref } from './Job.jsx';

const CAP = 2 * 1024 * 1024; // characters kept in the <pre> at most...
const KEEP = 1536 * 1024; // ...trimmed down to this when over

const encoder = new TextEncoder();

// The <pre> is filled imperatively; Preact must never re-render its content.
class Pre extends Component {
  shouldComponentUpdate() {
    return false;
  }
  render() {
    return <pre class={'output'} data-testid="output" ref={this.props.preRef} />;
  }
}

export function OutputPage({ jobId, taskId, instance, stream }) {
  const pre = useRef(null);
  const [status, setStatus] = useState('connecting');
  const [error, setError] = useState(null);
  const [received, setReceived] = useState(0);
  const [trimmed, setTrimmed] = useState(0);
  const [wrap, setWrap] = useState(false);
  const [task, setTask] = useState(null);
  const inst = num(instance);

  // The task's state follows the job's events (one refetch per burst), like the job page.
  const loadTask = () =>
    get('api/jobs/' + encodeURIComponent(jobId))
      .then((j) => setTask({ job: j, task: (j.tasks || []).find((t) => String(t.ref?.task_id) === String(taskId)) }))
      .catch(() => {});
  useJobFollow(jobId, loadTask, 400, [jobId, taskId]);

  useEffect(() => {
    let es = null;
    let offset = 0; // bytes received so far: where a reconnect resumes
    let lastAt = null; // offset of the newest chunk shown
    let done = false;
    let retry = null;
    let pending = '';
    let raf = 0;
    let kept = 0;
    let cut = 0;

    const flush = () => {
      raf = 0;
      const el = pre.current;
      if (!el || !pending) return;
      const atBottom = el.scrollHeight - el.scrollTop - el.clientHeight < 24;
      if (kept + pending.length > CAP) {
        let all = el.textContent + pending;
        let from = all.length - KEEP;
        const nl = all.indexOf('\n', from);
        if (nl >= 0 && nl - from < 4096) from = nl + 1;
        cut += from;
        all = all.slice(from);
        el.textContent = all;
        kept = all.length;
        setTrimmed(cut);
      } else {
        el.appendChild(document.createTextNode(pending));
        kept += pending.length;
      }
      pending = '';
      if (atBottom) el.scrollTop = el.scrollHeight;
      setReceived(offset);
    };
    const schedule = () => {
      if (!raf) raf = (window.requestAnimationFrame || ((f) => setTimeout(f, 16)))(flush);
    };

    const streamUrl = () =>
      url(`api/jobs/${encodeURIComponent(jobId)}/tasks/${encodeURIComponent(taskId)}/output`, {
        instance: inst,
        stream,
        offset: offset || undefined,
      });
    const open = () => {
      if (done) return;
      const source = new EventSource(streamUrl());
      es = source;
      source.onopen = () => setStatus('following');
      source.addEventListener('chunk', (e) => {
        let c;
        try {
          c = JSON.parse(e.data);
        } catch {
          return;
        }
        const text = c.text || '';
        const at = num(c.offset);
        if (lastAt !== null && at <= lastAt) return; // already shown (a resent chunk)
        lastAt = at;
        // Where a reconnect resumes: the byte after this chunk (the server's offsets are bytes).
        offset = at + encoder.encode(text).length;
        pending += text;
        schedule();
      });
      source.addEventListener('end', () => {
        done = true;
        source.close();
        flush();
        setReceived(offset);
        setStatus('ended');
      });
      source.addEventListener('error', (e) => {
        if (done) return;
        if (e.data) {
          // The server's own error event: {"error": "...", "code": "..."}.
          let msg = e.data;
          try {
            const d = JSON.parse(e.data);
            msg = d.error || msg;
          } catch {
            /* plain text */
          }
          done = true;
          source.close();
          flush();
          setError({ message: msg });
          setStatus('error');
          return;
        }
        // Connection lost or refused: resume from what we have.
        const refused = source.readyState === 2;
        source.close();
        setStatus('reconnecting');
        clearTimeout(retry);
        if (!refused) {
          retry = setTimeout(open, 1000);
          return;
        }
        // Refused (EventSource does not say why): ask once more with fetch to read the status.
        const ctl = new AbortController();
        fetch(streamUrl(), { signal: ctl.signal, credentials: 'same-origin' })
          .then(async (res) => {
            if (res.ok) {
              ctl.abort();
              if (!done) retry = setTimeout(open, 1000);
              return;
            }
            if (res.status === 401) {
              get('api/session').catch(() => {}); // brings up the log-in form
              return;
            }
            let msg = `${res.status} ${res.statusText}`;
            try {
              msg = (await res.json()).error || msg;
            } catch {
              /* not JSON */
            }
            done = true;
            setError({ message: msg });
            setStatus('error');
          })
          .catch(() => {
            if (!done) retry = setTimeout(open, 3000);
          });
      });
    };
    open();
    return () => {
      done = true;
      if (es) es.close();
      clearTimeout(retry);
      if (raf) (window.cancelAnimationFrame || clearTimeout)(raf);
    };
  }, [jobId, taskId, inst, stream]);

  const t = task?.task;
  const name = t?.spec?.name || `task ${taskId}`;
  const count = num(t?.instance_count);
  const statusText =
    status === 'following' ? 'following…' : status === 'ended' ? 'ended' : status === 'error' ? 'error' : status + '…';
  const tab = (s, label) => (
    <a
      href={outputHref(jobId, taskId, instance, s)}
      class={'tab' + (stream === s ? ' active' : '')}
      data-testid={'tab-' + s}
      aria-selected={stream === s}
    >
      {label}
    </a>
  );
  const toEnd = () => {
    if (pre.current) pre.current.scrollTop = pre.current.scrollHeight;
  };
  return (
    <div class="page output-page" data-testid="output-page">
      <div class="crumbs">
        <a href="#/jobs">Jobs</a> / <a href={'#/jobs/' + jobId}>#{jobId}{task?.job?.name ? ' ' + task.job.name : ''}</a> /
      </div>
      <h1>
        {name} <span class="muted small">task {taskId}{inst ? ` · instance ${inst}` : ''}</span>
        {t && (
          <span class={'badge st-' + stateName(t.state)} data-testid="task-state" data-state={stateName(t.state)}>
            {stateName(t.state)}
          </span>
        )}
      </h1>
      <div class="output-bar">
        <div class="tabs">
          {tab('stdout', 'stdout')}
          {tab('stderr', 'stderr')}
        </div>
        <span class={'status s-' + status} data-testid="output-status" data-status={status}>
          <i />
          {statusText}
        </span>
        <span class="muted small">
          {fmtBytes(received)}
          {trimmed > 0 ? ` · first ${fmtBytes(trimmed)} not shown` : ''}
        </span>
        <div class="spacer" />
        {inst > 1 && (
          <a class="small" href={outputHref(jobId, taskId, inst - 1, stream)}>
            ← #{inst - 1}
          </a>
        )}
        {inst > 0 && (!count || inst < count) && (
          <a class="small" href={outputHref(jobId, taskId, inst + 1, stream)}>
            #{inst + 1} →
          </a>
        )}
        <label class="small">
          <input type="checkbox" checked={wrap} onChange={(e) => setWrap(e.currentTarget.checked)} /> wrap
        </label>
        <button type="button" class="link small" onClick={toEnd}>
          jump to end
        </button>
      </div>
      <ErrorBox error={error} />
      <div class={'output-box' + (wrap ? ' wrap' : '')}>
        <Pre preRef={pre} />
        {status === 'ended' && received === 0 && <div class="muted pad">No output on {stream}.</div>}
      </div>
    </div>
  );
}
