// Secrets that mint, in the console: each kind is added through the form (the identity is sent
// once and never shown back), the list marks the kind, and once an export has minted a
// credential the list says when it expires. The Google token endpoint is the e2e harness's local
// one (REGSECRETS_GOOGLE_KEY is a key it trusts); nothing outside loopback is contacted.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { env, api, SECRETS, launch, byTestId, row, signIn } from './support.js';

const run = `e2e-mint-${Date.now().toString(36)}`;
const names = { aws: `${run}-ecr`, google: `${run}-gar`, azure: `${run}-acr` };
const awsSecret = `aws-${Math.random().toString(36).slice(2)}-never-shown`;
const azureSecret = `az-${Math.random().toString(36).slice(2)}-never-shown`;
const googleKey = process.env.REGSECRETS_GOOGLE_KEY;

let browser;

before(async () => {
  browser = await launch();
});

after(async () => {
  for (const name of Object.values(names)) await api(env.admin, 'DELETE', `${SECRETS}/${name}`);
  await browser?.close();
});

async function add(page, mode, name, fill) {
  await byTestId(page, 'add-secret').click();
  const dialog = byTestId(page, 'secret-dialog');
  await dialog.waitFor({ state: 'visible' });
  await byTestId(page, 'field-name').fill(name);
  await byTestId(page, `mode-${mode}`).check();
  assert.equal(await byTestId(page, 'field-username').isVisible(), false, 'no username for an identity');
  assert.equal(await byTestId(page, 'field-verify').isVisible(), false, 'verify-before-saving is for static credentials');
  await fill();
  await byTestId(page, 'form-submit').click();
  await dialog.waitFor({ state: 'hidden' });
  assert.equal(await byTestId(page, 'notice').textContent(), `Secret ${name} has been created.`);
}

describe('secrets that mint in the console', { skip: !googleKey && 'REGSECRETS_GOOGLE_KEY is not set' }, () => {
  it('adds each kind, marks it in the list and shows when the minted credential expires', async () => {
    const page = await browser.context.newPage();
    await signIn(page, env.admin);
    await byTestId(page, 'secrets-view').waitFor({ state: 'visible' });
    await byTestId(page, 'filter-input').fill(run);

    await add(page, 'aws', names.aws, async () => {
      // A wrong region is caught before anything is sent.
      await byTestId(page, 'field-aws-key').fill('AKIAIOSFODNN7EXAMPLE');
      await byTestId(page, 'field-aws-secret').fill(awsSecret);
      await byTestId(page, 'field-aws-region').fill('Frankfurt');
      await byTestId(page, 'form-submit').click();
      assert.match(await byTestId(page, 'awsRegion-error').textContent(), /eu-central-1/);
      await byTestId(page, 'field-aws-secret').fill(awsSecret);
      await byTestId(page, 'field-aws-region').fill('eu-central-1');
    });
    await add(page, 'google', names.google, async () => {
      await byTestId(page, 'field-google-registries').fill('europe-docker.pkg.dev');
      await byTestId(page, 'field-google-key').fill(googleKey);
    });
    await add(page, 'azure', names.azure, async () => {
      await byTestId(page, 'field-azure-registry').fill('myregistry.azurecr.io');
      await byTestId(page, 'field-azure-tenant').fill('contoso.onmicrosoft.com');
      await byTestId(page, 'field-azure-client').fill('app-1');
      await byTestId(page, 'field-azure-secret').fill(azureSecret);
    });

    for (const [name, label] of [[names.aws, 'AWS ECR'], [names.google, 'Google'], [names.azure, 'Azure']]) {
      await row(page, name).waitFor();
      assert.equal(await row(page, name).locator('[data-testid="kind-badge"]').textContent(), label);
      assert.equal(await row(page, name).locator('[data-testid="secret-expires"]').textContent(), 'no credential minted yet');
      assert.equal((await api(env.admin, 'GET', `${SECRETS}/${name}`)).json.kind, { [names.aws]: 'awsEcr', [names.google]: 'google', [names.azure]: 'azure' }[name]);
    }
    const html = await page.content();
    for (const secret of [awsSecret, azureSecret, 'PRIVATE KEY']) assert.ok(!html.includes(secret), 'no identity stays in the page');

    // An export mints; the list then says when the credential expires.
    const exported = await api(env.puller, 'GET', `${SECRETS}/${names.google}/credentials`);
    assert.equal(exported.status, 200, JSON.stringify(exported.json));
    const expiresAt = exported.json.metadata.annotations['regsecrets.dev/expires-at'];
    await page.reload();
    await byTestId(page, 'filter-input').fill(run);
    const expiry = row(page, names.google).locator('[data-testid="secret-expires-at"]');
    await expiry.waitFor();
    assert.equal(new Date(await expiry.getAttribute('datetime')).getTime(), new Date(expiresAt).getTime());
    assert.match(await row(page, names.google).locator('[data-testid="secret-expires"]').textContent(), /^current credential expires /);
    await page.close();
  });
});
