// Events: what came in, which workflows it matched, which conditions failed and why, what it
// started; one event in full.

import { get, query } from './api.js';
import { badge, h, heading, json, notice, replace, shortId, time } from './dom.js';
import { conditionsTable } from './test_panel.js';

/** Why a workflow did not match, in one line: the failing conditions and any script error. */
function whyNot(miss) {
  const failing = (miss.conditions ?? []).filter((c) => !c.holds)
    .map((c) => `${c.path} is ${c.actual === undefined || c.actual === null ? 'missing' : JSON.stringify(c.actual)}, not ${JSON.stringify(c.expected)}`);
  if (miss.script?.error) failing.push(`condition error: ${miss.script.error}`);
  else if (miss.script && miss.script.result !== true) failing.push('the Rhai condition is false');
  return failing.join('; ') || 'did not match';
}

function outcomeSummary(event) {
  const outcome = event.outcome;
  if (!outcome) return h('span', { class: 'muted' }, event.state === 'pending' ? 'not matched yet' : '—');
  const lines = [];
  for (const m of outcome.matched ?? []) {
    lines.push(h('li', {}, h('span', { class: 'ok' }, 'started '), h('strong', {}, m.name), ' → ',
      h('a', { href: `#/executions/${m.executionId}` }, `execution ${shortId(m.executionId)}`)));
  }
  for (const n of outcome.notMatched ?? []) {
    lines.push(h('li', {}, h('span', { class: 'neutral' }, 'no match '), h('strong', {}, n.name), h('span', { class: 'muted' }, ` — ${whyNot(n)}`)));
  }
  for (const r of outcome.refused ?? []) {
    lines.push(h('li', {}, h('span', { class: 'bad' }, 'refused '), h('strong', {}, r.name), h('span', { class: 'muted' }, ` — ${r.reason}`)));
  }
  return lines.length ? h('ul', { class: 'plain outcome' }, lines) : h('span', { class: 'muted' }, 'no workflow for this trigger');
}

export async function renderEvents(main) {
  const body = h('div', { class: 'table-wrap' }, notice('Loading…'));
  replace(main, heading('Events'),
    h('p', { class: 'lead muted' }, 'The most recent entity events, newest first, and what each one matched.'),
    body);
  let items = [];
  let cursor = null;
  const draw = () => {
    if (!items.length) {
      replace(body, notice('No events yet. Send one with POST /api/events or connect a store.'));
      return;
    }
    replace(body,
      h('table', { class: 'data responsive' },
        h('thead', {}, h('tr', {}, ['Received', 'Event', 'Entity', 'Trigger', 'Outcome'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, items.map((e) => h('tr', { dataset: { event: e.eventId } },
          h('td', { 'data-label': 'Received' }, time(e.receivedAt)),
          h('td', { 'data-label': 'Event' }, h('a', { href: `#/events/${encodeURIComponent(e.eventId)}` }, e.eventId),
            e.depth ? h('span', { class: 'tag' }, `chain depth ${e.depth}`) : null),
          h('td', { 'data-label': 'Entity' }, `${e.entityType} `, h('code', {}, e.entityId)),
          h('td', { 'data-label': 'Trigger' }, h('code', {}, e.trigger)),
          h('td', { 'data-label': 'Outcome' }, outcomeSummary(e)))))),
      cursor ? h('button', { type: 'button', class: 'more', onclick: load }, 'Load more') : null);
  };
  const load = async () => {
    const page = await get(`/api/events${query({ limit: 50, cursor })}`);
    items = items.concat(page.data);
    cursor = page.cursor;
    draw();
  };
  await load().catch((error) => replace(body, notice(error.message, 'error')));
}

export async function renderEvent(main, route) {
  let event;
  try {
    event = (await get(`/api/events/${encodeURIComponent(route.eventId)}`)).data;
  } catch (error) {
    replace(main, heading('Event'), notice(error.message, 'error'));
    return;
  }
  const outcome = event.outcome ?? {};
  // The cause by its own id, as the Events page names events.
  const cause = event.causationId
    ? (await get(`/api/events/${event.causationId}`).catch(() => null))?.data ?? null
    : null;
  replace(main,
    h('p', { class: 'crumbs' }, h('a', { href: '#/events' }, 'Events')),
    heading(`Event ${event.eventId}`),
    h('div', { class: 'card summary' },
      h('dl', { class: 'facts' },
        h('dt', {}, 'Entity'), h('dd', {}, `${event.entityType} `, h('code', {}, event.entityId)),
        h('dt', {}, 'Trigger'), h('dd', {}, h('code', {}, event.trigger)),
        h('dt', {}, 'Occurred'), h('dd', {}, time(event.occurredAt)),
        h('dt', {}, 'Received'), h('dd', {}, time(event.receivedAt)),
        h('dt', {}, 'State'), h('dd', {}, event.state),
        event.causationId ? [h('dt', {}, 'Caused by'), h('dd', {}, cause
          ? h('a', { href: `#/events/${encodeURIComponent(cause.eventId)}` }, cause.eventId)
          : h('a', { href: `#/events/${event.causationId}` }, 'the causing event'), ` (depth ${event.depth})`)] : null)),
    h('section', { class: 'card' },
      h('h2', {}, 'Matched'),
      (outcome.matched ?? []).length
        ? h('ul', { class: 'plain outcome' }, outcome.matched.map((m) => h('li', {}, h('strong', {}, m.name), ' started ',
          h('a', { href: `#/executions/${m.executionId}` }, `execution ${shortId(m.executionId)}`))))
        : h('p', { class: 'muted' }, 'No workflow matched.'),
      (outcome.notMatched ?? []).length ? [h('h2', {}, 'Not matched'),
        outcome.notMatched.map((n) => h('div', { class: 'miss' },
          h('h3', {}, n.name, h('span', { class: 'muted' }, ` v${n.version}`)),
          conditionsTable(n.conditions, n.script)))] : null,
      (outcome.refused ?? []).length ? [h('h2', {}, 'Refused'),
        h('ul', { class: 'plain outcome' }, outcome.refused.map((r) => h('li', {}, h('strong', {}, r.name), ` — ${r.reason}`)))] : null),
    h('section', { class: 'card' },
      h('h2', {}, 'Executions started'),
      event.executions?.length
        ? h('ul', { class: 'plain outcome' }, event.executions.map((x) => h('li', {},
          h('a', { href: `#/executions/${x.id}` }, `execution ${shortId(x.id)}`), ' ', badge(x.status))))
        : h('p', { class: 'muted' }, 'None.')),
    h('div', { class: 'columns' },
      h('section', { class: 'card' }, h('h2', {}, 'Data'), json(event.data)),
      h('section', { class: 'card' }, h('h2', {}, 'Previous'), event.previous ? json(event.previous) : h('p', { class: 'muted' }, 'None.'))));
}
