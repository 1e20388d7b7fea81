// The dashboard's shell: sign-in, navigation and hash routing. Each page is a module with a
// `render(main, route)` function that may return a cleanup (to stop its refresh timer).

import { apiKey, call, signIn, signOut, whenUnauthorized } from './api.js';
import { clearPinned, field, h, heading, replace, setFieldError, showPinned, withCode } from './dom.js';
import { renderWorkflows } from './workflows.js';
import { renderWorkflowForm } from './workflow_form.js';
import { renderTestPanel } from './test_panel.js';
import { renderExecutions, renderExecution } from './executions.js';
import { renderEvents, renderEvent } from './events.js';
import { renderIntegrations } from './integrations.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const signOutButton = document.getElementById('sign-out');
showPinned(document.getElementById('pinned'));

/** `#/a/b?x=1` → { parts: ['a', 'b'], params: URLSearchParams }. */
function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [path, search = ''] = raw.split('?');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  return { parts, params: new URLSearchParams(search) };
}

const routes = [
  { match: ['workflows', ':entity'], section: 'workflows', render: renderWorkflows },
  { match: ['workflows', ':entity', 'new'], section: 'workflows', render: renderWorkflowForm },
  { match: ['workflow', ':guid', 'edit'], section: 'workflows', render: renderWorkflowForm },
  { match: ['workflow', ':guid', 'test'], section: 'workflows', render: renderTestPanel },
  { match: ['executions'], section: 'executions', render: renderExecutions },
  { match: ['executions', ':id'], section: 'executions', render: renderExecution },
  { match: ['events'], section: 'events', render: renderEvents },
  { match: ['events', ':eventId'], section: 'events', render: renderEvent },
  { match: ['integrations'], section: 'integrations', render: renderIntegrations },
];

function findRoute(parts) {
  for (const route of routes) {
    if (route.match.length !== parts.length) continue;
    const vars = {};
    const ok = route.match.every((segment, i) => {
      if (segment.startsWith(':')) {
        vars[segment.slice(1)] = parts[i];
        return true;
      }
      return segment === parts[i];
    });
    if (ok) return { route, vars };
  }
  return null;
}

let cleanup = null;
let renderSeq = 0;

async function show({ focus = false } = {}) {
  if (typeof cleanup === 'function') cleanup();
  cleanup = null;
  const seq = ++renderSeq;
  if (!apiKey()) {
    renderSignIn();
    return;
  }
  nav.hidden = false;
  signOutButton.hidden = false;
  const { parts, params } = parseHash();
  const found = findRoute(parts);
  if (!found) {
    location.replace('#/workflows/Order');
    return;
  }
  for (const link of nav.querySelectorAll('a')) {
    if (link.dataset.section === found.route.section) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  replace(main);
  const result = await found.route.render(main, { ...found.vars, params, isCurrent: () => seq === renderSeq });
  if (seq !== renderSeq) {
    if (typeof result === 'function') result();
    return;
  }
  cleanup = result;
  const title = main.querySelector('h1');
  document.title = title ? `${title.textContent} · Switchyard` : 'Switchyard';
  if (title && focus) title.focus({ preventScroll: true });
}

function renderSignIn(message) {
  nav.hidden = true;
  signOutButton.hidden = true;
  document.title = 'Sign in · Switchyard';
  const input = h('input', {
    type: 'password', name: 'apiKey', autocomplete: 'off', spellcheck: 'false', required: true,
    placeholder: 'sk_…',
  });
  const keyField = field({
    id: 'api-key', label: 'API key', control: input,
    hint: withCode('The key `switchyard serve` printed on its first start, or one from `switchyard key create`. '
      + 'It is kept in this tab only (session storage).'),
  });
  const button = h('button', { type: 'submit', class: 'primary' }, 'Sign in');
  const form = h('form', { class: 'card signin', novalidate: true }, heading('Sign in'), keyField, button);
  if (message) setFieldError(keyField, message);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const key = input.value.trim();
    if (!key) {
      setFieldError(keyField, 'Enter your API key.');
      input.focus();
      return;
    }
    button.disabled = true;
    try {
      await call('GET', '/api/workflows/Order/configured?limit=1', { key });
      signIn(key);
      if (!location.hash || location.hash === '#/' || location.hash === '#') location.hash = '#/workflows/Order';
      else show();
    } catch (error) {
      setFieldError(keyField, error.status === 401 || error.status === 403
        ? 'This key was not accepted: it is unknown, malformed or revoked.'
        : error.message);
      input.focus();
    } finally {
      button.disabled = false;
    }
  });
  replace(main, form);
  input.focus();
}

whenUnauthorized(() => {
  if (!apiKey()) return;
  signOut();
  clearPinned();
  if (typeof cleanup === 'function') cleanup();
  cleanup = null;
  renderSignIn('Your key was refused (revoked?). Sign in again.');
});

signOutButton.addEventListener('click', () => {
  signOut();
  clearPinned();
  show();
});

document.getElementById('confirm').addEventListener('cancel', (e) => {
  e.target.returnValue = 'no';
});

window.addEventListener('hashchange', () => {
  window.scrollTo(0, 0);
  show({ focus: true });
});
show();
