// Connecting stores from the dashboard (issue 13, item 8d): a form built from the provider catalog,
// the credential check against a fake Shopify store (loopback is allowed: the server runs with
// --allow-private-targets), refusals beside the field concerned, the inbound URL with Copy, and
// Disable, Enable and Remove with confirmations.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { apiClient, go, launchBrowser, signedInPage, startServer, startShop } from './harness.js';

const GOOD_TOKEN = 'shpat_good_token_1234';

let server;
let shop;
let shopUrl;
let browser;
let page;
let api;
const errors = [];

async function integrations() {
  return (await api('GET', '/api/integrations')).data;
}

before(async () => {
  shop = await startShop(GOOD_TOKEN);
  shopUrl = shop.url;
  server = await startServer();
  api = apiClient(server.base, server.key);
  browser = await launchBrowser();
  page = await signedInPage(browser, server, { errors, permissions: ['clipboard-read', 'clipboard-write'] });
});

after(async () => {
  await browser?.close();
  await shop?.close();
  await server?.stop();
});

test('the connect form is built from the provider catalog', async () => {
  await go(page, server, '#/integrations');
  await page.getByText('No store is connected yet.').waitFor();
  await page.getByRole('button', { name: 'Connect a store' }).click();
  const form = page.locator('form.store-form');
  await form.getByRole('heading', { name: 'Connect a store' }).waitFor();
  const catalog = (await api('GET', '/api/integrations/providers')).data;
  const options = await form.getByLabel('Provider').locator('option').allTextContents();
  assert.deepEqual(options, catalog.map((p) => p.name));
  await form.getByLabel('Provider').selectOption('shopify');
  const shopify = catalog.find((p) => p.code === 'shopify');
  for (const field of shopify.credentials) {
    const control = form.locator(`#store-${field.name}`);
    await control.waitFor();
    assert.equal(await control.getAttribute('type'), field.secret ? 'password' : field.name === 'storeUrl' ? 'url' : 'text');
  }
  await form.getByLabel('Webhook signing secret (optional)').waitFor();
  for (const setting of shopify.settings) {
    assert.equal(await form.locator(`#store-setting-${setting.name}`).isChecked(), setting.default);
  }
  await form.getByLabel('Provider').selectOption('custom');
  assert.equal(await form.locator('#store-storeUrl').count(), 0, 'custom needs no store');
});

test('refusals are shown beside the field: a bad store URL, a missing secret, a wrong token', async () => {
  const form = page.locator('form.store-form');
  await form.getByLabel('Provider').selectOption('shopify');
  await form.getByLabel('Store URL').fill('larkspur dot com');
  await form.getByLabel('API key').fill('shpat_wrong');
  await form.getByLabel('API secret').fill('shpss_secret');
  await form.getByRole('button', { name: 'Connect' }).click();
  await form.locator('#store-storeUrl-error', { hasText: 'absolute http(s) URL' }).waitFor();
  assert.equal(await form.getByLabel('Store URL').getAttribute('aria-invalid'), 'true');

  await form.getByLabel('Store URL').fill(shopUrl);
  await form.getByLabel('API secret').fill('');
  await form.getByRole('button', { name: 'Connect' }).click();
  await form.locator('#store-apiSecret-error').waitFor();
  assert.equal(await form.locator('#store-storeUrl-error').isVisible(), false);

  await form.getByLabel('API secret').fill('shpss_secret');
  await form.getByRole('button', { name: 'Connect' }).click();
  const refused = form.locator('#store-apiKey-error');
  await refused.filter({ hasText: 'refused these credentials' }).waitFor();
  assert.match(await refused.textContent(), /401/);
  assert.equal(await form.locator('.form-error').isVisible(), false);
  assert.ok(shop.calls.some((c) => c.token === 'shpat_wrong'), 'the server asked the store');
  assert.equal((await integrations()).length, 0);
});

test('connects with the right token; the card shows the inbound URL with a Copy button', async () => {
  const form = page.locator('form.store-form');
  await form.getByLabel('API key').fill(GOOD_TOKEN);
  await form.locator('#store-setting-syncProducts').uncheck();
  await form.getByRole('button', { name: 'Connect' }).click();
  await form.waitFor({ state: 'detached' });
  const [integration] = await integrations();
  assert.equal(integration.provider, 'shopify');
  assert.equal(integration.storeUrl, shopUrl);
  assert.equal(integration.settings.syncProducts, false);
  const card = page.locator(`article[data-guid="${integration.guid}"]`);
  await card.locator('.badge', { hasText: 'active' }).waitFor();
  assert.equal(await card.getByLabel('Inbound webhook URL').inputValue(), `${server.base}/api/integrations/inbound/${integration.guid}`);
  await card.getByRole('button', { name: 'Copy the inbound webhook URL' }).click();
  await page.locator('#toast', { hasText: 'inbound webhook URL' }).waitFor();
  const copied = await page.evaluate(() => navigator.clipboard.readText().catch(() => null));
  if (copied !== null) assert.equal(copied, integration.inboundUrl);

  // The same store again, while it is active: refused, said at the top of the form.
  await page.getByRole('button', { name: 'Connect a store' }).click();
  const again = page.locator('form.store-form');
  await again.getByLabel('Provider').selectOption('shopify');
  await again.getByLabel('Store URL').fill(shopUrl);
  await again.getByLabel('API key').fill(GOOD_TOKEN);
  await again.getByLabel('API secret').fill('shpss_secret');
  await again.getByRole('button', { name: 'Connect' }).click();
  await again.locator('.form-error', { hasText: 'already connected' }).waitFor();
  await again.getByRole('button', { name: 'Cancel' }).click();
  await again.waitFor({ state: 'detached' });
});

test('Disable asks first; Enable checks the credentials again and keeps the inbound URL', async () => {
  const [integration] = await integrations();
  const card = page.locator(`article[data-guid="${integration.guid}"]`);
  await card.getByRole('button', { name: 'Disable' }).click();
  await page.locator('#confirm-message', { hasText: 'Disable shopify?' }).waitFor();
  await page.locator('#confirm-no').click();
  assert.equal((await integrations())[0].status, 'active');
  await card.getByRole('button', { name: 'Disable' }).click();
  await page.locator('#confirm-yes').click();
  await card.locator('.badge', { hasText: 'disabled' }).waitFor();

  await card.getByRole('button', { name: 'Enable…' }).click();
  const form = page.locator('form.store-form');
  await form.getByRole('heading', { name: `Enable shopify · ${shopUrl}` }).waitFor();
  assert.equal(await form.getByLabel('Provider').isDisabled(), true);
  assert.equal(await form.getByLabel('Store URL').inputValue(), shopUrl);
  assert.equal(await form.locator('#store-setting-syncProducts').isChecked(), false, 'the settings are kept');
  await form.getByLabel('API key').fill('shpat_wrong');
  await form.getByLabel('API secret').fill('shpss_secret');
  await form.getByRole('button', { name: 'Enable' }).click();
  await form.locator('#store-apiKey-error', { hasText: 'refused' }).waitFor();
  await form.getByLabel('API key').fill(GOOD_TOKEN);
  await form.getByRole('button', { name: 'Enable' }).click();
  await form.waitFor({ state: 'detached' });
  await card.locator('.badge', { hasText: 'active' }).waitFor();
  const list = await integrations();
  assert.equal(list.length, 1);
  assert.equal(list[0].guid, integration.guid);
  assert.equal(list[0].status, 'active');
});

test('a custom source’s generated secret is pinned with Copy; Remove asks first', async () => {
  await page.getByRole('button', { name: 'Connect a store' }).click();
  const form = page.locator('form.store-form');
  await form.getByLabel('Provider').selectOption('custom');
  await form.getByRole('button', { name: 'Connect' }).click();
  await form.waitFor({ state: 'detached' });
  const pinned = page.locator('.pinned');
  const secret = pinned.getByLabel('Signing secret (apiSecret)');
  await secret.waitFor();
  assert.match(await secret.inputValue(), /^whsec_/);
  await pinned.getByRole('button', { name: 'Copy the signing secret' }).waitFor();
  await pinned.getByRole('button', { name: 'Dismiss' }).click();

  const custom = (await integrations()).find((i) => i.provider === 'custom');
  const card = page.locator(`article[data-guid="${custom.guid}"]`);
  await card.getByRole('button', { name: 'Remove' }).click();
  await page.locator('#confirm-no').click();
  assert.equal((await integrations()).length, 2);
  await card.getByRole('button', { name: 'Remove' }).click();
  await page.locator('#confirm-yes', { hasText: 'Remove' }).click();
  await card.waitFor({ state: 'detached' });
  assert.equal((await integrations()).length, 1);

  await page.setViewportSize({ width: 375, height: 740 });
  await page.getByRole('button', { name: 'Connect a store' }).click();
  await page.locator('form.store-form').getByLabel('Provider').selectOption('shopify');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the integrations page is ${overflow}px wider than the phone`);
  await page.setViewportSize({ width: 1280, height: 800 });
  assert.deepEqual(errors, []);
});
