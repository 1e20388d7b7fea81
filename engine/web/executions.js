// Executions: a filterable list and each execution's timeline (every step, every attempt), with
// Resume and Cancel where the API allows them, and both in bulk over the filter. Both pages refresh
// while anything is still in motion.

import { ACTIVE_STATUSES, STATUSES, allWorkflows, get, post, query } from './api.js';
import { badge, confirmDialog, duration, field, h, heading, json, notice, replace, shortId, time, toast } from './dom.js';
import { bulkPanel } from './bulk.js';

const REFRESH_MS = 1000;
const IDLE_REFRESH_MS = 3000;

const canResume = (execution) => execution.status === 'paused';
const canCancel = (execution) => !['succeeded', 'cancelled'].includes(execution.status);

/** Redraws `container` only when the data changed, keeping keyboard focus on the same control. */
function redraw(container, signature, state, draw) {
  if (state.signature === signature) return;
  state.signature = signature;
  const focusKey = document.activeElement?.dataset?.focusKey;
  draw();
  if (focusKey) container.querySelector(`[data-focus-key="${CSS.escape(focusKey)}"]`)?.focus();
}

/**
 * Calls `tick` after each `kick(ms)`; `tick` answers how long to wait before the next call
 * (null: stop). Stops for good with `stop()`, when the page is left.
 */
function poller(tick) {
  let timer = null;
  let stopped = false;
  const kick = (ms) => {
    if (stopped) return;
    clearTimeout(timer);
    timer = setTimeout(loop, ms);
  };
  const loop = async () => {
    timer = null;
    let next;
    try {
      next = await tick();
    } catch {
      next = REFRESH_MS * 3; // A failed refresh is retried; the page keeps what it shows.
    }
    if (next) kick(next);
  };
  return {
    kick,
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

async function resume(execution, after) {
  try {
    await post(`/api/workflows/resume-workflow${query({ workflowId: execution.id })}`);
    toast('Resumed: the failed step runs again.');
  } catch (error) {
    toast(error.message, 'error');
  }
  await after();
}

async function cancel(execution, after) {
  const yes = await confirmDialog('Cancel this execution? Steps not yet run will not run.', 'Cancel execution');
  if (!yes) return;
  try {
    await post(`/api/executions/${execution.id}/cancel`);
    toast('Cancelled.');
  } catch (error) {
    toast(error.message, 'error');
  }
  await after();
}

function operationButtons(execution, after) {
  return [
    canResume(execution) ? h('button', {
      type: 'button', class: 'small primary', dataset: { focusKey: `resume-${execution.id}` },
      onclick: () => resume(execution, after),
    }, 'Resume') : null,
    canCancel(execution) ? h('button', {
      type: 'button', class: 'small danger', dataset: { focusKey: `cancel-${execution.id}` },
      onclick: () => cancel(execution, after),
    }, 'Cancel') : null,
  ];
}

function lastError(execution) {
  const failed = [...(execution.steps ?? [])].reverse().find((s) => s.lastError);
  return failed?.lastError;
}

function statusCell(execution) {
  return [badge(execution.status),
    execution.pauseReason ? h('span', { class: 'muted reason' }, ` ${execution.pauseReason.replace('_', ' ')}`) : null];
}

export async function renderExecutions(main, route) {
  const params = route.params;
  const workflowSelect = h('select', {}, h('option', { value: '' }, 'All workflows'));
  const statusSelect = h('select', {}, h('option', { value: '' }, 'Any status'), STATUSES.map((s) => h('option', { value: s }, s)));
  statusSelect.value = params.get('status') ?? '';
  const live = h('p', { class: 'live muted', 'aria-live': 'off' });
  const body = h('div', { class: 'table-wrap' }, notice('Loading…'));
  const filters = h('form', { class: 'toolbar filters', role: 'search', 'aria-label': 'Filter executions' },
    field({ id: 'filter-workflow', label: 'Workflow', control: workflowSelect }),
    field({ id: 'filter-status', label: 'Status', control: statusSelect }),
    live);
  filters.querySelector('[data-field="filter-workflow"]').dataset.api = 'workflowId';
  filters.querySelector('[data-field="filter-status"]').dataset.api = 'status';
  const bulk = bulkPanel({
    filters,
    filter: () => ({ workflowId: workflowSelect.value, status: statusSelect.value }),
    describeWorkflow: () => (workflowSelect.value ? workflowSelect.selectedOptions[0]?.textContent : null),
    after: () => update(),
  });
  replace(main,
    heading('Executions'),
    filters,
    bulk,
    body);

  let names = new Map();
  try {
    const workflows = await allWorkflows();
    names = new Map(workflows.map((w) => [w.guid, w]));
    workflowSelect.append(...workflows.map((w) => h('option', { value: w.guid }, `${w.name} (${w.entityType})`)));
  } catch {
    // Names are a nicety: the list still works with ids.
  }
  const wanted = params.get('workflowId') ?? '';
  if (wanted && !names.has(wanted)) workflowSelect.append(h('option', { value: wanted }, `Workflow ${shortId(wanted)}`));
  workflowSelect.value = wanted;

  let items = [];
  let cursor = null;
  const state = {};
  const filter = () => ({ workflowId: workflowSelect.value, status: statusSelect.value });
  const fetchPage = (limit, after) => get(`/api/executions${query({ ...filter(), limit, cursor: after })}`);

  const draw = () => redraw(body, JSON.stringify([items, cursor]), state, () => {
    if (!items.length) {
      replace(body, notice('No executions match. They appear here when an event matches an active workflow.'));
      return;
    }
    const rows = items.map((x) => {
      const workflow = names.get(x.workflowId);
      const error = lastError(x);
      return h('tr', { dataset: { execution: x.id } },
        h('td', { 'data-label': 'Started' }, time(x.createdAt)),
        h('td', { 'data-label': 'Workflow' }, workflow ? workflow.name : shortId(x.workflowId), h('span', { class: 'muted' }, ` v${x.workflowVersion}`)),
        h('td', { 'data-label': 'Entity' }, `${x.entityType} `, h('code', {}, x.entityId)),
        h('td', { 'data-label': 'Status', class: 'status' }, statusCell(x)),
        h('td', { 'data-label': 'Steps' }, `${(x.steps ?? []).filter((step) => step.status === 'succeeded').length} of ${x.stepCount}`),
        h('td', { 'data-label': 'Last error', class: 'error-text' }, error ?? ''),
        h('td', { class: 'ops' }, h('div', { class: 'row-actions' },
          h('a', { class: 'button small', href: `#/executions/${x.id}`, dataset: { focusKey: `view-${x.id}` }, 'aria-label': `Timeline of execution ${shortId(x.id)}` }, 'Timeline'),
          operationButtons(x, update))));
    });
    replace(body,
      h('table', { class: 'data responsive' },
        h('thead', {}, h('tr', {}, ['Started', 'Workflow', 'Entity', 'Status', 'Steps', 'Last error'].map((c) => h('th', { scope: 'col' }, c)),
          h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Operations')))),
        h('tbody', {}, rows)),
      cursor ? h('button', { type: 'button', class: 'more', onclick: loadMore }, 'Load more') : null);
  });

  const inMotion = () => items.some((x) => ACTIVE_STATUSES.includes(x.status));
  const refresh = async () => {
    const page = await fetchPage(Math.min(200, Math.max(50, items.length)));
    items = page.data;
    cursor = page.cursor;
    draw();
    const moving = inMotion();
    live.textContent = moving ? 'Refreshing while executions run…' : '';
    // Quickly while anything runs; slowly otherwise, so new executions show up too.
    return moving ? REFRESH_MS : IDLE_REFRESH_MS;
  };
  const update = async () => {
    poll.kick(await refresh());
  };
  const loadMore = async () => {
    const page = await fetchPage(50, cursor);
    items = items.concat(page.data);
    cursor = page.cursor;
    draw();
  };
  const poll = poller(refresh);
  const onFilter = () => {
    const hash = `#/executions${query(filter())}`;
    history.replaceState(null, '', hash);
    items = [];
    state.signature = null;
    update().catch((error) => replace(body, notice(error.message, 'error')));
  };
  workflowSelect.addEventListener('change', onFilter);
  statusSelect.addEventListener('change', onFilter);
  await update().catch((error) => replace(body, notice(error.message, 'error')));
  return () => poll.stop();
}

function attemptItem(attempt) {
  return h('li', { class: ['attempt', `outcome-${attempt.outcome ?? 'running'}`] },
    h('div', { class: 'attempt-head' },
      h('span', { class: 'attempt-number' }, `Attempt ${attempt.number}`),
      badge(attempt.outcome ?? 'running'),
      time(attempt.startedAt, { precise: true }),
      attempt.endedAt ? h('span', { class: 'muted' }, ` · ${duration(attempt.startedAt, attempt.endedAt)}`) : null),
    attempt.error ? h('p', { class: 'error-text attempt-error' }, attempt.error) : null,
    attempt.output ? h('details', {}, h('summary', {}, 'Output'), json(attempt.output)) : null,
    attempt.worker ? h('p', { class: 'muted small-print' }, `worker ${attempt.worker}`) : null);
}

function stepItem(step) {
  return h('li', { class: ['step-item', `step-${step.status}`] },
    h('div', { class: 'step-head' },
      h('h3', {}, `Step ${step.position + 1} · ${step.actionType}`),
      badge(step.status),
      step.nextRunAt ? h('span', { class: 'muted' }, ' next attempt ', time(step.nextRunAt, { precise: true })) : null),
    step.attempts?.length
      ? h('ol', { class: 'attempts' }, step.attempts.map(attemptItem))
      : h('p', { class: 'muted' }, 'Not run yet.'),
    step.output ? h('details', {}, h('summary', {}, 'Step output'), json(step.output)) : null);
}

export async function renderExecution(main, route) {
  const body = h('div', {}, notice('Loading…'));
  const live = h('p', { class: 'live muted' });
  replace(main,
    h('p', { class: 'crumbs' }, h('a', { href: '#/executions' }, 'Executions')),
    heading(`Execution ${shortId(route.id)}`),
    live, body);
  const state = {};
  let workflow = null;
  let execution = null;
  let event = null;

  const draw = () => redraw(body, JSON.stringify([execution, event?.eventId]), state, () => {
    const x = execution;
    replace(body,
      h('div', { class: 'card summary' },
        h('div', { class: 'summary-head' },
          h('p', { class: 'status-line' }, 'Status ', h('span', { id: 'execution-status' }, badge(x.status)),
            x.pauseReason ? h('span', { class: 'muted' }, ` (${x.pauseReason.replace('_', ' ')})`) : null),
          h('div', { class: 'row-actions' }, operationButtons(x, update))),
        h('dl', { class: 'facts' },
          h('dt', {}, 'Workflow'), h('dd', {},
            workflow ? h('a', { href: `#/executions${query({ workflowId: x.workflowId })}` }, workflow.name) : shortId(x.workflowId),
            h('span', { class: 'muted' }, ` version ${x.workflowVersion}`)),
          h('dt', {}, 'Entity'), h('dd', {}, `${x.entityType} `, h('code', {}, x.entityId)),
          h('dt', {}, 'Event'), h('dd', {}, event
            ? h('a', { href: `#/events/${encodeURIComponent(event.eventId)}` }, event.eventId)
            : h('a', { href: `#/events/${x.eventId}` }, 'the event')),
          h('dt', {}, 'Started'), h('dd', {}, time(x.createdAt)),
          h('dt', {}, 'Finished'), h('dd', {}, time(x.finishedAt)),
          h('dt', {}, 'Id'), h('dd', {}, h('code', {}, x.id)))),
      h('h2', {}, 'Timeline'),
      h('ol', { class: 'timeline' }, (x.steps ?? []).map(stepItem)));
  });

  const refresh = async () => {
    execution = (await get(`/api/executions/${route.id}`)).data;
    draw();
    const moving = ACTIVE_STATUSES.includes(execution.status);
    live.textContent = moving ? 'Refreshing while the execution runs…' : '';
    return moving ? REFRESH_MS : null;
  };
  const update = async () => {
    const next = await refresh();
    if (next) poll.kick(next);
  };
  const poll = poller(refresh);
  try {
    execution = (await get(`/api/executions/${route.id}`)).data;
    workflow = (await get(`/api/workflows/configured/${execution.workflowId}`).catch(() => null))?.data ?? null;
    // The event by its own id (the one the Events page shows), not the internal one.
    event = (await get(`/api/events/${execution.eventId}`).catch(() => null))?.data ?? null;
    await update();
  } catch (error) {
    replace(body, notice(error.message, 'error'));
  }
  return () => poll.stop();
}
