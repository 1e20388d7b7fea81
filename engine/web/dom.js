// DOM helpers: elements are built with textContent, never from HTML strings, so nothing the API
// returns is ever interpreted as markup.

/** h('button', {class: 'x', onclick: fn}, 'text', child, [more]) */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      el.addEventListener(name.slice(2), value);
    } else if (name === 'class') {
      el.className = Array.isArray(value) ? value.filter(Boolean).join(' ') : value;
    } else if (name === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (name === 'value') {
      el.value = value;
    } else if (value === true) {
      el.setAttribute(name, '');
    } else {
      el.setAttribute(name, String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function replace(el, ...children) {
  clear(el);
  append(el, children);
  return el;
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
const thisYear = new Intl.DateTimeFormat(undefined, {
  month: 'short', day: 'numeric', hour: 'numeric', minute: '2-digit', second: '2-digit',
});

const preciseTime = new Intl.DateTimeFormat(undefined, {
  month: 'short', day: 'numeric', hour: 'numeric', minute: '2-digit', second: '2-digit', fractionalSecondDigits: 3,
});

/** A <time> showing a timestamp in the browser's locale and zone; the ISO form on hover. */
export function time(iso, { precise = false } = {}) {
  if (!iso) return h('span', { class: 'muted' }, '—');
  const date = new Date(iso);
  const format = precise ? preciseTime : date.getFullYear() === new Date().getFullYear() ? thisYear : dateTime;
  const text = format.format(date);
  return h('time', { datetime: iso, title: iso }, text);
}

export function duration(fromIso, toIso) {
  if (!fromIso || !toIso) return '';
  const ms = new Date(toIso) - new Date(fromIso);
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.round(ms / 60_000)} min`;
}

/** A status word with its colour; the word itself carries the meaning. */
export function badge(status) {
  return h('span', { class: ['badge', `badge-${String(status).replace(/[^a-z_]/gi, '')}`] }, status);
}

export function json(value) {
  return h('pre', { class: 'json' }, JSON.stringify(value, null, 2));
}

export function shortId(id) {
  return String(id ?? '').slice(-8);
}

let toastTimer;
/** A short message announced to screen readers. */
export function toast(message, kind = 'info') {
  const el = document.getElementById('toast');
  if (!el) return;
  el.className = `toast toast-${kind}`;
  el.textContent = message;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.textContent = ''; }, 5000);
}

/** A modal yes/no question in the page's <dialog>; resolves true when confirmed. */
export function confirmDialog(message, confirmLabel = 'Delete') {
  const dialog = document.getElementById('confirm');
  dialog.querySelector('#confirm-message').textContent = message;
  dialog.querySelector('#confirm-yes').textContent = confirmLabel;
  dialog.returnValue = '';
  dialog.showModal();
  dialog.querySelector('#confirm-no').focus();
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'yes'), { once: true });
  });
}

/** A page heading that receives focus after navigation, so screen readers announce the page. */
export function heading(text, ...extra) {
  return h('h1', { tabindex: '-1' }, text, ...extra);
}

/** A labelled form control with room for a hint and an error message below it. */
export function field({ id, label, control, hint, wide = false }) {
  control.id = id;
  const errorId = `${id}-error`;
  const hintId = hint ? `${id}-hint` : null;
  control.setAttribute('aria-describedby', [hintId, errorId].filter(Boolean).join(' '));
  return h('div', { class: ['field', wide && 'field-wide'], dataset: { field: id } },
    h('label', { for: id }, label),
    control,
    hint ? h('p', { class: 'hint', id: hintId }, hint) : null,
    h('p', { class: 'field-error', id: errorId, hidden: true }));
}

export function setFieldError(wrapper, message) {
  const error = wrapper.querySelector('.field-error');
  const control = wrapper.querySelector('input, select, textarea');
  if (message) {
    error.textContent = message;
    error.hidden = false;
    control?.setAttribute('aria-invalid', 'true');
  } else {
    error.textContent = '';
    error.hidden = true;
    control?.removeAttribute('aria-invalid');
  }
}

/** The state of an async load: a message in place of the content. */
export function notice(text, kind = 'muted') {
  return h('p', { class: ['notice', `notice-${kind}`], role: kind === 'error' ? 'alert' : null }, text);
}

/** Text with `backticked` parts as <code>, for help written the way the docs write it. */
export function withCode(text) {
  return String(text).split(/`([^`]*)`/).map((part, i) => (i % 2 ? h('code', {}, part) : part)).filter((p) => p !== '');
}

/** "a" or "an" before a word, by its first sound as spelled ("an order", "a shipment"). */
export function article(word) {
  return /^[aeiou]/i.test(String(word)) ? 'an' : 'a';
}

/** Copies `input`'s value to the clipboard; without a clipboard (an insecure origin), selects it. */
export async function copyFrom(input, what) {
  try {
    await navigator.clipboard.writeText(input.value);
    toast(`Copied the ${what}.`);
  } catch {
    input.focus();
    input.select();
    toast(`Press Ctrl+C (⌘C) to copy the selected ${what}.`);
  }
}

/** A read-only value with a Copy button beside it, that never overflows a narrow screen. */
export function copyRow({ id, value, what, label = 'Copy' }) {
  const input = h('input', { type: 'text', readonly: true, value, class: 'mono', id, spellcheck: 'false' });
  // Its name says what it copies (several rows may share a page), without being a label for it.
  const button = h('button', { type: 'button', onclick: () => copyFrom(input, what) },
    label, h('span', { class: 'visually-hidden' }, ` the ${what}`));
  return h('div', { class: 'copy-row' }, input, button);
}

/**
 * Notices that stay on every page until the merchant dismisses them (a secret shown once must not
 * vanish when they navigate before copying it). Kept in memory only, never in storage.
 */
const pinned = [];
let pinnedListener = () => {};

export function pin(notice) {
  pinned.push({ id: `pinned-${pinned.length + 1}-${Date.now()}`, ...notice });
  pinnedListener();
}

/** Draws the pinned notices into `container` now and whenever they change. */
export function showPinned(container) {
  const draw = () => replace(container, pinned.map((notice) => {
    const dismiss = () => {
      pinned.splice(pinned.indexOf(notice), 1);
      draw();
      document.getElementById('main')?.focus({ preventScroll: true });
    };
    return h('div', { class: 'callout pinned', role: 'status', dataset: { pinned: notice.id } },
      h('p', { class: 'pinned-text' }, notice.text),
      (notice.secrets ?? []).map((secret, i) => h('div', { class: 'field pinned-secret' },
        h('label', { for: `${notice.id}-${i}` }, secret.label),
        copyRow({ id: `${notice.id}-${i}`, value: secret.value, what: secret.what ?? 'secret' }))),
      notice.secrets?.length ? h('p', { class: 'hint' }, 'Shown only this once: copy it now. It stays here until you dismiss it.') : null,
      h('div', { class: 'form-buttons' }, h('button', { type: 'button', class: 'small', onclick: dismiss }, 'Dismiss')));
  }));
  pinnedListener = draw;
  draw();
}

/** Forgets every pinned notice (on sign-out: secrets must not outlive the session on screen). */
export function clearPinned() {
  pinned.splice(0);
  pinnedListener();
}
