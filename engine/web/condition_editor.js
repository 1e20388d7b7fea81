// The workflow form's conditions: equalities as rows (a path and the value it must equal), and the
// Rhai condition checked against the server as it is typed — a dry run of the form's conditions on
// a sample entity (`POST /api/workflows/test`: nothing is sent or stored), answering whether it
// compiles (the error with its position if not) and whether the sample matches.

import { get, post, query } from './api.js';
import { field, h, replace, setFieldError } from './dom.js';

const CHECK_DELAY_MS = 400;
const EXAMPLE_SAMPLE = { status: 'paid', total: 120.5, customer: { email: 'ana@example.com', country: 'DE' } };

/** A value as the merchant types it: text as is; numbers, true/false, null and "quoted" as JSON. */
function parseValue(text) {
  const trimmed = text.trim();
  if (/^(-?\d|true$|false$|null$|["{[])/.test(trimmed)) {
    try {
      return JSON.parse(trimmed);
    } catch {
      // Not JSON after all: the text itself.
    }
  }
  return text;
}

function showValue(value) {
  if (typeof value === 'string') {
    return /^(-?\d|true$|false$|null$|["{[])/.test(value.trim()) ? JSON.stringify(value) : value;
  }
  return JSON.stringify(value);
}

let uid = 0;

/** Equalities (`conditions`): every path must equal its value. `onChange` after each edit. */
export function equalitiesEditor(conditions, onChange) {
  const rows = h('div', { class: 'rows' });
  const error = h('p', { class: 'field-error', id: 'wf-conditions-error', hidden: true });
  const empty = h('p', { class: 'muted rows-empty' }, 'None: no equality is required.');
  const group = h('fieldset', { class: 'group', dataset: { field: 'wf-conditions', api: 'conditions' }, 'aria-describedby': 'wf-conditions-error' },
    h('legend', {}, 'Conditions (equalities)'),
    h('p', { class: 'hint' }, 'Each path into the entity must equal its value. Values are text as typed; numbers, true, false and null count as such (write "120" in quotes for the text).'),
    rows, empty, error,
    h('button', { type: 'button', onclick: () => add('', '').querySelector('input').focus() }, 'Add equality'));
  const sync = () => {
    empty.hidden = rows.children.length > 0;
    onChange?.();
  };
  const add = (path, value) => {
    const id = `eq-${++uid}`;
    const pathInput = h('input', { type: 'text', class: 'mono', autocomplete: 'off', spellcheck: 'false', placeholder: 'customer.country', value: path });
    const valueInput = h('input', { type: 'text', autocomplete: 'off', placeholder: 'DE', value });
    const row = h('div', { class: 'row-fields' },
      field({ id: `${id}-path`, label: 'Path', control: pathInput }),
      h('span', { class: 'equals', 'aria-hidden': 'true' }, '='),
      field({ id: `${id}-value`, label: 'Value', control: valueInput }),
      h('button', {
        type: 'button', class: 'small danger', 'aria-label': 'Remove this equality',
        onclick: () => { row.remove(); sync(); },
      }, 'Remove'));
    pathInput.addEventListener('input', () => onChange?.());
    valueInput.addEventListener('input', () => onChange?.());
    rows.append(row);
    sync();
    return row;
  };
  for (const [path, value] of Object.entries(conditions ?? {})) add(path, showValue(value));
  sync();
  return {
    element: group,
    /** The `conditions` object; throws a message for a row without a path. */
    read() {
      const out = {};
      for (const row of rows.children) {
        const [pathInput, valueInput] = row.querySelectorAll('input');
        const path = pathInput.value.trim();
        if (!path && !valueInput.value.trim()) continue;
        if (!path) throw new Error('Give each equality a path, such as customer.country.');
        out[path] = parseValue(valueInput.value);
      }
      return out;
    },
  };
}

/** The source line a compile error points at, with a caret under its position. */
function pointer(source, line, position) {
  const text = source.split('\n')[line - 1];
  if (text === undefined || !Number.isInteger(position) || position < 1) return null;
  return h('pre', { class: 'caret', 'aria-hidden': 'true' }, `${text}\n${' '.repeat(position - 1)}^`);
}

/**
 * The live check of the Rhai condition. `form()` answers the parts of the form a dry run needs
 * (`entityType`, `trigger`, `scheduled`, `condition`, `conditions`); `conditionField` is where a
 * compile error is shown, as the server would show it on save.
 */
export function conditionCheck({ form, conditionField }) {
  const sample = h('textarea', { rows: 4, class: 'mono', spellcheck: 'false' });
  sample.value = JSON.stringify(EXAMPLE_SAMPLE, null, 2);
  const sampleField = field({
    id: 'wf-sample', label: 'Sample entity to check against (JSON)', control: sample, wide: true,
    hint: 'The most recent event of this trigger when there is one; edit it to try other values.',
  });
  const result = h('div', { class: 'check-result', id: 'wf-condition-check', role: 'status', 'aria-live': 'polite' });
  const element = h('div', { class: 'condition-check' }, result, h('details', { class: 'sample' },
    h('summary', {}, 'Sample entity'), sampleField));

  let timer = null;
  let seq = 0;
  let sampleEdited = false;
  let sampleFor = null;

  const say = (kind, ...content) => {
    result.className = `check-result check-${kind}`;
    replace(result, ...content);
  };

  const run = async () => {
    const mine = ++seq;
    const parts = form();
    let conditions;
    try {
      conditions = parts.conditions();
    } catch {
      conditions = {};
    }
    if (!parts.condition && !Object.keys(conditions).length) {
      setFieldError(conditionField, null);
      say('idle', 'No conditions: every event of this trigger matches.');
      return;
    }
    let data;
    try {
      data = JSON.parse(sample.value);
      if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new Error('it must be a JSON object');
    } catch (e) {
      setFieldError(sampleField, `Not a JSON object: ${e.message}`);
      say('idle', 'Fix the sample entity to check the condition against it.');
      return;
    }
    setFieldError(sampleField, null);
    say('busy', 'Checking…');
    const workflow = {
      name: 'Condition check', entityType: parts.entityType, triggerId: parts.trigger,
      conditions, condition: parts.condition || null,
      // A step that does nothing when rendered: only the conditions are under test here.
      action: { type: 'delay', duration: '1s' },
    };
    if (parts.scheduled) workflow.schedule = { cron: '0 0 9 * * *', timezone: 'UTC' };
    const event = { entityType: parts.entityType, trigger: parts.trigger, entityId: 'sample', data };
    try {
      const answer = (await post('/api/workflows/test', { workflow, event })).data;
      if (mine !== seq) return;
      setFieldError(conditionField, null);
      const failing = (answer.conditions ?? []).filter((c) => !c.holds)
        .map((c) => `${c.path} is ${c.actual === undefined || c.actual === null ? 'missing' : JSON.stringify(c.actual)}, not ${JSON.stringify(c.expected)}`);
      if (answer.script?.error) {
        say('error', 'Compiles, but fails on this sample: ', answer.script.error);
      } else if (answer.matched) {
        say('match', h('span', { class: 'badge badge-matches' }, 'matches'), ' The sample matches.');
      } else {
        if (answer.script && answer.script.result !== true) failing.push('the Rhai condition is false');
        say('nomatch', h('span', { class: 'badge badge-nomatch' }, 'does not match'), ` ${failing.join('; ')}.`);
      }
    } catch (error) {
      if (mine !== seq) return;
      if (error.field === 'condition') {
        setFieldError(conditionField, error.message);
        say('error', 'Does not compile.', parts.condition ? pointer(parts.condition, error.details?.line, error.details?.position) : null);
      } else {
        setFieldError(conditionField, null);
        say('idle', `Cannot check yet: ${error.message}`);
      }
    }
  };

  /** Fills the sample from the latest stored event of the trigger, unless the merchant edited it. */
  const loadSample = async () => {
    const parts = form();
    const key = `${parts.entityType}/${parts.trigger}`;
    if (sampleEdited || sampleFor === key || !parts.trigger) return;
    sampleFor = key;
    try {
      const latest = (await get(`/api/events${query({ entityType: parts.entityType, trigger: parts.trigger, limit: 1 })}`)).data[0];
      if (latest && !sampleEdited && sampleFor === key) sample.value = JSON.stringify(latest.data, null, 2);
    } catch {
      // The example stays.
    }
  };

  const schedule = () => {
    clearTimeout(timer);
    timer = setTimeout(() => { run().catch(() => {}); }, CHECK_DELAY_MS);
  };
  sample.addEventListener('input', () => {
    sampleEdited = true;
    schedule();
  });
  return {
    element,
    /** Re-checks soon (after typing pauses). */
    schedule,
    /** The trigger changed: a fresh sample (if untouched), then a check. */
    async triggerChanged() {
      await loadSample();
      schedule();
    },
    stop() {
      clearTimeout(timer);
      seq += 1;
    },
  };
}
