// Integrations: the stores connected to this tenant, their status, the inbound webhook URL to
// register in the store, disable and remove.

import { del, get, post } from './api.js';
import { badge, confirmDialog, h, heading, notice, replace, time, toast } from './dom.js';

async function copy(text, input) {
  try {
    await navigator.clipboard.writeText(text);
    toast('Copied the inbound webhook URL.');
  } catch {
    // No clipboard (an insecure origin): select it for the user to copy.
    input.focus();
    input.select();
    toast('Press Ctrl+C (⌘C) to copy the selected URL.');
  }
}

export async function renderIntegrations(main) {
  const body = h('div', {}, notice('Loading…'));
  replace(main, heading('Integrations'),
    h('p', { class: 'lead muted' }, 'Stores that send their webhooks to Switchyard. Register each one’s inbound URL in the store.'),
    body);
  let items = [];
  const load = async () => {
    try {
      items = (await get('/api/integrations?limit=200')).data;
    } catch (error) {
      if (error.status === 404) {
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
        h('p', { class: 'muted' }, 'Connect Shopify, WooCommerce or a custom source with POST /api/integrations/provider/configure; it appears here with its inbound webhook URL.')));
      return;
    }
    replace(body, h('div', { class: 'cards' }, items.map((i) => {
      const urlId = `inbound-${i.guid}`;
      const url = h('input', { type: 'text', readonly: true, value: i.inboundUrl ?? '', class: 'mono', id: urlId });
      return h('article', { class: 'card integration', dataset: { guid: i.guid } },
        h('div', { class: 'summary-head' },
          h('h2', {}, i.provider, i.storeUrl ? h('span', { class: 'muted' }, ` · ${i.storeUrl}`) : null),
          badge(i.status)),
        h('dl', { class: 'facts' },
          h('dt', {}, 'Connected'), h('dd', {}, time(i.connectedAt)),
          i.disabledAt ? [h('dt', {}, 'Disabled'), h('dd', {}, time(i.disabledAt))] : null,
          i.apiKeyLast4 ? [h('dt', {}, 'API key'), h('dd', {}, h('code', {}, `…${i.apiKeyLast4}`))] : null),
        h('div', { class: 'field field-wide' },
          h('label', { for: urlId }, 'Inbound webhook URL'),
          h('div', { class: 'copy-row' }, url,
            h('button', { type: 'button', onclick: () => copy(url.value, url) }, 'Copy'))),
        h('div', { class: 'form-buttons' },
          i.status === 'active' ? h('button', { type: 'button', onclick: () => disable(i) }, 'Disable') : null,
          h('button', { type: 'button', class: 'danger', onclick: () => remove(i) }, 'Remove')));
    })));
  };
  const disable = async (integration) => {
    const yes = await confirmDialog(`Disable ${integration.provider}? Its webhooks are refused until it is configured again; the credentials are kept.`, 'Disable');
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
    const yes = await confirmDialog(`Remove ${integration.provider}? Its credentials are deleted for good.`, 'Remove');
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
