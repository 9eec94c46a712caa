// The agent desktop's own softphone and preview dialling in Debian's chromium (issue #8: "a
// Playwright run of the desktop's own softphone path", acceptance 4 "Dial places the call to a
// sipp UAS"). Driven by tests/desktop_browser.rs over stdin/stdout (lib.mjs `channel`):
//
//   DIALBRIDGE_URL, ARTIFACTS, AGENT_USER / AGENT_PASSWORD
//   FAKE_AUDIO   the WAV chromium captures as the microphone (BROWSER_HZ)
//   CALLER_HZ    the inbound caller's tone, which the page must hear
//
// 1. The agent logs in to the console, opens /desktop, chooses "this browser", unticks "Connect
//    contacts automatically" and logs in: the page's own code (desktop.js) opens the WebRTC leg
//    (its SDP offer/answer over the desktop socket) and logs in nailed-up, answering each offer
//    itself. Available. `READY`.
// 2. A sipp caller (started by the test) reaches the agent through a flow and queue: the offer
//    shows with Answer and Reject and stays offered (nothing connects) until the agent clicks
//    Answer; then the contact shows connected, and a WebAudio analyser on the page's own
//    softphone <audio> element hears the caller's tone. `HEARD`. On `HANGUP` the agent hangs up
//    and saves a disposition.
// 3. On `PREVIEW {campaign, number}` the agent asks for the next lead card, sees the number,
//    clicks Dial; the contact shows connected with the attempt's id in its screen pop. `DIALED`.
//    On `HANGUP`: hang up, disposition. On `END`: log out (the softphone closes). Exit 0.
import assert from 'node:assert/strict';
import { env, launch, stepper, login, channel, listenInPage } from './lib.mjs';

const BASE = env('DIALBRIDGE_URL');
const AGENT = { user: env('AGENT_USER'), password: env('AGENT_PASSWORD') };
const CALLER_HZ = Number(env('CALLER_HZ'));
const BROWSER_HZ = Number(env('BROWSER_HZ'));

const browser = await launch({ fakeAudio: env('FAKE_AUDIO') });
const t = stepper({ browser, artifacts: env('ARTIFACTS'), prefix: 'desktop', baseURL: BASE });
const io = channel();
const agent = await t.newPage();

async function hangUpAndDispose(contactId, code, callbackAt) {
  await agent.click('#contact-hangup');
  await agent.locator('#contact-phase[data-phase="ended"]').waitFor();
  await agent.locator('#disposition-form').waitFor({ state: 'visible' });
  await agent.fill('#disposition-code', code);
  // datetime-local takes the page's local time, "YYYY-MM-DDTHH:MM".
  if (callbackAt) await agent.fill('#callback-at', callbackAt);
  await agent.click('#disposition-save');
  await agent.locator('#disposition-status', { hasText: `Disposition saved on ${contactId}` }).waitFor();
  await agent.locator('#agent-state[data-state="Available"]').waitFor();
}

await t.step('the agent logs in on the desktop with "this browser" as the phone and goes Available', async () => {
  await login(agent, AGENT);
  await agent.goto('/desktop');
  await agent.locator('body[data-socket="up"]').waitFor();
  await agent.selectOption('#ep-kind', 'browser');
  assert.equal(await agent.isDisabled('#ep-value'), true);
  await agent.uncheck('#ep-auto-accept');
  await agent.click('#agent-login');
  await agent.locator('#state-panel').waitFor({ state: 'visible', timeout: 30_000 });
  assert.equal(await agent.isHidden('#desk-error'), true, await agent.textContent('#desk-error'));
  await agent.locator('#softphone-state[data-state="connected"]').waitFor();
  await agent.selectOption('#state-select', 'available');
  await agent.click('#state-apply');
  await agent.locator('#agent-state[data-state="Available"]').waitFor();
});
io.say('READY');

let inbound = null;
await t.step('a queued sipp caller is offered, the agent clicks Answer; the page hears the caller on its own softphone', async () => {
  await agent.locator('#contact-phase[data-phase="offered"]').waitFor({ timeout: 30_000 });
  await agent.locator('#contact-accept').waitFor({ state: 'visible' });
  assert.equal(await agent.isVisible('#contact-reject'), true);
  await agent.locator('#agent-state[data-state="Offered"]').waitFor();
  // Nothing connects by itself: still offered a second later.
  await agent.waitForTimeout(1000);
  assert.equal(await agent.getAttribute('#contact-phase', 'data-phase'), 'offered');
  await t.shot(agent, '29-desktop-offer-answer');
  await agent.click('#contact-accept');
  await agent.locator('#contact-phase[data-phase="connected"]').waitFor({ timeout: 30_000 });
  assert.equal(await agent.isHidden('#offer-actions'), true);
  await agent.locator('#agent-state[data-state="OnContact"]').waitFor();
  const contact = await agent.textContent('#contact-id');
  await agent.evaluate(() => { window.__stream = document.getElementById('softphone-audio').srcObject; });
  const heard = await agent.evaluate(listenInPage, { expectHz: CALLER_HZ, otherHz: BROWSER_HZ, timeoutMs: 15_000 });
  assert.ok(heard.detected, `the page did not hear the caller's ${CALLER_HZ} Hz: ${JSON.stringify(heard)}`);
  await t.shot(agent, '30-desktop-softphone-call');
  inbound = { contact, ...heard };
});
io.say('HEARD', inbound);

await io.hear('HANGUP');
await t.step('the agent hangs up the inbound call and saves a disposition', async () => {
  await hangUpAndDispose(inbound.contact, 'sale');
});
io.say('DISPOSED', { contact: inbound.contact });

const { campaign, number } = await io.hear('PREVIEW');
let dialed = null;
await t.step('the preview card shows the lead; Dial places the call and the desktop shows it connected', async () => {
  await agent.fill('#preview-campaign', String(campaign));
  await agent.click('#preview-next');
  await agent.locator('#preview-card').waitFor({ state: 'visible' });
  assert.equal(await agent.textContent('#preview-phone'), number);
  assert.equal(await agent.textContent('#preview-name'), 'Ada Lovelace');
  await t.shot(agent, '31-desktop-preview-card');
  await agent.click('#preview-dial');
  const status = agent.locator('#preview-status', { hasText: 'Dialling: contact' });
  await status.waitFor();
  const attempt = /contact (\S+)\.$/.exec(await status.textContent())?.[1];
  assert.ok(attempt, await status.textContent());
  await agent.locator('#contact-phase[data-phase="connected"]').waitFor({ timeout: 30_000 });
  const contact = await agent.textContent('#contact-id');
  assert.notEqual(contact, inbound.contact);
  assert.equal(await agent.textContent('#screen-pop dd[data-key="contact_id"]'), attempt, 'the screen pop names the attempt');
  assert.equal(await agent.textContent('#screen-pop dd[data-key="number"]'), number);
  await agent.locator('#agent-state[data-state="OnContact"]').waitFor();
  await t.shot(agent, '32-desktop-preview-call');
  dialed = { attempt, contact };
});
io.say('DIALED', dialed);

await io.hear('HANGUP');
await t.step('the agent hangs up the preview call and saves a disposition', async () => {
  // A callback tomorrow, for this agent only (the form's local time; the page's zone is UTC here).
  const tomorrow = new Date(Date.now() + 86_400_000);
  const local = new Date(tomorrow.getTime() - tomorrow.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
  await hangUpAndDispose(dialed.contact, 'callback', local);
});
io.say('DISPOSED', { contact: dialed.contact });

await io.hear('END');
await t.step('logging out closes the softphone', async () => {
  await agent.click('#agent-logout');
  await agent.locator('#login-panel').waitFor({ state: 'visible' });
  await agent.locator('#softphone-state[data-state="off"]').waitFor();
});
io.say('DONE', { passed: t.passed });
io.close();
await browser.close();
process.exit(0);
