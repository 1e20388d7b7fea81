// The workflow form's flow control (CONTRACT §8): `concurrency` (at most N runs per key at once),
// `debounce` (one run per burst of events with the same key) and `cancelOn` (events that cancel
// this workflow's queued and waiting runs). Every field carries the API path it edits in
// `data-api`, so the API's validation errors (`concurrency.limit`, `cancelOn[1].triggerId`) are
// shown beside it.

import { ENTITY_TYPES, triggers } from './api.js';
import { field, h, replace, withCode } from './dom.js';

/** Fresh nodes each time: a DOM node can be in one place only. */
const keyHint = () => withCode('`entity` (the default: the same entity) or a template such as `{{ entity.customer.email }}`.');

/** A client-side mistake, shown beside the field whose API path is `field`. */
export class FormError extends Error {
  constructor(field, message) {
    super(message);
    this.field = field;
  }
}

function text(value, placeholder, extra = {}) {
  return h('input', { type: 'text', autocomplete: 'off', spellcheck: 'false', placeholder, value: value ?? '', ...extra });
}

function apiField(path, options) {
  const wrapper = field(options);
  wrapper.dataset.api = path;
  return wrapper;
}

function subgroup(id, path, legend, hint, ...content) {
  return h('fieldset', { class: 'subgroup', dataset: { field: id, api: path }, 'aria-describedby': `${id}-error` },
    h('legend', {}, legend),
    h('p', { class: 'hint' }, hint),
    ...content,
    h('p', { class: 'field-error', id: `${id}-error`, hidden: true }));
}

/** Every trigger of every entity type, for `cancelOn` (an order event may cancel a customer run). */
async function allTriggers() {
  return Promise.all(ENTITY_TYPES.map(async (entity) => ({ entity, triggers: await triggers(entity) })));
}

let uid = 0;

export function flowControlEditor(workflow) {
  const limit = text(workflow?.concurrency?.limit, 'no limit', { inputmode: 'numeric', class: 'narrow' });
  const concurrencyKey = text(workflow?.concurrency ? workflow.concurrency.key : '', 'entity', { class: 'mono' });
  const period = text(workflow?.debounce?.period, '10m');
  const maxWait = text(workflow?.debounce?.maxWait, '1h');
  const debounceKey = text(workflow?.debounce ? workflow.debounce.key : '', 'entity', { class: 'mono' });

  const concurrency = subgroup('wf-concurrency', 'concurrency', 'Concurrency',
    'At most this many runs with the same key at once; the others wait their turn, in the order of their events. Empty: no limit.',
    h('div', { class: 'grid' },
      apiField('concurrency.limit', { id: 'wf-concurrency-limit', label: 'Runs at once', control: limit }),
      apiField('concurrency.key', { id: 'wf-concurrency-key', label: 'Concurrency key', control: concurrencyKey, hint: keyHint() })));
  const debounce = subgroup('wf-debounce', 'debounce', 'Debounce',
    'Wait this long after a matching event; a newer one with the same key replaces it, so a burst starts one run. Empty: no debounce.',
    h('div', { class: 'grid' },
      apiField('debounce.period', { id: 'wf-debounce-period', label: 'Period', control: period, hint: 'e.g. 90s, 10m, 2h' }),
      apiField('debounce.maxWait', { id: 'wf-debounce-maxwait', label: 'Longest wait', control: maxWait, hint: 'Optional: start at the latest this long after the first event.' }),
      apiField('debounce.key', { id: 'wf-debounce-key', label: 'Debounce key', control: debounceKey, hint: keyHint() })));

  const rows = h('div', { class: 'rows' });
  const noCancel = h('p', { class: 'muted rows-empty' }, 'None.');
  const catalog = allTriggers();
  const renumber = () => {
    [...rows.children].forEach((row, i) => {
      row.querySelector('[data-role="trigger"]').dataset.api = `cancelOn[${i}].triggerId`;
      row.querySelector('[data-role="key"]').dataset.api = `cancelOn[${i}].key`;
    });
    noCancel.hidden = rows.children.length > 0;
  };
  const addCancel = (entry = {}) => {
    const id = `cancel-${++uid}`;
    const select = h('select', {}, h('option', { value: '' }, 'Loading triggers…'));
    catalog.then((groups) => {
      replace(select, groups.map((g) => h('optgroup', { label: g.entity },
        g.triggers.map((t) => h('option', { value: t.code }, `${t.name} (${t.code})`)))));
      select.value = entry.triggerId ?? 'order_created';
    }).catch((e) => replace(select, h('option', { value: entry.triggerId ?? '' }, entry.triggerId ?? `Triggers unavailable: ${e.message}`)));
    const key = text(entry.key, 'the same entity', { class: 'mono' });
    const triggerField = field({ id: `${id}-trigger`, label: 'Cancelling trigger', control: select });
    triggerField.dataset.role = 'trigger';
    const keyField = field({ id: `${id}-key`, label: 'Key (optional)', control: key });
    keyField.dataset.role = 'key';
    const row = h('div', { class: 'row-fields cancel-row' }, triggerField, keyField,
      h('button', {
        type: 'button', class: 'small danger', 'aria-label': 'Remove this cancelling trigger',
        onclick: () => { row.remove(); renumber(); },
      }, 'Remove'));
    rows.append(row);
    renumber();
    return row;
  };
  for (const entry of workflow?.cancelOn ?? []) addCancel(entry);
  renumber();
  const cancelOn = subgroup('wf-cancelon', 'cancelOn', 'Cancel on',
    withCode('Events with these triggers cancel this workflow’s queued and waiting runs with the same key (without a key: the same entity). The abandoned-cart pattern: cancelled on `order_created` keyed by `{{ entity.customer.email }}`.'),
    rows, noCancel,
    h('button', { type: 'button', onclick: () => addCancel().querySelector('select').focus() }, 'Add cancelling trigger'));

  const element = h('fieldset', { class: 'group flow-control', dataset: { field: 'wf-flow' } },
    h('legend', {}, 'Flow control'), concurrency, debounce, cancelOn);

  return {
    element,
    /** `concurrency`, `debounce` and `cancelOn` as the API takes them; throws a FormError. */
    read() {
      const out = { cancelOn: [] };
      const limitText = limit.value.trim();
      const cKey = concurrencyKey.value.trim();
      if (limitText || cKey) {
        if (!limitText) throw new FormError('concurrency.limit', 'Give the most runs at once (1 or more), or clear the key.');
        // Anything but digits goes to the API as typed: its answer says what is wrong.
        out.concurrency = { key: cKey || 'entity', limit: /^\d+$/.test(limitText) ? Number(limitText) : limitText };
      }
      const p = period.value.trim();
      const m = maxWait.value.trim();
      const dKey = debounceKey.value.trim();
      if (p || m || dKey) {
        if (!p) throw new FormError('debounce.period', 'Give a period, such as 10m, or clear the debounce fields.');
        out.debounce = { key: dKey || 'entity', period: p };
        if (m) out.debounce.maxWait = m;
      }
      for (const row of rows.children) {
        const entry = { triggerId: row.querySelector('select').value };
        const k = row.querySelector('input').value.trim();
        if (k) entry.key = k;
        out.cancelOn.push(entry);
      }
      return out;
    },
  };
}
