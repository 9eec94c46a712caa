// The Contacts page: search the contact records (GET /api/v1/contacts with the form's filters)
// and export the same search as CSV (format=csv).
import { api, el } from '/assets/shell.js';

const $ = (id) => document.getElementById(id);
const when = (iso) => (iso ? iso.replace('T', ' ').replace(/\.\d+Z$|Z$/, ' UTC') : '—');
const FIELDS = ['number', 'from', 'to', 'queue', 'agent', 'outcome'];

function query() {
  const q = new URLSearchParams();
  for (const f of FIELDS) {
    const v = $(`c-${f}`).value.trim();
    if (v) q.set(f, v);
  }
  return q;
}

async function search() {
  const q = query();
  const csv = new URLSearchParams(q);
  csv.set('format', 'csv');
  $('c-export').href = `/api/v1/contacts?${csv}`;
  try {
    const rows = await api('GET', `/api/v1/contacts?${q}`);
    $('contacts-error').hidden = true;
    $('contacts-count').textContent = rows.length === 1 ? '1 contact' : `${rows.length} contacts${rows.length === 100 ? ' (the newest 100; narrow the search or export)' : ''}`;
    $('contacts').tBodies[0].replaceChildren(...rows.map((c) => el('tr', { dataset: { contact: c.contact_id } },
      el('td', {}, when(c.started_at)), el('td', {}, c.customer_number || '—'), el('td', {}, c.did ?? '—'),
      el('td', {}, c.flow ? `${c.flow} v${c.flow_version}` : '—'), el('td', {}, c.queue ?? '—'), el('td', {}, c.agent ?? '—'),
      el('td', {}, c.outcome ?? 'in progress'), el('td', {}, when(c.ended_at)))));
  } catch (e) {
    $('contacts-error').textContent = e.message;
    $('contacts-error').hidden = false;
  }
}

$('contacts-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  search();
});

search();
