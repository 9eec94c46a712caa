// The Recordings page: search recorded contacts (GET /api/v1/recordings with the form's filters)
// and play one in the audio element (…/audio, fetched in ranges by the browser) or download it.
// Expired recordings (removed by the retention period) are listed without a player.
import { api, el } from '/assets/shell.js';

const $ = (id) => document.getElementById(id);
const when = (iso) => (iso ? iso.replace('T', ' ').replace(/\.\d+Z$|Z$/, ' UTC') : '—');
const FIELDS = ['number', 'from', 'to', 'campaign', 'agent', 'outcome'];

function query() {
  const q = new URLSearchParams();
  for (const f of FIELDS) {
    const v = $(`r-${f}`).value.trim();
    if (v) q.set(f, v);
  }
  return q;
}

function play(r) {
  $('player').hidden = false;
  $('player-title').textContent = `${r.customer_number || 'unknown caller'} → ${r.did ?? '—'}, ${when(r.started_at)}`;
  $('player-audio').src = r.audio_url;
  $('player-download').href = `${r.audio_url}?download=true`;
  $('player-audio').play().catch(() => {});
}

function action(r) {
  if (r.state !== 'available') {
    return el('td', { class: 'muted' }, r.state === 'expired' ? `expired ${when(r.expired_at)}` : 'not on this node');
  }
  const button = el('button', { type: 'button', class: 'secondary', dataset: { play: r.contact_id } }, 'Play');
  button.addEventListener('click', () => play(r));
  return el('td', {}, button);
}

async function search() {
  try {
    const rows = await api('GET', `/api/v1/recordings?${query()}`);
    $('recordings-error').hidden = true;
    $('recordings-count').textContent = rows.length === 1 ? '1 recording' : `${rows.length} recordings${rows.length === 100 ? ' (the newest 100; narrow the search)' : ''}`;
    $('recordings').tBodies[0].replaceChildren(...rows.map((r) => el('tr', { dataset: { contact: r.contact_id } },
      el('td', {}, when(r.started_at)), el('td', {}, r.customer_number || '—'), el('td', {}, r.did ?? '—'),
      el('td', {}, r.campaign ?? '—'), el('td', {}, r.agent ?? '—'), el('td', {}, r.outcome ?? 'in progress'),
      el('td', {}, r.duration_s != null ? `${Math.round(r.duration_s)} s` : '—'), action(r))));
  } catch (e) {
    $('recordings-error').textContent = e.message;
    $('recordings-error').hidden = false;
  }
}

$('recordings-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  search();
});

search();
