// The console's sign-in with an OpenID provider, as a person does it: chromium opens the console,
// follows "Sign in with your identity provider" to the test provider (tests/oidc), signs in as
// alice, creates, verifies and deletes a secret on the session cookie alone, and signs out here and
// at the provider. Run by tests/e2e/tests/signin.rs, which starts the provider and an app wired to
// it and sets REGSECRETS_SIGNIN_URL; skipped otherwise (so `npm test` for the console alone runs
// without it). Self-contained: support.js requires the paste tests' tokens.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const url = process.env.REGSECRETS_SIGNIN_URL?.replace(/\/+$/, '');
const artifacts = join(dirname(fileURLToPath(import.meta.url)), 'artifacts');
const byTestId = (page, id) => page.locator(`[data-testid="${id}"]`);
const name = `signin-${Date.now().toString(36)}`;

describe('console sign-in with the identity provider', { skip: url ? false : 'REGSECRETS_SIGNIN_URL is not set (tests/e2e/tests/signin.rs sets it)' }, () => {
  it('signs in, creates, verifies and deletes a secret on the session cookie, and signs out', async () => {
    const profile = mkdtempSync(join(tmpdir(), 'regsecrets-signin-'));
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
      viewport: { width: 1280, height: 860 },
    });
    mkdirSync(artifacts, { recursive: true });
    const apiCalls = [];
    try {
      const page = await context.newPage();
      page.on('request', (request) => {
        if (request.url().startsWith(`${url}/v2/`)) apiCalls.push(request.headers());
      });
      await page.goto(`${url}/`);
      const offer = byTestId(page, 'signin-oidc');
      await offer.waitFor({ state: 'visible' });
      assert.equal(await byTestId(page, 'signin-paste').isVisible(), true, 'pasting stays available unless switched off');
      await offer.click();

      // At the provider.
      await byTestId(page, 'idp-login').waitFor({ state: 'visible' });
      assert.ok(!page.url().startsWith(url), `at the provider: ${page.url()}`);
      await byTestId(page, 'idp-login').fill('alice');
      await byTestId(page, 'idp-submit').click();

      // Back in the console, signed in.
      await byTestId(page, 'secrets-view').waitFor({ state: 'visible' });
      assert.equal(new URL(page.url()).pathname, '/', 'the callback leaves no code in the address bar');
      assert.equal(await byTestId(page, 'session-tenant').textContent(), 'oidc-e2e');
      assert.equal(await byTestId(page, 'session-role').textContent(), 'Admin');
      const held = await page.evaluate(() => JSON.stringify({ s: { ...sessionStorage }, l: { ...localStorage }, c: document.cookie }));
      assert.ok(!held.includes('eyJ'), `no token in the page's reach: ${held}`);
      assert.ok(!held.includes('regsecrets-session'), 'the session cookie is HttpOnly');
      const session = (await context.cookies(url)).find((c) => c.name === '__Host-regsecrets-session');
      assert.ok(session, 'the session cookie is set');
      assert.deepEqual([session.httpOnly, session.secure, session.sameSite, session.path], [true, true, 'Strict', '/']);
      await page.screenshot({ path: join(artifacts, 'signin-console.png') });

      // Create a secret through the dialog.
      await byTestId(page, 'add-secret').click();
      await byTestId(page, 'field-name').fill(name);
      await byTestId(page, 'mode-private').check();
      await byTestId(page, 'field-registry').fill('registry.example.com');
      await byTestId(page, 'field-username').fill('robot');
      await byTestId(page, 'field-password').fill('not-a-real-password');
      await byTestId(page, 'form-submit').click();
      await byTestId(page, 'secret-dialog').waitFor({ state: 'hidden' });
      const row = page.locator(`[data-testid="secret-row"][data-name="${name}"]`);
      await row.waitFor({ state: 'visible' });

      // Verify it: the check runs (the registry does not exist, so it cannot accept the credentials).
      await row.locator('[data-testid="row-actions"]').click();
      await byTestId(page, 'action-verify').click();
      const verifyDialog = byTestId(page, 'verify-dialog');
      await verifyDialog.waitFor({ state: 'visible' });
      await page.waitForFunction(() => {
        const status = document.querySelector('[data-testid="verify-status"]');
        return status && status.textContent && !/Asking|Checking|…/.test(status.textContent);
      }, null, { timeout: 60_000 });
      const verifyStatus = await byTestId(page, 'verify-status').textContent();
      assert.match(verifyStatus, /registry/i, `the check ran as the session's caller (verify is chained with the cookie): ${verifyStatus}`);
      await byTestId(page, 'verify-close').click();

      // Delete it.
      await row.locator('[data-testid="row-actions"]').click();
      await byTestId(page, 'action-delete').click();
      await byTestId(page, 'delete-dialog').waitFor({ state: 'visible' });
      await byTestId(page, 'delete-confirm').click();
      await row.waitFor({ state: 'detached' });

      assert.ok(apiCalls.length > 0);
      for (const headers of apiCalls) {
        assert.equal(headers.authorization, undefined, 'no bearer token: the cookie alone');
        assert.equal(headers['x-regsecrets-csrf'], '1', 'every call carries the anti-CSRF header');
      }

      // Sign out: the console ends the session, then the provider asks to confirm its own.
      await byTestId(page, 'signout').click();
      const confirm = page.getByRole('button', { name: 'Yes, sign me out' });
      await confirm.waitFor({ state: 'visible' });
      await confirm.click();
      await page.waitForURL(`${url}/`);
      await byTestId(page, 'signin').waitFor({ state: 'visible' });
      assert.equal(await byTestId(page, 'secrets-view').isVisible(), false);
      const after = await fetch(`${url}/v2/admin/dockerRegistrySecrets`, {
        headers: { cookie: `__Host-regsecrets-session=${session.value}` },
      });
      assert.equal(after.status, 401, 'the old cookie names no session');
    } finally {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    }
  });
});
