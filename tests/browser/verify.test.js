// The console's verification: the Verify action, "Verify before saving" in the add and edit
// dialogs, and the last outcome's badge. The registry is a closed loopback port, so every check
// answers "unreachable" at once; no outside host is ever named.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { env, api, SECRETS, launch, eventually, byTestId, row, signIn, menuItems } from './support.js';

const run = `e2e-verify-${Date.now().toString(36)}`;
const stored = `${run}-stored`;
const added = `${run}-added`;
const password = `pw-${Math.random().toString(36).slice(2)}-never-shown`;

let browser;
let registry;

/** A loopback port nothing listens on: bound, then released. */
function closedPort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

async function adminPage() {
  const page = await browser.context.newPage();
  await signIn(page, env.admin);
  await byTestId(page, 'secrets-view').waitFor({ state: 'visible' });
  await byTestId(page, 'filter-input').fill(run);
  return page;
}

before(async () => {
  browser = await launch();
  registry = `localhost:${await closedPort()}`;
  const created = await api(env.admin, 'POST', SECRETS, { name: stored, registry, username: 'bot', password });
  assert.equal(created.status, 201, JSON.stringify(created.json));
});

after(async () => {
  for (const name of [stored, added]) await api(env.admin, 'DELETE', `${SECRETS}/${name}`);
  await browser?.close();
});

describe('verification in the console', () => {
  it('Verify shows each registry\'s result in plain words and the list then shows the outcome', async () => {
    const page = await adminPage();
    await row(page, stored).waitFor();
    assert.equal(await row(page, stored).locator('[data-testid="verify-badge"]').count(), 0, 'never checked');
    assert.ok((await menuItems(page, stored)).includes('action-verify'));
    await byTestId(page, 'action-verify').click();
    const result = byTestId(page, 'verify-dialog').locator('[data-testid="verify-result"]');
    await result.waitFor({ state: 'visible', timeout: 15000 });
    assert.equal(await result.getAttribute('data-result'), 'unreachable');
    assert.equal(await result.getAttribute('data-registry'), registry);
    assert.match(await result.textContent(), /Unreachable\. Could not connect to the registry/);
    assert.match(await byTestId(page, 'verify-status').textContent(), /did not accept/);
    await byTestId(page, 'verify-close').click();
    const badge = row(page, stored).locator('[data-testid="verify-badge"]');
    await badge.waitFor();
    assert.equal(await badge.textContent(), 'check failed');
    assert.equal(await badge.getAttribute('data-ok'), 'false');
    await page.close();
  });

  it('viewers get no Verify action', async () => {
    const page = await browser.context.newPage();
    await signIn(page, env.viewer);
    await byTestId(page, 'secrets-view').waitFor({ state: 'visible' });
    await byTestId(page, 'filter-input').fill(run);
    await row(page, stored).waitFor();
    assert.ok(!(await menuItems(page, stored)).includes('action-verify'));
    await page.close();
  });

  it('"Verify before saving" in the add dialog stores nothing when a registry refuses, and says why', async () => {
    const page = await adminPage();
    await byTestId(page, 'add-secret').click();
    await byTestId(page, 'field-name').fill(added);
    await byTestId(page, 'mode-private').check();
    await byTestId(page, 'field-registry').fill(registry);
    await byTestId(page, 'field-username').fill('bot');
    await byTestId(page, 'field-password').fill(password);
    await byTestId(page, 'field-verify').check();
    await byTestId(page, 'form-submit').click();
    const result = byTestId(page, 'form-verify-list').locator('[data-testid="verify-result"]');
    await result.waitFor({ state: 'visible', timeout: 15000 });
    assert.equal(await result.getAttribute('data-result'), 'unreachable');
    assert.match(await byTestId(page, 'form-error').textContent(), /^Not saved/);
    assert.equal(await byTestId(page, 'field-password').inputValue(), '', 'credentials are cleared on submit');
    assert.equal((await api(env.admin, 'GET', `${SECRETS}/${added}`)).status, 404, 'nothing was stored');
    assert.ok(!(await page.content()).includes(password));
    await page.close();
  });

  it('"Verify before saving" in the edit dialog keeps the stored credentials when a registry refuses', async () => {
    const before = await api(env.admin, 'GET', `${SECRETS}/${stored}`);
    const page = await adminPage();
    await row(page, stored).waitFor();
    await menuItems(page, stored);
    await byTestId(page, 'action-edit').click();
    await byTestId(page, 'field-username').fill('bot');
    await byTestId(page, 'field-password').fill(`${password}-new`);
    await byTestId(page, 'field-verify').check();
    await byTestId(page, 'form-submit').click();
    const result = byTestId(page, 'form-verify-list').locator('[data-testid="verify-result"]');
    await result.waitFor({ state: 'visible', timeout: 15000 });
    assert.equal(await result.getAttribute('data-result'), 'unreachable');
    const after = await eventually(() => api(env.admin, 'GET', `${SECRETS}/${stored}`), (r) => r.status === 200, 'get');
    assert.equal(after.json.version, before.json.version, 'the stored secret is unchanged');
    await page.close();
  });
});
