// A supervisor barges into and whispers on a live call from the supervisor page, with this
// browser as the supervisor's phone (issue #8, acceptance 6). Driven by tests/desktop_browser.rs
// over stdin/stdout (lib.mjs `channel`):
//
//   DIALBRIDGE_URL, ARTIFACTS, SUPERVISOR_USER / SUPERVISOR_PASSWORD, AGENT_ID (the agent's row)
//   FAKE_AUDIO   the WAV chromium captures as the microphone (BROWSER_HZ)
//   CALLER_HZ    the customer's tone, which the supervisor hears once in the call
//
// The supervisor page has no "this browser" phone of its own: the script opens a WebRTC leg
// through the softphone gateway (POST /api/v1/agent/softphone, the supervisor's session) from the
// page and types the SIP URI it got back into the page's phone field, as a supervisor would type
// their desk phone's. Everything else is the page's own buttons.
//
// `READY {endpoint}`; on `BARGE` clicks Barge on the agent's row and listens (the supervisor
// hears the customer): `BARGED {heard}`; on `WHISPER` clicks Whisper: `WHISPERED`; on `LISTEN`
// clicks Listen: `LISTENING`; on `END` closes the leg: `DONE`.
import assert from 'node:assert/strict';
import { env, launch, stepper, login, channel, listenInPage } from './lib.mjs';

const BASE = env('DIALBRIDGE_URL');
const SUPERVISOR = { user: env('SUPERVISOR_USER'), password: env('SUPERVISOR_PASSWORD') };
const AGENT_ID = env('AGENT_ID');
const CALLER_HZ = Number(env('CALLER_HZ'));
const BROWSER_HZ = Number(env('BROWSER_HZ'));

const browser = await launch({ fakeAudio: env('FAKE_AUDIO') });
const t = stepper({ browser, artifacts: env('ARTIFACTS'), prefix: 'supervisor', baseURL: BASE });
const io = channel();
const sup = await t.newPage();

let endpoint = null;
await t.step('the supervisor opens the supervisor page and a browser audio leg', async () => {
  await login(sup, SUPERVISOR);
  await sup.goto('/supervisor');
  await sup.locator('body[data-socket="up"]').waitFor();
  endpoint = await sup.evaluate(async () => {
    const csrf = (await (await fetch('/api/v1/whoami')).json()).csrf_token;
    // No noise suppression or gain control: they would fade the steady test tone.
    const mic = await navigator.mediaDevices.getUserMedia({ audio: { noiseSuppression: false, autoGainControl: false, echoCancellation: false } });
    const pc = new RTCPeerConnection({ iceServers: [] });
    window.__pc = pc;
    pc.addTrack(mic.getAudioTracks()[0], mic);
    // Chromium feeds a remote stream to WebAudio only while a media element plays it.
    pc.addEventListener('track', (e) => {
      window.__stream = e.streams[0] || new MediaStream([e.track]);
      const el = new Audio();
      el.muted = true;
      el.srcObject = window.__stream;
      el.play().catch(() => {});
      window.__audioEl = el;
    });
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise((resolve) => {
      if (pc.iceGatheringState === 'complete') return resolve();
      pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && resolve());
      setTimeout(resolve, 5000);
    });
    const res = await fetch('/api/v1/agent/softphone', { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf },
      body: JSON.stringify({ sdp: pc.localDescription.sdp }) });
    if (res.status !== 200) throw new Error(`softphone offer: ${res.status} ${await res.text()}`);
    const answer = await res.json();
    await pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp });
    await new Promise((resolve, reject) => {
      if (pc.connectionState === 'connected') return resolve();
      pc.addEventListener('connectionstatechange', () => {
        if (pc.connectionState === 'connected') resolve();
        if (pc.connectionState === 'failed') reject(new Error('the peer connection failed'));
      });
      setTimeout(() => reject(new Error(`not connected after 15 s: ${pc.connectionState}`)), 15000);
    });
    return answer.endpoint;
  });
  assert.match(endpoint, /^sip:webrtc-/);
});
io.say('READY', { endpoint });

const row = () => sup.locator(`#agents tbody tr[data-agent="${AGENT_ID}"][data-state="OnContact"]`);

async function supervise(mode) {
  await row().waitFor({ timeout: 30_000 });
  await sup.selectOption('#sup-endpoint-kind', 'uri');
  await sup.fill('#sup-endpoint', endpoint);
  await row().locator(`[data-action="${mode}"]`).click();
  await sup.locator('#sup-live', { hasText: `(${mode})` }).waitFor({ timeout: 20_000 });
  assert.equal(await sup.isHidden('#sup-error'), true, await sup.textContent('#sup-error'));
}

await io.hear('BARGE');
let heard = null;
await t.step('the supervisor clicks Barge on the agent\'s live call and hears the customer', async () => {
  await supervise('barge');
  heard = await sup.evaluate(listenInPage, { expectHz: CALLER_HZ, otherHz: BROWSER_HZ, timeoutMs: 15_000 });
  assert.ok(heard.detected, `the supervisor did not hear the customer's ${CALLER_HZ} Hz: ${JSON.stringify(heard)}`);
  await t.shot(sup, '33-supervisor-barge');
});
io.say('BARGED', heard);

await io.hear('WHISPER');
await t.step('the supervisor switches to Whisper on the same call', async () => {
  await supervise('whisper');
  await t.shot(sup, '34-supervisor-whisper');
});
io.say('WHISPERED');

await io.hear('LISTEN');
await t.step('the supervisor switches to Listen', async () => {
  await supervise('listen');
});
io.say('LISTENING');

await io.hear('END');
await t.step('the supervisor closes the browser leg', async () => {
  const status = await sup.evaluate(async () => {
    const csrf = (await (await fetch('/api/v1/whoami')).json()).csrf_token;
    const res = await fetch('/api/v1/agent/softphone', { method: 'DELETE', headers: { 'X-CSRF-Token': csrf } });
    window.__pc.close();
    return res.status;
  });
  assert.equal(status, 204);
});
io.say('DONE', { passed: t.passed });
io.close();
await browser.close();
process.exit(0);
