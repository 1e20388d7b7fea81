// Connecting a store: a form built from the provider catalog (`GET /api/integrations/providers`:
// each provider's credential fields and the integration settings), posted to
// `POST /api/integrations/provider/configure`. The server checks the credentials against the store;
// what it refuses is shown beside the field concerned. Configuring a store whose integration is
// disabled enables that integration again (same inbound URL), so Enable opens this form too.

import { fieldLabel, post } from './api.js';
import { field, h, replace, setFieldError } from './dom.js';

/** The placeholder each credential gets, by name. */
const PLACEHOLDERS = {
  storeUrl: { shopify: 'https://your-shop.myshopify.com', woocommerce: 'https://shop.example.com' },
  apiKey: { shopify: 'shpat_…', woocommerce: 'ck_…' },
  apiSecret: { woocommerce: 'cs_…', custom: 'whsec_… (generated when empty)' },
};

/**
 * The form. `providers` is the catalog; `preset` ({provider, storeUrl}) fixes the provider and
 * store and its settings (Enable); `onDone(answer, status)` is called after a successful configure; `onCancel`
 * closes the form.
 */
export function storeForm({ providers, preset = null, onDone, onCancel }) {
  const providerSelect = h('select', { disabled: Boolean(preset) },
    providers.map((p) => h('option', { value: p.code }, p.name)));
  if (preset) providerSelect.value = preset.provider;
  const providerField = field({ id: 'store-provider', label: 'Provider', control: providerSelect });
  providerField.dataset.api = 'providerId';
  const credentials = h('div', { class: 'grid' });
  const settings = h('fieldset', { class: 'subgroup' }, h('legend', {}, 'Settings'));
  const formError = h('div', { class: 'form-error', role: 'alert', tabindex: '-1', hidden: true });
  const submit = h('button', { type: 'submit', class: 'primary' }, preset ? 'Enable' : 'Connect');
  const form = h('form', { class: 'card form store-form', novalidate: true, 'aria-labelledby': 'store-form-title' },
    h('h2', { id: 'store-form-title' }, preset ? `Enable ${preset.provider} · ${preset.storeUrl}` : 'Connect a store'),
    preset ? h('p', { class: 'hint' }, 'Enter the credentials again: they are checked against the store, and the integration keeps its inbound URL.') : null,
    formError,
    h('div', { class: 'grid' }, providerField),
    credentials,
    settings,
    h('div', { class: 'form-buttons' }, submit, h('button', { type: 'button', onclick: onCancel }, 'Cancel')));

  let inputs = {};
  let checks = {};
  const draw = () => {
    const provider = providers.find((p) => p.code === providerSelect.value) ?? providers[0];
    inputs = {};
    replace(credentials, provider.credentials.map((c) => {
      const control = h('input', {
        type: c.secret ? 'password' : c.name === 'storeUrl' ? 'url' : 'text',
        autocomplete: 'off', spellcheck: 'false', class: c.name === 'storeUrl' ? null : 'mono',
        placeholder: PLACEHOLDERS[c.name]?.[provider.code] ?? (c.required ? '' : 'optional'),
        value: c.name === 'storeUrl' && preset ? preset.storeUrl : '',
        readonly: c.name === 'storeUrl' && preset ? true : null,
      });
      inputs[c.name] = control;
      const wrapper = field({
        id: `store-${c.name}`, label: `${fieldLabel(c.name)}${c.required ? '' : ' (optional)'}`, control,
        hint: c.description.charAt(0).toUpperCase() + c.description.slice(1) + '.',
      });
      wrapper.dataset.api = `credentials.${c.name}`;
      return wrapper;
    }));
    checks = {};
    replace(settings, h('legend', {}, 'Settings'), provider.settings.map((s) => {
      const box = h('input', { type: 'checkbox', id: `store-setting-${s.name}`, checked: preset?.settings?.[s.name] ?? s.default });
      checks[s.name] = box;
      return h('div', { class: 'check' }, box,
        h('label', { for: `store-setting-${s.name}` }, fieldLabel(s.name), h('span', { class: 'muted' }, ` — ${s.description}`)));
    }));
    settings.hidden = !provider.settings.length;
  };
  providerSelect.addEventListener('change', draw);
  draw();

  const wrappers = () => [...form.querySelectorAll('[data-api]')];
  const show = (path, message) => {
    const wrapper = wrappers().find((w) => w.dataset.api === path);
    if (!wrapper) return false;
    setFieldError(wrapper, message);
    wrapper.querySelector('input, select')?.focus();
    return true;
  };
  /** Where a refusal belongs: a field the API names; the store's refusal beside the key; an
   * unreachable store beside its URL; else the top of the form. */
  const showError = (error) => {
    if (error.field && show(error.field, error.message)) return;
    if (error.code === 'CONFIGURATION_ERROR') {
      const reason = error.details?.reason;
      if (reason && inputs.apiKey && show('credentials.apiKey', `The store refused these credentials (${reason.replace(/^the store /, 'it ')}). Check the key${inputs.apiSecret ? ' and secret' : ''}.`)) return;
      if (inputs.storeUrl && show('credentials.storeUrl', `The store could not be checked: ${error.message}`)) return;
    }
    formError.textContent = error.status === 409
      ? 'This store is already connected and active: disable or remove that integration first.'
      : error.message;
    formError.hidden = false;
    formError.focus();
  };

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    formError.hidden = true;
    for (const wrapper of wrappers()) setFieldError(wrapper, null);
    const body = { providerId: providerSelect.value, credentials: {}, settings: {} };
    for (const [name, control] of Object.entries(inputs)) {
      if (control.value.trim()) body.credentials[name] = control.value.trim();
    }
    for (const [name, box] of Object.entries(checks)) body.settings[name] = box.checked;
    submit.disabled = true;
    try {
      const answer = await post('/api/integrations/provider/configure', body);
      onDone(answer.data, preset ? 'enabled' : 'connected');
    } catch (error) {
      showError(error);
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}
