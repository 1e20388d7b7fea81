// What a merchant noticed (issue 13, item 9): the one-time webhook secret has a Copy button, stays
// until dismissed and fits a phone; the edit form does not pass the masked secret off as a value;
// help and API messages read as plain words; events are named by their own id everywhere; "no
// match" is not an error; Move up/down only where they apply; switching a workflow off asks first.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  apiClient, eventually, go, launchBrowser, signedInPage, startReceiver, startServer,
} from './harness.js';

let server;
let receiver;
let browser;
let page;
let api;
const errors = [];
const DANGER = 'rgb(180, 35, 24)';

before(async () => {
  receiver = await startReceiver();
  server = await startServer();
  api = apiClient(server.base, server.key);
  browser = await launchBrowser();
  page = await signedInPage(browser, server, { errors });
});

after(async () => {
  await browser?.close();
  await receiver?.stop();
  await server?.stop();
});

test('sign-in help shows commands as code, not Markdown backticks', async () => {
  const context = await browser.newContext();
  const fresh = await context.newPage();
  await fresh.goto(`${server.base}/`);
  const hint = fresh.locator('#api-key-hint');
  await hint.waitFor();
  assert.equal((await hint.textContent()).includes('`'), false, await hint.textContent());
  assert.deepEqual(await hint.locator('code').allTextContents(), ['switchyard serve', 'switchyard key create']);
  await context.close();
});

test('empty lists offer “an order workflow” and “a shipment workflow”', async () => {
  await go(page, server, '#/workflows/Order');
  await page.getByRole('link', { name: 'Create an order workflow' }).waitFor();
  await go(page, server, '#/workflows/Shipment');
  await page.getByRole('link', { name: 'Create a shipment workflow' }).waitFor();
});

test('a step without its URL is refused in plain words beside the step', async () => {
  await go(page, server, '#/workflows/Order/new');
  await page.getByLabel('Name', { exact: true }).fill('No URL');
  await page.getByRole('button', { name: 'Create workflow' }).click();
  const error = page.locator('fieldset.step > p.field-error').first();
  await error.waitFor();
  const text = await error.textContent();
  assert.match(text, /URL is required/);
  assert.doesNotMatch(text, /missing field|`/);
  assert.equal(await page.locator('.form-error').isVisible(), false);
});

test('the one-time webhook secret has a Copy button, stays until dismissed and fits a 375px phone', async () => {
  await go(page, server, '#/workflows/Order/new');
  await page.getByLabel('Name', { exact: true }).fill('Paid orders → ERP');
  await page.getByLabel('Trigger').selectOption('order_paid');
  await page.getByLabel('URL').fill(receiver.url);
  await page.getByRole('button', { name: 'Create workflow' }).click();
  await page.getByRole('heading', { name: 'Order workflows' }).waitFor();
  const pinned = page.locator('.pinned');
  const secret = pinned.getByLabel('Webhook signing secret, step 1');
  await secret.waitFor();
  const value = await secret.inputValue();
  assert.match(value, /^whsec_/);
  await pinned.getByRole('button', { name: 'Copy the webhook signing secret' }).click();
  await page.locator('#toast', { hasText: 'webhook signing secret' }).waitFor();

  // Navigating does not lose it.
  await page.getByRole('link', { name: 'Events' }).click();
  await page.getByRole('heading', { name: 'Events' }).waitFor();
  assert.equal(await pinned.getByLabel('Webhook signing secret, step 1').inputValue(), value);

  await page.setViewportSize({ width: 375, height: 740 });
  await page.getByRole('link', { name: 'Workflows' }).click();
  await page.getByRole('heading', { name: 'Order workflows' }).waitFor();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow}px wider than the phone`);
  const box = await pinned.boundingBox();
  assert.ok(box.x >= 0 && box.x + box.width <= 375, JSON.stringify(box));
  await page.setViewportSize({ width: 1280, height: 800 });

  await pinned.getByRole('button', { name: 'Dismiss' }).click();
  await pinned.waitFor({ state: 'detached' });
});

test('the edit form leaves the secret empty (“unchanged”), and saving keeps it', async () => {
  const before = (await api('GET', '/api/workflows/Order/configured')).data.find((w) => w.name === 'Paid orders → ERP');
  assert.match(before.actions[0].secret, /^\*\*\*\*/);
  await go(page, server, `#/workflow/${before.guid}/edit`);
  const secret = page.getByLabel('Signing secret');
  assert.equal(await secret.inputValue(), '');
  assert.equal(await secret.getAttribute('placeholder'), 'unchanged');
  await page.getByText(`ends in ${before.actions[0].secret.replace(/^\*+/, '')}`).waitFor();
  await page.getByRole('button', { name: 'Save changes' }).click();
  await page.getByRole('heading', { name: 'Order workflows' }).waitFor();
  const afterSave = (await api('GET', `/api/workflows/configured/${before.guid}`)).data;
  assert.equal(afterSave.version, before.version + 1);
  assert.equal(afterSave.actions[0].secret, before.actions[0].secret);
  // No secret was generated, so none is pinned.
  assert.equal(await page.locator('.pinned').count(), 0);
});

test('Move up/down and Remove are disabled where they do not apply', async () => {
  await go(page, server, '#/workflows/Order/new');
  const step = (n) => page.locator('fieldset.step').nth(n - 1);
  assert.equal(await step(1).getByRole('button', { name: 'Move step 1 up' }).isDisabled(), true);
  assert.equal(await step(1).getByRole('button', { name: 'Move step 1 down' }).isDisabled(), true);
  assert.equal(await step(1).getByRole('button', { name: 'Remove step 1' }).isDisabled(), true);
  await page.getByRole('button', { name: 'Add step' }).click();
  assert.equal(await step(1).getByRole('button', { name: 'Move step 1 up' }).isDisabled(), true);
  assert.equal(await step(1).getByRole('button', { name: 'Move step 1 down' }).isEnabled(), true);
  assert.equal(await step(2).getByRole('button', { name: 'Move step 2 up' }).isEnabled(), true);
  assert.equal(await step(2).getByRole('button', { name: 'Move step 2 down' }).isDisabled(), true);
  await step(1).getByLabel('Action type', { exact: true }).selectOption('delay');
  await step(1).getByRole('button', { name: 'Move step 1 down' }).click();
  assert.equal(await step(2).getByLabel('Action type', { exact: true }).inputValue(), 'delay');
  // The moved step's "Move down" no longer applies: focus went to its "Move up".
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Move up');
});

test('the execution page names its event by the event’s own id, linking to it', async () => {
  const answer = await api('POST', '/api/events', {
    entityType: 'Order', trigger: 'order_paid', entityId: 'ord_77', eventId: 'ord-77-paid', data: { status: 'paid', total: 20 },
  });
  assert.equal(answer.status, 202, JSON.stringify(answer));
  const execution = await eventually(async () => (await api('GET', '/api/events/ord-77-paid')).data?.executions?.[0],
    { what: 'an execution of ord-77-paid' });
  await go(page, server, `#/executions/${execution.id}`);
  const link = page.locator('dd a', { hasText: 'ord-77-paid' });
  await link.waitFor();
  assert.equal(await link.getAttribute('href'), '#/events/ord-77-paid');
  await link.click();
  await page.getByRole('heading', { name: 'Event ord-77-paid' }).waitFor();
});

test('“no match” is neutral, not the error colour', async () => {
  const big = await api('POST', '/api/workflows/configure', {
    name: 'Big orders', entityType: 'Order', triggerId: 'order_paid', condition: 'entity.total > 500',
    action: { type: 'webhook', url: receiver.url },
  });
  assert.equal(big.status, 201, JSON.stringify(big));
  await api('POST', '/api/events', {
    entityType: 'Order', trigger: 'order_paid', entityId: 'ord_78', eventId: 'ord-78-paid', data: { status: 'paid', total: 30 },
  });
  await eventually(async () => (await api('GET', '/api/events/ord-78-paid')).data?.outcome, { what: 'matching of ord-78-paid' });
  await go(page, server, '#/events');
  const word = page.locator('tr[data-event="ord-78-paid"] .outcome li', { hasText: 'Big orders' }).locator('span').first();
  assert.equal(await word.textContent(), 'no match ');
  assert.notEqual(await word.evaluate((el) => getComputedStyle(el).color), DANGER);

  await go(page, server, `#/workflow/${big.data.guid}/test`);
  await page.getByRole('button', { name: 'Run dry run' }).click();
  const badge = page.locator('.verdict .badge', { hasText: 'no match' });
  await badge.waitFor();
  assert.notEqual(await badge.evaluate((el) => getComputedStyle(el).color), DANGER);
});

test('switching a workflow off asks first; Keep leaves it on', async () => {
  await go(page, server, '#/workflows/Order');
  const name = 'Paid orders → ERP';
  const toggle = page.getByRole('switch', { name: `Active: ${name}` });
  await toggle.click();
  const dialog = page.locator('#confirm');
  await dialog.getByText('Its running executions pause').waitFor();
  await page.locator('#confirm-no').click();
  assert.equal(await toggle.getAttribute('aria-checked'), 'true');
  const current = (await api('GET', '/api/workflows/Order/configured')).data.find((w) => w.name === name);
  assert.equal(current.isActive, true);
  await toggle.click();
  await page.locator('#confirm-yes', { hasText: 'Switch off' }).click();
  await page.locator(`[role="switch"][aria-label="Active: ${name}"][aria-checked="false"]`).waitFor();
  // Switching on pauses nothing: no question.
  await toggle.click();
  await page.locator(`[role="switch"][aria-label="Active: ${name}"][aria-checked="true"]`).waitFor();
  assert.deepEqual(errors, []);
});
