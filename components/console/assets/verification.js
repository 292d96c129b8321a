// Verification results in plain words: the per-registry list that the Verify action and a refused
// "Verify before saving" show, and the list's badge for the last outcome.

import { exactTime } from './format.js';

const WORDS = {
  ok: 'Accepted',
  unauthorized: 'Wrong username or password',
  forbidden: 'Logged in, but no access',
  unreachable: 'Unreachable',
  tls: 'TLS certificate not trusted',
  notARegistry: 'Not a Docker registry',
  blocked: 'Blocked (private address or plain http)',
  timeout: 'No answer in time',
};

export const verdictWords = (result) => WORDS[result] ?? 'Unknown result';

/** One line per registry: "registry: Words (HTTP 401). What to do." */
export function resultsList(registries, testId) {
  const list = document.createElement('ul');
  list.className = 'verify-results';
  list.dataset.testid = testId;
  for (const check of registries ?? []) {
    const item = document.createElement('li');
    item.className = check.result === 'ok' ? 'ok' : 'bad';
    item.dataset.testid = 'verify-result';
    item.dataset.registry = check.registry;
    item.dataset.result = check.result;
    const registry = document.createElement('strong');
    registry.textContent = check.registry;
    const status = check.httpStatus ? ` (HTTP ${check.httpStatus})` : '';
    item.append(registry, `: ${verdictWords(check.result)}${status}. ${check.message ?? ''}`);
    list.append(item);
  }
  return list;
}

/** The last outcome of a secret, or nothing if it was never checked (or changed since). */
export function verificationBadge(verification) {
  if (!verification) return null;
  const badge = document.createElement('span');
  badge.className = `badge ${verification.ok ? 'verified' : 'rejected'}`;
  badge.textContent = verification.ok ? 'verified' : 'check failed';
  const when = new Date(verification.checkedAt);
  const at = Number.isNaN(when.getTime()) ? '' : ` on ${exactTime(when)}`;
  badge.title = verification.ok
    ? `Every registry accepted the credentials when last checked${at}`
    : `A registry did not accept the credentials when last checked${at}; use Verify to see why`;
  badge.dataset.testid = 'verify-badge';
  badge.dataset.ok = String(verification.ok);
  return badge;
}
