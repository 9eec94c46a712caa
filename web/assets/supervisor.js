// The supervisor view: live agents (GET /api/v1/agents) and queue figures
// (GET /api/v1/queues/{queue}/stats), refreshed when the desktop socket reports an event (no
// polling loop); force an agent's state (PUT /api/v1/agents/{agent}/state); listen / whisper /
// barge into a connected contact (POST /api/v1/contacts/{contact}/supervise) with the
// supervisor's own phone.
import { api, el } from '/assets/shell.js';

const $ = (id) => document.getElementById(id);
const secs = (ms) => `${Math.round(ms / 1000)} s`;
const KEY = 'dialbridge.supervisor.queues';
const ENDPOINT_KEY = 'dialbridge.supervisor.endpoint';
let queues = new Set((localStorage.getItem(KEY) ?? '').split(',').map((q) => q.trim()).filter(Boolean));
let queued = false;

function showError(text) {
  $('sup-error').textContent = text;
  $('sup-error').hidden = !text;
}

function stateName(state) {
  return typeof state === 'string' ? state : Object.keys(state)[0];
}

function stateText(state) {
  if (typeof state === 'string') return state;
  const [k, v] = Object.entries(state)[0];
  return k === 'NotRoutable' ? `Break: ${v}` : k === 'AfterContactWork' ? 'After-contact work' : k;
}

function forceControl(a) {
  const sel = el('select', { 'aria-label': `State for ${a.id}`, 'data-role': 'force-status' },
    el('option', { value: 'available' }, 'Available'), el('option', { value: 'break' }, 'Break'), el('option', { value: 'offline' }, 'Offline'));
  const go = el('button', { type: 'button', class: 'link', 'data-action': 'force' }, 'Force');
  go.addEventListener('click', async () => {
    const status = sel.value;
    const body = { status, reason: status === 'break' ? 'Supervisor' : null };
    try {
      await api('PUT', `/api/v1/agents/${encodeURIComponent(a.id)}/state`, body);
      showError('');
    } catch (e) {
      showError(`${a.id}: ${e.message}`);
    }
    refresh();
  });
  return el('span', {}, sel, ' ', go);
}

function superviseControl(a) {
  if (stateName(a.state) !== 'OnContact' || !a.contact) return el('span', { class: 'muted' }, '—');
  const wrap = el('span', { class: 'row-actions' });
  for (const mode of ['listen', 'whisper', 'barge']) {
    const b = el('button', { type: 'button', class: 'link', 'data-action': mode }, mode[0].toUpperCase() + mode.slice(1));
    b.addEventListener('click', async () => {
      const value = $('sup-endpoint').value.trim();
      if (!value) return showError('Give your phone first: it is called to join the contact.');
      localStorage.setItem(ENDPOINT_KEY, JSON.stringify({ kind: $('sup-endpoint-kind').value, value }));
      b.disabled = true;
      try {
        await api('POST', `/api/v1/contacts/${encodeURIComponent(a.contact)}/supervise`, { mode, endpoint: { kind: $('sup-endpoint-kind').value, value } });
        showError('');
        $('sup-live').textContent = `You are in ${a.contact} (${mode}).`;
      } catch (e) {
        showError(`${mode}: ${e.message}`);
      } finally {
        b.disabled = false;
      }
    });
    wrap.append(b, ' ');
  }
  return wrap;
}

async function loadAgents() {
  const agents = await api('GET', '/api/v1/agents');
  const rows = agents.map((a) => el('tr', { dataset: { agent: a.id, state: stateName(a.state) } },
    el('th', { scope: 'row' }, a.id),
    el('td', {}, el('span', { class: `badge state-${stateName(a.state)}` }, stateText(a.state))),
    el('td', {}, new Date(a.since_ms).toLocaleTimeString()),
    el('td', {}, `${a.endpoint.value} (${a.mode === 'nailed_up' ? `nailed-up, ${a.leg_up ? 'up' : 'down'}` : 'ring per offer'})`),
    el('td', {}, a.contact ?? '—'),
    el('td', { class: 'num' }, a.contacts_handled),
    el('td', {}, forceControl(a)),
    el('td', {}, superviseControl(a))));
  $('agents').tBodies[0].replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { colspan: 8 }, 'No agents logged in.'))]));
}

async function loadQueues() {
  const rows = [];
  for (const q of queues) {
    try {
      const s = await api('GET', `/api/v1/queues/${encodeURIComponent(q)}/stats`);
      rows.push(el('tr', { dataset: { queue: q } }, el('th', { scope: 'row' }, q),
        el('td', { class: 'num' }, s.waiting), el('td', { class: 'num' }, secs(s.oldest_wait_ms)),
        el('td', { class: 'num' }, s.agents_available), el('td', { class: 'num' }, s.agents_staffed),
        el('td', { class: 'num' }, s.answered), el('td', { class: 'num' }, s.abandoned),
        el('td', { class: 'num' }, `${(s.service_level * 100).toFixed(0)}%`),
        el('td', { class: 'num' }, secs(s.asa_ms)), el('td', { class: 'num' }, secs(s.aht_ms))));
    } catch (e) {
      rows.push(el('tr', { dataset: { queue: q } }, el('th', { scope: 'row' }, q), el('td', { colspan: 9, class: 'error' }, e.message)));
    }
  }
  $('queues').tBodies[0].replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { colspan: 10 }, 'Name the queues to watch above.'))]));
}

/// Refreshes agents and queues; a burst of events causes one refresh.
async function refresh() {
  if (queued) return;
  queued = true;
  await new Promise((r) => setTimeout(r, 200));
  queued = false;
  try {
    await loadAgents();
    await loadQueues();
    document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed ?? 0) + 1);
  } catch (e) {
    showError(`Could not load the live view: ${e.message}`);
  }
}

$('queue-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  queues = new Set($('queue-names').value.split(',').map((q) => q.trim()).filter(Boolean));
  localStorage.setItem(KEY, [...queues].join(','));
  refresh();
});

function connect() {
  const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/api/v1/agent/events`);
  ws.addEventListener('open', () => { $('sup-live').textContent = 'Live.'; document.body.dataset.socket = 'up'; });
  ws.addEventListener('message', (m) => {
    const msg = JSON.parse(m.data);
    if (msg.type === 'event' && msg.event.event === 'contact_queued' && !queues.has(msg.event.queue)) {
      queues.add(msg.event.queue);
      $('queue-names').value = [...queues].join(', ');
    }
    if (msg.type === 'event' || msg.type === 'lagged') refresh();
  });
  ws.addEventListener('close', () => {
    $('sup-live').textContent = 'Live events unavailable; reconnecting…';
    document.body.dataset.socket = 'down';
    setTimeout(connect, 5000);
  });
}

$('queue-names').value = [...queues].join(', ');
try {
  const saved = JSON.parse(localStorage.getItem(ENDPOINT_KEY) ?? 'null');
  if (saved) { $('sup-endpoint-kind').value = saved.kind; $('sup-endpoint').value = saved.value; }
} catch (_) { /* nothing saved */ }
refresh();
connect();
