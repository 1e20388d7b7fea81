// The merchant dashboard in a real browser against a real server: sign in with the key the first
// start printed, build a workflow, watch executions succeed, pause on a failing receiver and
// resume, toggle, see validation errors where they belong. Screenshots of every page go to
// target/screenshots/; the README's picture (docs/dashboard.png) is refreshed when it is missing
// or SWITCHYARD_UPDATE_SCREENSHOT=1.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, stat } from 'node:fs/promises';
import path from 'node:path';
import {
  ROOT, SCREENSHOTS, apiClient, eventually, launchBrowser, startReceiver, startServer,
} from './harness.js';

let server;
let receiver;
let browser;
let page;
let api;
const pageErrors = [];
const WORKFLOW = 'Paid orders → ERP';
const DOCS_PICTURE = path.join(ROOT, 'docs', 'dashboard.png');

async function shot(name, { fullPage = true } = {}) {
  const file = path.join(SCREENSHOTS, `${name}.png`);
  // The last action's toast would cover part of the page.
  await page.evaluate(() => { document.getElementById('toast').textContent = ''; });
  await page.screenshot({ path: file, fullPage });
  return file;
}

async function go(hash) {
  await page.goto(`${server.base}/${hash}`);
  await page.locator('main h1').first().waitFor();
}

/** Posts an order event from node (as a store's backend would) and returns its eventId. */
async function postOrder(eventId, data) {
  const answer = await api('POST', '/api/events', {
    entityType: 'Order', trigger: 'order_paid', entityId: data.id, eventId, data,
  });
  assert.equal(answer.status, 202, JSON.stringify(answer));
  return eventId;
}

/** The execution an event started, once matching has run. */
async function executionOf(eventId) {
  return eventually(async () => {
    const answer = await api('GET', `/api/events/${eventId}`);
    return answer.data?.executions?.[0];
  }, { what: `an execution for ${eventId}` });
}

async function workflowNamed(name) {
  const list = await api('GET', '/api/workflows/Order/configured');
  return list.data.find((w) => w.name === name);
}

before(async () => {
  receiver = await startReceiver();
  server = await startServer();
  api = apiClient(server.base, server.key);
  browser = await launchBrowser();
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  page = await context.newPage();
  page.setDefaultTimeout(15_000);
  page.on('pageerror', (e) => pageErrors.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/the server responded with a status of 4\d\d/.test(m.text())) {
      pageErrors.push(`console: ${m.text()}`);
    }
  });
});

after(async () => {
  await browser?.close();
  await receiver?.stop();
  const result = await server?.stop();
  if (result && result.code !== 0) console.error(server.stderr());
});

test('the first start printed a key after the ready line, and the dashboard is served with a strict CSP', async () => {
  assert.match(server.stdout[0], /^switchyard listening on http:\/\/127\.0\.0\.1:\d+$/);
  assert.ok(server.stdout.some((l) => l.startsWith('dashboard: http://127.0.0.1:')), server.stdout.join('\n'));
  const response = await fetch(`${server.base}/`);
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type'), /^text\/html/);
  assert.match(response.headers.get('content-security-policy'), /default-src 'self'/);
  const script = await fetch(`${server.base}/assets/app.js`);
  assert.match(script.headers.get('content-type'), /^text\/javascript/);
});

test('signs in with the API key; a wrong key is refused next to the field', async () => {
  await page.goto(`${server.base}/`);
  const key = page.getByLabel('API key');
  await key.waitFor();
  await shot('sign-in');
  await key.fill('sk_not_a_real_key');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#api-key-error', { hasText: 'not accepted' }).waitFor();
  assert.equal(await key.getAttribute('aria-invalid'), 'true');
  await key.fill(server.key);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Order workflows' }).waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem('switchyard.apiKey')), server.key);
});

test('creates a workflow with a webhook to the receiver', async () => {
  await page.getByRole('link', { name: 'New workflow' }).click();
  await page.getByRole('heading', { name: 'New order workflow' }).waitFor();
  await page.getByLabel('Name', { exact: true }).fill(WORKFLOW);
  await page.getByLabel('Trigger').selectOption('order_paid');
  await page.getByRole('button', { name: 'Add equality' }).click();
  await page.getByLabel('Path').fill('status');
  await page.getByLabel('Value').fill('paid');
  await page.getByLabel('Action type', { exact: true }).selectOption('webhook');
  await page.getByLabel('URL').fill(receiver.url);
  await shot('workflow-form');
  await page.getByRole('button', { name: 'Create workflow' }).click();
  await page.getByRole('heading', { name: 'Order workflows' }).waitFor();
  await page.locator('.callout', { hasText: 'Webhook signing secret' }).waitFor();
  const row = page.locator('tr', { hasText: WORKFLOW });
  await row.waitFor();
  assert.match(await row.textContent(), /order_paid/);
  const saved = await workflowNamed(WORKFLOW);
  assert.equal(saved.actions[0].url, receiver.url);
  assert.deepEqual(saved.conditions, { status: 'paid' });

  // A second workflow, by API, that the orders below do not match: the events page shows why.
  const big = await api('POST', '/api/workflows/configure', {
    name: 'Big orders to the account manager', entityType: 'Order', triggerId: 'order_paid',
    condition: 'entity.total > 500', action: { type: 'webhook', url: receiver.url },
  });
  assert.equal(big.status, 201, JSON.stringify(big));
});

test('shows a Rhai compile error next to the condition field', async () => {
  await go('#/workflows/Order/new');
  await page.getByLabel('Name', { exact: true }).fill('Broken condition');
  await page.getByLabel('Condition (Rhai expression)').fill('entity.total >');
  await page.getByLabel('URL').fill(receiver.url);
  await page.getByRole('button', { name: 'Create workflow' }).click();
  const error = page.locator('#wf-condition-error');
  await error.waitFor();
  assert.match(await error.textContent(), /condition does not compile/i);
  assert.equal(await page.getByLabel('Condition (Rhai expression)').getAttribute('aria-invalid'), 'true');
  // Only the condition is flagged, and nothing was saved.
  assert.equal(await page.locator('#wf-name-error').isVisible(), false);
  assert.equal(await workflowNamed('Broken condition'), undefined);
  await shot('workflow-form-error');
});

test('an event’s execution reaches succeeded in the executions page', async () => {
  await go('#/executions');
  await postOrder('ord-1001-paid', { id: 'ord_1001', status: 'paid', total: 120.5, customer: { email: 'ana@example.com' } });
  const execution = await executionOf('ord-1001-paid');
  // The page was open before the event came in: its refresh brings the execution in.
  const row = page.locator(`tr[data-execution="${execution.id}"]`);
  await row.locator('.badge', { hasText: 'succeeded' }).waitFor();
  assert.match(await row.textContent(), /1 of 1/);
  assert.equal(receiver.received.length, 1);
});

test('a failing receiver pauses the execution with the attempt’s error; Resume finishes it', async () => {
  receiver.answer(500);
  await postOrder('ord-1002-paid', { id: 'ord_1002', status: 'paid', total: 89, customer: { email: 'ben@example.com' } });
  const execution = await executionOf('ord-1002-paid');
  await go('#/executions');
  const row = page.locator(`tr[data-execution="${execution.id}"]`);
  await row.locator('.badge', { hasText: 'paused' }).waitFor();
  assert.match(await row.locator('.error-text').textContent(), /500/);
  await row.getByRole('button', { name: 'Resume' }).waitFor();
  await shot('executions');
  if (process.env.SWITCHYARD_UPDATE_SCREENSHOT === '1' || !(await stat(DOCS_PICTURE).catch(() => null))) {
    await copyFile(await shot('dashboard', { fullPage: false }), DOCS_PICTURE);
  }

  await row.getByRole('link', { name: /^Timeline/ }).click();
  const status = page.locator('#execution-status');
  await status.locator('.badge', { hasText: 'paused' }).waitFor();
  await page.locator('.attempt-error', { hasText: '500' }).first().waitFor();
  const attempts = await page.locator('.attempt').count();
  assert.equal(attempts, 2, 'one attempt and one retry (--retry-schedule 300ms)');
  await shot('execution-paused');

  receiver.answer(200);
  await page.getByRole('button', { name: 'Resume' }).click();
  await status.locator('.badge', { hasText: 'succeeded' }).waitFor();
  await page.locator('.attempt', { hasText: 'succeeded' }).waitFor();
  assert.equal(await page.getByRole('button', { name: 'Resume' }).count(), 0);
  const answer = await api('GET', `/api/executions/${execution.id}`);
  assert.equal(answer.data.status, 'succeeded');
  await shot('execution');
});

test('toggles a workflow off and on', async () => {
  await go('#/workflows/Order');
  const toggle = page.getByRole('switch', { name: `Active: ${WORKFLOW}` });
  assert.equal(await toggle.getAttribute('aria-checked'), 'true');
  await toggle.click();
  // Switching off pauses running executions: the dashboard asks first.
  await page.locator('#confirm-yes', { hasText: 'Switch off' }).click();
  await page.locator(`[role="switch"][aria-label="Active: ${WORKFLOW}"][aria-checked="false"]`).waitFor();
  assert.equal((await workflowNamed(WORKFLOW)).isActive, false);
  // The keyboard works too: Space on the focused switch.
  await toggle.focus();
  await page.keyboard.press('Space');
  await page.locator(`[role="switch"][aria-label="Active: ${WORKFLOW}"][aria-checked="true"]`).waitFor();
  assert.equal((await workflowNamed(WORKFLOW)).isActive, true);
  await shot('workflows');
});

test('events show what they matched, which conditions failed, and what they started', async () => {
  await go('#/events');
  const row = page.locator('tr[data-event="ord-1001-paid"]');
  await row.waitFor();
  assert.match(await row.textContent(), /started Paid orders → ERP/);
  assert.match(await row.textContent(), /no match Big orders to the account manager — the Rhai condition is false/);
  await shot('events');
  await row.getByRole('link', { name: 'ord-1001-paid' }).click();
  await page.getByRole('heading', { name: 'Event ord-1001-paid' }).waitFor();
  await page.getByRole('heading', { name: 'Not matched' }).waitFor();
  await page.locator('.miss', { hasText: 'Big orders' }).locator('text=✗ fails').waitFor();
  await page.getByRole('heading', { name: 'Executions started' }).waitFor();
  await shot('event');
});

test('the Test panel dry-runs a picked event and backtests the last events', async () => {
  const workflow = await workflowNamed(WORKFLOW);
  await go(`#/workflow/${workflow.guid}/test`);
  const picker = page.getByLabel('Or pick a recent event');
  await picker.locator('option', { hasText: 'ord-1002-paid' }).waitFor({ state: 'attached' });
  const value = await picker.locator('option', { hasText: 'ord-1002-paid' }).getAttribute('value');
  await picker.selectOption(value);
  assert.match(await page.getByLabel('Event (JSON, as for POST /api/events)').inputValue(), /ord_1002/);
  await page.getByRole('button', { name: 'Run dry run' }).click();
  await page.locator('.verdict .badge', { hasText: 'matches' }).waitFor();
  await page.locator('.result', { hasText: receiver.url }).first().waitFor();
  // A pasted event that does not match: the failing condition says why.
  await page.getByLabel('Event (JSON, as for POST /api/events)').fill(JSON.stringify({
    entityType: 'Order', trigger: 'order_paid', entityId: 'ord_9', data: { status: 'pending' },
  }));
  await page.getByRole('button', { name: 'Run dry run' }).click();
  await page.locator('.verdict .badge', { hasText: 'no match' }).waitFor();
  await page.locator('.result td', { hasText: '✗ fails' }).first().waitFor();
  await page.getByLabel('Replay the last N events of this trigger').fill('100');
  await page.getByRole('button', { name: 'Run backtest' }).click();
  await page.locator('.verdict', { hasText: '2 of 2' }).waitFor();
  await shot('test-panel');
});

test('integrations list the inbound webhook URL to copy, and disable and remove', async () => {
  const configured = await api('POST', '/api/integrations/provider/configure', { providerId: 'custom' });
  await go('#/integrations');
  if (configured.status === 404) {
    await page.getByText('This server does not offer integrations.').waitFor();
    await shot('integrations');
    return;
  }
  assert.equal(configured.status, 201, JSON.stringify(configured));
  const card = page.locator(`article[data-guid="${configured.data.guid}"]`);
  await card.waitFor();
  const url = card.getByLabel('Inbound webhook URL');
  assert.equal(await url.inputValue(), `${server.base}/api/integrations/inbound/${configured.data.guid}`);
  await card.locator('.badge', { hasText: 'active' }).waitFor();
  await shot('integrations');
  await card.getByRole('button', { name: 'Disable' }).click();
  await page.locator('#confirm-yes').click();
  await card.locator('.badge', { hasText: 'disabled' }).waitFor();
  await card.getByRole('button', { name: 'Remove' }).click();
  await page.locator('#confirm-yes').click();
  await page.getByText('No store is connected yet.').waitFor();
  const list = await api('GET', '/api/integrations');
  assert.equal(list.data.length, 0);
});

test('pages fit a 390px phone without sideways scrolling', async () => {
  const workflow = await workflowNamed(WORKFLOW);
  const execution = await executionOf('ord-1002-paid');
  await page.setViewportSize({ width: 390, height: 844 });
  for (const [name, hash, loaded] of [
    ['phone-workflows', '#/workflows/Order', 'table'],
    ['phone-executions', '#/executions', 'table'],
    ['phone-execution', `#/executions/${execution.id}`, '.timeline'],
    ['phone-workflow-form', `#/workflow/${workflow.guid}/edit`, 'form'],
    ['phone-events', '#/events', 'table'],
  ]) {
    await go(hash);
    await page.locator(`main ${loaded}`).first().waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `${hash} is ${overflow}px wider than the phone`);
    await shot(name);
  }
  await page.setViewportSize({ width: 1280, height: 800 });
});

test('deletes a workflow after confirmation, and the page never hit a script or CSP error', async () => {
  await go('#/workflows/Order');
  const row = page.locator('tr', { hasText: 'Big orders to the account manager' });
  await row.getByRole('button', { name: /^Delete/ }).click();
  await page.locator('#confirm-no').click();
  assert.ok(await workflowNamed('Big orders to the account manager'), 'Keep keeps it');
  await row.getByRole('button', { name: /^Delete/ }).click();
  await page.locator('#confirm-yes').click();
  await row.waitFor({ state: 'detached' });
  assert.equal(await workflowNamed('Big orders to the account manager'), undefined);
  assert.deepEqual(pageErrors, []);
});
