// Create or edit a workflow. The API validates; its errors name the field they concern
// (`details.field`, or the body path of a parse error) and the message is shown next to that
// field: every field wrapper carries the API path it edits in `data-api`. Managed workflows are
// shown, not edited (the API refuses changes to them).

import { ENTITY_TYPES, get, post, triggers } from './api.js';
import { field, h, heading, notice, pin, replace, setFieldError } from './dom.js';
import { conditionCheck, equalitiesEditor } from './condition_editor.js';
import { FormError, flowControlEditor } from './flow_control.js';
import { flashOnList, integrationsByGuid, managedBy } from './workflows.js';

/** The parameters each built-in action type is edited with; anything else goes in JSON. */
const ACTION_FIELDS = {
  webhook: [
    { name: 'url', label: 'URL', type: 'url', placeholder: 'https://erp.example.com/hooks/switchyard' },
    { name: 'secret', label: 'Signing secret', secret: true, placeholder: 'whsec_… (generated when empty)', hint: 'Generated when left empty and shown once after saving.' },
  ],
  send_email: [
    { name: 'recipient', label: 'Recipient', placeholder: 'customer, merchant or an address' },
    { name: 'template', label: 'Template', placeholder: 'order_confirmation', hint: 'A built-in template, or leave empty and give a subject and body.' },
    { name: 'subject', label: 'Subject', placeholder: 'Order {{ entity.id }} is on its way' },
    { name: 'body', label: 'Body', multiline: true },
  ],
  send_push: [
    { name: 'title', label: 'Title' },
    { name: 'body', label: 'Body', multiline: true },
    { name: 'url', label: 'Link', type: 'url' },
  ],
  update_status: [{ name: 'status', label: 'New status', placeholder: 'fulfilled' }],
  delay: [{ name: 'duration', label: 'Duration', placeholder: '90s, 2h or 3d' }],
};
const CUSTOM = 'custom';

let uid = 0;

/** A stored secret as reads show it: `****` and its last 4 characters. */
const isMasked = (value) => typeof value === 'string' && value.includes('****');

/** A text input or textarea. A masked secret is not a value: the field stays empty ("unchanged"). */
function input(spec, value) {
  const control = spec.multiline
    ? h('textarea', { rows: 3 })
    : h('input', { type: spec.type ?? 'text', autocomplete: 'off' });
  if (spec.placeholder) control.placeholder = spec.placeholder;
  if (spec.secret && isMasked(value)) {
    control.placeholder = 'unchanged';
    return control;
  }
  if (value !== undefined && value !== null) control.value = typeof value === 'string' ? value : JSON.stringify(value);
  return control;
}

/** The hint of a secret field: what leaving it empty does. */
function secretHint(spec, value) {
  if (!isMasked(value)) return spec.hint;
  return `The current secret ends in ${value.replace(/^\*+/, '')}. Leave empty to keep it; type a new whsec_… to replace it.`;
}

/** One step of the workflow: its type, its parameters, and the rest as JSON. */
function stepEditor(action, list) {
  const id = `step-${++uid}`;
  const knownType = action.type in ACTION_FIELDS;
  const typeSelect = h('select', {},
    Object.keys(ACTION_FIELDS).map((t) => h('option', { value: t }, t)),
    h('option', { value: CUSTOM }, 'other (custom action)'));
  typeSelect.value = knownType ? action.type : CUSTOM;
  const customType = h('input', { type: 'text', autocomplete: 'off', placeholder: 'my_action', value: knownType ? '' : action.type });
  const customField = field({ id: `${id}-custom`, label: 'Custom action identifier', control: customType });
  const params = { ...action };
  delete params.type;
  const paramFields = h('div', { class: 'grid' });
  const extraArea = h('textarea', { rows: 2, class: 'mono', spellcheck: 'false' });
  const extraField = field({
    id: `${id}-extra`, label: 'More parameters (JSON object)', control: extraArea, wide: true,
    hint: 'Optional: e.g. {"headers": {"X-Shop": "larkspur"}} for a webhook.',
  });
  const legend = h('legend', {});
  const error = h('p', { class: 'field-error', id: `${id}-error`, hidden: true });
  const up = h('button', { type: 'button', class: 'small', onclick: () => list.move(editor, -1) }, 'Move up');
  const down = h('button', { type: 'button', class: 'small', onclick: () => list.move(editor, 1) }, 'Move down');
  const removeButton = h('button', { type: 'button', class: 'small danger', onclick: () => list.remove(editor) }, 'Remove step');
  const element = h('fieldset', { class: 'step', 'aria-describedby': `${id}-error` }, legend,
    h('div', { class: 'grid' }, field({ id: `${id}-type`, label: 'Action type', control: typeSelect }), customField),
    paramFields, extraField, error,
    h('div', { class: 'step-buttons' }, up, down, removeButton));

  let inputs = {};
  const drawParams = () => {
    const type = typeSelect.value;
    customField.hidden = type !== CUSTOM;
    const specs = ACTION_FIELDS[type] ?? [];
    inputs = {};
    replace(paramFields, specs.map((spec) => {
      const control = input(spec, params[spec.name]);
      inputs[spec.name] = control;
      return field({ id: `${id}-${spec.name}`, label: spec.label, control, hint: spec.secret ? secretHint(spec, params[spec.name]) : spec.hint, wide: spec.multiline });
    }));
    const extra = Object.fromEntries(Object.entries(params).filter(([k]) => !(k in inputs)));
    extraArea.value = Object.keys(extra).length ? JSON.stringify(extra) : '';
  };
  typeSelect.addEventListener('change', () => {
    // Keep what was typed for parameters both types share (a masked secret left empty stays masked).
    for (const [name, control] of Object.entries(inputs)) {
      if (control.value !== '' || !isMasked(params[name])) params[name] = control.value;
    }
    drawParams();
  });
  drawParams();

  const editor = {
    element,
    /** Its place among `count` steps: the buttons that cannot apply are disabled. */
    setPlace(n, count) {
      legend.textContent = `Step ${n}`;
      up.disabled = n === 1;
      down.disabled = n === count;
      removeButton.disabled = count === 1;
      up.setAttribute('aria-label', `Move step ${n} up`);
      down.setAttribute('aria-label', `Move step ${n} down`);
      removeButton.setAttribute('aria-label', `Remove step ${n}`);
    },
    setError(message) {
      error.textContent = message ?? '';
      error.hidden = !message;
      element.classList.toggle('invalid', Boolean(message));
    },
    /** The step as the API takes it; throws a message for the step's own mistakes. */
    read() {
      const type = typeSelect.value === CUSTOM ? customType.value.trim() : typeSelect.value;
      if (!type) throw new Error('Give the custom action’s type.');
      let extra = {};
      const text = extraArea.value.trim();
      if (text) {
        try {
          extra = JSON.parse(text);
        } catch (e) {
          throw new Error(`More parameters: not valid JSON (${e.message}).`);
        }
        if (typeof extra !== 'object' || extra === null || Array.isArray(extra)) {
          throw new Error('More parameters must be a JSON object.');
        }
      }
      const step = { type, ...extra };
      for (const [name, control] of Object.entries(inputs)) {
        if (control.value.trim() !== '') step[name] = control.value.trim();
      }
      return step;
    },
  };
  return editor;
}

function stepList(actions) {
  const items = h('div', { class: 'steps-list' });
  const editors = [];
  const list = {
    editors,
    add(action) {
      const editor = stepEditor(action, list);
      editors.push(editor);
      items.append(editor.element);
      renumber();
      return editor;
    },
    remove(editor) {
      if (editors.length === 1) {
        editor.setError('A workflow needs at least one step.');
        return;
      }
      editors.splice(editors.indexOf(editor), 1);
      editor.element.remove();
      renumber();
    },
    move(editor, by) {
      const from = editors.indexOf(editor);
      const to = from + by;
      if (to < 0 || to >= editors.length) return;
      editors.splice(from, 1);
      editors.splice(to, 0, editor);
      replace(items, editors.map((e) => e.element));
      // Focus stays on the button pressed, or on its twin when that one no longer applies.
      const pressed = editor.element.querySelectorAll('.step-buttons button')[by < 0 ? 0 : 1];
      renumber();
      (pressed.disabled ? editor.element.querySelectorAll('.step-buttons button')[by < 0 ? 1 : 0] : pressed).focus();
    },
  };
  const renumber = () => editors.forEach((e, i) => e.setPlace(i + 1, editors.length));
  for (const action of actions) list.add(action);
  list.element = items;
  return list;
}

/** A managed workflow, shown: it changes only with the integration that installed it. */
async function renderManaged(main, workflow) {
  const integrations = await integrationsByGuid();
  replace(main,
    h('p', { class: 'crumbs' }, h('a', { href: `#/workflows/${workflow.entityType}?managed=true` }, `${workflow.entityType} workflows`)),
    heading(`“${workflow.name}”`, h('span', { class: 'tag tag-managed' }, 'managed')),
    h('div', { class: 'card' },
      managedBy(workflow, integrations),
      h('p', {}, 'An integration installed this workflow. It cannot be edited, switched or deleted here: it changes with its integration (disabling the integration switches it off, removing it deletes it).'),
      h('div', { class: 'form-buttons' },
        h('a', { class: 'button', href: `#/workflow/${workflow.guid}/test` }, 'Test…'),
        h('a', { class: 'button', href: `#/workflows/${workflow.entityType}?managed=true` }, 'Back'))));
}

/** The field wrapper for an API body path: `cancelOn[0].key`, else `cancelOn[0]`, else `cancelOn`. */
function wrapperFor(form, path) {
  let rest = path;
  while (rest) {
    const wrapper = form.querySelector(`[data-api="${CSS.escape(rest)}"]`);
    if (wrapper && !wrapper.closest('[hidden]')) return wrapper;
    const shorter = rest.replace(/(\.[^.[\]]+|\[\d+\])$/, '');
    if (shorter === rest) break;
    rest = shorter;
  }
  return null;
}

export async function renderWorkflowForm(main, route) {
  let workflow = null;
  let etag = null;
  if (route.guid) {
    try {
      const answer = await get(`/api/workflows/configured/${route.guid}`);
      workflow = answer.data;
      etag = answer.etag;
    } catch (error) {
      replace(main, heading('Edit workflow'), notice(error.message, 'error'));
      return;
    }
    if (workflow.isManaged) {
      await renderManaged(main, workflow);
      return;
    }
  }
  const entity = workflow?.entityType
    ?? ENTITY_TYPES.find((e) => e.toLowerCase() === String(route.entity).toLowerCase()) ?? 'Order';

  const name = h('input', { type: 'text', autocomplete: 'off', required: true, value: workflow?.name ?? '' });
  const entitySelect = h('select', { disabled: Boolean(workflow) }, ENTITY_TYPES.map((e) => h('option', { value: e }, e)));
  entitySelect.value = entity;
  const triggerSelect = h('select', {});
  const condition = h('textarea', { rows: 3, class: 'mono', spellcheck: 'false', placeholder: 'entity.total > 100 && event.previous.status != "paid"' });
  condition.value = workflow?.condition ?? '';
  const cron = h('input', { type: 'text', class: 'mono', autocomplete: 'off', placeholder: '0 0 9 * * *', value: workflow?.schedule?.cron ?? '' });
  const timezone = h('input', {
    type: 'text', autocomplete: 'off',
    value: workflow?.schedule?.timezone ?? Intl.DateTimeFormat().resolvedOptions().timeZone ?? 'UTC',
  });
  const active = h('input', { type: 'checkbox', id: 'wf-active-box', checked: workflow ? workflow.isActive : true });

  const nameField = field({ id: 'wf-name', label: 'Name', control: name });
  const entityField = field({ id: 'wf-entity', label: 'Entity type', control: entitySelect });
  const triggerField = field({ id: 'wf-trigger', label: 'Trigger', control: triggerSelect });
  const conditionField = field({
    id: 'wf-condition', label: 'Condition (Rhai expression)', control: condition, wide: true,
    hint: 'Optional. Must return true or false; entity, event (trigger, occurredAt, previous) and tenant are in scope. Checked as you type.',
  });
  nameField.dataset.api = 'name';
  entityField.dataset.api = 'entityType';
  triggerField.dataset.api = 'triggerId';
  conditionField.dataset.api = 'condition';
  const scheduleError = h('p', { class: 'field-error', id: 'wf-schedule-error', hidden: true });
  const scheduleGroup = h('fieldset', { class: 'group', dataset: { field: 'wf-schedule', api: 'schedule' }, 'aria-describedby': 'wf-schedule-error' },
    h('legend', {}, 'Schedule'),
    h('div', { class: 'grid' },
      field({ id: 'wf-cron', label: 'Cron (with seconds)', control: cron, hint: 'sec min hour day month weekday' }),
      field({ id: 'wf-timezone', label: 'Time zone', control: timezone, hint: 'IANA name, e.g. Europe/Berlin' })),
    scheduleError);

  let check = null;
  const equalities = equalitiesEditor(workflow?.conditions, () => check?.schedule());
  const flow = flowControlEditor(workflow);

  const steps = stepList(workflow?.actions?.length ? workflow.actions : [{ type: 'webhook' }]);
  const actionsError = h('p', { class: 'field-error', id: 'wf-actions-error', hidden: true });
  const actionsGroup = h('fieldset', { class: 'group', dataset: { field: 'wf-actions', api: 'actions' }, 'aria-describedby': 'wf-actions-error' },
    h('legend', {}, 'Actions, run in order'),
    steps.element,
    actionsError,
    h('button', { type: 'button', onclick: () => steps.add({ type: 'webhook' }).element.querySelector('select').focus() }, 'Add step'));

  const formError = h('div', { class: 'form-error', role: 'alert', tabindex: '-1', hidden: true });
  const save = h('button', { type: 'submit', class: 'primary' }, workflow ? 'Save changes' : 'Create workflow');

  let catalog = [];
  const scheduled = () => Boolean(catalog.find((t) => t.code === triggerSelect.value)?.scheduled);
  check = conditionCheck({
    conditionField,
    form: () => ({
      entityType: entitySelect.value,
      trigger: triggerSelect.value,
      scheduled: scheduled(),
      condition: condition.value.trim(),
      conditions: () => equalities.read(),
    }),
  });
  condition.addEventListener('input', () => check.schedule());

  const form = h('form', { class: 'card form', novalidate: true },
    formError,
    h('div', { class: 'grid' }, nameField, entityField, triggerField),
    scheduleGroup,
    equalities.element,
    conditionField,
    check.element,
    actionsGroup,
    flow.element,
    h('div', { class: 'check' }, active, h('label', { for: 'wf-active-box' }, 'Active (matches events as soon as it is saved)')),
    h('div', { class: 'form-buttons' }, save,
      h('a', { class: 'button', href: `#/workflows/${entity}` }, 'Cancel'),
      workflow ? h('a', { class: 'button', href: `#/workflow/${workflow.guid}/test` }, 'Test…') : null));

  replace(main,
    h('p', { class: 'crumbs' }, h('a', { href: `#/workflows/${entity}` }, `${entity} workflows`)),
    heading(workflow ? `Edit “${workflow.name}”` : `New ${entity.toLowerCase()} workflow`,
      workflow ? h('span', { class: 'muted version' }, ` v${workflow.version}`) : null),
    form);

  const drawTriggers = async (selected) => {
    try {
      catalog = await triggers(entitySelect.value);
    } catch (error) {
      setFieldError(triggerField, error.message);
      return;
    }
    replace(triggerSelect, catalog.map((t) => h('option', { value: t.code, title: t.description }, `${t.name} (${t.code})`)));
    if (selected && catalog.some((t) => t.code === selected)) triggerSelect.value = selected;
    syncSchedule();
  };
  const syncSchedule = () => {
    scheduleGroup.hidden = !scheduled();
    check.triggerChanged();
  };
  triggerSelect.addEventListener('change', syncSchedule);
  entitySelect.addEventListener('change', () => drawTriggers());
  await drawTriggers(workflow?.trigger);

  const wrappers = () => [...form.querySelectorAll('[data-field]')];
  const clearErrors = () => {
    formError.hidden = true;
    for (const wrapper of wrappers()) {
      if (wrapper.querySelector(':scope > .field-error')) showError(wrapper, null);
    }
    for (const editor of steps.editors) editor.setError(null);
  };
  const showError = (wrapper, message) => {
    if (wrapper.tagName === 'FIELDSET') {
      const error = wrapper.querySelector(':scope > .field-error');
      error.textContent = message ?? '';
      error.hidden = !message;
      wrapper.classList.toggle('invalid', Boolean(message));
    } else {
      setFieldError(wrapper, message);
    }
  };
  /** Shows an error next to the field it concerns; falls back to the top of the form. */
  const showApiError = (error) => {
    const apiField = error.field;
    const wrapper = apiField && wrapperFor(form, apiField);
    const step = error.details?.step;
    if (wrapper && (apiField === 'action' || apiField === 'actions') && Number.isInteger(step) && steps.editors[step]) {
      steps.editors[step].setError(error.message);
      steps.editors[step].element.querySelector('input, select')?.focus();
    } else if (wrapper) {
      showError(wrapper, error.message);
      wrapper.querySelector('input, select, textarea')?.focus();
    } else {
      formError.textContent = error.message;
      formError.hidden = false;
      formError.focus();
    }
  };

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearErrors();
    const body = {
      name: name.value.trim(),
      entityType: entitySelect.value,
      triggerId: triggerSelect.value,
      isActive: active.checked,
    };
    if (workflow) body.guid = workflow.guid;
    try {
      body.conditions = equalities.read();
    } catch (err) {
      showApiError(new FormError('conditions', err.message));
      return;
    }
    body.condition = condition.value.trim() || null;
    if (!scheduleGroup.hidden) body.schedule = { cron: cron.value.trim(), timezone: timezone.value.trim() };
    body.actions = [];
    for (const editor of steps.editors) {
      try {
        body.actions.push(editor.read());
      } catch (err) {
        editor.setError(err.message);
        editor.element.querySelector('input, select')?.focus();
        return;
      }
    }
    try {
      Object.assign(body, flow.read());
    } catch (err) {
      showApiError(err);
      return;
    }
    save.disabled = true;
    try {
      const answer = await post('/api/workflows/configure', body, { headers: etag ? { 'If-Match': etag } : {} });
      const saved = answer.data;
      const secrets = saved.actions
        .map((a, i) => (typeof a.secret === 'string' && !isMasked(a.secret)
          ? { label: `Webhook signing secret, step ${i + 1}`, value: a.secret, what: 'webhook signing secret' } : null))
        .filter(Boolean);
      if (secrets.length) {
        pin({ text: `“${saved.name}” signs its webhooks with this secret. Give it to the receiver to check the signatures.`, secrets });
      }
      flashOnList(`Saved “${saved.name}” (v${saved.version}).`);
      location.hash = `#/workflows/${saved.entityType}`;
    } catch (error) {
      if (error.status === 409) {
        formError.textContent = `${error.message} — reload the page to edit the latest version.`;
        formError.hidden = false;
      } else {
        showApiError(error);
      }
    } finally {
      save.disabled = false;
    }
  });
  return () => check.stop();
}
