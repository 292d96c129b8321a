// What a person sees in the console, driven through chromium against a running regsecrets.
// The tests run in order and share the secrets they create; `after` deletes them through the API.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import {
  env, artifacts, api, allSecrets, SECRETS, claims, scopes, tampered, launch, eventually,
  byTestId, rowNames, row, signIn, menuItems,
} from './support.js';

const run = `e2e-console-${Date.now().toString(36)}`;
const hub = `${run}-hub`;
const privateOne = `${run}-private`;
const pasted = `${run}-pasted`;
const paged = Array.from({ length: 12 }, (_, i) => `${run}-page-${String(i).padStart(2, '0')}`);
const password = `pw-${Math.random().toString(36).slice(2)}-never-shown`;
const WRITE_SCOPES = ['regsecrets.admin', 'regsecrets.operator'];
const READ_SCOPES = ['regsecrets.viewer', ...WRITE_SCOPES];

let browser;
const consoleLines = [];

async function newPage() {
  const page = await browser.context.newPage();
  page.on('console', (message) => consoleLines.push(message.text()));
  return page;
}

async function adminPage() {
  const page = await newPage();
  await signIn(page, env.admin);
  await byTestId(page, 'secrets-view').waitFor({ state: 'visible' });
  return page;
}

async function filterTo(page, text, expected) {
  await byTestId(page, 'filter-input').fill(text);
  return eventually(() => rowNames(page), (names) => JSON.stringify(names) === JSON.stringify(expected),
    `rows after filtering by ${JSON.stringify(text)}`);
}

before(async () => {
  browser = await launch();
  for (const name of paged) {
    const created = await api(env.admin, 'POST', SECRETS, { name, registry: 'registry.example.com:5000', username: 'u', password: 'p' });
    assert.equal(created.status, 201, `arranging ${name}: ${JSON.stringify(created.json)}`);
  }
});

after(async () => {
  for (const name of [hub, privateOne, pasted, ...paged]) await api(env.admin, 'DELETE', `${SECRETS}/${name}`);
  await browser?.close();
});

describe('regsecrets console', () => {
  it('is served with its security headers, and unknown paths get a JSON 404', async () => {
    const page = await fetch(`${env.url}/`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type'), /^text\/html/);
    const csp = page.headers.get('content-security-policy');
    assert.match(csp, /default-src 'self'/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.doesNotMatch(csp, /unsafe-inline/);
    assert.equal(page.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(page.headers.get('referrer-policy'), 'no-referrer');

    const missing = await fetch(`${env.url}/no-such-page`);
    assert.equal(missing.status, 404);
    assert.equal((await missing.json()).error.code, 'NotFound');
  });

  it('signs an admin in and shows tenant, role and the quota', async () => {
    const page = await adminPage();
    assert.equal(await byTestId(page, 'session-tenant').textContent(), claims(env.admin).tenant ?? '(not in token)');
    assert.equal(await byTestId(page, 'session-role').textContent(),
      scopes(env.admin).includes('regsecrets.operator') ? 'Operator' : 'Admin');
    const quota = (await api(env.admin, 'GET', '/v2/admin/resourceQuota/dockerRegistrySecrets')).json;
    await eventually(() => byTestId(page, 'quota-text').textContent(),
      (text) => text === `${quota.usage.count} of ${quota.quota.maxCount} secrets used`, 'quota text');
    assert.equal(await byTestId(page, 'add-secret').isVisible(), true);
    await page.close();
  });

  it('adds a Docker Hub secret through the form and lists it', async () => {
    const page = await adminPage();
    const before = (await api(env.admin, 'GET', '/v2/admin/resourceQuota/dockerRegistrySecrets')).json.usage.count;
    await byTestId(page, 'add-secret').click();
    const dialog = byTestId(page, 'secret-dialog');
    await dialog.waitFor({ state: 'visible' });
    assert.equal(await page.evaluate(() => document.activeElement.dataset.testid), 'field-name', 'focus moves into the dialog');

    await byTestId(page, 'field-name').fill('Bad_Name');
    const charset = byTestId(page, 'name-rules').locator('[data-rule="charset"]');
    assert.equal(await charset.getAttribute('data-status'), 'bad');
    assert.match(await charset.textContent(), /lower-case letters, digits/);
    await byTestId(page, 'form-submit').click();
    assert.equal(await dialog.isVisible(), true, 'an invalid name is not submitted');

    await byTestId(page, 'field-name').fill(hub);
    assert.deepEqual(await byTestId(page, 'name-rules').locator('li').evaluateAll((items) => items.map((i) => i.dataset.status)),
      ['ok', 'ok', 'ok', 'ok', 'ok']);
    assert.equal(await byTestId(page, 'mode-dockerhub').isChecked(), true);
    assert.equal(await byTestId(page, 'field-registry').isVisible(), false, 'Docker Hub needs no registry URL');
    assert.equal(await byTestId(page, 'field-password').getAttribute('type'), 'password');
    await byTestId(page, 'field-username').fill('octocat');
    await byTestId(page, 'field-password').fill(password);
    await byTestId(page, 'field-email').fill('octocat@example.com');
    await byTestId(page, 'form-submit').click();

    await dialog.waitFor({ state: 'hidden' });
    assert.equal(await byTestId(page, 'notice').textContent(), `Secret ${hub} has been created.`);
    await filterTo(page, hub, [hub]);
    const listed = row(page, hub);
    assert.equal(await listed.locator('[data-testid="secret-name"]').textContent(), hub);
    assert.equal((await listed.locator('[data-testid="secret-registries"]').textContent()).trim(), 'Docker Hub');
    assert.equal(await listed.locator('[data-testid="secret-created"]').textContent(), 'just now');
    assert.ok(await listed.locator('[data-testid="secret-created"]').getAttribute('title'), 'the exact time is in the title');
    assert.equal(await listed.locator('[data-testid="managed-badge"]').count(), 0);
    await eventually(() => byTestId(page, 'quota-text').textContent(),
      (text) => text.startsWith(`${before + 1} of `), 'quota counts the new secret');

    assert.equal(await byTestId(page, 'field-password').inputValue(), '', 'the password field is cleared');
    assert.equal(await byTestId(page, 'field-username').inputValue(), '', 'the username field is cleared');
    assert.ok(!(await page.content()).includes(password), 'the password is nowhere in the page');

    const stored = await api(env.admin, 'GET', `${SECRETS}/${hub}`);
    assert.equal(stored.status, 200);
    assert.ok(stored.json.registries.some((r) => r.includes('docker.io')), JSON.stringify(stored.json.registries));
    await page.close();
  });

  it('shows the server\u2019s message as is when a create fails, and clears the credentials', async () => {
    const duplicate = await api(env.admin, 'POST', SECRETS, { name: hub, username: 'x', password: 'y' });
    assert.equal(duplicate.status, 409);
    const page = await adminPage();
    await byTestId(page, 'add-secret').click();
    await byTestId(page, 'field-name').fill(hub);
    await byTestId(page, 'field-username').fill('x');
    await byTestId(page, 'field-password').fill(password);
    await byTestId(page, 'form-submit').click();
    const error = byTestId(page, 'form-error');
    await error.waitFor({ state: 'visible' });
    assert.equal(await error.textContent(), duplicate.json.error.message);
    assert.equal(await byTestId(page, 'field-password').inputValue(), '');
    assert.equal(await byTestId(page, 'field-username').inputValue(), '');
    await page.close();
  });

  it('adds from a private registry and from a pasted .dockerconfigjson, checking fields first', async () => {
    const page = await adminPage();
    await byTestId(page, 'add-secret').click();
    await byTestId(page, 'field-name').fill(privateOne);
    await byTestId(page, 'mode-private').check();
    await byTestId(page, 'field-registry').fill('not a registry');
    await byTestId(page, 'field-username').fill('robot');
    await byTestId(page, 'field-password').fill(password);
    await byTestId(page, 'form-submit').click();
    assert.equal(await byTestId(page, 'registry-error').textContent(), 'A registry address contains no spaces.');
    assert.equal(await page.evaluate(() => document.activeElement.dataset.testid), 'field-registry');
    await byTestId(page, 'field-registry').fill('https://registry.example.com:5000');
    await byTestId(page, 'form-submit').click();
    await byTestId(page, 'secret-dialog').waitFor({ state: 'hidden' });
    await filterTo(page, privateOne, [privateOne]);
    assert.match(await row(page, privateOne).locator('[data-testid="secret-registries"]').textContent(), /registry\.example\.com/);

    await byTestId(page, 'add-secret').click();
    await byTestId(page, 'field-name').fill(pasted);
    await byTestId(page, 'mode-dockerconfig').check();
    assert.equal(await byTestId(page, 'field-password').isVisible(), false);
    await byTestId(page, 'field-dockerconfig').fill('{"credsStore":"desktop"}');
    await byTestId(page, 'form-submit').click();
    assert.match(await byTestId(page, 'dockerconfig-error').textContent(), /credential helper and holds no credentials/);
    const auth = Buffer.from(`robot:${password}`).toString('base64');
    const config = JSON.stringify({ auths: { 'quay.io': { auth } } });
    await byTestId(page, 'field-dockerconfig').fill(Buffer.from(config).toString('base64'));
    await byTestId(page, 'form-submit').click();
    await byTestId(page, 'secret-dialog').waitFor({ state: 'hidden' });
    assert.equal(await byTestId(page, 'field-dockerconfig').inputValue(), '', 'the pasted config is cleared');
    await filterTo(page, pasted, [pasted]);
    assert.match(await row(page, pasted).locator('[data-testid="secret-registries"]').textContent(), /quay\.io/);
    assert.ok(!(await page.content()).includes(auth), 'the pasted credentials are nowhere in the page');
    await page.close();
  });

  it('filters case-insensitively, and Reset shows every secret again', async () => {
    const page = await adminPage();
    await filterTo(page, hub.toUpperCase(), [hub]);
    assert.equal(await byTestId(page, 'pager-status').textContent(), '1\u20131 of 1');

    await filterTo(page, 'NO-SUCH-SECRET-ANYWHERE', []);
    assert.match(await byTestId(page, 'empty-state').textContent(), /No secret name contains/);

    await byTestId(page, 'filter-reset').click();
    assert.equal(await byTestId(page, 'filter-input').inputValue(), '');
    const total = (await api(env.admin, 'GET', `${SECRETS}?$top=1&$count=true`)).json.count;
    const shown = Math.min(total, 20);
    await eventually(() => byTestId(page, 'pager-status').textContent(),
      (text) => text === `1\u2013${shown} of ${total}`, 'pager after Reset');
    assert.equal((await rowNames(page)).length, shown);
    await page.screenshot({ path: join(artifacts, 'console-list.png'), fullPage: true });
    await page.close();
  });

  it('pages through a long list', async () => {
    const page = await adminPage();
    await byTestId(page, 'page-size').selectOption('10');
    await filterTo(page, `${run}-page`, paged.slice(0, 10));
    assert.equal(await byTestId(page, 'pager-status').textContent(), '1\u201310 of 12');
    assert.equal(await byTestId(page, 'pager-prev').isDisabled(), true);
    await byTestId(page, 'pager-next').click();
    await eventually(() => rowNames(page), (names) => JSON.stringify(names) === JSON.stringify(paged.slice(10)), 'second page');
    assert.equal(await byTestId(page, 'pager-status').textContent(), '11\u201312 of 12');
    assert.equal(await byTestId(page, 'pager-next').isDisabled(), true);
    await byTestId(page, 'pager-prev').click();
    await eventually(() => rowNames(page), (names) => names[0] === paged[0], 'back on the first page');
    await page.close();
  });

  it('reports a concurrent change as a conflict instead of overwriting it', async () => {
    const page = await adminPage();
    await filterTo(page, hub, [hub]);
    const items = await menuItems(page, hub);
    assert.deepEqual(items, ['action-use', 'action-verify', 'action-edit', 'action-delete']);
    await byTestId(page, 'action-edit').click();
    const dialog = byTestId(page, 'secret-dialog');
    await dialog.waitFor({ state: 'visible' });
    assert.equal(await byTestId(page, 'secret-dialog-title').textContent(), `Replace credentials of ${hub}`);
    assert.equal(await byTestId(page, 'field-password').inputValue(), '', 'stored credentials are never shown');

    const concurrent = await api(env.admin, 'PATCH', `${SECRETS}/${hub}`, { username: 'someone-else', password: 'theirs' });
    assert.equal(concurrent.status, 200);
    const theirs = (await api(env.admin, 'GET', `${SECRETS}/${hub}`)).json.version;

    await byTestId(page, 'field-username').fill('octocat');
    await byTestId(page, 'field-password').fill(password);
    await byTestId(page, 'form-submit').click();
    const error = byTestId(page, 'form-error');
    await error.waitFor({ state: 'visible' });
    assert.match(await error.textContent(), new RegExp(`Conflict: ${hub} was changed by someone else .*not saved`));
    assert.equal(await dialog.isVisible(), true);
    assert.equal(await byTestId(page, 'field-password').inputValue(), '');
    assert.equal((await api(env.admin, 'GET', `${SECRETS}/${hub}`)).json.version, theirs, 'the other change stands');

    // The dialog now holds the current version: a deliberate second submit replaces it.
    await byTestId(page, 'field-username').fill('octocat');
    await byTestId(page, 'field-password').fill(password);
    await byTestId(page, 'form-submit').click();
    await dialog.waitFor({ state: 'hidden' });
    assert.equal(await byTestId(page, 'notice').textContent(), `The credentials of ${hub} have been replaced.`);
    assert.ok((await api(env.admin, 'GET', `${SECRETS}/${hub}`)).json.version > theirs);
    await page.close();
  });

  it('gives a copyable imagePullSecrets snippet, and the kubectl line to pullers', async () => {
    const page = await adminPage();
    await filterTo(page, hub, [hub]);
    await menuItems(page, hub);
    await byTestId(page, 'action-use').click();
    await byTestId(page, 'use-dialog').waitFor({ state: 'visible' });
    assert.equal(await byTestId(page, 'snippet-yaml').textContent(), `imagePullSecrets:\n  - name: ${hub}`);
    if (scopes(env.admin).includes('regsecrets.puller')) {
      assert.equal(await byTestId(page, 'snippet-curl').textContent(),
        `curl -fsS -H "Authorization: Bearer $TOKEN" ${env.url}/v2/admin/dockerRegistrySecrets/${hub}/credentials | kubectl apply -f -`);
    } else {
      assert.equal(await byTestId(page, 'puller-snippet').isVisible(), false);
    }
    await byTestId(page, 'use-close').click();
    await byTestId(page, 'use-dialog').waitFor({ state: 'hidden' });
    await page.close();
  });

  it('shows a viewer the secrets without any write control', async () => {
    const viewerScopes = scopes(env.viewer);
    assert.ok(!viewerScopes.some((s) => WRITE_SCOPES.includes(s)), `the viewer token must not write: ${viewerScopes}`);
    const page = await newPage();
    await signIn(page, env.viewer);
    await filterTo(page, hub, [hub]);
    assert.equal(await byTestId(page, 'session-role').textContent(), 'Viewer');
    assert.equal(await byTestId(page, 'add-secret').isVisible(), false);
    assert.deepEqual(await menuItems(page, hub), ['action-use']);
    assert.equal(await byTestId(page, 'action-edit').count(), 0);
    assert.equal(await byTestId(page, 'action-delete').count(), 0);
    await page.close();
  });

  it('badges managed secrets and offers no edit or delete for them', async (t) => {
    const managed = (await allSecrets(env.admin)).find((s) => s.managed);
    if (!managed) return t.skip('this tenant holds no managed secret');
    const page = await adminPage();
    await filterTo(page, managed.name, [managed.name]);
    assert.equal(await row(page, managed.name).locator('[data-testid="managed-badge"]').textContent(), 'managed');
    assert.deepEqual(await menuItems(page, managed.name), ['action-use']);
    await page.close();
  });

  it('deletes a secret only after a confirmation that names it', async () => {
    const page = await adminPage();
    await filterTo(page, hub, [hub]);
    await menuItems(page, hub);
    await byTestId(page, 'action-delete').click();
    const dialog = byTestId(page, 'delete-dialog');
    await dialog.waitFor({ state: 'visible' });
    assert.equal(await byTestId(page, 'delete-name').textContent(), hub);
    assert.equal(await page.evaluate(() => document.activeElement.dataset.testid), 'delete-cancel', 'the safe choice has focus');
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden' });
    assert.equal((await api(env.admin, 'GET', `${SECRETS}/${hub}`)).status, 200, 'cancelling deletes nothing');

    await menuItems(page, hub);
    await byTestId(page, 'action-delete').click();
    await dialog.waitFor({ state: 'visible' });
    await byTestId(page, 'delete-confirm').click();
    await dialog.waitFor({ state: 'hidden' });
    assert.equal(await byTestId(page, 'notice').textContent(), `Secret ${hub} has been deleted.`);
    await eventually(() => rowNames(page), (names) => names.length === 0, 'the row is gone');
    assert.equal((await api(env.admin, 'GET', `${SECRETS}/${hub}`)).status, 404);
    await page.close();
  });

  it('tells a token without a reading scope why it sees nothing (403)', async (t) => {
    if (scopes(env.puller).some((s) => READ_SCOPES.includes(s))) return t.skip('the puller token may also read');
    const page = await newPage();
    await signIn(page, env.puller);
    const error = byTestId(page, 'list-error');
    await error.waitFor({ state: 'visible' });
    assert.match(await error.textContent(), /may not list secrets \(403\).*regsecrets\.viewer/);
    assert.equal(await byTestId(page, 'secrets-table').isVisible(), false);
    await page.close();
  });

  it('ends the session with a clear message when the server refuses the token (401)', async () => {
    const page = await newPage();
    await signIn(page, tampered(env.admin, { exp: Math.floor(Date.now() / 1000) - 3600 }));
    const error = byTestId(page, 'signin-error');
    await eventually(() => error.textContent(), (text) => /Your token expired .*Paste a fresh token/.test(text), 'expiry message');
    assert.equal(await page.evaluate(() => sessionStorage.length), 0, 'the refused token is forgotten');
    await page.close();
  });

  it('forgets the token on sign-out', async () => {
    const page = await adminPage();
    assert.equal(await page.evaluate(() => sessionStorage.length), 1);
    await page.reload();
    await byTestId(page, 'secrets-view').waitFor({ state: 'visible' });
    await byTestId(page, 'signout').click();
    await byTestId(page, 'signin').waitFor({ state: 'visible' });
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);
    assert.equal(await byTestId(page, 'secrets-body').locator('tr').count(), 0, 'no secret stays on screen');
    await page.reload();
    await byTestId(page, 'signin').waitFor({ state: 'visible' });
    assert.equal(await byTestId(page, 'secrets-view').isVisible(), false);
    await page.close();
  });

  it('never wrote a typed credential to the browser console', () => {
    assert.ok(consoleLines.every((line) => !line.includes(password)), 'a console line holds the password');
  });
});
