// The planning service, called with the signed-in key. Every error carries the service's own message.

const root = new URL('../', document.baseURI); // the page is served at <service>/app/
let key = null;

export class ApiError extends Error {
  constructor(status, body) {
    super(body.detail || `HTTP ${status}`);
    this.status = status;
    this.detail = body.detail || `HTTP ${status}`;
    this.kind = body.error || 'http_error';
    this.body = body;
  }
}

export function useKey(secret) {
  key = secret || null;
}

function url(path, query) {
  const target = new URL(path.replace(/^\//, ''), root);
  for (const [name, value] of Object.entries(query || {})) {
    if (value === null || value === undefined || value === '') continue;
    for (const item of Array.isArray(value) ? value : [value]) target.searchParams.append(name, item);
  }
  return target;
}

async function call(method, path, { query, json, form, as = 'json', ifMatch } = {}) {
  const headers = {};
  if (key) headers.Authorization = `Bearer ${key}`;
  if (ifMatch) headers['If-Match'] = ifMatch;
  let body;
  if (json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(json);
  } else if (form) {
    body = form;
  }
  let response;
  try {
    response = await fetch(url(path, query), { method, headers, body, credentials: 'omit' });
  } catch (error) {
    throw new ApiError(0, { detail: String(error.message || error), error: 'network' });
  }
  if (!response.ok) {
    const type = response.headers.get('Content-Type') || '';
    const answer = type.includes('json') ? await response.json().catch(() => ({})) : { detail: await response.text() };
    throw new ApiError(response.status, answer);
  }
  if (response.status === 204) return null;
  return as === 'blob' ? response.blob() : response.json();
}

export const api = {
  get: (path, query) => call('GET', path, { query }),
  post: (path, json) => call('POST', path, { json }),
  // `ifMatch`: the version read (a scenario's `version`); the service answers 412 if it changed since
  patch: (path, json, ifMatch) => call('PATCH', path, { json, ifMatch }),
  upload: (path, form) => call('POST', path, { form }),
  download: (path, query) => call('GET', path, { query, as: 'blob' }),
};
