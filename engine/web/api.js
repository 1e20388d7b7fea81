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

/** An error answer of the API: `code`, `message`, `details` as the envelope gives them. */
export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
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
