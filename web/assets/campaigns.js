// The Campaigns page: the list (GET /api/v1/campaigns), the create / edit form (POST, PUT with the
// version it was based on; the server's validation message is shown in place), the lifecycle
// buttons (POST …/actions) and the live dashboard of the selected campaign (GET …/stats and
// GET /api/v1/agents, refreshed when the desktop socket reports an event — no polling loop; a
// slow refresh runs only while the socket is down). The chart is uPlot (vendored, MIT).
import { api, el } from '/assets/shell.js';
import uPlot from '/assets/uplot.esm.js';

const $ = (id) => document.getElementById(id);
const MANAGE = $('campaigns-panel').dataset.manage === 'true';
const when = (iso) => (iso ? iso.replace('T', ' ').replace(/\.\d+Z$|Z$/, ' UTC') : '—');
const pct = (x) => `${(x * 100).toFixed(1)}%`;
const FALLBACK_MS = 30_000; // refresh while the socket is down (not a polling loop: stops once it is back)

let campaigns = [];
let editing = null; // the campaign being edited (null: a new one)
let selected = null; // the campaign id on the dashboard
let chart = null;
const series = [[], [], [], [], []]; // time (s), dials/min, live-answer %, abandon %, cap %
let socketUp = false;
let fallback = null;
let refreshQueued = false;

function showError(node, text) {
  node.textContent = text;
  node.hidden = !text;
}

if (!MANAGE) for (const n of document.querySelectorAll('.manage')) n.hidden = true;

async function loadLists() {
  try {
    const lists = await api('GET', '/api/v1/lists');
    $('cf-lists').replaceChildren(...lists.map((l) => el('option', { value: l.id }, `${l.name} (#${l.id}, ${l.leads} leads)`)));
  } catch (e) {
    showError($('campaign-form-error'), `Could not load the lists: ${e.message}`);
  }
}

async function load() {
  try {
    campaigns = await api('GET', '/api/v1/campaigns');
    showError($('campaigns-error'), '');
  } catch (e) {
    return showError($('campaigns-error'), `Could not load the campaigns: ${e.message}`);
  }
  const rows = campaigns.map((c) => {
    const open = el('button', { type: 'button', class: 'link', 'data-action': 'dashboard' }, 'Dashboard');
    open.addEventListener('click', () => select(c.id));
    const edit = MANAGE && c.state !== 'completed' ? el('button', { type: 'button', class: 'link', 'data-action': 'edit' }, 'Edit') : null;
    edit?.addEventListener('click', () => startEdit(c));
    return el('tr', { dataset: { id: c.id, name: c.name } },
      el('th', { scope: 'row' }, c.name),
      el('td', {}, el('span', { class: `badge state-${c.state}`, 'data-state': c.state }, c.state)),
      el('td', {}, c.config.mode), el('td', {}, c.config.queue || '—'),
      el('td', { class: 'num' }, c.version), el('td', {}, when(c.updated_at)),
      el('td', { class: 'row-actions' }, open, edit));
  });
  $('campaigns').tBodies[0].replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { colspan: 7 }, 'No campaigns yet.'))]));
  if (selected !== null) showCampaign();
}

function startEdit(c) {
  editing = c;
  const cfg = c.config;
  $('campaign-form-title').textContent = `Edit ${c.name} (version ${c.version})`;
  $('campaign-save').textContent = 'Save changes';
  $('cf-name').value = c.name;
  $('cf-name').disabled = true;
  const ids = new Set(cfg.lists.map((l) => String(l.list_id)));
  for (const o of $('cf-lists').options) o.selected = ids.has(o.value);
  $('cf-mode').value = cfg.mode;
  $('cf-purpose').value = cfg.purpose;
  $('cf-caller-id').value = cfg.caller_id;
  $('cf-queue').value = cfg.queue ?? '';
  $('cf-trunk-uri').value = cfg.trunk.uri;
  $('cf-cps').value = cfg.trunk.cps;
  $('cf-concurrent').value = cfg.trunk.max_concurrent;
  $('cf-amd').value = cfg.amd;
  $('cf-window-start').value = (cfg.compliance?.window?.start ?? '08:00').slice(0, 5);
  $('cf-window-end').value = (cfg.compliance?.window?.end ?? '21:00').slice(0, 5);
  $('cf-cap').value = ((cfg.compliance?.abandon_cap ?? 0.03) * 100).toFixed(1);
  $('cf-sh-seller').value = cfg.safe_harbor.seller;
  $('cf-sh-callback').value = cfg.safe_harbor.callback_number;
  $('cf-sh-key').value = cfg.safe_harbor.opt_out_key;
  $('cf-sh-prompt').value = cfg.safe_harbor.prompt;
  showError($('campaign-form-error'), '');
  $('campaign-editor').scrollIntoView();
}

function resetForm() {
  editing = null;
  $('campaign-form').reset();
  $('cf-name').disabled = false;
  $('campaign-form-title').textContent = 'New campaign';
  $('campaign-save').textContent = 'Create campaign';
  showError($('campaign-form-error'), '');
}

/// The form's fields over the stored configuration (settings the form does not show are kept).
function configFromForm(base) {
  const cfg = structuredClone(base ?? {});
  const num = (id) => (($(id).value.trim() === '') ? NaN : Number($(id).value));
  cfg.lists = [...$('cf-lists').selectedOptions].map((o) => {
    const old = base?.lists?.find((l) => String(l.list_id) === o.value);
    return { list_id: Number(o.value), weight: old?.weight ?? 1 };
  });
  cfg.mode = $('cf-mode').value;
  cfg.purpose = $('cf-purpose').value;
  cfg.caller_id = $('cf-caller-id').value.trim();
  cfg.queue = $('cf-queue').value.trim();
  cfg.trunk = { uri: $('cf-trunk-uri').value.trim(), cps: num('cf-cps'), max_concurrent: num('cf-concurrent') };
  cfg.amd = $('cf-amd').value;
  const compliance = structuredClone(base?.compliance ?? {});
  compliance.window = { ...(compliance.window ?? {}), start: `${$('cf-window-start').value}:00`, end: `${$('cf-window-end').value}:00` };
  compliance.abandon_cap = Math.round(num('cf-cap') * 1000) / 100000;
  cfg.compliance = compliance;
  cfg.safe_harbor = {
    seller: $('cf-sh-seller').value.trim(), callback_number: $('cf-sh-callback').value.trim(),
    opt_out_key: $('cf-sh-key').value.trim(), prompt: $('cf-sh-prompt').value.trim(),
  };
  return cfg;
}

$('campaign-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const err = $('campaign-form-error');
  if (!editing && !$('cf-name').value.trim()) return showError(err, 'Name the campaign.');
  if (!$('cf-lists').selectedOptions.length) return showError(err, 'Choose at least one list.');
  for (const id of ['cf-cps', 'cf-concurrent', 'cf-cap']) {
    if ($(id).value.trim() === '' || !Number.isFinite(Number($(id).value))) return showError(err, `${$(id).labels[0].textContent} must be a number.`);
  }
  if ($('cf-sh-key').value.trim().length !== 1) return showError(err, 'The opt-out key is one keypad key.');
  $('campaign-save').disabled = true;
  try {
    let saved;
    if (editing) {
      saved = await api('PUT', `/api/v1/campaigns/${editing.id}`, { config: configFromForm(editing.config), version: editing.version });
    } else {
      saved = await api('POST', '/api/v1/campaigns', { name: $('cf-name').value.trim(), config: configFromForm(null) });
    }
    resetForm();
    $('campaign-status')?.remove();
    $('campaign-form').append(el('p', { id: 'campaign-status', class: 'ok', role: 'status' }, `Saved ${saved.name} (version ${saved.version}).`));
    selected = saved.id;
    await load();
  } catch (e) {
    showError(err, e.message);
  } finally {
    $('campaign-save').disabled = false;
  }
});
$('campaign-cancel').addEventListener('click', resetForm);
$('campaign-new').addEventListener('click', () => { resetForm(); $('cf-name').focus(); });

function select(id) {
  if (selected !== id) {
    for (const s of series) s.length = 0;
    chart?.setData(series);
  }
  selected = id;
  showCampaign();
}

function showCampaign() {
  const c = campaigns.find((x) => x.id === selected);
  if (!c) return;
  $('dashboard').hidden = false;
  $('dashboard').dataset.id = c.id;
  $('d-name').textContent = c.name;
  $('d-state').textContent = c.state;
  $('d-state').className = `badge state-${c.state}`;
  $('d-export').href = `/api/v1/campaigns/${c.id}/attempts.csv`;
  const allowed = { draft: ['start', 'complete'], running: ['pause', 'complete'], paused: ['resume', 'complete'], completed: [] }[c.state] ?? [];
  for (const b of $('d-actions').querySelectorAll('button')) b.disabled = !allowed.includes(b.dataset.action);
  refresh();
}

for (const b of $('d-actions').querySelectorAll('button')) {
  b.addEventListener('click', async () => {
    b.disabled = true;
    try {
      await api('POST', `/api/v1/campaigns/${selected}/actions`, { action: b.dataset.action });
      showError($('d-error'), '');
    } catch (e) {
      showError($('d-error'), e.message);
    }
    await load();
  });
}

function makeChart() {
  const opts = {
    width: Math.max(320, $('d-chart').clientWidth || 900), height: 240,
    scales: {
      x: { time: true },
      dpm: { range: (u, min, max) => [0, Math.max(10, Math.ceil((max ?? 0) * 1.2))] },
      pct: { range: [0, 100] },
    },
    series: [
      {},
      { label: 'Dials / min', stroke: '#1f5fbf', scale: 'dpm' },
      { label: 'Live answers %', stroke: '#1e7b34', scale: 'pct' },
      { label: 'Abandoned %', stroke: '#b3261e', scale: 'pct' },
      { label: 'Cap %', stroke: '#b3261e', dash: [6, 4], scale: 'pct' },
    ],
    axes: [{}, { scale: 'dpm', label: 'dials / min' }, { scale: 'pct', side: 1, label: '%', grid: { show: false } }],
  };
  chart = new uPlot(opts, series, $('d-chart'));
}

/// Refreshes the dashboard now; several events in a burst cause one refresh.
async function refresh() {
  if (selected === null || refreshQueued) return;
  refreshQueued = true;
  await new Promise((r) => setTimeout(r, 250));
  refreshQueued = false;
  const id = selected;
  try {
    const s = await api('GET', `/api/v1/campaigns/${id}/stats`);
    if (id !== selected) return;
    $('d-dpm').textContent = s.dials_last_minute;
    $('d-lar').textContent = s.attempts ? pct(s.live_answers / s.attempts) : '—';
    $('d-abandon').textContent = `${pct(s.abandon_rate)} (cap ${pct(s.abandon_cap)})`;
    $('d-abandon').classList.toggle('error', s.abandon_rate > s.abandon_cap);
    $('d-hopper').textContent = s.hopper_depth;
    $('d-progress').textContent = s.in_progress;
    $('d-attempts').textContent = s.attempts;
    $('d-outcomes').replaceChildren(...Object.entries(s.outcomes).map(([k, n]) => el('li', {}, `${k}: ${n}`)));
    series[0].push(Date.now() / 1000);
    series[1].push(s.dials_last_minute);
    series[2].push(s.attempts ? (100 * s.live_answers) / s.attempts : 0);
    series[3].push(100 * s.abandon_rate);
    series[4].push(100 * s.abandon_cap);
    if (!chart) makeChart(); else chart.setData(series);
    // The last ten minutes at least, so the first points do not stretch the axis over years.
    const last = series[0][series[0].length - 1];
    chart.setScale('x', { min: Math.min(series[0][0], last - 600), max: last + 5 });
    $('dashboard').dataset.refreshed = String(Number($('dashboard').dataset.refreshed ?? 0) + 1);
  } catch (e) {
    showError($('d-error'), `Could not load the figures: ${e.message}`);
  }
  await agentsByState();
}

async function agentsByState() {
  const c = campaigns.find((x) => x.id === selected);
  try {
    const q = c?.config.queue ? `?queue=${encodeURIComponent(c.config.queue)}` : '';
    const counts = await api('GET', `/api/v1/agents/states${q}`);
    const items = Object.entries(counts).map(([k, n]) => el('li', { dataset: { state: k } }, el('span', { class: `badge state-${k}` }, k), ` ${n}`));
    $('d-agents').replaceChildren(...(items.length ? items : [el('li', {}, `No agents logged in${c?.config.queue ? ` to ${c.config.queue}` : ''}.`)]));
  } catch (e) {
    $('d-agents').replaceChildren(el('li', {}, e.status === 503 ? 'The contact runtime is not running on this node.' : e.message));
  }
}

function connect() {
  const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/api/v1/agent/events`);
  ws.addEventListener('open', () => {
    socketUp = true;
    clearInterval(fallback);
    fallback = null;
    $('d-live').textContent = 'Live: refreshed on every call and agent event.';
    $('dashboard').dataset.socket = 'up';
  });
  ws.addEventListener('message', (m) => {
    const msg = JSON.parse(m.data);
    if (msg.type === 'event' || msg.type === 'lagged') refresh();
  });
  ws.addEventListener('close', () => {
    socketUp = false;
    $('dashboard').dataset.socket = 'down';
    $('d-live').textContent = `Live events unavailable; refreshing every ${FALLBACK_MS / 1000} s. Reconnecting…`;
    if (!fallback) fallback = setInterval(refresh, FALLBACK_MS);
    setTimeout(connect, 5000);
  });
}

await loadLists();
await load();
if (campaigns.length && selected === null) select(campaigns[0].id);
connect();
