// Workload identity in the console: an admin trusts a cluster, binds a service account, turns the
// pod-token switch on and off, edits and removes them; a viewer sees them without controls. What the
// console did is checked behind its back through the API.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { env, artifacts, api, launch, eventually, byTestId, signIn } from './support.js';

const WORKLOAD = '/v2/admin/workloadIdentity';
const issuer = 'https://cluster-ui.example.com';
let browser;

async function trust() {
  const answer = await api(env.admin, 'GET', WORKLOAD);
  assert.equal(answer.status, 200);
  return answer.json;
}

before(async () => {
  browser = await launch();
  assert.equal((await api(env.admin, 'PUT', WORKLOAD, {})).status, 200);
});

after(async () => {
  await api(env.admin, 'PUT', WORKLOAD, {});
  await browser?.close();
});

describe('workload identity in the console', () => {
  it('lets an admin trust a cluster, bind a service account, require pod tokens, edit and remove them', async () => {
    const page = await browser.context.newPage();
    await signIn(page, env.admin);
    const view = byTestId(page, 'workload-view');
    await view.waitFor({ state: 'visible' });
    assert.equal(await byTestId(page, 'wi-issuers-empty').isVisible(), true);
    assert.equal(await byTestId(page, 'wi-add-binding').isDisabled(), true, 'a binding needs a trusted cluster first');

    // An issuer that is not https is refused by the server; nothing is saved.
    await byTestId(page, 'wi-add-issuer').click();
    await byTestId(page, 'wi-field-issuer').fill('http://insecure.example.com');
    await byTestId(page, 'wi-issuer-save').click();
    const dialog = byTestId(page, 'wi-issuer-dialog');
    await eventually(() => dialog.locator('.error.banner').textContent(), (t) => /https/.test(t), 'the refusal is shown');
    assert.deepEqual(await trust(), { issuers: [], bindings: [] });

    // Trusted by issuer URL: keys discovered.
    await byTestId(page, 'wi-field-issuer').fill(issuer);
    await byTestId(page, 'wi-issuer-save').click();
    await dialog.waitFor({ state: 'hidden' });
    const issuerRow = page.locator(`[data-testid="wi-issuer-row"][data-issuer="${issuer}"]`);
    await issuerRow.waitFor({ state: 'visible' });
    assert.match(await issuerRow.textContent(), /discovered from the issuer/);
    assert.deepEqual((await trust()).issuers, [{ issuer, audience: 'regsecrets' }]);

    await byTestId(page, 'wi-add-binding').click();
    await byTestId(page, 'wi-field-namespace').fill('shop');
    await byTestId(page, 'wi-field-account').fill('checkout');
    await byTestId(page, 'wi-field-secrets').fill('payments, base-images');
    await byTestId(page, 'wi-binding-save').click();
    await byTestId(page, 'wi-binding-dialog').waitFor({ state: 'hidden' });
    const bindingRow = page.locator('[data-testid="wi-binding-row"][data-subject="system:serviceaccount:shop:checkout"]');
    await bindingRow.waitFor({ state: 'visible' });
    assert.deepEqual((await trust()).bindings,
      [{ issuer, subject: 'system:serviceaccount:shop:checkout', secrets: ['payments', 'base-images'] }]);

    await byTestId(page, 'wi-require').check();
    await eventually(async () => (await trust()).requirePodToken, (v) => v === true, 'the switch is saved');
    await byTestId(page, 'wi-require').uncheck();
    await eventually(async () => (await trust()).requirePodToken, (v) => v === undefined, 'and turned off');

    // Edit the issuer's audience; the binding follows.
    await issuerRow.locator('[data-testid="wi-issuer-edit"]').click();
    assert.equal(await byTestId(page, 'wi-field-issuer').inputValue(), issuer);
    await byTestId(page, 'wi-field-audience').fill('pulls');
    await byTestId(page, 'wi-issuer-save').click();
    await dialog.waitFor({ state: 'hidden' });
    const edited = await trust();
    assert.deepEqual(edited.issuers, [{ issuer, audience: 'pulls' }]);
    assert.equal(edited.bindings[0].issuer, issuer);
    await page.screenshot({ path: join(artifacts, 'console-workload.png'), fullPage: true });

    // Remove the binding, then the cluster.
    await bindingRow.locator('[data-testid="wi-binding-remove"]').click();
    await bindingRow.waitFor({ state: 'detached' });
    assert.deepEqual((await trust()).bindings, []);
    await issuerRow.locator('[data-testid="wi-issuer-remove"]').click();
    await issuerRow.waitFor({ state: 'detached' });
    assert.deepEqual(await trust(), { issuers: [], bindings: [] });
    await page.close();
  });

  it('shows a viewer the trust without controls', async () => {
    assert.equal((await api(env.admin, 'PUT', WORKLOAD, {
      issuers: [{ issuer, audience: 'regsecrets' }],
      bindings: [{ issuer, subject: 'system:serviceaccount:ci:*', secrets: ['base-images'] }],
      requirePodToken: true,
    })).status, 200);
    const page = await browser.context.newPage();
    await signIn(page, env.viewer);
    await byTestId(page, 'workload-view').waitFor({ state: 'visible' });
    await page.locator('[data-testid="wi-binding-row"]').waitFor({ state: 'visible' });
    assert.equal(await byTestId(page, 'wi-require').isChecked(), true);
    assert.equal(await byTestId(page, 'wi-require').isDisabled(), true);
    assert.equal(await byTestId(page, 'wi-add-issuer').isVisible(), false);
    assert.equal(await byTestId(page, 'wi-add-binding').isVisible(), false);
    assert.equal(await page.locator('[data-testid="wi-issuer-edit"], [data-testid="wi-binding-remove"]').count(), 0);
    await page.close();
  });
});
