// Bulk resume and cancel on the executions page: `POST /api/executions/resume` and
// `POST /api/executions/cancel` over the page's filter (workflow, status) and a time window, after
// a confirmation that says what will happen; the answered count is shown.

import { post } from './api.js';
import { confirmDialog, field, h, replace, setFieldError, toast } from './dom.js';

/** `datetime-local` value (the browser's zone) → RFC 3339 UTC, or undefined when empty. */
function instant(input) {
  if (!input.value) return undefined;
  const date = new Date(input.value);
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}

const plural = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/**
 * The panel. `filter()` answers the list's filter (`workflowId`, `status`), `filters` is the form
 * holding those fields (errors about them are shown there), `describeWorkflow()` names the chosen
 * workflow, `after()` refreshes the list.
 */
export function bulkPanel({ filter, filters, describeWorkflow, after }) {
  const since = h('input', { type: 'datetime-local', step: 1 });
  const until = h('input', { type: 'datetime-local', step: 1 });
  const sinceField = field({ id: 'bulk-since', label: 'Created from', control: since, hint: 'Optional, your local time.' });
  const untilField = field({ id: 'bulk-until', label: 'Created until', control: until, hint: 'Optional, your local time.' });
  sinceField.dataset.api = 'since';
  untilField.dataset.api = 'until';
  const result = h('p', { class: 'bulk-result', id: 'bulk-result', role: 'status', 'aria-live': 'polite' });
  const resumeButton = h('button', { type: 'button', class: 'primary', onclick: () => run('resume') }, 'Resume matching…');
  const cancelButton = h('button', { type: 'button', class: 'danger', onclick: () => run('cancel') }, 'Cancel matching…');
  const panel = h('details', { class: 'card bulk' },
    h('summary', {}, 'Resume or cancel many'),
    h('p', { class: 'hint' }, 'Acts on every execution that matches the workflow and status chosen above and the time window below (at most 10,000 per click): Resume re-runs the failed step of paused ones; Cancel stops unfinished ones.'),
    h('div', { class: 'grid' }, sinceField, untilField),
    h('div', { class: 'form-buttons' }, resumeButton, cancelButton),
    result);

  const wrappers = () => [sinceField, untilField, ...filters.querySelectorAll('[data-api]')];

  const describe = (body, verb) => {
    const what = verb === 'resume'
      ? (body.status && body.status !== 'paused' ? `${body.status} executions (only paused ones can be resumed)` : 'paused executions')
      : (body.status ? `${body.status} executions` : 'unfinished executions (queued, running, waiting or paused)');
    const parts = [`${verb === 'resume' ? 'Resume' : 'Cancel'} every one of the ${what}`];
    const workflow = describeWorkflow();
    parts.push(workflow ? ` of “${workflow}”` : ' of every workflow');
    if (body.since && body.until) parts.push(` created between ${new Date(body.since).toLocaleString()} and ${new Date(body.until).toLocaleString()}`);
    else if (body.since) parts.push(` created since ${new Date(body.since).toLocaleString()}`);
    else if (body.until) parts.push(` created until ${new Date(body.until).toLocaleString()}`);
    parts.push(verb === 'cancel' ? '? Steps not yet run will not run.' : '? Each re-runs the step it stopped at.');
    return parts.join('');
  };

  async function run(verb) {
    for (const wrapper of wrappers()) setFieldError(wrapper, null);
    replace(result);
    const { workflowId, status } = filter();
    const body = {};
    if (workflowId) body.workflowId = workflowId;
    if (status) body.status = status;
    if (since.value) body.since = instant(since);
    if (until.value) body.until = instant(until);
    if (body.since && body.until && body.since > body.until) {
      setFieldError(untilField, 'Must be after “Created from”.');
      until.focus();
      return;
    }
    const yes = await confirmDialog(describe(body, verb), verb === 'resume' ? 'Resume them' : 'Cancel them');
    if (!yes) return;
    resumeButton.disabled = true;
    cancelButton.disabled = true;
    try {
      const answer = (await post(`/api/executions/${verb}`, body)).data;
      const done = verb === 'resume' ? 'Resumed' : 'Cancelled';
      const text = `${done} ${plural(answer.count, 'execution')}.${answer.more ? ' More match than one click acts on: click again for the rest.' : ''}`;
      replace(result, text);
      toast(text);
      await after();
    } catch (error) {
      const wrapper = error.field && wrappers().find((w) => w.dataset.api === error.field);
      if (wrapper) setFieldError(wrapper, error.message);
      else replace(result, h('span', { class: 'error-text' }, error.message));
    } finally {
      resumeButton.disabled = false;
      cancelButton.disabled = false;
    }
  }
  return panel;
}
