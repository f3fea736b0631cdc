// The dashboard shell: header (nav, user, live dot), log-in form on 401, hash routes.
import { render } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import './style.css';
import { epoch, loadSession, logIn, logOut, loginPrompt, session } from './api.js';
import { live, start } from './events.js';
import { useStore } from './store.js';
import { useRoute } from './hooks.js';
import { Overview } from './pages/Overview.jsx';
import { NodeList, NodePage } from './pages/Nodes.jsx';
import { JobList } from './pages/Jobs.jsx';
import { JobPage } from './pages/Job.jsx';
import { OutputPage } from './pages/Output.jsx';
import { UsagePage } from './pages/Usage.jsx';

function Header({ section }) {
  const s = useStore(session);
  const isLive = useStore(live);
  const link = (id, href, text) => (
    <a href={href} data-testid={'nav-' + id} class={section === id ? 'active' : ''}>
      {text}
    </a>
  );
  return (
    <header class="top">
      <a class="brand" href="#/">
        <svg width="18" height="18" viewBox="0 0 16 16" aria-hidden="true">
          <circle cx="8" cy="8" r="7" fill="#1f6feb" />
          <path d="M3.5 9.5c1.5-2 3-2 4.5 0s3 2 4.5 0" stroke="#fff" stroke-width="1.6" fill="none" />
        </svg>
        Shoal
      </a>
      <nav>
        {link('overview', '#/', 'Overview')}
        {link('nodes', '#/nodes', 'Nodes')}
        {link('jobs', '#/jobs', 'Jobs')}
        {link('usage', '#/usage', 'Usage')}
      </nav>
      <div class="spacer" />
      <span
        class={'live ' + (isLive ? 'on' : 'off')}
        data-testid="live"
        data-live={isLive ? '1' : '0'}
        title={isLive ? 'Live: receiving updates from the head node' : 'Not connected to the head node'}
      >
        <i />
        {isLive ? 'live' : 'offline'}
      </span>
      {s && (
        <span class="who" data-testid="whoami">
          {s.user} <span class="role">{s.role}</span>
          <button class="link" onClick={() => logOut()} title="Forget this session">
            log out
          </button>
        </span>
      )}
    </header>
  );
}

function Login({ prompt }) {
  const [value, setValue] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const secure = prompt.secure;
  const label = secure === true ? 'User token' : secure === false ? 'User name' : 'User name or token';
  const input = useRef(null);
  const submit = async (e) => {
    e.preventDefault();
    const text = input.current ? input.current.value : value; // the DOM's, even if typed a moment ago
    if (!text.trim()) return setError('Type ' + label.toLowerCase() + ' first.');
    setBusy(true);
    setError('');
    try {
      await logIn(text, secure);
    } catch (err) {
      setError(err.message || String(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <div class="login-wrap">
      <form class="login card" data-testid="login" onSubmit={submit}>
        <h2>Sign in to Shoal</h2>
        <label for="login-input">{label}</label>
        <input
          id="login-input"
          ref={input}
          data-testid="login-input"
          type={secure === true ? 'password' : 'text'}
          autocomplete={secure === true ? 'off' : 'username'}
          placeholder={secure === true ? 'shoal1.…' : secure === false ? 'your user name' : 'your user name, or a shoal1.… token'}
          value={value}
          onInput={(e) => setValue(e.currentTarget.value)}
          autofocus
        />
        <p class="muted small">
          {secure === false
            ? 'This cluster is in plaintext (development) mode: names are trusted.'
            : 'Create a token with `shoal user token`.'}
        </p>
        {error && <div class="error">{error}</div>}
        <button type="submit" class="primary" data-testid="login-submit" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </div>
  );
}

function NotFound({ path }) {
  return (
    <div class="page">
      <h1>Not found</h1>
      <p>
        Nothing at <code>{path}</code>. <a href="#/">Back to the overview</a>.
      </p>
    </div>
  );
}

function Routes({ route }) {
  const p = route.parts;
  if (p.length === 0) return <Overview />;
  if (p[0] === 'nodes' && p.length === 1) return <NodeList />;
  if (p[0] === 'nodes' && p.length === 2) return <NodePage key={p[1]} name={p[1]} />;
  if (p[0] === 'jobs' && p.length === 1) return <JobList query={route.query} />;
  if (p[0] === 'jobs' && p.length === 2) return <JobPage key={p[1]} id={p[1]} />;
  if (p[0] === 'jobs' && p.length === 6 && p[2] === 'tasks' && p[5] === 'output')
    return (
      <OutputPage
        key={route.path + '?' + (route.query.get('stream') || '')}
        jobId={p[1]}
        taskId={p[3]}
        instance={p[4]}
        stream={route.query.get('stream') === 'stderr' ? 'stderr' : 'stdout'}
      />
    );
  if (p[0] === 'usage' && p.length === 1) return <UsagePage />;
  return <NotFound path={route.path} />;
}

function App() {
  const route = useRoute();
  const prompt = useStore(loginPrompt);
  const ep = useStore(epoch);
  const s = useStore(session);
  const [ready, setReady] = useState(false);
  const [bootError, setBootError] = useState(null);

  useEffect(() => {
    loadSession()
      .then(() => {
        setReady(true);
        start();
      })
      .catch((e) => {
        setBootError(e);
        setReady(true);
        start();
      });
  }, []);

  const section = route.parts[0] || 'overview';
  return (
    <div class="app">
      <Header section={section} />
      <main>
        {prompt ? (
          <Login prompt={prompt} />
        ) : !ready ? null : (
          <>
            {bootError && !s && <div class="error">{bootError.message}</div>}
            <Routes key={ep} route={route} />
          </>
        )}
      </main>
    </div>
  );
}

render(<App />, document.getElementById('app'));
