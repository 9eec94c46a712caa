// The agent desktop's call controls in a real browser (issue 8, acceptance 6: "a consult transfer
// completes"). Driven by tests/desktop_controls_browser.rs against a real appliance:
//
//   DIALBRIDGE_URL              http://127.0.0.1:PORT of the appliance
//   AGENT_USER / AGENT_PASSWORD the agent who takes the call in the desktop (console login)
//   TARGET_USER / TARGET_PASSWORD the agent it is transferred to (logged in over the API here)
//   AGENT_PHONE / TARGET_PHONE  their phones (sipp callees), SIP URIs
//   SIP_TARGET, CALL_NUMBER     the appliance's SIP address and a number that queues callers
//   CUSTOMER_SCENARIO           the sipp scenario of the customer (streams a tone, waits for BYE)
//   ARTIFACTS                   where screenshots go
//
// The agent logs in nailed-up, a sipp customer calls, the agent uses Hold, the keypad, then
// Transfer → consult → the second agent, and Complete. Prints `COMPLETED <contact>` once the
// desktop shows the transfer (the Rust test then checks by the audio that the customer is with
// the target), and exits 0 only when every step passed.
import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { spawn } from 'node:child_process';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`set ${k}`);
  return v;
};
const BASE = env('DIALBRIDGE_URL');
const ARTIFACTS = env('ARTIFACTS');
const AGENT = { user: env('AGENT_USER'), password: env('AGENT_PASSWORD') };
const TARGET = { user: env('TARGET_USER'), password: env('TARGET_PASSWORD') };
fs.mkdirSync(ARTIFACTS, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});

let current = null;
let passed = 0;
const errors = [];
let caller = null;

async function step(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    if (errors.length) throw new Error(`the browser logged errors:\n${errors.join('\n')}`);
  } catch (e) {
    console.log(`not ok - ${name}`);
    console.error(e);
    if (current) await current.screenshot({ path: path.join(ARTIFACTS, 'FAILED-consult.png'), fullPage: true }).catch(() => {});
    caller?.kill();
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
  const context = await browser.newContext({ baseURL: BASE, viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(20_000);
  page.on('pageerror', (e) => errors.push(`${page.url()}: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) errors.push(`${page.url()}: ${m.text()}`);
  });
  return page;
}

async function login(page, who) {
  await page.goto('/login');
  await page.fill('#username', who.user);
  await page.fill('#password', who.password);
  await page.click('#login-submit');
  await page.waitForURL((u) => u.pathname === '/');
}

const agent = await newPage();
const target = await newPage();
current = agent;

await step('the agent logs in on the desktop with a nailed-up phone and goes available', async () => {
  await login(agent, AGENT);
  await agent.goto('/desktop');
  await agent.locator('body[data-socket="up"]').waitFor();
  await agent.selectOption('#ep-kind', 'uri');
  await agent.fill('#ep-value', env('AGENT_PHONE'));
  await agent.selectOption('#ep-mode', 'nailed_up');
  await agent.click('#agent-login');
  await agent.locator('#state-panel').waitFor({ state: 'visible' });
  await agent.selectOption('#state-select', 'available');
  await agent.click('#state-apply');
  await agent.locator('#agent-state[data-state="Available"]').waitFor();
});

let contactId = null;

await step('a sipp customer reaches the agent; the call controls show', async () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'consult-customer-'));
  caller = spawn('sipp', [env('SIP_TARGET'), '-sf', env('CUSTOMER_SCENARIO'), '-s', env('CALL_NUMBER'), '-m', '1',
    '-i', '127.0.0.1', '-mi', '127.0.0.1', '-p', '0', '-nostdin', '-timeout', '120s',
    '-key', 'rtpport', env('CUSTOMER_RTP_PORT'), '-mp', env('CUSTOMER_MEDIA_PORT')], { cwd: work, stdio: 'ignore' });
  caller.unref(); // the customer outlives this script: the Rust test listens, then ends the contact
  await agent.locator('#contact-phase[data-phase="connected"]').waitFor({ timeout: 30_000 });
  contactId = (await agent.textContent('#contact-id')).trim();
  assert.match(contactId, /\S/);
  await agent.locator('#call-controls').waitFor({ state: 'visible' });
  assert.equal(await agent.textContent('#control-status'), 'Talking with the customer');
});

await step('hold and resume, then a keypad digit', async () => {
  await agent.click('#ctl-hold');
  await agent.locator('#control-status[data-held="true"]', { hasText: 'Customer on hold' }).waitFor();
  assert.equal(await agent.textContent('#ctl-hold'), 'Resume');
  assert.equal(await agent.isDisabled('#ctl-mute'), true, 'no mute while the customer is on hold');
  await agent.click('#ctl-hold');
  await agent.locator('#control-status[data-held="false"]').waitFor();
  await agent.click('#keypad button[data-digit="5"]');
  await agent.waitForTimeout(300);
  assert.equal(await agent.isHidden('#desk-error'), true, await agent.textContent('#desk-error'));
  // A number that is not E.164 is refused in place.
  await agent.selectOption('#transfer-kind', 'number');
  await agent.fill('#transfer-target', '12345');
  await agent.click('#transfer-start');
  await agent.locator('#desk-error', { hasText: 'E.164' }).waitFor();
});

await step('the second agent logs in (over the API) and is available', async () => {
  current = target;
  await login(target, TARGET);
  const me = await (await target.request.get('/api/v1/whoami')).json();
  const resp = await target.request.post('/api/v1/agent/login', {
    headers: { 'X-CSRF-Token': me.csrf_token },
    data: { endpoint: { kind: 'uri', value: env('TARGET_PHONE') }, mode: 'nailed_up' },
  });
  assert.equal(resp.status(), 204, await resp.text());
  await target.goto('/desktop');
  await target.locator('body[data-socket="up"]').waitFor();
  await target.locator('#agent-state[data-state="Available"]').waitFor();
  current = agent;
});

await step('Transfer → consult → the second agent, then Complete', async () => {
  await agent.selectOption('#transfer-kind', 'agent');
  await agent.fill('#transfer-target', TARGET.user);
  await agent.selectOption('#transfer-mode', 'consult');
  await agent.click('#transfer-start');
  await agent.locator('#control-status[data-consult="talking"]').waitFor({ timeout: 30_000 });
  assert.match(await agent.textContent('#control-status'), new RegExp(`Consulting agent ${TARGET.user}`));
  await agent.locator('#consult-actions').waitFor({ state: 'visible' });
  assert.equal(await agent.isHidden('#transfer-form'), true);
  await shot(agent, '30-desktop-consult');
  await agent.click('#consult-complete');
  await agent.locator('#disposition-status', { hasText: `Transferred to agent ${TARGET.user}` }).waitFor();
  await agent.locator('#contact-phase[data-phase="ended"]').waitFor();
  await agent.locator('#disposition-form').waitFor({ state: 'visible' });
  // The target's desktop now has the contact.
  current = target;
  await target.locator('#contact-phase[data-phase="connected"]').waitFor();
  assert.equal((await target.textContent('#contact-id')).trim(), contactId);
  await target.locator('#call-controls').waitFor({ state: 'visible' });
  await shot(target, '31-desktop-transferred');
  current = agent;
  await shot(agent, '32-desktop-after-transfer');
  console.log(`COMPLETED ${contactId}`);
});

await step('the first agent saves a disposition and stays logged in', async () => {
  await agent.fill('#disposition-code', 'transferred');
  await agent.click('#disposition-save');
  await agent.locator('#disposition-status', { hasText: `Disposition saved on ${contactId}` }).waitFor();
  await agent.locator('#state-panel').waitFor({ state: 'visible' });
});

// The customer stays on the line; the Rust test listens, then ends the contact.
await browser.close();
console.log(`${passed} steps passed; screenshots in ${ARTIFACTS}`);
