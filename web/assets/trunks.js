// The admin SIP trunks page: the campaigns' trunks from GET /api/v1/system, read once and on
// Refresh (no polling).
import { api, el } from '/assets/shell.js';

const $ = (id) => document.getElementById(id);

async function load() {
  try {
    const s = await api('GET', '/api/v1/system');
    $('trunks-error').hidden = true;
    const rows = s.trunks.flatMap((t) => t.used_by.map((u, i) => el('tr', { dataset: { trunk: t.uri } },
      i === 0 ? el('th', { scope: 'row', rowspan: t.used_by.length }, el('code', {}, t.uri)) : null,
      el('td', {}, u.campaign),
      el('td', {}, u.state),
      el('td', {}, String(u.cps)),
      el('td', {}, String(u.max_concurrent)))));
    $('trunks').tBodies[0].replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { colspan: 5 }, 'No campaign has a trunk yet.'))]));
  } catch (e) {
    $('trunks-error').textContent = `Could not read the trunks: ${e.message}`;
    $('trunks-error').hidden = false;
  }
}

$('trunks-refresh').addEventListener('click', load);
load();
