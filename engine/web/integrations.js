// Integrations: the stores connected to this tenant, their status, the inbound webhook URL to
// register in the store (with Copy); connect a store (store_form.js), Enable a disabled one again,
// Disable and Remove (each after a confirmation).

import { del, get, post } from './api.js';
import { badge, confirmDialog, copyRow, h, heading, notice, pin, replace, time, toast } from './dom.js';
import { storeForm } from './store_form.js';

export async function renderIntegrations(main, route) {
  const body = h('div', {}, notice('Loading…'));
  const formSlot = h('div', {});
  const connect = h('button', { type: 'button', class: 'primary', onclick: () => openForm(null) }, 'Connect a store');
  replace(main,
    h('div', { class: 'page-head' }, heading('Integrations'), connect),
    h('p', { class: 'lead muted' }, 'Stores that send their webhooks to Switchyard. Register each one’s inbound URL in the store.'),
    formSlot,
    body);
  let items = [];
  let providers = null;

  const closeForm = () => {
    replace(formSlot);
    connect.hidden = false;
  };
  const openForm = async (preset) => {
    if (!providers) {
      try {
        providers = (await get('/api/integrations/providers')).data;
      } catch (error) {
        toast(error.message, 'error');
        return;
      }
    }
    connect.hidden = true;
    const form = storeForm({
      providers, preset,
      onCancel: () => { closeForm(); connect.focus(); },
      onDone: async (answer, what) => {
        closeForm();
        if (answer.apiSecret) {
          pin({
            text: `Connected ${answer.provider}. Sign its deliveries with this secret (Standard Webhooks).`,
            secrets: [{ label: 'Signing secret (apiSecret)', value: answer.apiSecret, what: 'signing secret' }],
          });
        }
        toast(what === 'enabled' ? `Enabled ${answer.provider} again.` : `Connected ${answer.provider}.`);
        await load();
        body.querySelector(`article[data-guid="${answer.guid}"] h2`)?.focus();
      },
    });
    replace(formSlot, form);
    form.querySelector('select:not([disabled]), input:not([readonly])')?.focus();
  };

  const load = async () => {
    try {
      items = (await get('/api/integrations?limit=200')).data;
    } catch (error) {
      if (error.status === 404) {
        connect.hidden = true;
        replace(body, notice('This server does not offer integrations.'));
        return;
      }
      replace(body, notice(error.message, 'error'));
      return;
    }
    draw();
  };
  const draw = () => {
    if (!items.length) {
      replace(body, h('div', { class: 'empty' },
        h('p', {}, 'No store is connected yet.'),
        h('p', { class: 'muted' }, 'Connect Shopify, WooCommerce or a custom source: its inbound webhook URL appears here.')));
      return;
    }
    const wanted = route?.params?.get('guid');
    replace(body, h('div', { class: 'cards' }, items.map((i) => {
      const urlId = `inbound-${i.guid}`;
      // A disabled store is enabled by configuring it again; a custom source has no store to match.
      const canEnable = i.status !== 'active' && Boolean(i.storeUrl);
      return h('article', { class: ['card', 'integration', wanted === i.guid && 'highlight'], dataset: { guid: i.guid } },
        h('div', { class: 'summary-head' },
          h('h2', { tabindex: '-1' }, i.provider, i.storeUrl ? h('span', { class: 'muted' }, ` · ${i.storeUrl}`) : null),
          badge(i.status)),
        h('dl', { class: 'facts' },
          h('dt', {}, 'Connected'), h('dd', {}, time(i.connectedAt)),
          i.disabledAt ? [h('dt', {}, 'Disabled'), h('dd', {}, time(i.disabledAt))] : null,
          i.apiKeyLast4 ? [h('dt', {}, 'API key'), h('dd', {}, h('code', {}, `…${i.apiKeyLast4}`))] : null),
        h('div', { class: 'field field-wide' },
          h('label', { for: urlId }, 'Inbound webhook URL'),
          copyRow({ id: urlId, value: i.inboundUrl ?? '', what: 'inbound webhook URL' })),
        i.status !== 'active' && !i.storeUrl
          ? h('p', { class: 'hint' }, 'Disabled: its deliveries are refused. A custom source is not enabled again; connect a new one (it gets a new URL and secret).')
          : null,
        h('div', { class: 'form-buttons' },
          i.status === 'active' ? h('button', { type: 'button', onclick: () => disable(i) }, 'Disable') : null,
          canEnable ? h('button', { type: 'button', class: 'primary', onclick: () => openForm({ provider: i.provider, storeUrl: i.storeUrl, settings: i.settings }) }, 'Enable…') : null,
          h('button', { type: 'button', class: 'danger', onclick: () => remove(i) }, 'Remove')));
    })));
  };
  const disable = async (integration) => {
    const yes = await confirmDialog(`Disable ${integration.provider}? Its webhooks are refused until it is enabled again; the credentials are kept.`, 'Disable');
    if (!yes) return;
    try {
      await post(`/api/integrations/provider/disable/${integration.guid}`);
      toast('Disabled.');
    } catch (error) {
      toast(error.message, 'error');
    }
    await load();
  };
  const remove = async (integration) => {
    const yes = await confirmDialog(`Remove ${integration.provider}${integration.storeUrl ? ` (${integration.storeUrl})` : ''}? Its credentials are deleted for good, and the workflows it installed with it.`, 'Remove');
    if (!yes) return;
    try {
      await del(`/api/integrations/providers/ecommerce/remove/${integration.guid}`);
      toast('Removed.');
    } catch (error) {
      toast(error.message, 'error');
    }
    await load();
  };
  await load();
}
