// The admin API keys page: list (GET /api/v1/apikeys), create (POST; the token is shown once),
// revoke (DELETE /api/v1/apikeys/{id}).
import { api, el } from '/assets/shell.js';

const $ = (id) => document.getElementById(id);
const when = (iso) => (iso ? iso.replace('T', ' ').replace(/\.\d+Z$|Z$/, ' UTC') : '—');

function showError(node, text) {
  node.textContent = text;
  node.hidden = !text;
}

async function load() {
  try {
    const keys = await api('GET', '/api/v1/apikeys');
    showError($('keys-error'), '');
    const rows = keys.map((k) => {
      const revoke = el('button', { type: 'button', class: 'link', 'data-action': 'revoke' }, 'Revoke');
      revoke.addEventListener('click', async () => {
        if (!confirm(`Revoke the key ${k.name} (${k.prefix})? Clients using it stop working at once.`)) return;
        try {
          await api('DELETE', `/api/v1/apikeys/${k.id}`);
          await load();
        } catch (e) {
          showError($('keys-error'), e.message);
        }
      });
      return el('tr', { dataset: { prefix: k.prefix, id: k.id } },
        el('th', { scope: 'row' }, k.name),
        el('td', {}, el('code', {}, k.prefix)),
        el('td', {}, k.role),
        el('td', {}, k.pool ?? '—'),
        el('td', {}, when(k.created_at)),
        el('td', {}, k.created_by ?? 'command line'),
        el('td', {}, revoke));
    });
    $('keys').tBodies[0].replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { colspan: 7 }, 'No keys yet.'))]));
  } catch (e) {
    showError($('keys-error'), `Could not load the keys: ${e.message}`);
  }
}

$('key-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const err = $('key-form-error');
  const name = $('key-name').value.trim();
  if (!name) return showError(err, 'Name the key.');
  const pool = $('key-pool').value.trim();
  $('key-create').disabled = true;
  try {
    const made = await api('POST', '/api/v1/apikeys', { name, role: $('key-role').value, pool: pool || null });
    showError(err, '');
    $('key-token').textContent = made.token;
    $('key-created').hidden = false;
    $('key-name').value = '';
    $('key-pool').value = '';
    await load();
  } catch (e) {
    $('key-created').hidden = true;
    showError(err, e.message);
  } finally {
    $('key-create').disabled = false;
  }
});

load();
