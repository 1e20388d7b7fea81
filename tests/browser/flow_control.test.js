// Flow control in the dashboard (issue 13, item 8): concurrency, debounce and cancelOn edited and
// shown back, the API's validation errors beside the field they name, the Rhai condition checked
// against the server as it is typed, bulk resume and cancel with a confirmation and the count, and
// managed workflows shown read-only with the integration they belong to.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  apiClient, eventually, go, launchBrowser, signedInPage, startReceiver, startServer, startShop,
} from './harness.js';

let server;
let receiver;
let browser;
let page;
let api;
const errors = [];
const NAME = 'Abandoned cart reminder';

async function workflowNamed(name, entity = 'Customer') {
  return (await api('GET', `/api/workflows/${entity}/configured`)).data.find((w) => w.name === name);
}

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

test('creates a workflow with concurrency, debounce and cancelOn, and shows them back when editing', async () => {
  await go(page, server, '#/workflows/Customer/new');
  await page.getByLabel('Name', { exact: true }).fill(NAME);
  await page.getByLabel('Trigger', { exact: true }).selectOption('customer_updated');
  await page.getByLabel('URL').fill(receiver.url);
  await page.getByLabel('Runs at once').fill('1');
  await page.getByLabel('Concurrency key').fill('{{ entity.email }}');
  await page.getByLabel('Period').fill('10m');
  await page.getByLabel('Longest wait').fill('1h');
  await page.getByRole('button', { name: 'Add cancelling trigger' }).click();
  const row = page.locator('.cancel-row').first();
  await row.getByLabel('Cancelling trigger', { exact: true }).selectOption('order_created');
  await row.getByLabel('Key (optional)').fill('{{ entity.customer.email }}');
  await page.getByRole('button', { name: 'Add cancelling trigger' }).click();
  await page.locator('.cancel-row').nth(1).getByLabel('Cancelling trigger', { exact: true }).selectOption('customer_created');
  await page.getByRole('button', { name: 'Create workflow' }).click();
  await page.getByRole('heading', { name: 'Customer workflows' }).waitFor();

  const saved = await workflowNamed(NAME);
  assert.deepEqual(saved.concurrency, { key: '{{ entity.email }}', limit: 1 });
  assert.deepEqual(saved.debounce, { key: 'entity', period: '10m', maxWait: '1h' });
  assert.deepEqual(saved.cancelOn, [
    { triggerId: 'order_created', key: '{{ entity.customer.email }}' },
    { triggerId: 'customer_created' },
  ]);

  await go(page, server, `#/workflow/${saved.guid}/edit`);
  assert.equal(await page.getByLabel('Runs at once').inputValue(), '1');
  assert.equal(await page.getByLabel('Concurrency key').inputValue(), '{{ entity.email }}');
  assert.equal(await page.getByLabel('Period').inputValue(), '10m');
  assert.equal(await page.getByLabel('Longest wait').inputValue(), '1h');
  assert.equal(await page.getByLabel('Debounce key').inputValue(), 'entity');
  const rows = page.locator('.cancel-row');
  assert.equal(await rows.count(), 2);
  await eventually(async () => (await rows.nth(0).getByLabel('Cancelling trigger', { exact: true }).inputValue()) === 'order_created',
    { what: 'the first cancelling trigger shown back' });
  assert.equal(await rows.nth(0).getByLabel('Key (optional)').inputValue(), '{{ entity.customer.email }}');
  assert.equal(await rows.nth(1).getByLabel('Cancelling trigger', { exact: true }).inputValue(), 'customer_created');

  // Clearing the debounce and one cancelling trigger saves without them.
  await page.getByLabel('Period').fill('');
  await page.getByLabel('Longest wait').fill('');
  await page.getByLabel('Debounce key').fill('');
  await rows.nth(1).getByRole('button', { name: 'Remove this cancelling trigger' }).click();
  await page.getByRole('button', { name: 'Save changes' }).click();
  await page.getByRole('heading', { name: 'Customer workflows' }).waitFor();
  const updated = await workflowNamed(NAME);
  assert.equal(updated.debounce, undefined);
  assert.equal(updated.cancelOn.length, 1);
});

test('the API’s validation errors are shown beside the flow-control field they name', async () => {
  const saved = await workflowNamed(NAME);
  await go(page, server, `#/workflow/${saved.guid}/edit`);
  const save = page.getByRole('button', { name: 'Save changes' });

  await page.getByLabel('Runs at once').fill('0');
  await save.click();
  await page.locator('#wf-concurrency-limit-error', { hasText: 'between 1 and' }).waitFor();
  assert.equal(await page.getByLabel('Runs at once').getAttribute('aria-invalid'), 'true');
  assert.equal(await page.locator('.form-error').isVisible(), false);

  // Not a number: serde's words ("invalid type: string …, expected u32") in plain ones.
  await page.getByLabel('Runs at once').fill('two');
  await save.click();
  const typed = page.locator('#wf-concurrency-limit-error', { hasText: 'whole number' });
  await typed.waitFor();
  assert.doesNotMatch(await typed.textContent(), /u32|invalid type|line \d/);
  await page.getByLabel('Runs at once').fill('1');

  await page.getByLabel('Period').fill('soon');
  await save.click();
  await page.locator('#wf-debounce-period-error').waitFor();
  assert.equal(await page.locator('#wf-concurrency-limit-error').isVisible(), false);
  await page.getByLabel('Period').fill('');

  await page.locator('.cancel-row').first().getByLabel('Key (optional)').fill('{{ entity.customer.email');
  await save.click();
  const keyError = page.locator('.cancel-row').first().locator('[data-role="key"] .field-error');
  await keyError.waitFor();
  assert.ok((await keyError.textContent()).length > 0);
  assert.equal(await page.locator('.form-error').isVisible(), false);
  assert.equal((await workflowNamed(NAME)).version, saved.version, 'nothing was saved');
});

test('the condition is checked against the server as it is typed', async () => {
  await go(page, server, '#/workflows/Order/new');
  await page.getByLabel('Trigger', { exact: true }).selectOption('order_paid');
  const check = page.locator('#wf-condition-check');
  await check.filter({ hasText: 'every event of this trigger matches' }).waitFor();
  const condition = page.getByLabel('Condition (Rhai expression)');
  await condition.fill('entity.total >');
  const error = page.locator('#wf-condition-error');
  await error.filter({ hasText: 'does not compile' }).waitFor();
  assert.match(await error.textContent(), /position \d+/);
  await page.locator('pre.caret').waitFor();
  assert.match(await page.locator('pre.caret').textContent(), /entity\.total >\n\s*\^/);

  await condition.fill('entity.total > 100');
  await check.locator('.badge', { hasText: 'matches' }).waitFor();
  assert.equal(await error.isVisible(), false);
  await condition.fill('entity.total > 1000');
  await check.locator('.badge', { hasText: 'does not match' }).waitFor();
  assert.match(await check.textContent(), /the Rhai condition is false/);

  // The sample can be edited; an equality takes part too.
  await page.locator('details.sample > summary').click();
  await page.getByLabel('Sample entity to check against (JSON)').fill('{"total": 2000, "status": "pending"}');
  await check.locator('.badge', { hasText: 'matches' }).waitFor();
  await page.getByRole('button', { name: 'Add equality' }).click();
  await page.getByLabel('Path').fill('status');
  await page.getByLabel('Value').fill('paid');
  await check.filter({ hasText: 'status is "pending", not "paid"' }).locator('.badge', { hasText: 'does not match' }).waitFor();
});

test('bulk resume and bulk cancel ask first and show the count', async () => {
  receiver.answer(500);
  const failing = await api('POST', '/api/workflows/configure', {
    name: 'Flaky ERP', entityType: 'Order', triggerId: 'order_created', action: { type: 'webhook', url: receiver.url },
  });
  assert.equal(failing.status, 201, JSON.stringify(failing));
  const waiting = await api('POST', '/api/workflows/configure', {
    name: 'Later', entityType: 'Order', triggerId: 'order_cancelled', actions: [{ type: 'delay', duration: '1h' }, { type: 'webhook', url: receiver.url }],
  });
  assert.equal(waiting.status, 201, JSON.stringify(waiting));
  for (const n of [1, 2, 3]) {
    await api('POST', '/api/events', { entityType: 'Order', trigger: 'order_created', entityId: `ord_${n}`, data: { status: 'pending' } });
  }
  for (const n of [4, 5]) {
    await api('POST', '/api/events', { entityType: 'Order', trigger: 'order_cancelled', entityId: `ord_${n}`, data: { status: 'cancelled' } });
  }
  const count = async (workflowId, status) => (await api('GET', `/api/executions?workflowId=${workflowId}&status=${status}`)).data.length;
  await eventually(async () => (await count(failing.data.guid, 'paused')) === 3, { what: 'three paused executions', timeout: 30_000 });
  await eventually(async () => (await count(waiting.data.guid, 'waiting')) === 2, { what: 'two waiting executions' });

  await go(page, server, `#/executions?workflowId=${failing.data.guid}`);
  await page.locator('details.bulk > summary').click();
  // Keep does nothing.
  await page.getByRole('button', { name: 'Resume matching…' }).click();
  await page.locator('#confirm-message', { hasText: 'Resume every one of the paused executions of “Flaky ERP' }).waitFor();
  await page.locator('#confirm-no').click();
  assert.equal(await count(failing.data.guid, 'paused'), 3);

  receiver.answer(200);
  await page.getByRole('button', { name: 'Resume matching…' }).click();
  await page.locator('#confirm-yes', { hasText: 'Resume them' }).click();
  await page.locator('#bulk-result', { hasText: 'Resumed 3 executions.' }).waitFor();
  await eventually(async () => (await count(failing.data.guid, 'succeeded')) === 3, { what: 'three resumed executions succeeded' });

  await page.getByLabel('Workflow', { exact: true }).selectOption(waiting.data.guid);
  await page.getByLabel('Status', { exact: true }).selectOption('waiting');
  await page.getByRole('button', { name: 'Cancel matching…' }).click();
  await page.locator('#confirm-message', { hasText: 'Cancel every one of the waiting executions of “Later' }).waitFor();
  await page.locator('#confirm-yes', { hasText: 'Cancel them' }).click();
  await page.locator('#bulk-result', { hasText: 'Cancelled 2 executions.' }).waitFor();
  assert.equal(await count(waiting.data.guid, 'cancelled'), 2);
  await page.locator('tr[data-execution]').first().waitFor({ state: 'detached' });

  // A window that ends before it starts is refused beside the field, before asking.
  await page.getByLabel('Created from').fill('2026-05-02T10:00');
  await page.getByLabel('Created until').fill('2026-05-01T10:00');
  await page.getByRole('button', { name: 'Cancel matching…' }).click();
  await page.locator('#bulk-until-error', { hasText: 'after' }).waitFor();
  assert.equal(await page.locator('#confirm').isVisible(), false);
});

test('managed workflows are read-only, with a badge and the integration they belong to', async () => {
  // A store connected with pushTracking installs the managed workflow (CONTRACT §8).
  const shop = await startShop('shpat_managed_token_0001');
  try {
    const integration = await api('POST', '/api/integrations/provider/configure', {
      providerId: 'shopify',
      credentials: { apiKey: 'shpat_managed_token_0001', apiSecret: 'shpss_managed_secret_0001', storeUrl: shop.url },
      settings: { pushTracking: true },
    });
    assert.equal(integration.status, 201, JSON.stringify(integration));
    const guid = integration.data.guid;
    const listed = (await api('GET', '/api/workflows/Shipment/configured?managed=true')).data;
    const managed = listed.find((w) => w.isManaged && w.integrationGuid === guid);
    assert.ok(managed, JSON.stringify(listed));

    await go(page, server, '#/workflows/Shipment?managed=true');
    const row = page.locator(`tr[data-guid="${managed.guid}"]`);
    await row.waitFor();
    await row.locator('.tag', { hasText: 'managed' }).waitFor();
    const owner = row.locator('.managed-by');
    assert.match(await owner.textContent(), /Managed by shopify/);
    assert.equal(await owner.locator('a').getAttribute('href'), `#/integrations?guid=${guid}`);
    assert.equal(await row.getByRole('switch').count(), 0);
    assert.equal(await row.getByRole('link', { name: /^Edit/ }).count(), 0);
    assert.equal(await row.getByRole('button', { name: /^Delete/ }).count(), 0);
    assert.match(await row.locator('.managed-state').textContent(), /On/);
    await row.getByRole('link', { name: /^Test/ }).waitFor();

    // Its edit address shows it without a form.
    await go(page, server, `#/workflow/${managed.guid}/edit`);
    await page.getByText('cannot be edited, switched or deleted here').waitFor();
    assert.equal(await page.locator('main form').count(), 0);

    // Disabling the integration switches it off, as the list then shows.
    const disabled = await api('GET', `/api/integrations/provider/disable/${guid}`);
    assert.equal(disabled.status, 200, JSON.stringify(disabled));
    await go(page, server, '#/workflows/Shipment?managed=true');
    await row.waitFor();
    assert.match(await row.locator('.managed-state').textContent(), /Off/);

    await row.locator('.managed-by a').click();
    await page.locator(`article.highlight[data-guid="${guid}"]`).waitFor();
    assert.deepEqual(errors, []);
  } finally {
    await shop.close();
  }
});
