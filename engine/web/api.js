// The public JSON API, with the API key from session storage as a bearer token. Nothing here is
// private to the dashboard: every call is one an integrator could make with curl.

const KEY = 'switchyard.apiKey';

export const ENTITY_TYPES = ['Order', 'Shipment', 'Customer', 'Product'];
export const STATUSES = ['queued', 'running', 'waiting', 'succeeded', 'paused', 'cancelled'];
export const ACTIVE_STATUSES = ['queued', 'running', 'waiting'];

export function apiKey() {
  return sessionStorage.getItem(KEY);
}

export function signIn(key) {
  sessionStorage.setItem(KEY, key);
}

export function signOut() {
  sessionStorage.removeItem(KEY);
}

/** An error answer of the API: `code`, `details` as the envelope gives them; `message` in plain
 * words (`rawMessage` as the API wrote it); `field`: the body path it concerns, when known. */
export class ApiError extends Error {
  constructor(status, code, message, details) {
    const { field, text } = plainError(message ?? '');
    super(text);
    this.rawMessage = message;
    this.status = status;
    this.code = code;
    this.details = details;
    this.field = details?.field ?? field;
  }
}

/** How the API's field names read to a merchant. */
const LABELS = {
  url: 'URL', storeUrl: 'Store URL', apiKey: 'API key', apiSecret: 'API secret',
  webhookSecret: 'Webhook signing secret', triggerId: 'Trigger', entityType: 'Entity type',
  providerId: 'Provider', maxWait: 'Longest wait', cron: 'Cron', workflowId: 'Workflow',
};

export function fieldLabel(name) {
  if (LABELS[name]) return LABELS[name];
  const words = String(name).replace(/([a-z0-9])([A-Z])/g, '$1 $2').toLowerCase();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** Serde's type names in words. */
function typeWords(expected) {
  const text = expected.trim();
  if (/^[ui](8|16|32|64|size)$|integer/.test(text)) return /^u/.test(text) ? 'a whole number (0 or more)' : 'a whole number';
  if (/^f(32|64)$|float|number/.test(text)) return 'a number';
  if (/string|str$/.test(text)) return 'text';
  if (/bool/.test(text)) return 'true or false';
  if (/sequence|array|Vec/.test(text)) return 'a list';
  if (/map|struct|object/.test(text)) return 'an object';
  if (/UUID|uuid/i.test(text)) return 'an id (UUID)';
  if (/RFC ?3339|date|time/i.test(text)) return 'a date and time (RFC 3339)';
  return text;
}

function givenWords(given) {
  const text = given.trim();
  if (text === 'null') return 'nothing (null)';
  const string = /^string "(.*)"$/s.exec(text);
  if (string) return `the text “${string[1]}”`;
  if (/^(map|sequence)$/.test(text)) return text === 'map' ? 'an object' : 'a list';
  const value = /^(?:integer|floating point|boolean) `?([^`]*)`?$/.exec(text);
  if (value) return value[1];
  return text;
}

/** Backtick-quoted names, as the API writes them, in typographic quotes. */
const quoted = (text) => text.replace(/`([^`]*)`/g, '“$1”');

/**
 * The API's messages in plain words: serde's wording ("missing field `url`", "invalid type:
 * string \"x\", expected u32 at line 1 column 9") becomes a sentence a merchant can act on; a
 * leading body path ("invalid body: concurrency.limit: …") is returned as `field`.
 */
export function plainError(message) {
  let text = String(message);
  let field;
  const body = /^invalid body: ((?:[A-Za-z_][\w]*|\[\d+\])(?:(?:\.[A-Za-z_]\w*)|\[\d+\])*): (.*)$/s.exec(text);
  if (body) {
    field = body[1];
    text = body[2];
  } else {
    text = text.replace(/^invalid body: /, '');
  }
  text = text.replace(/ at line \d+ column \d+$/, '');
  text = text
    .replace(/missing field `(\w+)`/g, (_, name) => `${fieldLabel(name)} is required`)
    .replace(/unknown field `(\w+)`, there are no fields/g, '“$1” is not a field here')
    .replace(/unknown field `(\w+)`, expected (?:one of )?(.*)$/s, (_, name, list) => `“${name}” is not a field here (known fields: ${list.replace(/`/g, '')})`)
    .replace(/unknown variant `([^`]*)`, expected (?:one of )?(.*)$/s, (_, name, list) => `“${name}” is not one of ${list.replace(/`/g, '')}`)
    .replace(/invalid type: (.*?), expected (.*)$/s, (_, given, expected) => `expected ${typeWords(expected)}, not ${givenWords(given)}`)
    .replace(/invalid value: (.*?), expected (.*)$/s, (_, given, expected) => `${givenWords(given)} is not allowed here: expected ${typeWords(expected)}`)
    .replace(/^malformed JSON: (.*)$/s, 'the body is not valid JSON ($1)');
  if (field && !/^step /.test(text)) {
    const label = fieldLabel(/(\w+)$/.exec(field)?.[1] ?? field);
    if (!text.startsWith(label)) text = `${label}: ${text.charAt(0).toLowerCase()}${text.slice(1)}`;
  }
  text = quoted(text);
  return { field, text: text.charAt(0).toUpperCase() + text.slice(1) };
}

/** Called when the API refuses the key (401/403), so the app can ask for another. */
let onUnauthorized = () => {};
export function whenUnauthorized(callback) {
  onUnauthorized = callback;
}

/** Calls the API; resolves to the envelope (`data`, `cursor`), rejects with an ApiError. */
export async function call(method, path, { body, headers = {}, key = apiKey() } = {}) {
  const init = {
    method,
    headers: { Accept: 'application/json', Authorization: `Bearer ${key ?? ''}`, ...headers },
    cache: 'no-store',
  };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, 'NETWORK', `The server could not be reached (${e.message}).`);
  }
  let envelope = null;
  try {
    envelope = await response.json();
  } catch {
    // Not JSON: handled below by the status.
  }
  if (!response.ok || !envelope || envelope.success === false) {
    const error = envelope?.error ?? {};
    const failure = new ApiError(
      response.status,
      error.code ?? `HTTP_${response.status}`,
      error.message ?? `${response.status} ${response.statusText}`,
      error.details,
    );
    if (response.status === 401 || response.status === 403) onUnauthorized(failure);
    throw failure;
  }
  envelope.etag = response.headers.get('ETag');
  return envelope;
}

export const get = (path, options) => call('GET', path, options);
export const post = (path, body, options) => call('POST', path, { ...options, body });
export const del = (path, options) => call('DELETE', path, options);

export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') search.set(name, value);
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}

/** Every workflow of the tenant, managed ones included, over all entity types and pages. */
export async function allWorkflows() {
  const lists = await Promise.all(ENTITY_TYPES.map(async (entity) => {
    const items = [];
    let cursor = null;
    do {
      const page = await get(`/api/workflows/${entity}/configured${query({ managed: 'true', limit: 200, cursor })}`);
      items.push(...page.data);
      cursor = page.cursor;
    } while (cursor);
    return items;
  }));
  return lists.flat();
}

const triggerCache = new Map();
/** The trigger catalog of an entity type (stable: cached for the session). */
export async function triggers(entity) {
  if (!triggerCache.has(entity)) {
    triggerCache.set(entity, get(`/api/workflows/triggers/${entity}`).then((r) => r.data)
      .catch((e) => { triggerCache.delete(entity); throw e; }));
  }
  return triggerCache.get(entity);
}
