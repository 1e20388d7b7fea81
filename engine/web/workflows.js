// Workflows of one entity type: trigger, conditions, actions, the on/off switch, version; links to
// edit and test; delete with confirmation. Managed workflows (installed by an integration) are shown
// read-only, with the integration they belong to: the API refuses to change them (409).

import { ApiError, ENTITY_TYPES, del, get, post, query } from './api.js';
import { article, badge, confirmDialog, h, heading, notice, replace, toast } from './dom.js';

/** A message the form leaves for the list (a secret shown once, say). */
let flash = null;
export function flashOnList(message) {
  flash = message;
}

export function conditionSummary(workflow) {
  const parts = [];
  for (const [path, value] of Object.entries(workflow.conditions ?? {})) {
    parts.push(h('li', {}, h('code', {}, `${path} = ${JSON.stringify(value)}`)));
  }
  if (workflow.condition) parts.push(h('li', {}, h('code', {}, workflow.condition)));
  if (workflow.schedule) {
    parts.push(h('li', {}, 'cron ', h('code', {}, workflow.schedule.cron), ` (${workflow.schedule.timezone ?? 'UTC'})`));
  }
  return parts.length ? h('ul', { class: 'plain' }, parts) : h('span', { class: 'muted' }, 'always');
}

/** One line per step: its type and what it is pointed at. */
export function actionSummary(action) {
  const p = action;
  const target = {
    webhook: p.url,
    send_email: [p.recipient, p.template ?? p.subject].filter(Boolean).join(' · '),
    send_push: p.title,
    update_status: p.status && `→ ${p.status}`,
    delay: p.duration,
  }[action.type];
  return [h('strong', {}, action.type), target ? h('span', { class: 'target' }, ` ${target}`) : null];
}

export function activeSwitch(workflow, onChange) {
  const button = h('button', {
    type: 'button', role: 'switch', class: 'switch',
    'aria-checked': String(Boolean(workflow.isActive)),
    'aria-label': `Active: ${workflow.name}`,
    dataset: { guid: workflow.guid },
  }, h('span', { class: 'switch-track', 'aria-hidden': 'true' }), h('span', { class: 'switch-text' }, workflow.isActive ? 'On' : 'Off'));
  button.addEventListener('click', async () => {
    // Switching off pauses what is running: ask first. Switching on only resumes.
    if (workflow.isActive && !(await confirmDialog(
      `Switch off “${workflow.name}”? Its running executions pause at their next step, and new events do not match it until it is switched on again.`,
      'Switch off',
    ))) return;
    button.disabled = true;
    try {
      const answer = await post(`/api/workflows/configured/${workflow.guid}/toggle`);
      workflow.isActive = answer.data.isActive;
      // A toggle is a new version; its ETag ("<version>") says which.
      const version = Number(String(answer.etag ?? '').replace(/[^0-9]/g, ''));
      if (version) workflow.version = version;
      button.setAttribute('aria-checked', String(workflow.isActive));
      button.querySelector('.switch-text').textContent = workflow.isActive ? 'On' : 'Off';
      toast(`“${workflow.name}” is ${workflow.isActive ? 'on' : 'off'}.`);
      onChange?.(workflow);
    } catch (error) {
      toast(error.message, 'error');
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

/** A managed workflow's on/off state, as words: it cannot be switched from here. */
function managedState(workflow) {
  return h('span', { class: 'managed-state' }, workflow.isActive ? 'On' : 'Off');
}

/** "managed by Shopify · https://shop…" for a managed workflow, linking to its integration. */
export function managedBy(workflow, integrations) {
  const integration = integrations.get(workflow.integrationGuid);
  const what = integration
    ? `${integration.provider}${integration.storeUrl ? ` · ${integration.storeUrl}` : ''}`
    : workflow.integrationGuid ? 'an integration' : 'an integration (unknown)';
  return h('p', { class: 'managed-by muted' }, 'Managed by ',
    workflow.integrationGuid ? h('a', { href: `#/integrations?guid=${encodeURIComponent(workflow.integrationGuid)}` }, what) : what,
    integration && integration.status !== 'active' ? [' ', badge(integration.status)] : null);
}

/** The tenant's integrations by guid, for naming the owner of managed workflows (empty if none). */
export async function integrationsByGuid() {
  try {
    const list = (await get('/api/integrations?limit=200')).data;
    return new Map(list.map((i) => [i.guid, i]));
  } catch {
    return new Map();
  }
}

export async function renderWorkflows(main, route) {
  const entity = ENTITY_TYPES.find((e) => e.toLowerCase() === route.entity.toLowerCase());
  if (!entity) {
    location.replace('#/workflows/Order');
    return;
  }
  const showManaged = route.params.get('managed') === 'true';
  const tabs = h('nav', { class: 'tabs', 'aria-label': 'Entity type' },
    ENTITY_TYPES.map((e) => h('a', {
      href: `#/workflows/${e}${showManaged ? '?managed=true' : ''}`,
      'aria-current': e === entity ? 'page' : null,
    }, e)));
  const managedBox = h('input', { type: 'checkbox', id: 'show-managed', checked: showManaged });
  managedBox.addEventListener('change', () => {
    location.hash = `#/workflows/${entity}${managedBox.checked ? '?managed=true' : ''}`;
  });
  const body = h('div', { class: 'table-wrap' }, notice('Loading…'));
  const message = flash ? h('div', { class: 'callout', role: 'status' }, flash) : null;
  flash = null;
  replace(main,
    h('div', { class: 'page-head' },
      heading(`${entity} workflows`),
      h('a', { class: 'button primary', href: `#/workflows/${entity}/new` }, 'New workflow')),
    message,
    h('div', { class: 'toolbar' }, tabs,
      h('div', { class: 'check' }, managedBox, h('label', { for: 'show-managed' }, 'Include managed workflows'))),
    body);

  let items = [];
  let cursor = null;
  let integrations = new Map();
  const load = async () => {
    const page = await get(`/api/workflows/${entity}/configured${query({ managed: showManaged ? 'true' : null, cursor })}`);
    if (page.data.some((w) => w.isManaged) && !integrations.size) integrations = await integrationsByGuid();
    items = items.concat(page.data);
    cursor = page.cursor;
    draw();
  };
  const draw = () => {
    if (!items.length) {
      replace(body, h('div', { class: 'empty' },
        h('p', {}, `No ${entity.toLowerCase()} workflows yet.`),
        h('a', { class: 'button', href: `#/workflows/${entity}/new` }, `Create ${article(entity)} ${entity.toLowerCase()} workflow`)));
      return;
    }
    const rows = items.map((w) => {
      const versionCell = h('td', { 'data-label': 'Version' }, `v${w.version}`);
      return h('tr', { dataset: { guid: w.guid }, class: w.isManaged ? 'managed' : null },
        h('td', { 'data-label': 'Name' }, h('span', { class: 'name' }, w.name),
          w.isManaged ? [h('span', { class: 'tag tag-managed' }, 'managed'), managedBy(w, integrations)] : null),
        h('td', { 'data-label': 'Trigger' }, h('code', {}, w.trigger)),
        h('td', { 'data-label': 'Conditions' }, conditionSummary(w)),
        h('td', { 'data-label': 'Actions' }, h('ol', { class: 'plain steps' }, w.actions.map((a) => h('li', {}, actionSummary(a))))),
        versionCell,
        h('td', { 'data-label': 'Active' }, w.isManaged ? managedState(w)
          : activeSwitch(w, () => { versionCell.textContent = `v${w.version}`; })),
        h('td', { class: 'ops' }, h('div', { class: 'row-actions' },
          h('a', { class: 'button small', href: `#/workflow/${w.guid}/test`, 'aria-label': `Test ${w.name}` }, 'Test'),
          h('a', { class: 'button small', href: `#/executions?workflowId=${w.guid}`, 'aria-label': `Executions of ${w.name}` }, 'Runs'),
          w.isManaged ? null : h('a', { class: 'button small', href: `#/workflow/${w.guid}/edit`, 'aria-label': `Edit ${w.name}` }, 'Edit'),
          w.isManaged ? null : h('button', {
            type: 'button', class: 'small danger', 'aria-label': `Delete ${w.name}`,
            onclick: () => remove(w),
          }, 'Delete'))));
    });
    replace(body,
      h('table', { class: 'data responsive' },
        h('caption', { class: 'visually-hidden' }, `${entity} workflows`),
        h('thead', {}, h('tr', {}, ['Name', 'Trigger', 'Conditions', 'Actions', 'Version', 'Active'].map((c) => h('th', { scope: 'col' }, c)),
          h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Operations')))),
        h('tbody', {}, rows)),
      cursor ? h('button', { type: 'button', class: 'more', onclick: () => load().catch(fail) }, 'Load more') : null);
  };
  const fail = (error) => replace(body, notice(error instanceof ApiError ? error.message : String(error), 'error'));
  const remove = async (workflow) => {
    const yes = await confirmDialog(`Delete “${workflow.name}”? Its unfinished executions are cancelled. This cannot be undone.`);
    if (!yes) return;
    try {
      await del(`/api/workflows/configured/${workflow.guid}`);
      items = items.filter((w) => w.guid !== workflow.guid);
      draw();
      toast(`Deleted “${workflow.name}”.`);
    } catch (error) {
      toast(error.message, 'error');
    }
  };
  await load().catch(fail);
}
