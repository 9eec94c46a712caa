// The list upload page: pick or drop a CRM export, preview its first rows with the column mapping
// the importer detects (POST /api/v1/imports/mapping-preview), let the user change any column's
// role (sent as the upload's `mapping` field, the CLI's mapping format as JSON), then upload it
// with a progress bar (XHR upload progress), follow the import as the server pushes it
// (server-sent events from GET …/imports/{job}/events: `progress` per committed batch, then the
// final `report`; no polling) and show the report with the rejected-rows download.
import { api, csrfToken, el } from '/assets/shell.js';

const SAMPLE_BYTES = 64 * 1024;
const PREVIEW_ROWS = 10;
const DELIMITERS = [[',', 'comma'], [';', 'semicolon'], ['\t', 'tab'], ['|', 'pipe']];

const $ = (id) => document.getElementById(id);
const form = $('upload-form');
const drop = $('drop-zone');
const fileInput = $('file-input');
const uploadError = $('upload-error');
const preview = $('preview');
const progressPanel = $('progress-panel');
const progress = $('progress');
const progressLabel = $('progress-label');
const report = $('report');

let chosen = null; // { file, sample, headers, edited }

// Column roles, as the importer names them (`attribute`: kept on the lead under its header;
// `ignore`: dropped). Every role but phone, attribute and ignore fits one column at most.
const ROLES = ['attribute', 'phone', 'crm_id', 'first_name', 'last_name', 'email', 'postal_code', 'subdivision',
  'country', 'timezone', 'priority', 'consent_type', 'consent_source', 'consent_at', 'do_not_call', 'ignore'];
const MULTI = new Set(['attribute', 'phone', 'ignore']);

function showError(node, text) {
  node.textContent = text;
  node.hidden = !text;
}

function fmtBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

const fmt = (n) => Number(n).toLocaleString('en-US');

/// RFC 4180 parsing of a text sample: quoted fields, doubled quotes, CRLF or LF.
export function parseDelimited(text, delim) {
  const rows = [];
  let row = [], field = '', quoted = false, i = 0;
  while (i < text.length) {
    const c = text[i];
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') { field += '"'; i += 2; continue; }
        quoted = false;
      } else field += c;
      i++;
      continue;
    }
    if (c === '"' && field === '') quoted = true;
    else if (c === delim) { row.push(field); field = ''; }
    else if (c === '\n' || c === '\r') {
      row.push(field); rows.push(row); row = []; field = '';
      if (c === '\r' && text[i + 1] === '\n') i++;
    } else field += c;
    i++;
  }
  if (field !== '' || row.length) { row.push(field); rows.push(row); }
  return rows;
}

/// The delimiter whose split gives the header's width (more than one column) on most lines.
export function detectDelimiter(text) {
  const head = text.split(/\r?\n/).slice(0, 30).join('\n');
  let best = { delim: ',', score: -1, width: 0 };
  for (const [d] of DELIMITERS) {
    const rows = parseDelimited(head, d).filter((r) => r.some((f) => f.trim() !== ''));
    if (!rows.length || rows[0].length < 2) continue;
    const width = rows[0].length;
    const score = rows.filter((r) => r.length === width).length;
    if (score > best.score || (score === best.score && width > best.width)) best = { delim: d, score, width };
  }
  return best.delim;
}

async function readPrefix(file) {
  const head = new Uint8Array(await file.slice(0, 4).arrayBuffer());
  const isZip = head[0] === 0x50 && head[1] === 0x4b;
  if (isZip || /\.xlsx$/i.test(file.name)) return { kind: 'xlsx' };
  const gz = head[0] === 0x1f && head[1] === 0x8b;
  let bytes, truncated;
  if (gz) {
    const reader = file.stream().pipeThrough(new DecompressionStream('gzip')).getReader();
    const parts = [];
    let n = 0;
    while (n < SAMPLE_BYTES) {
      const { value, done } = await reader.read();
      if (done) break;
      parts.push(value);
      n += value.length;
    }
    truncated = n >= SAMPLE_BYTES;
    reader.cancel().catch(() => {});
    bytes = new Uint8Array(n);
    let at = 0;
    for (const p of parts) { bytes.set(p, at); at += p.length; }
    bytes = bytes.subarray(0, SAMPLE_BYTES);
  } else {
    bytes = new Uint8Array(await file.slice(0, SAMPLE_BYTES).arrayBuffer());
    truncated = file.size > SAMPLE_BYTES;
  }
  // A cut sample ends at its last complete line (so no character is split either).
  if (truncated) bytes = bytes.subarray(0, Math.max(0, bytes.lastIndexOf(0x0a)));
  // Line by line, as the importer does: UTF-8, else Windows-1252 (Excel's usual export).
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  const cp1252 = new TextDecoder('windows-1252');
  const lines = [];
  for (let start = 0; start <= bytes.length;) {
    let end = bytes.indexOf(0x0a, start);
    if (end < 0) end = bytes.length;
    const line = bytes.subarray(start, end);
    try { lines.push(utf8.decode(line)); } catch (_) { lines.push(cp1252.decode(line)); }
    start = end + 1;
  }
  let text = lines.join('\n');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  return { kind: gz ? 'gzip' : 'text', text, sampleBytes: bytes.length, truncated };
}

async function choose(file) {
  showError(uploadError, '');
  report.hidden = true;
  progressPanel.hidden = true;
  // The list is named after the file until the user types a name.
  const name = $('list-name');
  if (!name.value || !name.dataset.edited) name.value = file.name.replace(/(\.(csv|tsv|txt|gz|xlsx))+$/i, '').replace(/[^A-Za-z0-9._-]+/g, '-').slice(0, 80);
  const sample = await readPrefix(file);
  chosen = { file, sample };
  const table = $('preview-table');
  table.replaceChildren();
  showError($('mapping-error'), '');
  $('confirm-upload').disabled = false;
  if (sample.kind === 'xlsx') {
    $('preview-summary').textContent = `${file.name} · ${fmtBytes(file.size)} · XLSX workbook: the appliance reads it on upload (no preview in the browser).`;
    preview.hidden = false;
    return;
  }
  const delim = detectDelimiter(sample.text);
  const rows = parseDelimited(sample.text, delim).filter((r) => r.some((f) => f.trim() !== ''));
  if (!rows.length) {
    showError(uploadError, 'The file is empty.');
    preview.hidden = true;
    return;
  }
  const headers = rows[0];
  const body = rows.slice(1);
  // Rows in the whole file, estimated from the sample's bytes per row (plain files only).
  sample.estimatedRows = sample.kind === 'text'
    ? (sample.truncated ? Math.round(file.size / (sample.sampleBytes / Math.max(1, rows.length))) : body.length)
    : null;
  sample.delimiter = delim;
  const delimName = DELIMITERS.find(([d]) => d === delim)[1];
  const estimate = sample.estimatedRows === null ? '' : sample.truncated ? ` · about ${fmt(sample.estimatedRows)} rows` : ` · ${fmt(body.length)} rows`;
  $('preview-summary').replaceChildren(
    el('strong', {}, file.name), ` · ${fmtBytes(file.size)}${sample.kind === 'gzip' ? ' (gzip)' : ''} · delimiter `,
    el('strong', { id: 'detected-delimiter' }, delimName), ` · ${headers.length} columns${estimate}`);

  let mapping;
  try {
    mapping = await api('POST', '/api/v1/imports/mapping-preview', { headers });
  } catch (e) {
    showError($('mapping-error'), `Could not check the column mapping: ${e.message}`);
    mapping = { columns: headers.map((h) => ({ header: h, role: 'attribute' })), error: null };
  }
  if (mapping.error) {
    showError($('mapping-error'), mapping.error);
    $('confirm-upload').disabled = true;
  }
  chosen.headers = headers;
  chosen.edited = false;
  chosen.previewError = mapping.error;
  // One role picker per column, starting from what the importer recognised.
  const pickers = mapping.columns.map((c, i) => el('select', {
    class: 'role', dataset: { role: c.role, column: String(i) }, 'aria-label': `Role of column ${headers[i] || i + 1}`,
  }, ...ROLES.map((r) => el('option', { value: r, ...(r === c.role ? { selected: '' } : {}) }, r.replace(/_/g, ' ')))));
  for (const p of pickers) {
    p.value = p.dataset.role;
    p.addEventListener('change', () => { p.dataset.role = p.value; chosen.edited = true; checkRoles(); });
  }
  table.append(
    el('thead', {},
      el('tr', {}, ...headers.map((h) => el('th', { scope: 'col' }, h))),
      el('tr', { class: 'roles' }, ...pickers.map((p) => el('td', {}, p, el('span', { class: 'badge phone order', hidden: '' }))))),
    el('tbody', {}, ...body.slice(0, PREVIEW_ROWS).map((r) =>
      el('tr', {}, ...headers.map((_, i) => el('td', {}, r[i] ?? ''))))));
  checkRoles();
  preview.hidden = false;
}

function pickers() {
  return [...document.querySelectorAll('#preview-table select.role')];
}

/// Numbers the phone columns (tried left to right) and checks the roles: at least one phone
/// column, every single-column role on one column at most. Problems disable the confirm button.
function checkRoles() {
  let n = 0;
  const seen = new Map();
  let problem = null;
  for (const p of pickers()) {
    const order = p.parentElement.querySelector('.order');
    order.hidden = p.value !== 'phone';
    if (p.value === 'phone') order.textContent = String(++n);
    const header = chosen.headers[Number(p.dataset.column)];
    if (!MULTI.has(p.value)) {
      if (seen.has(p.value)) problem ??= `Two columns are marked ${p.value.replace(/_/g, ' ')}: “${seen.get(p.value)}” and “${header}”.`;
      seen.set(p.value, header);
    }
  }
  if (!n) problem ??= 'Mark at least one column as phone: no phone column is mapped.';
  // Until the user changes a role, the importer's own verdict on the header row stands.
  if (!chosen.edited && chosen.previewError) problem = chosen.previewError;
  showError($('mapping-error'), problem ?? '');
  $('confirm-upload').disabled = Boolean(problem);
}

/// The roles as the importer's mapping format (every column explicit, recognition off).
export function mappingOf(headers, roles) {
  const m = { auto: false, phones: [], ignore: [] };
  roles.forEach((r, i) => {
    if (r === 'phone') m.phones.push(headers[i]);
    else if (r === 'ignore') m.ignore.push(headers[i]);
    else if (r !== 'attribute') m[r] = headers[i];
  });
  return m;
}

function setProgress(phase, value, label) {
  progress.dataset.phase = phase;
  if (value === null) progress.removeAttribute('value');
  else progress.value = value;
  progressLabel.textContent = label;
}

function upload(list) {
  return new Promise(async (resolve, reject) => {
    const data = new FormData();
    data.append('file', chosen.file, chosen.file.name);
    const region = $('region').value.trim().toUpperCase();
    if (region) data.append('region', region);
    data.append('duplicate_policy', $('duplicate-policy').value);
    if (chosen.edited) data.append('mapping', JSON.stringify(mappingOf(chosen.headers, pickers().map((p) => p.value))));
    const xhr = new XMLHttpRequest();
    xhr.open('POST', `/api/v1/lists/${encodeURIComponent(list)}/imports`);
    xhr.setRequestHeader('X-CSRF-Token', await csrfToken());
    xhr.responseType = 'json';
    xhr.upload.onprogress = (ev) => {
      if (!ev.lengthComputable) return;
      const pct = Math.round((ev.loaded / ev.total) * 100);
      setProgress('uploading', pct, `Uploading… ${pct}% (${fmtBytes(ev.loaded)} of ${fmtBytes(ev.total)})`);
    };
    xhr.onload = () => {
      if (xhr.status === 202) resolve(xhr.response);
      else reject(new Error(xhr.response?.message ?? `upload failed (HTTP ${xhr.status})`));
    };
    xhr.onerror = () => reject(new Error('the upload was interrupted; check the connection and try again'));
    xhr.send(data);
  });
}

// Resolves with the final report. The browser reconnects a dropped stream by itself; a finished
// job answers a reconnect with its report at once.
function follow(statusUrl) {
  const est = chosen.sample.estimatedRows;
  return new Promise((resolve, reject) => {
    const events = new EventSource(`${statusUrl}/events`);
    events.addEventListener('progress', (m) => {
      const p = JSON.parse(m.data);
      // The file's bytes give the share when the row estimate is missing.
      const share = est ? p.rows_read / est : p.bytes_total ? p.bytes_read / p.bytes_total : null;
      const pct = share === null ? null : Math.min(99, Math.round(share * 100));
      setProgress('importing', pct, `Importing… ${fmt(p.rows_read)} rows read${est ? ` of about ${fmt(est)}` : ''}`);
    });
    events.addEventListener('report', (m) => {
      events.close();
      resolve(JSON.parse(m.data));
    });
    events.addEventListener('error', (m) => {
      // A server-sent `error` event (the job vanished) carries data; a dropped connection does not.
      if (m.data) {
        events.close();
        reject(new Error(m.data));
      }
    });
  });
}

function showReport(r, statusUrl) {
  for (const k of ['rows_read', 'accepted', 'rejected', 'duplicates', 'dnc']) $(`r-${k}`).textContent = fmt(r[k] ?? 0);
  const state = $('report-state');
  state.className = r.state === 'completed' ? 'ok' : 'error';
  state.textContent = r.state === 'completed'
    ? `Completed in ${(r.elapsed_ms / 1000).toFixed(1)} s: list “${r.list}”, ${fmt(r.inserted)} new and ${fmt(r.updated)} updated leads.`
    : `The import ${r.state}: ${r.error ?? 'see the appliance log'}.`;
  const rows = [];
  const add = (outcome, map) => Object.entries(map ?? {}).sort((a, b) => b[1] - a[1])
    .forEach(([reason, n]) => rows.push(el('tr', {}, el('td', {}, outcome), el('td', {}, reason), el('td', { class: 'num' }, fmt(n)))));
  add('rejected', r.rejected_by_reason);
  add('duplicate', r.duplicates_by_reason);
  add('dnc', r.dnc_by_source);
  $('reasons').replaceChildren(
    el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, 'Outcome'), el('th', { scope: 'col' }, 'Reason'), el('th', { scope: 'col', class: 'num' }, 'Rows'))),
    el('tbody', {}, ...(rows.length ? rows : [el('tr', {}, el('td', { colspan: 3 }, 'Every row was imported.'))])));
  $('report-warnings').replaceChildren(...(r.warnings ?? []).map((w) => el('li', {}, w)));
  const link = $('rejected-link');
  link.href = `${statusUrl}/rejected.csv`;
  link.hidden = (r.rejected + r.duplicates + r.dnc) === 0;
  report.hidden = false;
}

$('confirm-upload').addEventListener('click', async () => {
  const list = $('list-name').value.trim();
  if (!/^[A-Za-z0-9._-]{1,80}$/.test(list)) {
    showError(uploadError, 'Name the list with letters, digits, dots, dashes or underscores.');
    $('list-name').focus();
    return;
  }
  showError(uploadError, '');
  $('confirm-upload').disabled = true;
  preview.hidden = true;
  progressPanel.hidden = false;
  setProgress('uploading', 0, 'Uploading…');
  try {
    const started = await upload(list);
    setProgress('importing', chosen.sample.estimatedRows ? 0 : null, 'Importing…');
    const r = await follow(started.status_url);
    setProgress('done', 100, r.state === 'completed' ? 'Done.' : `Stopped: ${r.state}.`);
    showReport(r, started.status_url);
  } catch (e) {
    progressPanel.hidden = true;
    preview.hidden = false;
    $('confirm-upload').disabled = false;
    showError(uploadError, e.message);
  }
});

function reset() {
  chosen = null;
  fileInput.value = '';
  preview.hidden = true;
  report.hidden = true;
  progressPanel.hidden = true;
  setProgress('idle', 0, '');
  drop.focus();
}

$('list-name').addEventListener('input', (ev) => { ev.target.dataset.edited = ev.target.value ? '1' : ''; });
$('cancel-upload').addEventListener('click', reset);
$('another').addEventListener('click', reset);
fileInput.addEventListener('change', () => { if (fileInput.files[0]) choose(fileInput.files[0]).catch((e) => showError(uploadError, e.message)); });
form.addEventListener('submit', (ev) => ev.preventDefault());
for (const t of ['dragenter', 'dragover']) drop.addEventListener(t, (ev) => { ev.preventDefault(); drop.classList.add('over'); });
for (const t of ['dragleave', 'drop']) drop.addEventListener(t, () => drop.classList.remove('over'));
drop.addEventListener('drop', (ev) => {
  ev.preventDefault();
  const f = ev.dataTransfer?.files?.[0];
  if (f) choose(f).catch((e) => showError(uploadError, e.message));
});
