// What the browser tests stand on: the real `switchyard serve` on port 0 over a fresh SQLite
// file, a scriptable webhook receiver, and Debian's Chromium driven by playwright-core.

import { spawn } from 'node:child_process';
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const SCREENSHOTS = path.join(ROOT, 'target', 'screenshots');
const BINARY = process.env.SWITCHYARD_BIN ?? path.join(ROOT, 'target', 'debug', 'switchyard');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Resolves with the first line of `seen` (all read so far, and those to come) matching `pattern`. */
function lineMatching(lines, seen, pattern, ms, what) {
  for (const line of seen) {
    const match = pattern.exec(line);
    if (match) return Promise.resolve(match);
  }
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      lines.off('line', onLine);
      reject(new Error(`no ${what} from switchyard within ${ms} ms; its stdout so far:\n${seen.join('\n')}`));
    }, ms);
    const onLine = (line) => {
      const match = pattern.exec(line);
      if (!match) return;
      clearTimeout(timer);
      lines.off('line', onLine);
      resolve(match);
    };
    lines.on('line', onLine);
  });
}

/**
 * Starts `switchyard serve` the way an operator would on a first run, and reads from its stdout
 * the ready line (which must be the first) and the API key the bootstrap prints.
 */
export async function startServer() {
  if (!existsSync(BINARY)) {
    throw new Error(`${BINARY} is missing: run \`cargo build -p switchyard --bin switchyard\` first (scripts/test does)`);
  }
  const dir = await mkdtemp(path.join(os.tmpdir(), 'switchyard-browser-'));
  const args = [
    'serve',
    '--listen', '127.0.0.1:0',
    '--database-url', `sqlite://${path.join(dir, 'db')}?mode=rwc`,
    '--allow-private-targets',
    '--retry-schedule', '300ms',
    '--sweep-interval', '100ms',
    '--log-format', 'json',
  ];
  const child = spawn(BINARY, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, SWITCHYARD_LOG: 'warn' },
  });
  const stderr = [];
  child.stderr.on('data', (chunk) => stderr.push(chunk));
  const lines = readline.createInterface({ input: child.stdout });
  const stdout = [];
  lines.on('line', (line) => stdout.push(line));
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const died = exited.then(({ code, signal }) => {
    throw new Error(`switchyard exited (${code ?? signal}) before it was ready:\n${Buffer.concat(stderr)}`);
  });
  try {
    const ready = await Promise.race([lineMatching(lines, stdout, /^switchyard listening on (http:\/\/\S+)$/, 30_000, 'ready line'), died]);
    const key = await Promise.race([lineMatching(lines, stdout, /^api key: (sk_\S+)$/, 10_000, 'bootstrap API key'), died]);
    if (!stdout[0]?.startsWith('switchyard listening on ')) throw new Error(`first line was ${stdout[0]}`);
    died.catch(() => {});
    return {
      base: ready[1],
      key: key[1],
      stdout,
      stderr: () => Buffer.concat(stderr).toString(),
      async stop() {
        if (child.exitCode === null) child.kill('SIGTERM');
        const result = await exited;
        await rm(dir, { recursive: true, force: true });
        return result;
      },
    };
  } catch (error) {
    child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

/** A webhook receiver on 127.0.0.1:0 that answers 200, or whatever status it is told to. */
export async function startReceiver() {
  const received = [];
  let status = 200;
  const server = http.createServer((request, response) => {
    const chunks = [];
    request.on('data', (c) => chunks.push(c));
    request.on('end', () => {
      received.push({ headers: request.headers, body: Buffer.concat(chunks).toString() });
      response.writeHead(status, { 'Content-Type': 'text/plain' });
      response.end(status < 300 ? 'ok' : `receiver is down (answering ${status})`);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}/hook`,
    received,
    answer(code) {
      status = code;
    },
    stop: () => new Promise((resolve) => server.close(resolve)),
  };
}

/** Calls the API from node, as an integrator's backend would. */
export function apiClient(base, key) {
  return async function api(method, pathname, body) {
    const response = await fetch(`${base}${pathname}`, {
      method,
      headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = await response.json();
    return { status: response.status, ...json };
  };
}

/** Polls `check` until it returns something truthy. */
export async function eventually(check, { timeout = 15_000, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`${what} not reached within ${timeout} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Debian's Chromium, headless, with the flags this machine's closed network needs. */
export async function launchBrowser() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: install Debian's chromium (scripts/test does)`);
  }
  await mkdir(SCREENSHOTS, { recursive: true });
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
}

/** A page signed in to `server`'s dashboard, that records script errors into `errors`. */
export async function signedInPage(browser, server, { errors = [], viewport = { width: 1280, height: 800 }, permissions = [] } = {}) {
  const context = await browser.newContext({ viewport });
  if (permissions.length) await context.grantPermissions(permissions, { origin: server.base });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/the server responded with a status of 4\d\d/.test(m.text())) {
      errors.push(`console: ${m.text()}`);
    }
  });
  await page.goto(`${server.base}/`);
  await page.getByLabel('API key').fill(server.key);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Order workflows' }).waitFor();
  return page;
}

/** Opens `hash` of the dashboard and waits for its heading. */
export async function go(page, server, hash) {
  await page.goto(`${server.base}/${hash}`);
  await page.locator('main h1').first().waitFor();
}

/**
 * A fake Shopify store on loopback (the server runs with --allow-private-targets): the credential
 * check answers the shop for `token` and 401 otherwise, and fulfillment tracking updates are
 * answered 200. Every request is recorded in `calls`.
 */
export async function startShop(token) {
  const calls = [];
  const store = http.createServer((request, response) => {
    let body = '';
    request.on('data', (chunk) => { body += chunk; });
    request.on('end', () => {
      const authorized = request.headers['x-shopify-access-token'] === token;
      calls.push({ method: request.method, url: request.url, token: request.headers['x-shopify-access-token'], body });
      const answer = (status, json) => {
        response.writeHead(status, { 'Content-Type': 'application/json' });
        response.end(JSON.stringify(json));
      };
      if (!authorized) return answer(401, { errors: '[API] Invalid API key or access token (unrecognized login or wrong password)' });
      if (request.method === 'GET' && request.url === '/admin/api/2024-10/shop.json') {
        return answer(200, { shop: { id: 548380009, name: 'Larkspur Goods', myshopify_domain: 'larkspur.myshopify.com' } });
      }
      const tracking = /^\/admin\/api\/2024-10\/fulfillments\/(\d+)\/update_tracking\.json$/.exec(request.url);
      if (request.method === 'POST' && tracking) return answer(200, { fulfillment: { id: Number(tracking[1]) } });
      return answer(404, { errors: 'Not Found' });
    });
  });
  await new Promise((resolve) => store.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${store.address().port}`,
    calls,
    close: () => new Promise((resolve) => store.close(resolve)),
  };
}
