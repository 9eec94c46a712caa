// The login form: POST /api/v1/auth/login (JSON); errors shown in place; on success go to the
// page that sent us here (a local path only) or the console home.
const form = document.getElementById('login-form');
const error = document.getElementById('login-error');
const submit = document.getElementById('login-submit');

function nextPage() {
  const next = new URLSearchParams(location.search).get('next') || '/';
  // Only a path on this site: not "//host" nor "/\host", which browsers treat as another origin.
  return /^\/(?![\/\\])/.test(next) ? next : '/';
}

function showError(text) {
  error.textContent = text;
  error.hidden = false;
}

form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  error.hidden = true;
  const username = form.username.value.trim();
  const password = form.password.value;
  if (!username || !password) {
    showError('Enter your user name and password.');
    return;
  }
  submit.disabled = true;
  try {
    const resp = await fetch('/api/v1/auth/login', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ username, password }),
      credentials: 'same-origin',
    });
    if (resp.ok) {
      location.assign(nextPage());
      return;
    }
    let message = `Login failed (HTTP ${resp.status}).`;
    try {
      const body = await resp.json();
      if (body.message) message = body.message.charAt(0).toUpperCase() + body.message.slice(1) + '.';
    } catch (_) { /* not JSON: keep the status line */ }
    showError(message);
    form.password.select();
  } catch (e) {
    showError('Cannot reach the appliance. Check your connection and try again.');
  } finally {
    submit.disabled = false;
  }
});
