// Shared by every console page: the logout button and `api()`, a fetch wrapper that sends the
// session's CSRF token on state-changing requests and turns the API's error body into an Error.
let csrf = null;

export async function whoami() {
  const resp = await fetch('/api/v1/whoami', { credentials: 'same-origin' });
  if (resp.status === 401) {
    location.assign('/login?next=' + encodeURIComponent(location.pathname));
    throw new Error('signed out');
  }
  const me = await resp.json();
  csrf = me.csrf_token;
  return me;
}

export async function csrfToken() {
  if (csrf === null) await whoami();
  return csrf;
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/// Calls the API; resolves to the parsed JSON (or null for 204), rejects with ApiError.
export async function api(method, path, body) {
  const headers = {};
  if (method !== 'GET') headers['X-CSRF-Token'] = await csrfToken();
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const resp = await fetch(path, {
    method, headers, credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (resp.status === 401) {
    location.assign('/login?next=' + encodeURIComponent(location.pathname));
    throw new ApiError(401, 'unauthorized', 'Your session has ended; sign in again.');
  }
  if (resp.status === 204) return null;
  let data = null;
  try { data = await resp.json(); } catch (_) { /* empty or not JSON */ }
  if (!resp.ok) {
    throw new ApiError(resp.status, data?.error ?? 'http_' + resp.status, data?.message ?? `HTTP ${resp.status}`);
  }
  return data;
}

/// Creates an element: el('td', {class: 'num'}, 'text', childNode, ...).
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'dataset') Object.assign(e.dataset, v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

document.getElementById('logout')?.addEventListener('click', async (ev) => {
  ev.target.disabled = true;
  try {
    await api('POST', '/api/v1/auth/logout');
  } catch (e) {
    if (e.status !== 401) console.warn('logout:', e.message);
  }
  location.assign('/login');
});
