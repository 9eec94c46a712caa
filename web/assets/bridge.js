// The admin Bridge page: DNIS pools with their usage (GET /api/v1/bridge/pools), creating a pool
// (POST), and the migration router's table (GET / PUT / DELETE /api/v1/bridge/routes).
import { api, el } from '/assets/shell.js';

const $ = (id) => document.getElementById(id);

function showError(node, text) {
  node.textContent = text;
  node.hidden = !text;
}

const KIND = { number: 'dialled number', line_of_business: 'line of business', site: 'site' };

async function loadPools() {
  try {
    const pools = await api('GET', '/api/v1/bridge/pools');
    showError($('pools-error'), '');
    const rows = pools.map((p) => {
      const total = p.numbers.length;
      const bar = el('meter', { min: 0, max: Math.max(1, total), value: p.leased, high: Math.max(1, total) * 0.8, optimum: 0,
        title: `${p.leased} of ${total} leased` });
      return el('tr', { dataset: { pool: p.name } },
        el('th', { scope: 'row' }, p.name),
        el('td', {}, p.direction.replace('_', ' ')),
        el('td', { class: 'num' }, total),
        el('td', {}, bar, ` ${total ? Math.round((p.leased / total) * 100) : 0}%`),
        el('td', { class: 'num' }, p.leased),
        el('td', { class: 'num' }, p.available),
        el('td', { class: 'num' }, `${p.lease_ttl_s} s`),
        el('td', { class: 'num' }, `${p.cooldown_s} s`));
    });
    $('pools').tBodies[0].replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { colspan: 8 }, 'No pools yet.'))]));
  } catch (e) {
    showError($('pools-error'), `Could not load the pools: ${e.message}`);
  }
}

async function loadRoutes() {
  try {
    const routes = await api('GET', '/api/v1/bridge/routes');
    showError($('routes-error'), '');
    const rows = routes.map((r) => {
      const del = el('button', { type: 'button', class: 'link' }, 'Delete');
      del.addEventListener('click', async () => {
        if (!confirm(`Delete the route for ${KIND[r.match_kind]} ${r.match_value}?`)) return;
        try {
          await api('DELETE', `/api/v1/bridge/routes/${encodeURIComponent(r.match_kind)}/${encodeURIComponent(r.match_value)}`);
          await loadRoutes();
        } catch (e) {
          showError($('routes-error'), e.message);
        }
      });
      return el('tr', { dataset: { kind: r.match_kind, value: r.match_value } },
        el('td', {}, KIND[r.match_kind] ?? r.match_kind),
        el('th', { scope: 'row' }, r.match_value),
        el('td', { class: 'num' }, `${r.legacy_percent}%`),
        el('td', {}, r.local_flow ?? '—'),
        el('td', {}, r.legacy_target ?? '—'),
        el('td', {}, del));
    });
    $('routes').tBodies[0].replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { colspan: 6 }, 'No routes: every call takes its default path.'))]));
  } catch (e) {
    showError($('routes-error'), `Could not load the routes: ${e.message}`);
  }
}

$('pool-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const err = $('pool-form-error');
  const numbers = $('pool-numbers').value.split(/[\s,;]+/).map((n) => n.trim()).filter(Boolean);
  if (!$('pool-name').value.trim()) return showError(err, 'Name the pool.');
  if (!numbers.length) return showError(err, 'Give the pool at least one number.');
  const body = {
    name: $('pool-name').value.trim(),
    direction: $('pool-direction').value,
    numbers,
    lease_ttl_s: $('pool-ttl').value ? Number($('pool-ttl').value) : null,
    cooldown_s: $('pool-cooldown').value ? Number($('pool-cooldown').value) : null,
  };
  $('pool-create').disabled = true;
  try {
    await api('POST', '/api/v1/bridge/pools', body);
    showError(err, '');
    $('pool-name').value = '';
    $('pool-numbers').value = '';
    await loadPools();
  } catch (e) {
    showError(err, e.message);
  } finally {
    $('pool-create').disabled = false;
  }
});

$('route-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const err = $('route-form-error');
  const pct = Number($('route-percent').value);
  if (!$('route-value').value.trim()) return showError(err, 'Give the value to match.');
  if (!Number.isInteger(pct) || pct < 0 || pct > 100) return showError(err, 'The share to legacy is a whole number from 0 to 100.');
  const opt = (v) => (v.trim() ? v.trim() : null);
  const body = {
    match_kind: $('route-kind').value,
    match_value: $('route-value').value.trim(),
    legacy_percent: pct,
    local_flow: opt($('route-flow').value),
    legacy_target: opt($('route-target').value),
  };
  $('route-save').disabled = true;
  try {
    await api('PUT', '/api/v1/bridge/routes', body);
    showError(err, '');
    $('route-value').value = '';
    await loadRoutes();
  } catch (e) {
    showError(err, e.message);
  } finally {
    $('route-save').disabled = false;
  }
});

loadPools();
loadRoutes();
