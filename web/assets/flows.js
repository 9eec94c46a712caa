// The admin Flows page: flows (GET /api/v1/flows, GET/PUT /api/v1/flows/{name}), the JSON editor
// with problems placed on their lines (POST /api/v1/flows/validate), Connect import
// (POST /api/v1/flows/import; with the box ticked, a flow whose only findings are unsupported
// actions is saved with them skipped: allow_unsupported), numbers → flows (/api/v1/numbers) and
// hours (/api/v1/hours).
import { api, el } from '/assets/shell.js';

const $ = (id) => document.getElementById(id);
const when = (iso) => (iso ? iso.replace('T', ' ').replace(/\.\d+Z$|Z$/, ' UTC') : '—');

function showError(node, text) {
  node.textContent = text;
  node.hidden = !text;
}

const TEMPLATE = JSON.stringify({
  Version: '2019-10-30',
  StartAction: 'greet',
  Actions: [
    { Identifier: 'greet', Type: 'MessageParticipant', Parameters: { Text: 'Thanks for calling.' }, Transitions: { NextAction: 'bye', Errors: [{ NextAction: 'bye', ErrorType: 'NoMatchingError' }] } },
    { Identifier: 'bye', Type: 'DisconnectParticipant', Parameters: {}, Transitions: {} },
  ],
}, null, 2);

// ---- editor: a line-number gutter that marks the lines with problems ----------------------
let badLines = new Map(); // line → messages

function renderGutter() {
  const n = $('flow-text').value.split('\n').length;
  const nodes = [];
  for (let i = 1; i <= n; i++) {
    const msgs = badLines.get(i);
    nodes.push(msgs ? el('span', { class: 'bad', title: msgs.join('\n'), 'data-line': i }, String(i)) : String(i), '\n');
  }
  $('flow-gutter').replaceChildren(...nodes);
  $('flow-gutter').scrollTop = $('flow-text').scrollTop;
}

function goToLine(line) {
  const ta = $('flow-text');
  const lines = ta.value.split('\n');
  const start = lines.slice(0, line - 1).reduce((a, l) => a + l.length + 1, 0);
  ta.focus();
  ta.setSelectionRange(start, start + (lines[line - 1]?.length ?? 0));
  const lh = ta.scrollHeight / Math.max(1, lines.length);
  ta.scrollTop = Math.max(0, (line - 4) * lh);
}

function showProblems(problems) {
  badLines = new Map();
  for (const p of problems) {
    if (!p.line) continue;
    badLines.set(p.line, [...(badLines.get(p.line) ?? []), p.message]);
  }
  const items = problems.map((p) => {
    const where = [p.line ? `line ${p.line}${p.column ? `:${p.column}` : ''}` : null, p.action ? `action ${p.action}` : null].filter(Boolean).join(' · ');
    const li = el('li', { class: 'problem', dataset: { line: p.line ?? '', action: p.action ?? '' } },
      where ? el('button', { type: 'button', class: 'link where' }, where) : null, where ? ' — ' : null, p.message);
    li.querySelector('button')?.addEventListener('click', () => goToLine(p.line));
    return li;
  });
  $('flow-problems').replaceChildren(...items);
  renderGutter();
}

function status(text) {
  $('flow-status').textContent = text;
  $('flow-status').hidden = !text;
}

async function validate() {
  const v = await api('POST', '/api/v1/flows/validate', { text: $('flow-text').value });
  showProblems(v.problems);
  return v;
}

$('flow-text').addEventListener('input', () => { status(''); renderGutter(); });
$('flow-text').addEventListener('scroll', () => { $('flow-gutter').scrollTop = $('flow-text').scrollTop; });

$('flow-validate').addEventListener('click', async () => {
  status('');
  try {
    const v = await validate();
    if (v.valid) status('The flow is valid.');
  } catch (e) {
    showProblems([{ message: e.message }]);
  }
});

$('flow-save').addEventListener('click', async () => {
  status('');
  const name = $('flow-name').value.trim();
  if (!name) return showProblems([{ message: 'Name the flow before saving.' }]);
  $('flow-save').disabled = true;
  try {
    const v = await validate();
    if (!v.valid) return;
    const saved = await api('PUT', `/api/v1/flows/${encodeURIComponent(name)}`, { text: $('flow-text').value });
    status(`Saved ${saved.name} version ${saved.version}.`);
    await loadFlows();
  } catch (e) {
    showProblems([{ message: e.message }]);
  } finally {
    $('flow-save').disabled = false;
  }
});

async function openFlow(name) {
  try {
    const f = await api('GET', `/api/v1/flows/${encodeURIComponent(name)}`);
    $('flow-name').value = f.name;
    $('flow-text').value = f.text;
    showProblems([]);
    status(`Version ${f.version} of ${f.versions.length}.${f.skips_unsupported
      ? ' Imported with its unsupported actions skipped: saving it here needs them replaced.' : ''}`);
    $('editor').scrollIntoView();
  } catch (e) {
    showError($('flows-error'), e.message);
  }
}

$('flow-new').addEventListener('click', () => {
  $('flow-name').value = '';
  $('flow-text').value = TEMPLATE;
  showProblems([]);
  status('');
  $('flow-name').focus();
});

async function loadFlows() {
  try {
    const flows = await api('GET', '/api/v1/flows');
    showError($('flows-error'), '');
    const rows = flows.map((f) => {
      const open = el('button', { type: 'button', class: 'link', 'data-action': 'edit' }, 'Edit');
      open.addEventListener('click', () => openFlow(f.name));
      return el('tr', { dataset: { flow: f.name } },
        el('th', { scope: 'row' }, f.name,
          f.skips_unsupported ? el('span', { class: 'muted', dataset: { skips: 'unsupported' } }, ' (unsupported actions skipped)') : ''),
        el('td', { class: 'num' }, f.current_version),
        el('td', { class: 'num' }, f.versions),
        el('td', {}, f.numbers.join(', ') || '—'),
        el('td', {}, when(f.updated_at)),
        el('td', {}, open));
    });
    $('flows').tBodies[0].replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { colspan: 6 }, 'No flows yet.'))]));
    const sel = $('number-flow');
    const keep = sel.value;
    sel.replaceChildren(...flows.map((f) => el('option', { value: f.name }, f.name)));
    if (keep) sel.value = keep;
  } catch (e) {
    showError($('flows-error'), `Could not load the flows: ${e.message}`);
  }
}

// ---- import ------------------------------------------------------------------------------
let lastImport = null; // the last report shown, to enable Save as the box is ticked

// Clean flows save as they are; with the box ticked, also those whose only findings are
// unsupported actions. A saved report is done.
function updateImportSave() {
  const r = lastImport;
  const allow = $('import-allow-unsupported').checked;
  $('import-save').disabled = !r || !!r.saved_version || !(r.clean || (allow && r.problems.length === 0));
}

async function checkImport(save) {
  const err = $('import-error');
  const name = $('import-name').value.trim();
  if (!name) return showError(err, 'Give the name to save the flow under.');
  if (!$('import-text').value.trim()) return showError(err, 'Paste an export or choose its file.');
  try {
    const allowUnsupported = save && $('import-allow-unsupported').checked;
    const r = await api('POST', '/api/v1/flows/import', { name, text: $('import-text').value, save, allow_unsupported: allowUnsupported });
    lastImport = r;
    showError(err, '');
    $('import-report').hidden = false;
    const skipped = r.unsupported.length;
    $('import-summary').textContent = r.saved_version
      ? `Saved ${name} version ${r.saved_version}.${skipped ? ` ${skipped} unsupported action${skipped === 1 ? '' : 's'} skipped: ${skipped === 1 ? 'it takes its' : 'they take their'} error branch.` : ''}`
      : r.clean ? `${r.actions} actions; nothing blocks saving.` : `${r.actions} actions; ${r.unsupported.length} unsupported, ${r.problems.length} other problems.`;
    $('import-summary').className = r.clean || r.saved_version ? 'ok' : 'error';
    $('import-unsupported').replaceChildren(...r.unsupported.map((u) => el('li', { class: 'problem', dataset: { type: u.action_type } },
      el('strong', {}, u.action_type),
      `${r.saved_version ? ' is skipped' : ' is not supported'} (action ${u.action}${u.line ? `, line ${u.line}` : ''})`)));
    $('import-problems').replaceChildren(...r.problems.map((p) => el('li', { class: 'problem' }, `${p.line ? `line ${p.line}: ` : ''}${p.message}`)));
    updateImportSave();
    if (r.saved_version) await loadFlows();
  } catch (e) {
    showError(err, e.message);
  }
}

$('import-file').addEventListener('change', async () => {
  const f = $('import-file').files[0];
  if (!f) return;
  $('import-text').value = await f.text();
  lastImport = null;
  updateImportSave();
  if (!$('import-name').value) $('import-name').value = f.name.replace(/\.json$/i, '').replace(/[^A-Za-z0-9._-]+/g, '-').slice(0, 64);
});
$('import-check').addEventListener('click', () => checkImport(false));
$('import-allow-unsupported').addEventListener('change', updateImportSave);
// A new text or name needs a new check before it can be saved.
for (const id of ['import-text', 'import-name']) $(id).addEventListener('input', () => { lastImport = null; updateImportSave(); });
$('import-save').addEventListener('click', () => checkImport(true));

// ---- numbers -----------------------------------------------------------------------------
async function loadNumbers() {
  try {
    const numbers = await api('GET', '/api/v1/numbers');
    showError($('numbers-error'), '');
    const rows = numbers.map((n) => {
      const del = el('button', { type: 'button', class: 'link', 'data-action': 'remove' }, 'Remove');
      del.addEventListener('click', async () => {
        if (!confirm(`Stop running a flow for ${n.did}?`)) return;
        try {
          await api('DELETE', `/api/v1/numbers/${encodeURIComponent(n.did)}`);
          await Promise.all([loadNumbers(), loadFlows()]);
        } catch (e) {
          showError($('numbers-error'), e.message);
        }
      });
      return el('tr', { dataset: { did: n.did } }, el('th', { scope: 'row' }, n.did), el('td', {}, n.flow), el('td', {}, when(n.updated_at)), el('td', {}, del));
    });
    $('numbers').tBodies[0].replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { colspan: 4 }, 'No numbers mapped.'))]));
  } catch (e) {
    showError($('numbers-error'), `Could not load the numbers: ${e.message}`);
  }
}

$('number-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const err = $('number-form-error');
  const did = $('number-did').value.trim();
  if (!did) return showError(err, 'Give the number.');
  if (!$('number-flow').value) return showError(err, 'Save a flow first.');
  try {
    await api('PUT', `/api/v1/numbers/${encodeURIComponent(did)}`, { flow: $('number-flow').value });
    showError(err, '');
    $('number-did').value = '';
    await Promise.all([loadNumbers(), loadFlows()]);
  } catch (e) {
    showError(err, e.message);
  }
});

// ---- hours -------------------------------------------------------------------------------
const HOURS_TEMPLATE = JSON.stringify({
  time_zone: 'America/Chicago',
  weekly: ['Mon', 'Tue', 'Wed', 'Thu', 'Fri'].map((day) => ({ day, start: '08:00', end: '18:00' })),
  overrides: [{ date: '2026-12-25', name: 'Christmas', ranges: [] }],
}, null, 2);

async function loadHours() {
  try {
    const hours = await api('GET', '/api/v1/hours');
    showError($('hours-error'), '');
    const rows = hours.map((h) => {
      const c = h.config;
      const edit = el('button', { type: 'button', class: 'link' }, 'Edit');
      edit.addEventListener('click', () => {
        $('hours-name').value = c.id;
        const { id, ...rest } = c;
        $('hours-json').value = JSON.stringify(rest, null, 2);
      });
      return el('tr', { dataset: { hours: c.id } },
        el('th', { scope: 'row' }, c.id), el('td', {}, c.time_zone),
        el('td', {}, c.weekly.map((w) => `${w.day} ${w.start}–${w.end}`).join(', ')),
        el('td', { class: 'num' }, c.overrides.length),
        el('td', {}, el('span', { class: h.open_now ? 'badge' : 'badge plain' }, h.open_now ? 'open' : 'closed')),
        el('td', {}, edit));
    });
    $('hours').tBodies[0].replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { colspan: 6 }, 'No schedules yet.'))]));
  } catch (e) {
    showError($('hours-error'), `Could not load the schedules: ${e.message}`);
  }
}

$('hours-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const err = $('hours-form-error');
  const name = $('hours-name').value.trim();
  if (!name) return showError(err, 'Name the schedule.');
  let body;
  try {
    body = JSON.parse($('hours-json').value);
  } catch (e) {
    return showError(err, `Not JSON: ${e.message}`);
  }
  try {
    await api('PUT', `/api/v1/hours/${encodeURIComponent(name)}`, body);
    showError(err, '');
    await loadHours();
  } catch (e) {
    showError(err, e.message);
  }
});

$('flow-text').value = TEMPLATE;
$('hours-json').value = HOURS_TEMPLATE;
renderGutter();
loadFlows().then(loadNumbers);
loadHours();
