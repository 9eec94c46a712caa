// Browser tests of the web console (issue 8, acceptance 1, 2 and 5), driven by playwright-core in
// Debian's chromium. Started by tests/console_browser.rs against a real appliance; runnable by
// hand with the same environment:
//
//   DIALBRIDGE_URL            http://127.0.0.1:PORT of a running appliance
//   ADMIN_PASSWORD            the `admin` user's password
//   AGENT_USER / AGENT_PASSWORD, MANAGER_USER / MANAGER_PASSWORD   an agent and a campaign manager
//   CSV_FILE                  a messy CRM export to upload; EXPECTED its expected report (JSON)
//   ARTIFACTS                 where screenshots go
//
// Steps run in order and stop at the first failure (with a screenshot of the page as it was);
// the exit code is 0 only when every step passed.
import { launch } from './lib.mjs';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { spawn } from 'node:child_process';
import os from 'node:os';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`set ${k}`);
  return v;
};
const BASE = env('DIALBRIDGE_URL');
const ARTIFACTS = env('ARTIFACTS');
const CSV_FILE = env('CSV_FILE');
const EXPECTED = JSON.parse(env('EXPECTED'));
const ADMIN = { user: 'admin', password: env('ADMIN_PASSWORD') };
const AGENT = { user: env('AGENT_USER'), password: env('AGENT_PASSWORD') };
const MANAGER = { user: env('MANAGER_USER'), password: env('MANAGER_PASSWORD') };
const SUPERVISOR = { user: env('SUPERVISOR_USER'), password: env('SUPERVISOR_PASSWORD') };
// The agent's phone (a sipp UAS started by tests/console_browser.rs) and a list imported by the CLI.
const AGENT_PHONE = env('AGENT_PHONE');
const CAMPAIGN_LIST_ID = env('CAMPAIGN_LIST_ID');
// The supervisor's phone (another sipp UAS), the appliance's SIP address and a number routed to
// a flow that queues callers for the agents.
const SUPERVISOR_PHONE = env('SUPERVISOR_PHONE');
const SIP_TARGET = env('SIP_TARGET');
const CALL_NUMBER = env('CALL_NUMBER');

fs.mkdirSync(ARTIFACTS, { recursive: true });

const browser = await launch();

let current = null; // the page to photograph when a step fails
let passed = 0;
const consoleErrors = [];

async function step(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
  } catch (e) {
    console.log(`not ok - ${name}`);
    console.error(e);
    if (current) {
      const shot = path.join(ARTIFACTS, 'FAILED.png');
      await current.screenshot({ path: shot, fullPage: true }).catch(() => {});
      console.error(`page at failure: ${current.url()} (screenshot ${shot})`);
    }
    await browser.close();
    process.exit(1);
  }
  if (consoleErrors.length) {
    console.log(`not ok - ${name}: the browser logged errors`);
    console.error(consoleErrors.join('\n'));
    await browser.close();
    process.exit(1);
  }
  passed++;
  console.log(`ok - ${name} (${Date.now() - t0} ms)`);
}

async function shot(page, name) {
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`  screenshot ${file}`);
}

async function newPage() {
  const context = await browser.newContext({ baseURL: BASE, acceptDownloads: true, viewport: { width: 1280, height: 860 } });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  page.on('pageerror', (e) => consoleErrors.push(`${page.url()}: ${e.message}`));
  // Errors the browser logs (a CSP violation, a failed module import); answers with an error
  // status are expected in these tests (401 for a wrong password, 403 pages) and left out.
  page.on('console', (m) => {
    if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) consoleErrors.push(`${page.url()}: ${m.text()}`);
  });
  current = page;
  return page;
}

async function login(page, who) {
  if (new URL(page.url()).pathname !== '/login') await page.goto('/login');
  await page.fill('#username', who.user);
  await page.fill('#password', who.password);
  await page.click('#login-submit');
}

async function csrf(page) {
  const me = await (await page.request.get('/api/v1/whoami')).json();
  return me.csrf_token;
}

async function navLabels(page) {
  return page.locator('header nav a').allTextContents();
}

/// Minimal RFC 4180 reader for the downloaded CSV (fields may be quoted and hold newlines).
function parseCsv(text) {
  const rows = [];
  let row = [], field = '', quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i++; }
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') { row.push(field); field = ''; }
    else if (c === '\n') { row.push(field.replace(/\r$/, '')); rows.push(row); row = []; field = ''; }
    else field += c;
  }
  if (field || row.length) { row.push(field); rows.push(row); }
  return rows;
}

const digits = (s) => Number(String(s).replace(/[^0-9]/g, ''));

// ---------------------------------------------------------------------------------------------

const anon = await newPage();

await step('health and metrics are open; pages, assets and APIs need a session', async () => {
  assert.equal((await anon.request.get('/healthz')).status(), 200);
  assert.equal((await anon.request.get('/metrics')).status(), 200);
  assert.equal((await anon.request.get('/api/v1/bridge/pools')).status(), 401);
  assert.equal((await anon.request.get('/api/v1/whoami')).status(), 401);
  const doc = await (await anon.request.get('/api/openapi.json')).json();
  assert.ok(doc.paths['/api/v1/imports/mapping-preview'], 'the console API route is in the OpenAPI document');
  for (const page of ['/', '/login', '/lists', '/admin/bridge', '/assets/{name}']) assert.ok(!doc.paths[page], `${page} is a page, not an API route`);
  assert.equal((await anon.request.get('/assets/lists.js')).status(), 401, 'page scripts need a session');
  assert.equal((await anon.request.get('/assets/login.js')).status(), 200, 'the login page works without one');
  for (const p of ['/', '/lists', '/admin/bridge']) {
    const r = await anon.request.get(p, { maxRedirects: 0 });
    assert.equal(r.status(), 303, `${p} without a session`);
    assert.match(r.headers().location, /^\/login/);
  }
  await anon.goto('/lists');
  assert.equal(new URL(anon.url()).pathname, '/login');
  await shot(anon, '01-login');
});

await step('a wrong password is refused with a message in place', async () => {
  await login(anon, { user: 'admin', password: 'not-the-password' });
  const error = anon.locator('#login-error');
  await error.waitFor({ state: 'visible' });
  assert.match(await error.textContent(), /wrong user name or password/i);
  assert.equal(new URL(anon.url()).pathname, '/login');
  assert.equal((await anon.context().cookies()).filter((c) => c.name === 'dialbridge_session').length, 0);
  await shot(anon, '02-login-refused');
});

const admin = await newPage();

await step('the admin logs in, lands on the page asked for and sees every console page', async () => {
  await admin.goto('/admin/bridge');
  assert.equal(new URL(admin.url()).pathname, '/login');
  await login(admin, ADMIN);
  await admin.waitForURL((u) => u.pathname === '/admin/bridge');
  const cookie = (await admin.context().cookies()).find((c) => c.name === 'dialbridge_session');
  assert.ok(cookie?.httpOnly, 'the session cookie is HttpOnly');
  await admin.goto('/login');
  assert.equal(new URL(admin.url()).pathname, '/', 'the login form sends a signed-in user home');
  assert.equal(await admin.textContent('#who-user'), 'admin');
  assert.equal(await admin.textContent('#who-role'), 'admin');
  assert.deepEqual(await navLabels(admin), ['Home', 'Lists', 'Campaigns', 'Desktop', 'Supervisor', 'Contacts', 'Recordings', 'Flows', 'Users', 'API keys', 'Bridge', 'Queues', 'Trunks', 'System']);
  await shot(admin, '03-home-admin');
});

await step('the admin creates a DNIS pool and a migration route on the Bridge page', async () => {
  await admin.click('header nav >> text=Bridge');
  await admin.waitForURL((u) => u.pathname === '/admin/bridge');
  await admin.fill('#pool-name', 'legacy-sales');
  await admin.fill('#pool-numbers', '+13125550100\n+13125550101, +13125550102\n+13125550103');
  await admin.selectOption('#pool-direction', 'to_legacy');
  await admin.click('#pool-create');
  const row = admin.locator('#pools tr[data-pool="legacy-sales"]');
  await row.waitFor();
  assert.deepEqual((await row.locator('td').allTextContents()).slice(0, 2), ['to legacy', '4']);

  // A lease (as a PBX would take) shows in the usage after a reload.
  const lease = await admin.request.post('/api/v1/bridge/leases', {
    headers: { 'X-CSRF-Token': await csrf(admin) }, data: { pool: 'legacy-sales', data: { account: 'A-1' } },
  });
  assert.equal(lease.status(), 201, await lease.text());
  await admin.reload();
  await row.waitFor();
  const cells = await row.locator('td').allTextContents();
  assert.equal(cells[2].trim(), '25%', `usage column: ${cells}`);
  assert.equal(cells[3], '1');
  assert.equal(cells[4], '3');

  // The same name again: refused, and the API's message is shown in place.
  await admin.fill('#pool-name', 'legacy-sales');
  await admin.fill('#pool-numbers', '+13125550199');
  await admin.click('#pool-create');
  await admin.locator('#pool-form-error').waitFor({ state: 'visible' });
  assert.match(await admin.textContent('#pool-form-error'), /legacy-sales|exists|taken/i);

  await admin.selectOption('#route-kind', 'number');
  await admin.fill('#route-value', '+18005550100');
  await admin.fill('#route-percent', '25');
  await admin.fill('#route-target', 'sip:sales@legacy-pbx.example');
  await admin.click('#route-save');
  // The API's validation message, in place: a split needs a local flow for the other calls.
  await admin.locator('#route-form-error').waitFor({ state: 'visible' });
  assert.match(await admin.textContent('#route-form-error'), /local_flow/);
  await admin.fill('#route-flow', 'sales-ivr');
  await admin.click('#route-save');
  const route = admin.locator('#routes tr[data-value="+18005550100"]');
  await route.waitFor();
  assert.match(await route.textContent(), /25%sales-ivrsip:sales@legacy-pbx\.example/);
  await admin.fill('#route-percent', '250');
  await admin.fill('#route-value', '+18005550101');
  await admin.click('#route-save');
  await admin.locator('#route-form-error').waitFor({ state: 'visible' });
  const routes = await (await admin.request.get('/api/v1/bridge/routes')).json();
  assert.deepEqual(routes.map((r) => [r.match_value, r.legacy_percent]), [['+18005550100', 25]]);
  await admin.fill('#route-percent', '100');
  await admin.fill('#route-value', '');
  await admin.locator('#route-form-error').evaluate((e) => { e.hidden = true; });
  await admin.locator('#pool-form-error').evaluate((e) => { e.hidden = true; });
  await admin.fill('#pool-name', '');
  await admin.fill('#pool-numbers', '');
  await shot(admin, '04-bridge');
});

// ---- admin pages: API keys, users, flows (editor, import, numbers, hours), contacts ----------

admin.on('dialog', (d) => d.accept()); // the pages confirm before revoking or deleting

await step('the admin creates an API key, sees it once, and revoking it stops it at once', async () => {
  await admin.click('header nav >> text=API keys');
  await admin.waitForURL((u) => u.pathname === '/admin/apikeys');
  await admin.fill('#key-name', 'pbx-chicago');
  await admin.selectOption('#key-role', 'legacy-pbx');
  await admin.click('#key-create');
  await admin.locator('#key-form-error').waitFor({ state: 'visible' });
  assert.match(await admin.textContent('#key-form-error'), /pool/);
  await admin.fill('#key-pool', 'legacy-sales');
  await admin.click('#key-create');
  await admin.locator('#key-created').waitFor({ state: 'visible' });
  const token = await admin.textContent('#key-token');
  const prefix = /^dbk_([a-z0-9]{8})_/.exec(token)?.[1];
  assert.ok(prefix, `a token is shown once: ${token}`);
  const row = admin.locator(`#keys tr[data-prefix="${prefix}"]`);
  await row.waitFor();
  assert.deepEqual((await row.locator('td').allTextContents()).slice(1, 3), ['legacy-pbx', 'legacy-sales']);
  assert.ok(!(await admin.locator('#keys').textContent()).includes(token.slice(14)), 'the list never shows the secret');
  const who = await admin.request.get('/api/v1/whoami', { headers: { Authorization: `Bearer ${token}` } });
  assert.equal(who.status(), 200);
  assert.equal((await who.json()).scope, 'legacy-sales');
  await shot(admin, '09-apikeys');
  await row.locator('[data-action="revoke"]').click();
  await row.waitFor({ state: 'detached' });
  assert.equal((await admin.request.get('/api/v1/whoami', { headers: { Authorization: `Bearer ${token}` } })).status(), 401);
});

await step('the admin adds an agent with skills, sees a bad skill refused in place, edits and disables them', async () => {
  await admin.click('header nav >> text=Users');
  await admin.waitForURL((u) => u.pathname === '/admin/users');
  await admin.locator('#users tr[data-user="admin"]').waitFor();
  await admin.fill('#user-username', 'bea');
  await admin.fill('#user-display', 'Bea Agent');
  await admin.selectOption('#user-role', 'agent');
  await admin.fill('#user-password', 'bea-Secret-9');
  await admin.fill('#user-skills', 'sales:9');
  await admin.click('#user-save');
  await admin.locator('#user-form-error').waitFor({ state: 'visible' });
  assert.match(await admin.textContent('#user-form-error'), /1\.\.=5/);
  await admin.fill('#user-skills', 'sales:4, billing:2');
  await admin.click('#user-save');
  const row = admin.locator('#users tr[data-user="bea"]');
  await row.waitFor();
  assert.deepEqual(await row.locator('td.skills .badge').allTextContents(), ['billing 2', 'sales 4']);
  await row.locator('[data-action="edit"]').click();
  assert.equal(await admin.inputValue('#user-skills'), 'billing:2, sales:4');
  await admin.fill('#user-skills', 'support:5');
  await admin.click('#user-save');
  await row.locator('td.skills >> text=support 5').waitFor();
  const bea = await newPage();
  await login(bea, { user: 'bea', password: 'bea-Secret-9' });
  await bea.waitForURL((u) => u.pathname === '/');
  current = admin;
  await row.locator('[data-action="edit"]').click();
  await admin.check('#user-disabled');
  await admin.click('#user-save');
  await row.locator('text=disabled').waitFor();
  assert.equal((await bea.request.get('/api/v1/whoami')).status(), 401, 'disabling ends the session');
  await bea.context().close();
  await shot(admin, '10-users');
});

await step('the admin edits a flow: problems are shown on their lines, a valid flow saves as a new version', async () => {
  await admin.click('header nav >> text=Flows');
  await admin.waitForURL((u) => u.pathname === '/admin/flows');
  const template = await admin.inputValue('#flow-text');
  const broken = template.replace('"NextAction": "bye",', '"NextAction": "nowhere",');
  assert.notEqual(broken, template);
  await admin.fill('#flow-name', 'main-ivr');
  await admin.fill('#flow-text', broken);
  await admin.click('#flow-save');
  const problem = admin.locator('#flow-problems li[data-action="greet"]').filter({ hasText: 'nowhere' });
  await problem.waitFor();
  const line = Number(await problem.getAttribute('data-line'));
  assert.ok(broken.split('\n')[line - 1].includes('"greet"'), `line ${line} declares the action`);
  assert.equal(await admin.locator(`#flow-gutter .bad[data-line="${line}"]`).count(), 1, 'the gutter marks the line');
  assert.equal(await admin.isVisible('#flow-status'), false, 'nothing was saved');
  await admin.fill('#flow-text', '{\n  "Version": "2019-10-30",\n  "Actions": [\n');
  await admin.click('#flow-validate');
  await admin.locator('#flow-problems li[data-line="4"]').waitFor();
  await admin.fill('#flow-text', broken);
  await admin.click('#flow-validate');
  await problem.waitFor();
  await shot(admin, '11-flows-editor');
  await admin.fill('#flow-text', template);
  await admin.click('#flow-save');
  await admin.locator('#flow-status').waitFor({ state: 'visible' });
  assert.match(await admin.textContent('#flow-status'), /Saved main-ivr version 1/);
  assert.equal(await admin.locator('#flow-problems li').count(), 0);
  await admin.locator('#flows tr[data-flow="main-ivr"]').waitFor();
});

await step('importing a Connect export names the unsupported action; it saves only with the box ticked', async () => {
  const exportText = fs.readFileSync(new URL('../../inbound/tests/fixtures/connect_rolling_dnis_receive.json', import.meta.url), 'utf8');
  await admin.setInputFiles('#import-file', { name: 'rollingDnisReceive.json', mimeType: 'application/json', buffer: Buffer.from(exportText) });
  await admin.waitForFunction(() => document.getElementById('import-text').value.length > 100);
  assert.equal(await admin.inputValue('#import-name'), 'rollingDnisReceive');
  await admin.click('#import-check');
  const item = admin.locator('#import-unsupported li[data-type="UpdateContactData"]');
  await item.waitFor();
  assert.match(await item.textContent(), /UpdateContactData is not supported \(action [0-9a-f-]+, line \d+\)/);
  assert.ok(await admin.isDisabled('#import-save'), 'an unclean flow cannot be saved');
  await shot(admin, '12-flows-import');
  assert.equal((await admin.request.get('/api/v1/flows/rollingDnisReceive')).status(), 404);
  // Ticked: saved with the unsupported action skipped, which the report and the list say.
  await admin.check('#import-allow-unsupported');
  assert.ok(await admin.isEnabled('#import-save'), 'with the box ticked it can be saved');
  await admin.click('#import-save');
  await admin.locator('#import-summary', { hasText: 'Saved rollingDnisReceive version 1' }).waitFor();
  assert.match(await admin.textContent('#import-summary'), /1 unsupported action skipped/);
  assert.match(await item.textContent(), /UpdateContactData is skipped \(action [0-9a-f-]+, line \d+\)/);
  assert.ok(await admin.isDisabled('#import-save'), 'saved once');
  await admin.locator('#flows tr[data-flow="rollingDnisReceive"] [data-skips="unsupported"]').waitFor();
  const saved = await (await admin.request.get('/api/v1/flows/rollingDnisReceive')).json();
  assert.equal(saved.skips_unsupported, true);
});

await step('the admin maps a number to the flow and saves hours of operation', async () => {
  await admin.fill('#number-did', '+1800555');
  await admin.selectOption('#number-flow', 'main-ivr');
  await admin.click('#number-save');
  await admin.locator('#number-form-error').waitFor({ state: 'visible' });
  assert.match(await admin.textContent('#number-form-error'), /E\.164/);
  await admin.fill('#number-did', '+18005550100');
  await admin.click('#number-save');
  await admin.locator('#numbers tr[data-did="+18005550100"]').waitFor();
  await admin.locator('#flows tr[data-flow="main-ivr"] >> text=+18005550100').waitFor();
  await admin.fill('#hours-name', 'support-hours');
  await admin.fill('#hours-json', '{"time_zone": "Mars/Olympus", "weekly": []}');
  await admin.click('#hours-save');
  await admin.locator('#hours-form-error').waitFor({ state: 'visible' });
  assert.match(await admin.textContent('#hours-form-error'), /Mars\/Olympus/);
  const hours = { time_zone: 'UTC', weekly: ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'].map((day) => ({ day, start: '00:00', end: '24:00' })), overrides: [] };
  await admin.fill('#hours-json', JSON.stringify(hours, null, 2));
  await admin.click('#hours-save');
  const row = admin.locator('#hours tr[data-hours="support-hours"]');
  await row.waitFor();
  assert.match(await row.textContent(), /open/);
  await admin.locator('#hours-form-error').evaluate((e) => { e.hidden = true; });
  await admin.locator('#number-form-error').evaluate((e) => { e.hidden = true; });
  await shot(admin, '13-flows-numbers-hours');
});

await step('the admin searches contacts and exports the search as CSV', async () => {
  await admin.click('header nav >> text=Contacts');
  await admin.waitForURL((u) => u.pathname === '/contacts');
  await admin.locator('#contacts-count').filter({ hasText: 'contacts' }).waitFor();
  await admin.fill('#c-number', '+13125550100');
  await admin.selectOption('#c-outcome', 'queued');
  await admin.click('#c-search');
  await admin.waitForFunction(() => document.getElementById('c-export').href.includes('outcome=queued'));
  assert.match(await admin.getAttribute('#c-export', 'href'), /number=%2B13125550100.*format=csv/);
  const [download] = await Promise.all([admin.waitForEvent('download'), admin.click('#c-export')]);
  const text = fs.readFileSync(await download.path(), 'utf8');
  assert.match(text, /^contact_id,started_at,ended_at,did,customer_number,flow,flow_version,queue,agent,outcome,attributes/);
  await shot(admin, '14-contacts');
});

await step('logging out ends the session', async () => {
  await admin.click('#logout');
  await admin.waitForURL((u) => u.pathname === '/login');
  assert.equal((await admin.request.get('/api/v1/whoami')).status(), 401);
  await admin.goto('/');
  assert.equal(new URL(admin.url()).pathname, '/login');
});

const agent = await newPage();

await step('an agent cannot open admin or list pages (403) nor call admin APIs (403)', async () => {
  await login(agent, AGENT);
  await agent.waitForURL((u) => u.pathname === '/');
  assert.equal(await agent.textContent('#who-role'), 'agent');
  assert.deepEqual(await navLabels(agent), ['Home', 'Desktop']);
  await shot(agent, '05-home-agent');
  for (const p of ['/admin/bridge', '/admin/users', '/lists']) {
    const resp = await agent.goto(p);
    assert.equal(resp.status(), 403, p);
    assert.match(await agent.textContent('#forbidden'), /agent.*may not open this page/);
  }
  await agent.goto('/admin/bridge');
  await shot(agent, '06-agent-forbidden');
  const token = await csrf(agent);
  const headers = { 'X-CSRF-Token': token };
  assert.equal((await agent.request.get('/api/v1/bridge/pools')).status(), 403);
  assert.equal((await agent.request.get('/api/v1/bridge/routes')).status(), 403);
  assert.equal((await agent.request.post('/api/v1/bridge/pools', { headers, data: { name: 'x', numbers: ['+13125550111'], direction: 'to_legacy' } })).status(), 403);
  assert.equal((await agent.request.put('/api/v1/bridge/routes', { headers, data: { match_kind: 'site', match_value: 'x', legacy_percent: 1 } })).status(), 403);
  assert.equal((await agent.request.post('/api/v1/imports/mapping-preview', { headers, data: { headers: ['Phone'] } })).status(), 403);
  const upload = await agent.request.post('/api/v1/lists/x/imports', {
    headers, multipart: { file: { name: 'a.csv', mimeType: 'text/csv', buffer: Buffer.from('Phone\n3125550100\n') } },
  });
  assert.equal(upload.status(), 403);
  // And without the CSRF token a cookie request that changes state is refused whatever the role.
  assert.equal((await agent.request.post('/api/v1/auth/logout')).status(), 403);
});

await step('an agent cannot open the users, keys, flows or contacts pages (403) nor call their APIs (403)', async () => {
  current = agent;
  for (const p of ['/admin/apikeys', '/admin/users', '/admin/flows', '/contacts']) {
    const resp = await agent.goto(p);
    assert.equal(resp.status(), 403, p);
    assert.match(await agent.textContent('#forbidden'), /agent.*may not open this page/);
  }
  const headers = { 'X-CSRF-Token': await csrf(agent) };
  for (const p of ['/api/v1/apikeys', '/api/v1/users', '/api/v1/flows', '/api/v1/numbers', '/api/v1/hours', '/api/v1/contacts']) {
    assert.equal((await agent.request.get(p)).status(), 403, p);
  }
  assert.equal((await agent.request.post('/api/v1/apikeys', { headers, data: { name: 'x', role: 'admin' } })).status(), 403);
  assert.equal((await agent.request.post('/api/v1/users', { headers, data: { username: 'x', role: 'admin', password: 'xxxxxxxxxx' } })).status(), 403);
  assert.equal((await agent.request.put('/api/v1/flows/x', { headers, data: { text: '{}' } })).status(), 403);
  for (const a of ['/assets/apikeys.js', '/assets/users.js', '/assets/flows.js', '/assets/contacts.js']) {
    assert.equal((await anon.request.get(a)).status(), 401, `${a} needs a session`);
  }
});

const manager = await newPage();

await step('a campaign manager sees the mapping problem of a file without a phone column', async () => {
  await login(manager, MANAGER);
  await manager.waitForURL((u) => u.pathname === '/');
  assert.deepEqual(await navLabels(manager), ['Home', 'Lists', 'Campaigns']);
  assert.equal((await manager.goto('/admin/bridge')).status(), 403);
  await manager.goto('/lists');
  await manager.setInputFiles('#file-input', { name: 'contacts.csv', mimeType: 'text/csv', buffer: Buffer.from('Name|Email\nAda|ada@example.com\n') });
  await manager.locator('#mapping-error').waitFor({ state: 'visible' });
  assert.match(await manager.textContent('#mapping-error'), /no phone column/);
  assert.equal(await manager.textContent('#detected-delimiter'), 'pipe');
  assert.ok(await manager.isDisabled('#confirm-upload'));
  await manager.click('#cancel-upload');
});

await step('the preview reads gzip, tabs, and quoted fields holding commas and newlines', async () => {
  const tsv = 'Contact ID\tMobile Phone\tNotes\r\nC-1\t312 555 0100\tcall after 5\r\nC-2\t312 555 0101\tnone\r\n';
  await manager.setInputFiles('#file-input', { name: 'hubspot.tsv.gz', mimeType: 'application/gzip', buffer: zlib.gzipSync(tsv) });
  await manager.locator('#preview-table [data-role]').first().waitFor();
  assert.equal(await manager.textContent('#detected-delimiter'), 'tab');
  assert.match(await manager.textContent('#preview-summary'), /\(gzip\)/);
  let roles = await manager.locator('#preview-table [data-role]').evaluateAll((bs) => bs.map((b) => b.dataset.role));
  assert.deepEqual(roles, ['crm_id', 'phone', 'attribute']);
  assert.equal(await manager.inputValue('#list-name'), 'hubspot');
  await manager.click('#cancel-upload');

  const csv = '"Id","Full Name","Phone","Comment"\n1,"Smith, John",3125550100,"two\nlines"\n2,"O\'Neil ""Bo""",3125550101,x\n';
  await manager.setInputFiles('#file-input', { name: 'zoho.csv', mimeType: 'text/csv', buffer: Buffer.from(csv) });
  await manager.locator('#preview-table [data-role]').first().waitFor();
  assert.equal(await manager.textContent('#detected-delimiter'), 'comma');
  const cells = await manager.locator('#preview-table tbody tr').evaluateAll((trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent)));
  assert.deepEqual(cells, [['1', 'Smith, John', '3125550100', 'two\nlines'], ['2', 'O\'Neil "Bo"', '3125550101', 'x']]);
  roles = await manager.locator('#preview-table [data-role]').evaluateAll((bs) => bs.map((b) => b.dataset.role));
  assert.deepEqual(roles, ['crm_id', 'attribute', 'phone', 'attribute']);
  await manager.click('#cancel-upload');
});

await step('a campaign manager changes column roles in the preview and the import follows them', async () => {
  // "Office" is not a header the importer recognises as a phone, and "Acct" not as a CRM id.
  const csv = 'Acct,Office,Cell,Notes\nA1,312-555-0101,,first\nA2,312-555-0102,212-555-0123,second\nA3,,415-555-2671,third\nA1,312-555-0199,,again\n';
  await manager.setInputFiles('#file-input', { name: 'remap.csv', mimeType: 'text/csv', buffer: Buffer.from(csv) });
  await manager.locator('#preview-table select.role').first().waitFor();
  const roles = () => manager.locator('#preview-table [data-role]').evaluateAll((bs) => bs.map((b) => b.dataset.role));
  assert.deepEqual(await roles(), ['attribute', 'attribute', 'phone', 'attribute']);
  assert.equal(await manager.isDisabled('#confirm-upload'), false);

  // No phone column left: refused in the page before anything is sent.
  await manager.selectOption('#preview-table select.role[data-column="2"]', 'attribute');
  assert.match(await manager.textContent('#mapping-error'), /no phone column/);
  assert.ok(await manager.isDisabled('#confirm-upload'));
  // Two CRM id columns: refused too, naming both.
  await manager.selectOption('#preview-table select.role[data-column="0"]', 'crm_id');
  await manager.selectOption('#preview-table select.role[data-column="2"]', 'crm_id');
  assert.match(await manager.textContent('#mapping-error'), /Two columns are marked crm id: “Acct” and “Cell”/);
  // Office first, then Cell; Acct is the CRM id; Notes dropped.
  await manager.selectOption('#preview-table select.role[data-column="1"]', 'phone');
  await manager.selectOption('#preview-table select.role[data-column="2"]', 'phone');
  await manager.selectOption('#preview-table select.role[data-column="3"]', 'ignore');
  assert.deepEqual(await roles(), ['crm_id', 'phone', 'phone', 'ignore']);
  assert.deepEqual(await manager.locator('#preview-table .order:not([hidden])').allTextContents(), ['1', '2']);
  assert.equal(await manager.isVisible('#mapping-error'), false);
  await manager.fill('#list-name', 'remapped');
  await manager.click('#confirm-upload');
  await manager.locator('#report').waitFor({ state: 'visible', timeout: 60_000 });
  // The changed mapping rode along with the file: with the recognised one it would be 2 accepted
  // and 2 rejected (rows without a Cell number), and A1 would not be deduped.
  assert.deepEqual(await Promise.all(['rows_read', 'accepted', 'rejected', 'duplicates', 'dnc'].map(async (k) => digits(await manager.textContent(`#r-${k}`)))),
    [4, 3, 0, 1, 0]);
  const reasons = await manager.locator('#reasons tbody tr').evaluateAll((trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent)));
  assert.deepEqual(reasons, [['duplicate', 'duplicate_in_file', '1']], 'A1 twice: deduped on the mapped CRM id');
  await manager.click('#another');
  await manager.fill('#list-name', ''); // the next file names the list again
});

await step('a campaign manager drops a messy CSV, confirms the mapping, sees progress, the report, and downloads the rejected rows', async () => {
  // Record every state the progress bar goes through (the page itself keeps no history).
  await manager.evaluate(() => {
    const p = document.getElementById('progress');
    window.__progress = [];
    new MutationObserver(() => window.__progress.push({ phase: p.dataset.phase, value: p.getAttribute('value') }))
      .observe(p, { attributes: true, attributeFilter: ['data-phase', 'value'] });
  });
  const bytes = fs.readFileSync(CSV_FILE);
  const dt = await manager.evaluateHandle(({ b64, name }) => {
    const bin = atob(b64);
    const buf = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) buf[i] = bin.charCodeAt(i);
    const t = new DataTransfer();
    t.items.add(new File([buf], name, { type: 'text/csv' }));
    return t;
  }, { b64: bytes.toString('base64'), name: 'salesforce-export.csv' });
  await manager.dispatchEvent('#drop-zone', 'dragenter', { dataTransfer: dt });
  await manager.dispatchEvent('#drop-zone', 'drop', { dataTransfer: dt });

  await manager.locator('#preview').waitFor({ state: 'visible' });
  await manager.locator('#preview-table [data-role]').first().waitFor();
  assert.equal(await manager.textContent('#detected-delimiter'), EXPECTED.delimiter_name);
  assert.equal(await manager.isVisible('#mapping-error'), false);
  const heads = await manager.locator('#preview-table thead th').allTextContents();
  assert.equal(heads[0].charCodeAt(0) === 0xfeff, false, 'the BOM is not part of the first header');
  const roles = await manager.locator('#preview-table [data-role]').evaluateAll((bs) => bs.map((b) => b.dataset.role));
  assert.equal(roles.length, heads.length);
  assert.ok(roles.filter((r) => r === 'phone').length >= 1, `phones detected: ${roles}`);
  assert.ok(roles.includes('crm_id'), `crm id detected: ${roles}`);
  assert.equal(await manager.locator('#preview-table tbody tr').count(), 10);
  assert.equal(await manager.inputValue('#list-name'), 'salesforce-export');
  await manager.fill('#list-name', 'spring');
  await shot(manager, '07-lists-preview');

  await manager.click('#confirm-upload');
  await manager.locator('#report').waitFor({ state: 'visible', timeout: 120_000 });
  const seen = await manager.evaluate(() => window.__progress);
  const phases = [...new Set(seen.map((s) => s.phase))];
  assert.deepEqual(phases.filter((p) => p !== 'idle'), ['uploading', 'importing', 'done'], JSON.stringify(seen.slice(0, 20)));
  assert.ok(seen.some((s) => s.phase === 'uploading' && s.value === '100'), 'the upload bar reached 100%');
  assert.equal(seen.at(-1).value, '100');
  // The importer commits in batches of 20,000 rows and the page polls every 400 ms, so a batch
  // committed before the last one shows as partial progress.
  assert.ok(seen.some((s) => s.phase === 'importing' && Number(s.value) > 0 && Number(s.value) < 100), 'import progress between 0 and 100%');
  console.log(`  progress went through ${seen.length} states: ${seen.map((s) => `${s.phase}:${s.value ?? '…'}`).join(' ')}`);

  for (const k of ['rows_read', 'accepted', 'rejected', 'duplicates', 'dnc']) {
    assert.equal(digits(await manager.textContent(`#r-${k}`)), EXPECTED[k], k);
  }
  assert.match(await manager.textContent('#report-state'), /Completed/);
  const reasons = await manager.locator('#reasons tbody tr').evaluateAll((trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent)));
  for (const [reason, n] of Object.entries(EXPECTED.rejected_by_reason)) {
    assert.ok(reasons.some(([o, r, c]) => o === 'rejected' && r === reason && Number(c.replace(/,/g, '')) === n), `${reason}: ${n} in ${JSON.stringify(reasons)}`);
  }
  await shot(manager, '08-lists-report');

  const [download] = await Promise.all([manager.waitForEvent('download'), manager.click('#rejected-link')]);
  const text = fs.readFileSync(await download.path(), 'utf8');
  fs.writeFileSync(path.join(ARTIFACTS, 'rejected.csv'), text);
  const rows = parseCsv(text).filter((r) => r.length > 1);
  assert.deepEqual(rows[0].slice(0, 3), ['source_row', 'outcome', 'reason']);
  const body = rows.slice(1);
  assert.equal(body.length, EXPECTED.rejected + EXPECTED.duplicates + EXPECTED.dnc, 'every row not imported is in the download');
  for (const [reason, n] of Object.entries(EXPECTED.rejected_by_reason)) {
    assert.equal(body.filter((r) => r[1] === 'rejected' && r[2] === reason).length, n, `downloaded rows rejected for ${reason}`);
  }
  assert.equal(body.filter((r) => r[1] === 'rejected').length, EXPECTED.rejected);
  console.log(`  downloaded ${download.suggestedFilename()}: ${body.length} rows`);
});

// Campaigns, agent desktop and supervisor view (issue 8: console pages).
const refreshes = async (page) => Number(await page.getAttribute('#dashboard', 'data-refreshed') ?? 0);

await step('a campaign manager creates a campaign in the browser; the server refuses a bad trunk with its message in place', async () => {
  current = manager;
  await manager.goto('/campaigns');
  await manager.locator(`#cf-lists option[value="${CAMPAIGN_LIST_ID}"]`).waitFor({ state: 'attached' });
  await manager.fill('#cf-name', 'pilot-renewals');
  await manager.selectOption('#cf-lists', CAMPAIGN_LIST_ID);
  await manager.selectOption('#cf-mode', 'progressive');
  await manager.fill('#cf-caller-id', '+13125550000');
  await manager.fill('#cf-queue', 'default');
  await manager.fill('#cf-trunk-uri', 'http://carrier.example');
  await manager.fill('#cf-sh-seller', 'Acme');
  await manager.fill('#cf-sh-callback', '+13125550001');
  await manager.fill('#cf-sh-prompt', 'safe-harbor.wav');
  await manager.click('#campaign-save');
  await manager.locator('#campaign-form-error').waitFor({ state: 'visible' });
  assert.match(await manager.textContent('#campaign-form-error'), /trunk\.uri .*not a sip: URI/);
  assert.equal(await manager.locator('#campaigns tbody tr[data-name]').count(), 0, 'nothing saved');
  await manager.fill('#cf-trunk-uri', 'sip:127.0.0.1:9');
  await manager.click('#campaign-save');
  const row = manager.locator('#campaigns tbody tr[data-name="pilot-renewals"]');
  await row.waitFor();
  assert.equal(await row.locator('[data-state]').textContent(), 'draft');
  assert.match(await manager.textContent('#campaign-status'), /Saved pilot-renewals \(version 1\)/);
  // Edit: the cap goes down to 2 %, the version goes up; settings the form does not show are kept.
  await row.locator('[data-action="edit"]').click();
  assert.equal(await manager.inputValue('#cf-trunk-uri'), 'sip:127.0.0.1:9');
  await manager.fill('#cf-cap', '2');
  await manager.click('#campaign-save');
  await manager.locator('#campaigns tbody tr[data-name="pilot-renewals"] td.num', { hasText: '2' }).waitFor();
  const [saved] = await (await manager.request.get('/api/v1/campaigns')).json();
  assert.equal(saved.config.compliance.abandon_cap, 0.02);
  assert.equal(saved.config.compliance.max_attempts_per_lead, 3, 'defaults the form does not show are kept');
  await shot(manager, '15-campaigns');
});

await step('the campaign manager starts and pauses it on the live dashboard (chart, figures, CSV export)', async () => {
  await manager.locator('#campaigns tbody tr[data-name="pilot-renewals"] [data-action="dashboard"]').click();
  await manager.locator('#dashboard[data-socket="up"]').waitFor();
  await manager.click('#d-start');
  await manager.locator('#d-state', { hasText: 'running' }).waitFor();
  await manager.locator('#d-chart .uplot canvas').waitFor();
  assert.match(await manager.textContent('#d-abandon'), /cap 2\.0%/);
  for (const id of ['#d-dpm', '#d-hopper', '#d-progress', '#d-attempts']) {
    assert.match(await manager.textContent(id), /^\d+$/, id);
  }
  assert.equal(await manager.isDisabled('#d-start'), true);
  await shot(manager, '16-campaign-dashboard');
  const [download] = await Promise.all([manager.waitForEvent('download'), manager.click('#d-export')]);
  assert.match(fs.readFileSync(await download.path(), 'utf8'), /^contact_id,lead_id,number,/);
  await manager.click('#d-pause');
  await manager.locator('#d-state', { hasText: 'paused' }).waitFor();
  await manager.locator('#campaigns tbody tr[data-name="pilot-renewals"] [data-state="paused"]').waitFor();
});

await step('an agent gets 403 on the campaigns and supervisor pages and APIs', async () => {
  current = agent;
  for (const p of ['/campaigns', '/supervisor']) {
    const resp = await agent.goto(p);
    assert.equal(resp.status(), 403, p);
    assert.match(await agent.textContent('#forbidden'), /agent.*may not open this page/);
  }
  assert.equal((await agent.request.get('/api/v1/campaigns')).status(), 403);
  assert.equal((await agent.request.get('/api/v1/lists')).status(), 403);
  assert.equal((await agent.request.get('/api/v1/agents')).status(), 403);
  assert.equal((await agent.request.get('/api/v1/agents/states')).status(), 403);
  assert.equal((await manager.request.get('/supervisor')).status(), 403, 'campaign managers do not supervise');
});

await step('an agent logs in on the desktop with a nailed-up phone (sipp), goes available, then on a break', async () => {
  const before = await refreshes(manager);
  await agent.goto('/desktop');
  await agent.locator('body[data-socket="up"]').waitFor();
  assert.equal(await agent.getAttribute('#agent-state', 'data-state'), 'LoggedOut');
  // The softphone is offered as a phone; choosing it needs no address (the page is the phone).
  await agent.selectOption('#ep-kind', 'browser');
  assert.equal(await agent.isDisabled('#ep-value'), true);
  assert.equal(await agent.getAttribute('#softphone-state', 'data-state'), 'off');
  await agent.selectOption('#ep-kind', 'uri');
  assert.equal(await agent.isDisabled('#ep-value'), false);
  await agent.fill('#ep-value', AGENT_PHONE);
  await agent.selectOption('#ep-mode', 'nailed_up');
  await agent.click('#agent-login');
  await agent.locator('#state-panel').waitFor({ state: 'visible', timeout: 20_000 });
  await agent.selectOption('#state-select', 'available');
  await agent.click('#state-apply');
  await agent.locator('#agent-state[data-state="Available"]').waitFor();
  // A break needs a reason: refused in place, then accepted.
  await agent.selectOption('#state-select', 'break');
  await agent.click('#state-apply');
  assert.match(await agent.textContent('#desk-error'), /needs a reason/);
  await agent.fill('#state-reason', 'Lunch');
  await agent.click('#state-apply');
  await agent.locator('#agent-state[data-state="NotRoutable"]', { hasText: 'Break: Lunch' }).waitFor();
  // The preview card asks the dialer: a paused campaign has no lead to offer, and says so.
  const [pilot] = await (await manager.request.get('/api/v1/campaigns')).json();
  await agent.fill('#preview-campaign', String(pilot.id));
  await agent.click('#preview-next');
  await agent.locator('#desk-error', { hasText: 'campaign pilot-renewals is paused' }).waitFor();
  assert.equal(await agent.isHidden('#preview-card'), true);
  await shot(agent, '17-agent-desktop');
  // The campaign dashboard refreshed on these agent events (its socket, no polling).
  await manager.waitForFunction((n) => Number(document.getElementById('dashboard').dataset.refreshed) > n, before);
  await manager.locator('#d-agents li[data-state="NotRoutable"]', { hasText: '1' }).waitFor();
});

const supervisor = await newPage();

await step('a supervisor sees the agent live, forces its state, and watches the queue', async () => {
  await login(supervisor, SUPERVISOR);
  await supervisor.waitForURL((u) => u.pathname === '/');
  await supervisor.goto('/supervisor');
  await supervisor.locator('body[data-socket="up"]').waitFor();
  const row = supervisor.locator(`#agents tbody tr[data-agent="${AGENT.user}"]`);
  await row.waitFor();
  assert.equal(await row.getAttribute('data-state'), 'NotRoutable');
  assert.match(await row.textContent(), /nailed-up, up/);
  assert.match(await row.textContent(), /—/, 'no listen / whisper / barge without a connected contact');
  await supervisor.fill('#queue-names', 'default');
  await supervisor.click('#queue-watch');
  await supervisor.locator('#queues tbody tr[data-queue="default"] td.num').first().waitFor();
  await supervisor.fill('#sup-endpoint', 'sip:sue@127.0.0.1:5999');
  await row.locator('select[data-role="force-status"]').selectOption('available');
  await row.locator('[data-action="force"]').click();
  await supervisor.locator(`#agents tbody tr[data-agent="${AGENT.user}"][data-state="Available"]`).waitFor();
  // The agent's own desktop follows at once (event on its socket).
  await agent.locator('#agent-state[data-state="Available"]').waitFor();
  await shot(supervisor, '18-supervisor');
});

await step('a sipp caller reaches the agent: screen pop, the supervisor listens in, the agent hangs up and saves a disposition', async () => {
  current = agent;
  // The caller: sipp's built-in UAC dials the queued number and stays on the line for up to 60 s.
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'console-caller-'));
  const caller = spawn('sipp', ['-sn', 'uac', '-s', CALL_NUMBER, '-m', '1', '-i', '127.0.0.1', '-p', '0', '-nostdin',
    '-timeout', '90s', '-d', '60000', SIP_TARGET], { cwd: work, stdio: 'ignore' });
  try {
    await agent.locator('#contact-panel').waitFor({ state: 'visible', timeout: 20_000 });
    await agent.locator('#contact-phase[data-phase="connected"]').waitFor({ timeout: 20_000 });
    const contactId = await agent.textContent('#contact-id');
    assert.match(contactId, /\S/);
    // The screen pop: attributes the flow set on the contact.
    assert.equal(await agent.textContent('#screen-pop dd[data-key="account"]'), 'A-991');
    await agent.locator('#agent-state[data-state="OnContact"]').waitFor();

    current = supervisor;
    const row = supervisor.locator(`#agents tbody tr[data-agent="${AGENT.user}"][data-state="OnContact"]`);
    await row.waitFor();
    assert.match(await row.textContent(), new RegExp(contactId));
    await supervisor.fill('#sup-endpoint', SUPERVISOR_PHONE);
    await row.locator('[data-action="listen"]').click();
    await supervisor.locator('#sup-live', { hasText: `(listen)` }).waitFor({ timeout: 20_000 });
    assert.equal(await supervisor.isHidden('#sup-error'), true, await supervisor.textContent('#sup-error'));

    current = agent;
    await shot(agent, '19-agent-on-contact');
    await agent.click('#contact-hangup');
    await agent.locator('#contact-phase[data-phase="ended"]').waitFor();
    await agent.locator('#disposition-form').waitFor({ state: 'visible' });
    await agent.fill('#disposition-code', 'sale');
    await agent.click('#disposition-save');
    await agent.locator('#disposition-status', { hasText: `Disposition saved on ${contactId}` }).waitFor();
  } finally {
    caller.kill();
  }
  await agent.click('#agent-logout');
  await agent.locator('#login-panel').waitFor({ state: 'visible' });
});

await step('the admin reads system health: status, version, database and the addresses it listens on', async () => {
  current = admin;
  await admin.goto('/admin/system');
  assert.equal(new URL(admin.url()).pathname, '/login');
  await login(admin, ADMIN);
  await admin.waitForURL((u) => u.pathname === '/admin/system');
  await admin.locator('#system dd[data-fact="Status"]', { hasText: 'ready' }).waitFor();
  assert.equal(await admin.textContent('#system dd[data-fact="Draining"]'), 'no');
  assert.match(await admin.textContent('#system dd[data-fact="Database"]'), /^(sqlite|postgres): ok$/);
  assert.equal(await admin.textContent('#system dd[data-fact="Live contacts"]'), '0', 'the caller has hung up');
  assert.equal(await admin.textContent('#system dd[data-fact="SIP calls up"]'), '0', 'every call has ended');
  const httpRow = admin.locator('#listening tbody tr', { hasText: 'HTTP' });
  assert.match(await httpRow.textContent(), new RegExp(new URL(admin.url()).host.replace(/\./g, '\\.')));
  await admin.click('#system-refresh');
  await admin.locator('#system dd[data-fact="Status"]', { hasText: 'ready' }).waitFor();
  assert.equal(await admin.isHidden('#system-error'), true);
  await shot(admin, '20-admin-system');
});

await step('the admin sees the campaign trunk with its campaign and limits', async () => {
  await admin.click('header nav >> text=Trunks');
  await admin.waitForURL((u) => u.pathname === '/admin/trunks');
  const row = admin.locator('#trunks tbody tr[data-trunk="sip:127.0.0.1:9"]');
  await row.waitFor();
  assert.match(await row.textContent(), /pilot-renewals/);
  // The campaign form's limits (its defaults: 5 calls per second), as the campaign stores them.
  const stored = await (await admin.request.get('/api/v1/campaigns')).json();
  const trunk = stored.find((c) => c.name === 'pilot-renewals').config.trunk;
  assert.equal(trunk.cps, 5);
  assert.equal(await row.locator('td').nth(2).textContent(), String(trunk.cps));
  assert.equal(await row.locator('td').nth(3).textContent(), String(trunk.max_concurrent));
  assert.equal(await admin.isHidden('#trunks-error'), true);
  await shot(admin, '21-admin-trunks');
});

await step('the admin sees the campaign queue with live figures, and an unknown queue named in its error', async () => {
  await admin.click('header nav >> text=Queues');
  await admin.waitForURL((u) => u.pathname === '/admin/queues');
  const row = admin.locator('#queues tbody tr[data-queue="default"]');
  await row.waitFor();
  assert.match(await row.textContent(), /pilot-renewals/);
  // Waiting, then agents staffed (the agent logged out, so none are available).
  assert.equal(await row.locator('td').nth(1).textContent(), '0');
  await admin.fill('#queue-names', 'no-such-queue');
  await admin.click('#queues-refresh');
  const unknown = admin.locator('#queues tbody tr[data-queue="no-such-queue"]');
  await unknown.waitFor();
  assert.match(await unknown.textContent(), /no-such-queue/);
  // The configured settings of the default queue are shown too.
  await admin.locator('#queue-settings tbody tr[data-queue-settings="default"]').waitFor();
  await shot(admin, '22-admin-queues');
});

await browser.close();
console.log(`${passed} steps passed; screenshots in ${ARTIFACTS}`);
