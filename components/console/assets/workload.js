// Workload identity in the console: the clusters a tenant trusts (by issuer URL, keys discovered,
// or with an uploaded key set), the service accounts bound to secrets, and the switch that makes
// pulls present a pod token. The API takes the whole document at once (PUT replaces it), so each
// change reads the current document, changes one entry and writes it back; the server checks it.

import * as api from './api.js';

const $ = (testId, root = document) => root.querySelector(`[data-testid="${testId}"]`);
const el = (tag, props = {}, ...children) => {
  const node = Object.assign(document.createElement(tag), props);
  for (const child of children) node.append(child);
  return node;
};

const view = { token: null, canWrite: false, trust: null, editing: null, onUnauthenticated: () => {} };

function banner(message) {
  const node = $('wi-error');
  node.textContent = message;
  node.hidden = !message;
}

function button(text, testId, onClick, className = 'btn small') {
  const node = el('button', { type: 'button', className, textContent: text });
  node.dataset.testid = testId;
  node.addEventListener('click', onClick);
  return node;
}

function cell(text, label) {
  const td = el('td', { textContent: text });
  td.dataset.label = label;
  return td;
}

function render() {
  const trust = view.trust ?? { issuers: [], bindings: [] };
  const issuers = $('wi-issuers');
  issuers.replaceChildren(...trust.issuers.map((issuer, index) => {
    const row = el('tr');
    row.dataset.testid = 'wi-issuer-row';
    row.dataset.issuer = issuer.issuer;
    const keys = issuer.jwks ? `uploaded key set (${issuer.jwks.keys?.length ?? 0} keys)` : 'discovered from the issuer';
    row.append(cell(issuer.issuer, 'Issuer'), cell(issuer.audience, 'Audience'), cell(keys, 'Keys'));
    const actions = el('td', { className: 'actions' });
    if (view.canWrite) {
      actions.append(button('Edit', 'wi-issuer-edit', () => openIssuer(index)), ' ',
        button('Remove', 'wi-issuer-remove', () => change((t) => {
          const [gone] = t.issuers.splice(index, 1);
          t.bindings = t.bindings.filter((b) => b.issuer !== gone.issuer);
        }, `The cluster ${issuer.issuer} is no longer trusted; its bindings were removed.`)));
    }
    row.append(actions);
    return row;
  }));
  $('wi-issuers-empty').hidden = trust.issuers.length > 0;

  const bindings = $('wi-bindings');
  bindings.replaceChildren(...trust.bindings.map((binding, index) => {
    const row = el('tr');
    row.dataset.testid = 'wi-binding-row';
    row.dataset.subject = binding.subject;
    row.append(cell(binding.subject, 'Service account'), cell(binding.issuer, 'Issuer'),
      cell(binding.secrets.join(', '), 'Secrets'));
    const actions = el('td', { className: 'actions' });
    if (view.canWrite) {
      actions.append(button('Edit', 'wi-binding-edit', () => openBinding(index)), ' ',
        button('Remove', 'wi-binding-remove', () => change((t) => { t.bindings.splice(index, 1); },
          `${binding.subject} is no longer bound.`)));
    }
    row.append(actions);
    return row;
  }));
  $('wi-bindings-empty').hidden = trust.bindings.length > 0;

  const required = $('wi-require');
  required.checked = trust.requirePodToken === true;
  required.disabled = !view.canWrite;
  $('wi-add-issuer').hidden = !view.canWrite;
  $('wi-add-binding').hidden = !view.canWrite;
  $('wi-add-binding').disabled = trust.issuers.length === 0;
}

/** Loads the tenant's trust and shows it (viewers read, admins change). */
export async function load(token, { canWrite, onUnauthenticated }) {
  Object.assign(view, { token, canWrite, onUnauthenticated });
  $('workload-view').hidden = false;
  try {
    view.trust = await api.getWorkloadIdentity(token);
    banner('');
  } catch (error) {
    if (error.status === 401) return onUnauthenticated();
    view.trust = null;
    banner(error.status === 403 ? 'Your token may not read workload identity (403).' : error.message);
  }
  render();
}

export function hide() {
  view.token = null;
  view.trust = null;
  $('workload-view').hidden = true;
}

/** Reads the current document, applies `edit` to a copy, writes it back. */
async function change(edit, done) {
  try {
    const current = await api.getWorkloadIdentity(view.token);
    const next = structuredClone({ issuers: [], bindings: [], ...current });
    edit(next);
    if (!next.requirePodToken) delete next.requirePodToken;
    view.trust = await api.putWorkloadIdentity(view.token, next);
    banner('');
    $('notice').textContent = done;
    render();
    return true;
  } catch (error) {
    if (error.status === 401) {
      view.onUnauthenticated();
      return false;
    }
    banner(error.message);
    render();
    return false;
  }
}

function dialogError(dialog, message) {
  const node = dialog.querySelector('.error.banner');
  node.textContent = message;
  node.hidden = !message;
}

function openIssuer(index) {
  const dialog = $('wi-issuer-dialog');
  const issuer = index === null ? null : view.trust.issuers[index];
  view.editing = index;
  $('wi-issuer-title').textContent = issuer ? 'Edit trusted cluster' : 'Trust a cluster';
  $('wi-field-issuer').value = issuer?.issuer ?? '';
  $('wi-field-audience').value = issuer?.audience ?? 'regsecrets';
  $('wi-field-jwks').value = issuer?.jwks ? JSON.stringify(issuer.jwks, null, 2) : '';
  dialogError(dialog, '');
  dialog.showModal();
}

async function saveIssuer() {
  const dialog = $('wi-issuer-dialog');
  const issuer = $('wi-field-issuer').value.trim();
  const audience = $('wi-field-audience').value.trim();
  const jwksText = $('wi-field-jwks').value.trim();
  let jwks;
  if (jwksText) {
    try {
      jwks = JSON.parse(jwksText);
    } catch {
      return dialogError(dialog, 'The key set is not JSON: paste the output of `kubectl get --raw /openid/v1/jwks`, or leave it empty to discover the keys.');
    }
  }
  const entry = { issuer, audience, ...(jwks ? { jwks } : {}) };
  const index = view.editing;
  const before = index === null ? null : view.trust.issuers[index].issuer;
  const saved = await change((t) => {
    if (index === null) t.issuers.push(entry);
    else {
      t.issuers[index] = entry;
      for (const b of t.bindings) if (b.issuer === before) b.issuer = issuer;
    }
  }, index === null ? `The cluster ${issuer} is trusted.` : `The cluster ${issuer} has been saved.`);
  if (saved) dialog.close();
  else dialogError(dialog, $('wi-error').textContent);
}

function openBinding(index) {
  const dialog = $('wi-binding-dialog');
  const binding = index === null ? null : view.trust.bindings[index];
  view.editing = index;
  $('wi-binding-title').textContent = binding ? 'Edit binding' : 'Bind a service account';
  const select = $('wi-field-binding-issuer');
  select.replaceChildren(...view.trust.issuers.map((i) => el('option', { value: i.issuer, textContent: i.issuer })));
  select.value = binding?.issuer ?? view.trust.issuers[0]?.issuer ?? '';
  const prefix = 'system:serviceaccount:';
  const [namespace, name] = binding ? binding.subject.slice(prefix.length).split(':') : ['', ''];
  $('wi-field-namespace').value = namespace ?? '';
  $('wi-field-account').value = name ?? '';
  $('wi-field-secrets').value = binding ? binding.secrets.join(', ') : '';
  dialogError(dialog, '');
  dialog.showModal();
}

async function saveBinding() {
  const dialog = $('wi-binding-dialog');
  const namespace = $('wi-field-namespace').value.trim();
  const account = $('wi-field-account').value.trim() || '*';
  const secrets = $('wi-field-secrets').value.split(',').map((s) => s.trim()).filter(Boolean);
  const entry = {
    issuer: $('wi-field-binding-issuer').value,
    subject: `system:serviceaccount:${namespace}:${account}`,
    secrets,
  };
  const index = view.editing;
  const saved = await change((t) => {
    if (index === null) t.bindings.push(entry);
    else t.bindings[index] = entry;
  }, `${entry.subject} may pull with ${secrets.join(', ')}.`);
  if (saved) dialog.close();
  else dialogError(dialog, $('wi-error').textContent);
}

export function wire() {
  $('wi-add-issuer').addEventListener('click', () => openIssuer(null));
  $('wi-add-binding').addEventListener('click', () => openBinding(null));
  $('wi-issuer-dialog').querySelector('form').addEventListener('submit', (event) => {
    event.preventDefault();
    saveIssuer();
  });
  $('wi-binding-dialog').querySelector('form').addEventListener('submit', (event) => {
    event.preventDefault();
    saveBinding();
  });
  $('wi-issuer-cancel').addEventListener('click', () => $('wi-issuer-dialog').close());
  $('wi-binding-cancel').addEventListener('click', () => $('wi-binding-dialog').close());
  $('wi-require').addEventListener('change', (event) => {
    const on = event.target.checked;
    change((t) => { t.requirePodToken = on; },
      on ? 'Pulls now need a pod token: a node\u2019s token alone gets nothing.' : 'Pulls no longer need a pod token.');
  });
}
