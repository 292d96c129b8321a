// The console: sign-in, the list, and the add / edit / delete / use-it dialogs. Everything it
// knows comes from the public API with the user's token; what the token's claims say only decides
// which controls are offered, never what is allowed.

import * as session from './session.js';
import * as api from './api.js';
import { nameRules, nameIsValid, registryProblem, emailProblem, dockerConfigProblem } from './validate.js';
import { timeElement, relativeTime, exactTime, isDockerHub, registryLabel, pullSecretYaml, applyCommand } from './format.js';
import { resultsList, verificationBadge } from './verification.js';
import * as workload from './workload.js';

const $ = (testId, root = document) => root.querySelector(`[data-testid="${testId}"]`);
const el = (tag, props = {}, ...children) => {
  const node = Object.assign(document.createElement(tag), props);
  for (const child of children) node.append(child);
  return node;
};

const state = {
  token: null,
  identity: null,
  top: 20,
  skip: 0,
  search: '',
  total: 0,
  items: [],
  listRequest: 0,
  quotaFull: false,
  edit: null, // { name, etag } while the edit dialog is open
  deleting: null, // { name, etag } while the delete dialog is open
  returnFocus: null,
};

// ---------------------------------------------------------------- notices and errors

function notify(message) {
  $('notice').textContent = message;
}

function showBanner(testId, message) {
  const banner = $(testId);
  banner.textContent = message;
  banner.hidden = !message;
}

/** Ends the session on 401: the token is useless now, so it is forgotten, and the user is told why. */
function handleUnauthenticated() {
  if (!state.token) return; // a parallel request has already ended the session
  if (state.token === api.SESSION) {
    signOut('Your session has ended. Sign in again to continue.');
    return;
  }
  const expired = state.identity && session.isExpired(state.identity);
  const message = expired
    ? `Your token expired ${relativeTime(state.identity.expiresAt)} (${exactTime(state.identity.expiresAt)}). Paste a fresh token to continue.`
    : 'The server did not accept this token (401): it is expired, not yet valid, or not issued for regsecrets. Paste a fresh token.';
  signOut(message);
}

function forbiddenMessage(what) {
  const scopes = state.identity?.scopes.length ? state.identity.scopes.join(', ') : 'none';
  return `Your token is valid but may not ${what} (403). That needs the regsecrets.viewer or regsecrets.admin scope; this token has: ${scopes}.`;
}

// ---------------------------------------------------------------- sign-in and session

// Which ways to sign in the server offers (`/auth/session`): the identity provider, pasting a token.
const offered = { oidc: false, paste: true };

function showSignIn(message = '') {
  $('session').hidden = true;
  $('secrets-view').hidden = true;
  $('signin').hidden = false;
  $('signin-oidc').hidden = !offered.oidc;
  $('signin-paste').hidden = !offered.paste;
  $('signin-error').textContent = message;
  const input = $('token-input');
  input.value = '';
  input.setAttribute('aria-invalid', message ? 'true' : 'false');
  if (offered.paste) input.focus();
  else if (offered.oidc) $('signin-oidc').focus();
}

function signIn(token, { restoring = false } = {}) {
  let identity;
  try {
    identity = session.describe(session.claimsOf(token));
  } catch (problem) {
    if (restoring) session.forget();
    showSignIn(problem.message);
    return;
  }
  session.remember(token);
  enter(token, identity, restoring);
}

/** Signed in with the identity provider: the server holds the tokens, the browser a cookie. */
function signInWithSession(info, { restoring = false } = {}) {
  const identity = session.describe({
    tenant: info.tenant,
    sub: info.subject,
    scope: info.scopes,
    exp: Date.parse(info.expiresAt) / 1000,
  });
  enter(api.SESSION, identity, restoring);
}

function enter(token, identity, restoring) {
  state.token = token;
  state.identity = identity;
  state.skip = 0;
  state.search = '';
  $('filter-input').value = '';
  $('signin').hidden = true;
  $('token-input').value = '';
  renderSession();
  $('secrets-view').hidden = false;
  $('add-secret').hidden = !identity.canWrite;
  if (!restoring) notify('');
  document.getElementById('main').focus();
  refresh();
}

function signOut(message) {
  if (state.token === api.SESSION && !message) {
    // Here and at the provider: the server ends the session, then the browser goes to the provider.
    state.token = null;
    api.endSession().then((location) => window.location.assign(location));
    return;
  }
  session.forget();
  state.token = null;
  state.identity = null;
  state.items = [];
  state.edit = null;
  state.deleting = null;
  closeMenu(false);
  for (const dialog of document.querySelectorAll('dialog[open]')) dialog.close();
  clearCredentialFields();
  $('secrets-body').replaceChildren();
  $('quota').hidden = true;
  workload.hide();
  showBanner('list-error', '');
  notify(message ? '' : 'Signed out. The token has been forgotten.');
  showSignIn(message ?? '');
}

function renderSession() {
  const { identity } = state;
  $('session').hidden = false;
  $('session-tenant').textContent = identity.tenant ?? '(not in token)';
  const role = $('session-role');
  role.textContent = identity.role;
  role.title = identity.scopes.length ? `Scopes: ${identity.scopes.join(' ')}` : 'No scopes';
  renderExpiry();
}

function renderExpiry() {
  const expiry = $('session-expiry');
  const at = state.identity?.expiresAt;
  if (!at) {
    expiry.textContent = at === null ? 'no expiry claim' : '';
    return;
  }
  expiry.dateTime = at.toISOString();
  expiry.title = exactTime(at);
  expiry.textContent = session.isExpired(state.identity) ? `expired ${relativeTime(at)}` : relativeTime(at);
  expiry.classList.toggle('expired', session.isExpired(state.identity));
}

// ---------------------------------------------------------------- list, paging, quota

function refresh() {
  loadList();
  loadQuota();
  if (state.identity.canRead) {
    workload.load(state.token, { canWrite: state.identity.canWrite, onUnauthenticated: handleUnauthenticated });
  } else {
    workload.hide();
  }
}

async function loadList() {
  const request = ++state.listRequest;
  const table = $('secrets-table');
  table.setAttribute('aria-busy', 'true');
  try {
    const page = await api.listSecrets(state.token, { top: state.top, skip: state.skip, search: state.search });
    if (request !== state.listRequest) return; // a newer filter or page has been asked for
    state.total = Number.isInteger(page.count) ? page.count : page.resources.length;
    state.items = Array.isArray(page.resources) ? page.resources : [];
    if (state.items.length === 0 && state.skip > 0 && state.total > 0) {
      state.skip = Math.max(0, Math.floor((state.total - 1) / state.top) * state.top);
      loadList();
      return;
    }
    showBanner('list-error', '');
    table.hidden = false;
    renderRows();
  } catch (error) {
    if (request !== state.listRequest) return;
    if (error.status === 401) return handleUnauthenticated();
    state.items = [];
    $('secrets-body').replaceChildren();
    table.hidden = error.status === 403;
    showBanner('list-error', error.status === 403 ? forbiddenMessage('list secrets') : error.message);
    renderPager();
  } finally {
    if (request === state.listRequest) table.removeAttribute('aria-busy');
  }
}

async function loadQuota() {
  const box = $('quota');
  try {
    const { usage, quota } = await api.quota(state.token);
    const used = usage?.count;
    const max = quota?.maxCount;
    if (!Number.isInteger(used) || !Number.isInteger(max)) throw new Error('no quota figures');
    $('quota-text').textContent = `${used} of ${max} secrets used`;
    const meter = $('quota-meter');
    meter.max = max;
    meter.value = used;
    meter.high = Math.max(0, max - 1);
    state.quotaFull = used >= max;
    const add = $('add-secret');
    add.disabled = state.quotaFull;
    add.title = state.quotaFull ? 'The tenant\u2019s quota is used up: delete a secret first.' : '';
    box.hidden = false;
  } catch (error) {
    if (error.status === 401) return handleUnauthenticated();
    // The quota is a convenience; the list stays usable without it.
    box.hidden = true;
  }
}

function renderRows() {
  const rows = state.items.map(renderRow);
  $('secrets-body').replaceChildren(...rows);
  const empty = $('empty-state');
  if (rows.length === 0) {
    empty.textContent = state.search
      ? `No secret name contains \u201c${state.search}\u201d.`
      : state.identity.canWrite ? 'No secrets yet. Add one with \u201c+ Add New\u201d.' : 'No secrets yet.';
  }
  empty.hidden = rows.length > 0;
  renderPager();
}

function renderRow(secret) {
  const row = el('tr', { className: secret.managed ? 'managed' : '' });
  row.dataset.testid = 'secret-row';
  row.dataset.name = secret.name;

  const nameCell = el('td', { className: 'name' }, el('span', { textContent: secret.name }));
  nameCell.firstChild.dataset.testid = 'secret-name';
  nameCell.dataset.label = 'Name';
  if (secret.managed) {
    const badge = el('span', { className: 'badge', textContent: 'managed', title: 'Managed by the platform: read-only for tenant admins' });
    badge.dataset.testid = 'managed-badge';
    nameCell.append(' ', badge);
  }
  const lastCheck = verificationBadge(secret.verification);
  if (lastCheck) nameCell.append(' ', lastCheck);
  if (KIND_LABELS[secret.kind]) {
    const kind = el('span', { className: 'badge', textContent: KIND_LABELS[secret.kind], title: 'Mints a short-lived registry credential when exported' });
    kind.dataset.testid = 'kind-badge';
    nameCell.append(' ', kind);
    const expiry = el('span', { className: 'hint' });
    expiry.dataset.testid = 'secret-expires';
    if (secret.expiresAt) {
      expiry.append('current credential expires ', timeElement(secret.expiresAt, 'secret-expires-at'));
    } else {
      expiry.textContent = 'no credential minted yet';
    }
    nameCell.append(el('br'), expiry);
  }

  const registries = el('td', { className: 'registries' });
  registries.dataset.testid = 'secret-registries';
  registries.dataset.label = 'Registries';
  for (const registry of secret.registries ?? []) {
    registries.append(el('span', { className: 'chip', textContent: registryLabel(registry), title: registry }), ' ');
  }

  const created = el('td', {}, timeElement(secret.createdAt, 'secret-created'));
  created.dataset.label = 'Created';
  const modified = el('td', {}, timeElement(secret.modifiedAt, 'secret-modified'));
  modified.dataset.label = 'Modified';

  const button = el('button', {
    type: 'button',
    className: 'btn small',
    textContent: 'Actions \u25be',
  });
  button.setAttribute('aria-haspopup', 'menu');
  button.setAttribute('aria-expanded', 'false');
  button.setAttribute('aria-label', `Actions for ${secret.name}`);
  button.dataset.testid = 'row-actions';
  button.addEventListener('click', () => openMenu(button, secret));
  const actions = el('td', { className: 'actions' }, button);

  row.append(nameCell, registries, created, modified, actions);
  return row;
}

function renderPager() {
  const { skip, top, total } = state;
  const shown = state.items.length;
  $('pager-status').textContent = shown === 0
    ? (total === 0 ? '0 secrets' : `${total} secrets`)
    : `${skip + 1}\u2013${skip + shown} of ${total}`;
  $('pager-prev').disabled = skip === 0;
  $('pager-next').disabled = skip + shown >= total;
}

// ---------------------------------------------------------------- the row's Actions menu

const menu = $('actions-menu');

function openMenu(button, secret) {
  const wasOpenFor = menu.dataset.for;
  closeMenu(false);
  if (wasOpenFor === secret.name) return;
  const writable = state.identity.canWrite && !secret.managed;
  const items = [['action-use', 'Use it', () => openUse(secret.name)]];
  if (writable) {
    items.push(['action-verify', 'Verify credentials', () => openVerify(secret.name)]);
    items.push(['action-edit', 'Replace credentials\u2026', () => openEdit(secret.name)]);
    items.push(['action-delete', 'Delete\u2026', () => openDelete(secret.name)]);
  }
  menu.replaceChildren(...items.map(([testId, label, action]) => {
    const item = el('button', { type: 'button', role: 'menuitem', textContent: label, tabIndex: -1 });
    item.dataset.testid = testId;
    item.addEventListener('click', () => {
      closeMenu(false);
      state.returnFocus = button;
      action();
    });
    return item;
  }));
  if (secret.managed) {
    menu.append(el('p', { className: 'menu-note', textContent: 'Managed by the platform: read-only.' }));
  }
  menu.dataset.for = secret.name;
  menu.opener = button;
  menu.setAttribute('aria-label', `Actions for ${secret.name}`);
  menu.hidden = false;
  const box = button.getBoundingClientRect();
  menu.style.top = `${window.scrollY + box.bottom + 4}px`;
  menu.style.left = `${Math.max(8, window.scrollX + box.right - menu.offsetWidth)}px`;
  button.setAttribute('aria-expanded', 'true');
  menu.querySelector('[role=menuitem]').focus();
}

function closeMenu(refocus) {
  if (menu.hidden) return;
  menu.hidden = true;
  delete menu.dataset.for;
  menu.opener?.setAttribute('aria-expanded', 'false');
  if (refocus) menu.opener?.focus();
  menu.opener = null;
}

menu.addEventListener('keydown', (event) => {
  const items = [...menu.querySelectorAll('[role=menuitem]')];
  const index = items.indexOf(document.activeElement);
  const move = { ArrowDown: 1, ArrowUp: -1 }[event.key];
  if (move) {
    event.preventDefault();
    items[(index + move + items.length) % items.length].focus();
  } else if (event.key === 'Home' || event.key === 'End') {
    event.preventDefault();
    items[event.key === 'Home' ? 0 : items.length - 1].focus();
  } else if (event.key === 'Escape') {
    event.preventDefault();
    closeMenu(true);
  } else if (event.key === 'Tab') {
    closeMenu(true);
  }
});

document.addEventListener('click', (event) => {
  if (!menu.hidden && !menu.contains(event.target) && !menu.opener?.contains(event.target)) closeMenu(false);
});

// ---------------------------------------------------------------- verify

const verifyDialog = $('verify-dialog');

async function openVerify(name) {
  $('verify-name').textContent = name;
  $('verify-status').textContent = 'Asking the registries\u2026';
  $('verify-dialog-results').replaceChildren();
  verifyDialog.showModal();
  try {
    const report = await api.verifySecret(state.token, name);
    $('verify-status').textContent = report.ok
      ? 'Every registry accepted the credentials.'
      : 'A registry did not accept the credentials:';
    $('verify-dialog-results').replaceChildren(resultsList(report.registries, 'verify-list'));
    loadList();
  } catch (error) {
    if (error.status === 401) {
      verifyDialog.close();
      return handleUnauthenticated();
    }
    $('verify-status').textContent = error.status === 404 ? `${name} no longer exists.` : error.message;
  }
}

// ---------------------------------------------------------------- add and edit

const secretDialog = $('secret-dialog');
const secretForm = $('secret-form');
const fields = {
  name: $('field-name'),
  registry: $('field-registry'),
  username: $('field-username'),
  password: $('field-password'),
  email: $('field-email'),
  dockerconfig: $('field-dockerconfig'),
  awsKey: $('field-aws-key'),
  awsSecret: $('field-aws-secret'),
  awsRegion: $('field-aws-region'),
  awsRole: $('field-aws-role'),
  googleRegistries: $('field-google-registries'),
  googleKey: $('field-google-key'),
  azureRegistry: $('field-azure-registry'),
  azureTenant: $('field-azure-tenant'),
  azureClient: $('field-azure-client'),
  azureSecret: $('field-azure-secret'),
};

/** The fields that hold credentials or identities: cleared on every submit, never shown back. */
const SECRET_FIELDS = ['username', 'password', 'email', 'dockerconfig', 'awsKey', 'awsSecret', 'awsRole', 'googleKey', 'azureTenant', 'azureClient', 'azureSecret'];

/** The labels of the kinds that mint, as the list shows them. */
const KIND_LABELS = { awsEcr: 'AWS ECR', google: 'Google', azure: 'Azure' };

/** Credentials never stay in the page longer than one submit. */
function clearCredentialFields() {
  for (const key of SECRET_FIELDS) fields[key].value = '';
}

function selectedMode() {
  return secretForm.querySelector('input[name=mode]:checked').value;
}

function showMode(mode) {
  secretForm.querySelector(`input[name=mode][value=${mode}]`).checked = true;
  for (const field of secretForm.querySelectorAll('[data-mode]')) {
    field.hidden = !field.dataset.mode.split(' ').includes(mode);
  }
}

function renderNameRules() {
  const name = fields.name.value;
  const list = $('name-rules');
  list.replaceChildren(...nameRules(name).map((rule) => {
    const status = name === '' ? 'pending' : rule.ok ? 'ok' : 'bad';
    const item = el('li', { className: status, textContent: rule.text });
    item.dataset.rule = rule.id;
    item.dataset.status = status;
    item.prepend(el('span', { className: 'sr-only', textContent: status === 'ok' ? 'Met: ' : status === 'bad' ? 'Not met: ' : '' }));
    return item;
  }));
  fields.name.setAttribute('aria-invalid', String(name !== '' && !nameIsValid(name)));
}

function setFieldError(key, message) {
  const field = fields[key];
  const error = $(`${key}-error`);
  if (error) error.textContent = message ?? '';
  field.setAttribute('aria-invalid', message ? 'true' : 'false');
}

function resetSecretForm() {
  secretForm.reset();
  clearCredentialFields();
  for (const key of Object.keys(fields)) if (key !== 'name') setFieldError(key, null);
  showBanner('form-error', '');
  $('form-verify-results').replaceChildren();
  renderNameRules();
}

function openAdd() {
  state.edit = null;
  resetSecretForm();
  state.returnFocus = $('add-secret');
  $('secret-dialog-title').textContent = 'Add Docker registry secret';
  $('edit-summary').hidden = true;
  $('name-field').hidden = false;
  $('form-submit').textContent = 'Add secret';
  showMode('dockerhub');
  secretDialog.showModal();
  fields.name.focus();
}

function describeEdit(secret) {
  const registries = (secret.registries ?? []).map(registryLabel).join(', ') || 'none';
  const modified = new Date(secret.modifiedAt);
  const when = Number.isNaN(modified.getTime()) ? '' : ` Last modified ${relativeTime(modified)}.`;
  $('edit-summary').textContent = `Registries now: ${registries}.${when} The credentials you enter replace the stored ones; they are never shown.`;
}

/** The secret as the server has it now, or null once the user has been told why it cannot be had. */
async function currentSecret(name) {
  try {
    return await api.getSecret(state.token, name);
  } catch (error) {
    if (error.status === 401) {
      handleUnauthenticated();
      return null;
    }
    notify(error.status === 404 ? `${name} no longer exists.` : error.message);
    if (error.status === 404) loadList();
    return null;
  }
}

async function openEdit(name) {
  const found = await currentSecret(name);
  if (!found) return;
  resetSecretForm();
  state.edit = { name, etag: found.etag };
  $('secret-dialog-title').textContent = `Replace credentials of ${name}`;
  describeEdit(found.json);
  $('edit-summary').hidden = false;
  $('name-field').hidden = true;
  $('form-submit').textContent = 'Save credentials';
  const registries = found.json.registries ?? [];
  const minting = { awsEcr: 'aws', google: 'google', azure: 'azure' }[found.json.kind];
  if (minting) {
    showMode(minting);
    if (minting === 'azure' && registries.length === 1) fields.azureRegistry.value = registries[0];
    if (minting === 'google') fields.googleRegistries.value = registries.join(', ');
  } else if (registries.length === 1 && !isDockerHub(registries[0])) {
    showMode('private');
    fields.registry.value = registries[0];
  } else {
    showMode(registries.length > 1 ? 'dockerconfig' : 'dockerhub');
  }
  secretDialog.showModal();
  const first = { dockerconfig: fields.dockerconfig, aws: fields.awsKey, google: fields.googleKey, azure: fields.azureTenant };
  (first[selectedMode()] ?? fields.username).focus();
}

/** Checks every field of the chosen mode; returns whether all pass, focusing the first that does not. */
function validateForm() {
  const mode = selectedMode();
  const problems = [];
  if (!state.edit) {
    renderNameRules();
    if (!nameIsValid(fields.name.value)) problems.push(['name', null]);
  }
  const required = (key, message) => problems.push([key, fields[key].value.trim() ? null : message]);
  if (mode === 'dockerconfig') {
    problems.push(['dockerconfig', dockerConfigProblem(fields.dockerconfig.value)]);
  } else if (mode === 'aws') {
    problems.push(['awsKey', /^[A-Za-z0-9]{16,128}$/.test(fields.awsKey.value.trim()) ? null : 'Enter the access key ID (AKIA\u2026).']);
    required('awsSecret', 'Enter the secret access key.');
    problems.push(['awsRegion', /^[a-z0-9]+(-[a-z0-9]+){2,}$/.test(fields.awsRegion.value.trim()) ? null : 'Enter a region such as eu-central-1.']);
    const role = fields.awsRole.value.trim();
    problems.push(['awsRole', !role || /^arn:aws[a-z-]*:iam::[0-9]{12}:role\/.+$/.test(role) ? null : 'A role ARN looks like arn:aws:iam::123456789012:role/puller.']);
  } else if (mode === 'google') {
    required('googleRegistries', 'Enter the registries the token is for, e.g. europe-docker.pkg.dev.');
    let key = null;
    try { key = JSON.parse(fields.googleKey.value); } catch { key = null; }
    problems.push(['googleKey', key && key.type === 'service_account' ? null : 'Paste the service account key file (JSON, "type": "service_account").']);
  } else if (mode === 'azure') {
    required('azureRegistry', 'Enter the registry, e.g. myregistry.azurecr.io.');
    required('azureTenant', 'Enter the directory (tenant) ID.');
    required('azureClient', 'Enter the application (client) ID.');
    required('azureSecret', 'Enter the client secret.');
  } else {
    if (mode === 'private') problems.push(['registry', registryProblem(fields.registry.value)]);
    problems.push(['username', fields.username.value.trim() ? null : 'Enter the user name for the registry.']);
    problems.push(['password', fields.password.value ? null : 'Enter the password or access token.']);
    problems.push(['email', emailProblem(fields.email.value)]);
  }
  for (const [key, message] of problems) if (key !== 'name') setFieldError(key, message);
  const first = problems.find(([key, message]) => message || key === 'name');
  if (first) fields[first[0]].focus();
  return !first;
}

function requestBody() {
  const mode = selectedMode();
  const body = state.edit ? {} : { name: fields.name.value };
  if (mode === 'dockerconfig') {
    body.data = { '.dockerconfigjson': fields.dockerconfig.value.trim() };
    return body;
  }
  if (mode === 'aws') {
    body.aws = { accessKeyId: fields.awsKey.value.trim(), secretAccessKey: fields.awsSecret.value, region: fields.awsRegion.value.trim() };
    if (fields.awsRole.value.trim()) body.aws.roleArn = fields.awsRole.value.trim();
    return body;
  }
  if (mode === 'google') {
    const registries = fields.googleRegistries.value.split(/[\s,]+/).filter(Boolean);
    body.google = { serviceAccountKey: fields.googleKey.value, registries };
    return body;
  }
  if (mode === 'azure') {
    body.azure = {
      tenantId: fields.azureTenant.value.trim(),
      clientId: fields.azureClient.value.trim(),
      clientSecret: fields.azureSecret.value,
      registry: fields.azureRegistry.value.trim(),
    };
    return body;
  }
  if (mode === 'private') body.registry = fields.registry.value.trim();
  body.username = fields.username.value.trim();
  body.password = fields.password.value;
  if (fields.email.value.trim()) body.email = fields.email.value.trim();
  return body;
}

async function submitSecret() {
  showBanner('form-error', '');
  if (!validateForm()) return;
  const body = requestBody();
  clearCredentialFields();
  const submit = $('form-submit');
  submit.disabled = true;
  const editing = state.edit;
  const verify = secretForm.elements.verify.checked && !['aws', 'google', 'azure'].includes(selectedMode());
  $('form-verify-results').replaceChildren();
  try {
    if (editing) {
      await api.patchSecret(state.token, editing.name, editing.etag, body, { verify });
    } else {
      await api.createSecret(state.token, body, { verify });
    }
    const name = editing ? editing.name : body.name;
    secretDialog.close();
    notify(editing ? `The credentials of ${name} have been replaced.` : `Secret ${name} has been created.`);
    if (!editing) state.returnFocus = $('add-secret');
    refresh();
  } catch (error) {
    if (error.status === 401) return handleUnauthenticated();
    if (editing && error.status === 412) return reportConflict(editing.name);
    if (error.code === 'CredentialsRejected') {
      showBanner('form-error', 'Not saved: a registry did not accept these credentials. Enter them again after checking:');
      $('form-verify-results').replaceChildren(resultsList(error.details.registries, 'form-verify-list'));
      return;
    }
    if (editing && error.status === 404) {
      showBanner('form-error', `${editing.name} was deleted by someone else; nothing was saved.`);
      loadList();
      return;
    }
    showBanner('form-error', error.message);
    if (error.code === 'InvalidSecretName' || error.code === 'SecretNameExists') fields.name.focus();
  } finally {
    submit.disabled = false;
  }
}

/** A 412 means someone changed the secret after this form was opened: nothing was overwritten. */
async function reportConflict(name) {
  const conflict = `Conflict: ${name} was changed by someone else after you opened this form, so your credentials were not saved.`;
  try {
    const current = await api.getSecret(state.token, name);
    state.edit = { name, etag: current.etag };
    describeEdit(current.json);
    showBanner('form-error', `${conflict} Its current version is loaded now: enter the credentials again to replace it, or cancel.`);
  } catch (error) {
    if (error.status === 401) return handleUnauthenticated();
    showBanner('form-error', error.status === 404 ? `${conflict} It has since been deleted.` : conflict);
  }
  loadList();
}

// ---------------------------------------------------------------- delete

const deleteDialog = $('delete-dialog');

async function openDelete(name) {
  const found = await currentSecret(name);
  if (!found) return;
  state.deleting = { name, etag: found.etag };
  $('delete-name').textContent = name;
  showBanner('delete-error', '');
  deleteDialog.showModal();
  $('delete-cancel').focus();
}

async function confirmDelete() {
  const { name, etag } = state.deleting;
  const confirm = $('delete-confirm');
  confirm.disabled = true;
  try {
    await api.deleteSecret(state.token, name, etag);
    deleteDialog.close();
    state.returnFocus = $('filter-input');
    notify(`Secret ${name} has been deleted.`);
    refresh();
  } catch (error) {
    if (error.status === 401) return handleUnauthenticated();
    if (error.status === 412) {
      showBanner('delete-error', `${name} was changed by someone else after you opened this dialog, so it was not deleted. Close this dialog and review it first.`);
    } else if (error.status === 404) {
      showBanner('delete-error', `${name} has already been deleted.`);
    } else {
      showBanner('delete-error', error.message);
    }
    loadList();
  } finally {
    confirm.disabled = false;
  }
}

// ---------------------------------------------------------------- use it

const useDialog = $('use-dialog');

function openUse(name) {
  $('use-name').textContent = name;
  $('snippet-yaml').textContent = pullSecretYaml(name);
  const puller = $('puller-snippet');
  puller.hidden = !state.identity.canPull;
  $('snippet-curl').textContent = state.identity.canPull ? applyCommand(location.origin, name) : '';
  useDialog.showModal();
  $('copy-yaml').focus();
}

async function copyFrom(testId, button) {
  const text = $(testId).textContent;
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // Without clipboard permission, select the text so that Ctrl+C copies it.
    const range = document.createRange();
    range.selectNodeContents($(testId));
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    notify('Press Ctrl+C (\u2318C) to copy the selected text.');
    return;
  }
  button.textContent = 'Copied';
  setTimeout(() => { button.textContent = 'Copy'; }, 1500);
}

// ---------------------------------------------------------------- wiring

let filterTimer;

function applyFilter(value) {
  clearTimeout(filterTimer);
  state.search = value.trim();
  state.skip = 0;
  loadList();
}

function wire() {
  $('signin-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const token = $('token-input').value.trim().replace(/^Bearer\s+/i, '');
    if (!token) {
      $('signin-error').textContent = 'Paste a token first.';
      return;
    }
    signIn(token);
  });
  $('signout').addEventListener('click', () => signOut());

  const filter = $('filter-input');
  filter.addEventListener('input', () => {
    clearTimeout(filterTimer);
    filterTimer = setTimeout(() => applyFilter(filter.value), 250);
  });
  filter.addEventListener('keydown', (event) => {
    if (event.key === 'Enter') applyFilter(filter.value);
  });
  $('filter-reset').addEventListener('click', () => {
    filter.value = '';
    applyFilter('');
    filter.focus();
  });

  $('page-size').addEventListener('change', (event) => {
    state.top = Number(event.target.value);
    state.skip = 0;
    loadList();
  });
  $('pager-prev').addEventListener('click', () => {
    state.skip = Math.max(0, state.skip - state.top);
    loadList();
  });
  $('pager-next').addEventListener('click', () => {
    state.skip += state.top;
    loadList();
  });

  $('add-secret').addEventListener('click', openAdd);
  fields.name.addEventListener('input', renderNameRules);
  for (const radio of secretForm.querySelectorAll('input[name=mode]')) {
    radio.addEventListener('change', () => showMode(radio.value));
  }
  for (const key of ['registry', 'username', 'password', 'email', 'dockerconfig']) {
    fields[key].addEventListener('input', () => setFieldError(key, null));
  }
  secretForm.addEventListener('submit', (event) => {
    event.preventDefault();
    submitSecret();
  });
  $('form-cancel').addEventListener('click', () => secretDialog.close());

  deleteDialog.querySelector('form').addEventListener('submit', (event) => {
    event.preventDefault();
    confirmDelete();
  });
  $('delete-cancel').addEventListener('click', () => deleteDialog.close());

  $('copy-yaml').addEventListener('click', (event) => copyFrom('snippet-yaml', event.currentTarget));
  $('copy-curl').addEventListener('click', (event) => copyFrom('snippet-curl', event.currentTarget));

  for (const dialog of [secretDialog, deleteDialog, useDialog, verifyDialog]) {
    dialog.addEventListener('close', () => {
      if (dialog === secretDialog) {
        clearCredentialFields();
        state.edit = null;
      }
      if (dialog === deleteDialog) state.deleting = null;
      const target = state.returnFocus;
      state.returnFocus = null;
      if (target?.isConnected && !target.closest('[hidden]')) target.focus();
      else if (state.token) $('filter-input').focus();
    });
  }

  // Refresh relative times and the expiry now and then, without refetching; a session is asked
  // about, so the server refreshes its tokens before they expire.
  setInterval(async () => {
    if (!state.identity) return;
    if (state.token === api.SESSION) {
      const info = await api.sessionInfo();
      if (state.token !== api.SESSION) return;
      // No answer (the server busy refreshing in another tab, or the provider down): the session
      // is kept; the next tick asks again. Only an answer without a session signs out.
      if (!info) return;
      if (!info.session) return handleUnauthenticated();
      state.identity.expiresAt = new Date(info.session.expiresAt);
    }
    renderExpiry();
    for (const time of document.querySelectorAll('tbody time[datetime]')) {
      time.textContent = relativeTime(new Date(time.dateTime));
    }
  }, 30_000);
}

async function start() {
  const info = await api.sessionInfo();
  if (info) Object.assign(offered, { oidc: info.signIn.oidc === true, paste: info.signIn.paste !== false });
  if (info?.session) return signInWithSession(info.session, { restoring: true });
  const stored = offered.paste ? session.storedToken() : null;
  if (stored) signIn(stored, { restoring: true });
  else showSignIn();
}

wire();
workload.wire();
renderNameRules();
start();
