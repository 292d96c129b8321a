// Presentation helpers: times, registry labels and the "use it" snippets.

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
const exact = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'long' });
const STEPS = [
  ['year', 365 * 24 * 3600], ['month', 30 * 24 * 3600], ['week', 7 * 24 * 3600],
  ['day', 24 * 3600], ['hour', 3600], ['minute', 60],
];

export function relativeTime(date, now = Date.now()) {
  const seconds = Math.round((date.getTime() - now) / 1000);
  if (Math.abs(seconds) < 45) return seconds <= 0 ? 'just now' : 'in a few seconds';
  for (const [unit, size] of STEPS) {
    if (Math.abs(seconds) >= size) return relative.format(Math.round(seconds / size), unit);
  }
  return relative.format(Math.round(seconds / 60), 'minute');
}

export const exactTime = (date) => exact.format(date);

/** A <time> element showing a relative time, the exact one in its title and datetime. */
export function timeElement(iso, testId) {
  const el = document.createElement('time');
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) {
    el.textContent = '\u2014';
    return el;
  }
  el.dateTime = date.toISOString();
  el.title = exactTime(date);
  el.textContent = relativeTime(date);
  if (testId) el.dataset.testid = testId;
  return el;
}

const DOCKER_HUB = /^(https?:\/\/)?(index\.|registry-1\.)?docker\.io(\/v1\/?)?$/;

export const isDockerHub = (registry) => DOCKER_HUB.test(registry);

export function registryLabel(registry) {
  return isDockerHub(registry) ? 'Docker Hub' : registry.replace(/^https?:\/\//, '').replace(/\/$/, '');
}

export function pullSecretYaml(name) {
  return `imagePullSecrets:\n  - name: ${name}`;
}

export function applyCommand(origin, name) {
  const url = `${origin}/v2/admin/dockerRegistrySecrets/${encodeURIComponent(name)}/credentials`;
  return `curl -fsS -H "Authorization: Bearer $TOKEN" ${url} | kubectl apply -f -`;
}
