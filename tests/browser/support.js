// Shared set-up of the browser tests: the server and tokens from the environment, Debian's
// chromium through playwright-core, and a small client of the public API for arranging and
// checking state behind the console's back.

import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`Set ${name} (see tests/browser/README.md).`);
  return value;
}

export const env = {
  url: required('REGSECRETS_URL').replace(/\/+$/, ''),
  admin: required('REGSECRETS_ADMIN_TOKEN'),
  viewer: required('REGSECRETS_VIEWER_TOKEN'),
  puller: required('REGSECRETS_PULLER_TOKEN'),
};

export const artifacts = join(dirname(fileURLToPath(import.meta.url)), 'artifacts');

export function claims(token) {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'));
}

export function scopes(token) {
  const raw = claims(token).scope ?? [];
  return Array.isArray(raw) ? raw : String(raw).split(' ').filter(Boolean);
}

/** The token with its payload rewritten: the signature no longer matches, so the server refuses it. */
export function tampered(token, changes) {
  const [header, , signature] = token.split('.');
  const payload = Buffer.from(JSON.stringify({ ...claims(token), ...changes })).toString('base64url');
  return `${header}.${payload}.${signature}`;
}

export async function launch() {
  const profile = mkdtempSync(join(tmpdir(), 'regsecrets-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 860 },
    baseURL: env.url,
  });
  mkdirSync(artifacts, { recursive: true });
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Calls the public API as the given token; returns status, headers and parsed body. */
export async function api(token, method, path, body, headers = {}) {
  const response = await fetch(`${env.url}${path}`, {
    method,
    headers: {
      Authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
      ...headers,
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, json: text ? JSON.parse(text) : null };
}

export const SECRETS = '/v2/admin/dockerRegistrySecrets';

/** Every secret of the token's tenant, across pages. */
export async function allSecrets(token) {
  const all = [];
  for (let skip = 0; ; skip += 50) {
    const page = await api(token, 'GET', `${SECRETS}?$top=50&$skip=${skip}&$count=true`);
    if (page.status !== 200) throw new Error(`list answered ${page.status}`);
    all.push(...page.json.resources);
    if (page.json.resources.length === 0 || all.length >= page.json.count) return all;
  }
}

/** Polls `probe` until it returns a value for which `accept` holds; fails with the last value seen. */
export async function eventually(probe, accept, what, timeoutMs = 8000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await probe();
    if (accept(last)) return last;
    if (Date.now() > deadline) throw new Error(`${what}: last seen ${JSON.stringify(last)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export const byTestId = (page, id) => page.locator(`[data-testid="${id}"]`);

export function rowNames(page) {
  return page.locator('[data-testid="secret-row"]').evaluateAll((rows) => rows.map((row) => row.dataset.name));
}

export function row(page, name) {
  return page.locator(`[data-testid="secret-row"][data-name="${name}"]`);
}

export async function signIn(page, token) {
  await page.goto('/');
  await byTestId(page, 'token-input').fill(token);
  await byTestId(page, 'signin-submit').click();
}

/** Opens a row's Actions menu and returns the test ids of the items it offers. */
export async function menuItems(page, name) {
  await row(page, name).locator('[data-testid="row-actions"]').click();
  const menu = byTestId(page, 'actions-menu');
  await menu.waitFor({ state: 'visible' });
  return menu.locator('[role="menuitem"]').evaluateAll((items) => items.map((item) => item.dataset.testid));
}
