// The "Test" panel of a workflow: a dry run of one event (pasted or picked from recent ones) and a
// backtest over the last N stored events. `POST /api/workflows/test`: nothing is sent or stored.

import { get, post, query } from './api.js';
import { badge, field, h, heading, json, notice, replace, setFieldError, time } from './dom.js';
import { actionSummary, conditionSummary } from './workflows.js';

/** The part of a stored event that `POST /api/events` (and the dry run) takes. */
function asEventBody(event) {
  const body = { entityType: event.entityType, trigger: event.trigger, entityId: event.entityId, data: event.data };
  if (event.previous) body.previous = event.previous;
  return body;
}

export function conditionsTable(conditions, script) {
  const rows = (conditions ?? []).map((c) => h('tr', {},
    h('td', { 'data-label': 'Path' }, h('code', {}, c.path)),
    h('td', { 'data-label': 'Expected' }, h('code', {}, JSON.stringify(c.expected))),
    h('td', { 'data-label': 'Actual' }, h('code', {}, c.actual === undefined ? 'missing' : JSON.stringify(c.actual))),
    h('td', { 'data-label': 'Holds' }, c.holds ? h('span', { class: 'ok' }, '✓ holds') : h('span', { class: 'bad' }, '✗ fails'))));
  if (script) {
    rows.push(h('tr', {},
      h('td', { 'data-label': 'Path' }, 'Rhai condition'),
      h('td', { 'data-label': 'Expected' }, h('code', {}, 'true')),
      h('td', { 'data-label': 'Actual' }, script.error ? h('span', { class: 'bad' }, script.error) : h('code', {}, String(script.result))),
      h('td', { 'data-label': 'Holds' }, script.result === true ? h('span', { class: 'ok' }, '✓ holds') : h('span', { class: 'bad' }, '✗ fails'))));
  }
  if (!rows.length) return h('p', { class: 'muted' }, 'No conditions: every event of the trigger matches.');
  return h('table', { class: 'data responsive compact' },
    h('thead', {}, h('tr', {}, ['Condition', 'Expected', 'Actual', 'Result'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, rows));
}

export async function renderTestPanel(main, route) {
  let workflow;
  try {
    workflow = (await get(`/api/workflows/configured/${route.guid}`)).data;
  } catch (error) {
    replace(main, heading('Test a workflow'), notice(error.message, 'error'));
    return;
  }
  const example = { entityType: workflow.entityType, trigger: workflow.trigger, entityId: 'test_1', data: { status: 'paid', total: 120.5 } };
  const eventText = h('textarea', { rows: 10, class: 'mono', spellcheck: 'false' });
  eventText.value = JSON.stringify(example, null, 2);
  const eventField = field({
    id: 'test-event', label: 'Event (JSON, as for POST /api/events)', control: eventText, wide: true,
  });
  const recent = h('select', {}, h('option', { value: '' }, 'Loading recent events…'));
  const recentField = field({ id: 'test-recent', label: 'Or pick a recent event', control: recent });
  const result = h('section', { class: 'result', 'aria-live': 'polite', 'aria-label': 'Dry run result' });
  const runButton = h('button', { type: 'submit', class: 'primary' }, 'Run dry run');
  const dryRun = h('form', { class: 'card', novalidate: true },
    h('h2', {}, 'Try one event'), recentField, eventField, h('div', { class: 'form-buttons' }, runButton), result);

  const limit = h('input', { type: 'number', min: 1, max: 5000, value: 500, inputmode: 'numeric' });
  const limitField = field({ id: 'backtest-limit', label: 'Replay the last N events of this trigger', control: limit });
  const backtestResult = h('section', { class: 'result', 'aria-live': 'polite', 'aria-label': 'Backtest result' });
  const backtest = h('form', { class: 'card', novalidate: true },
    h('h2', {}, 'Backtest'), limitField,
    h('div', { class: 'form-buttons' }, h('button', { type: 'submit' }, 'Run backtest')), backtestResult);

  replace(main,
    h('p', { class: 'crumbs' }, h('a', { href: `#/workflows/${workflow.entityType}` }, `${workflow.entityType} workflows`)),
    heading(`Test “${workflow.name}”`),
    h('div', { class: 'card summary' },
      h('dl', { class: 'facts' },
        h('dt', {}, 'Trigger'), h('dd', {}, h('code', {}, workflow.trigger)),
        h('dt', {}, 'Conditions'), h('dd', {}, conditionSummary(workflow)),
        h('dt', {}, 'Actions'), h('dd', {}, h('ol', { class: 'plain steps' }, workflow.actions.map((a) => h('li', {}, actionSummary(a))))),
        h('dt', {}, 'Version'), h('dd', {}, `v${workflow.version}`, ' · ', workflow.isActive ? 'on' : 'off'))),
    h('div', { class: 'columns' }, dryRun, backtest));

  let events = [];
  get(`/api/events${query({ limit: 50 })}`).then((page) => {
    events = page.data;
    const same = events.filter((e) => e.trigger === workflow.trigger && e.entityType === workflow.entityType);
    const other = events.filter((e) => !same.includes(e));
    const option = (e) => h('option', { value: e.id }, `${e.eventId} · ${e.entityId} · ${new Date(e.occurredAt).toLocaleString()}`);
    replace(recent,
      h('option', { value: '' }, events.length ? '— choose an event —' : 'No events yet'),
      same.length ? h('optgroup', { label: `${workflow.trigger}` }, same.map(option)) : null,
      other.length ? h('optgroup', { label: 'Other triggers' }, other.map((e) => h('option', { value: e.id }, `${e.trigger} · ${e.eventId} · ${e.entityId}`))) : null);
  }).catch((error) => replace(recent, h('option', { value: '' }, `Events unavailable: ${error.message}`)));
  recent.addEventListener('change', () => {
    const event = events.find((e) => e.id === recent.value);
    if (event) eventText.value = JSON.stringify(asEventBody(event), null, 2);
  });

  dryRun.addEventListener('submit', async (e) => {
    e.preventDefault();
    setFieldError(eventField, null);
    let event;
    try {
      event = JSON.parse(eventText.value);
    } catch (err) {
      setFieldError(eventField, `Not valid JSON: ${err.message}`);
      eventText.focus();
      return;
    }
    runButton.disabled = true;
    try {
      const answer = (await post('/api/workflows/test', { guid: workflow.guid, event })).data;
      replace(result,
        h('p', { class: 'verdict' }, answer.matched ? badge('matches') : badge('no match'),
          answer.triggerMatches === false ? h('span', { class: 'muted' }, ` The event’s trigger is not ${workflow.trigger}.`) : null),
        h('h3', {}, 'Conditions'),
        conditionsTable(answer.conditions, answer.script),
        h('h3', {}, answer.matched ? 'Actions it would run' : 'Actions it would run if it matched'),
        (answer.actions ?? []).length
          ? h('ol', { class: 'rendered' }, answer.actions.map((a) => h('li', {}, h('strong', {}, a.type), json(a.params))))
          : h('p', { class: 'muted' }, 'None.'));
    } catch (error) {
      setFieldError(eventField, error.message);
      replace(result);
    } finally {
      runButton.disabled = false;
    }
  });

  backtest.addEventListener('submit', async (e) => {
    e.preventDefault();
    setFieldError(limitField, null);
    const n = Number(limit.value);
    if (!Number.isInteger(n) || n < 1 || n > 5000) {
      setFieldError(limitField, 'A whole number from 1 to 5000.');
      limit.focus();
      return;
    }
    try {
      const answer = (await post('/api/workflows/test', { guid: workflow.guid, backtest: { limit: n } })).data;
      const sample = (title, items) => (items?.length
        ? [h('h3', {}, title), h('ul', { class: 'plain samples' }, items.map((s) => h('li', {},
          h('a', { href: `#/events/${encodeURIComponent(s.eventId)}` }, s.eventId), ' · ', s.entityId, ' · ', time(s.occurredAt),
          s.script?.error ? h('span', { class: 'bad' }, ` — ${s.script.error}`) : null)))]
        : null);
      replace(backtestResult,
        h('p', { class: 'verdict' }, h('strong', {}, `${answer.matched} of ${answer.evaluated}`),
          ` recent ${workflow.trigger} events would have matched.`),
        sample('Would have matched', answer.samples?.matched),
        sample('Would not have matched', answer.samples?.notMatched));
    } catch (error) {
      setFieldError(limitField, error.message);
    }
  });
}
