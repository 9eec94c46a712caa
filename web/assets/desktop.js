// The agent desktop: log in with a phone (POST /api/v1/agent/login), set the state, take contacts
// with their screen pop, hang up, and save the disposition during after-contact work. Everything
// live arrives on the desktop socket (GET /api/v1/agent/events, docs/desktop-events.md); state and
// contact commands go over the same socket, and so do the keypad (REST while the socket is down),
// answering or rejecting an offer (agents who do not auto-accept) and the browser softphone's SDP
// offer/answer. No polling. Call controls (hold, mute, transfer, consultation) are REST calls
// (POST /api/v1/agent/contacts/{id}/…); their outcome comes back as call_control events.
import { api, el, csrfToken } from '/assets/shell.js';

const $ = (id) => document.getElementById(id);
let ws = null;
let me = null;
// Logged in to take contacts: set by this page's login / logout (the runtime keeps a logged-out
// agent as Offline, so the state alone cannot tell), and from the hello's view on (re)connect.
let loggedIn = false;
let contact = null; // { id, queue, phase, attributes, needsAnswer, expiresIn }
let offerTimer = null;
let acwTimer = null;
const pending = []; // commands sent, waiting for their reply: { type, resolve, reject }
// The contact's call control: { held, muted, consult: null | { target, mode, phase } }.
let controls = { held: false, muted: false, consult: null };

function showError(text) {
  $('desk-error').textContent = text;
  $('desk-error').hidden = !text;
}

function stateName(state) {
  return typeof state === 'string' ? state : Object.keys(state)[0];
}

function describe(state) {
  if (state === null) return 'logged out';
  if (typeof state === 'string') return state === 'Missed' ? 'Missed an offer (set a state)' : state;
  const [k, v] = Object.entries(state)[0];
  if (k === 'NotRoutable') return v === 'transfer' ? 'Taking a transfer' : `Break: ${v}`;
  if (k === 'AfterContactWork') return 'After-contact work';
  if (k === 'OnContact') return 'On a contact';
  if (k === 'Offered') return 'Offered a contact';
  return k;
}

function showState(state, atMs) {
  const badge = $('agent-state');
  const name = state === null ? 'Offline' : stateName(state);
  badge.textContent = describe(state);
  badge.className = `badge state-${name}`;
  badge.dataset.state = state === null ? 'LoggedOut' : name;
  badge.dataset.raw = JSON.stringify(state);
  $('agent-since').textContent = atMs ? `since ${new Date(atMs).toLocaleTimeString()}` : '';
  $('login-panel').hidden = loggedIn;
  $('state-panel').hidden = !loggedIn;
  if (state && typeof state === 'object' && 'AfterContactWork' in state) startAcw(state.AfterContactWork.until_ms - (atMs ?? Date.now()));
  else if (state !== null && name !== 'AfterContactWork') stopAcw();
}

function startAcw(ms) {
  stopAcw();
  const end = Date.now() + Math.max(0, ms);
  $('disposition-form').hidden = !contact;
  const tick = () => {
    const left = Math.max(0, end - Date.now());
    $('acw-countdown').textContent = `${Math.floor(left / 60000)}:${String(Math.ceil((left % 60000) / 1000) % 60).padStart(2, '0')}`;
    if (left === 0) stopAcw();
  };
  tick();
  acwTimer = setInterval(tick, 1000);
}

function stopAcw() {
  clearInterval(acwTimer);
  acwTimer = null;
  $('acw-countdown').textContent = '—';
}

function showContact() {
  $('contact-panel').hidden = !contact;
  if (!contact) return;
  $('contact-id').textContent = contact.id;
  $('contact-phase').textContent = contact.phase;
  $('contact-phase').dataset.phase = contact.phase;
  $('contact-queue').textContent = contact.queue ? `From queue ${contact.queue}` : '';
  const attrs = Object.entries(contact.attributes ?? {});
  $('screen-pop').replaceChildren(...(attrs.length ? attrs.flatMap(([k, v]) => [el('dt', {}, k), el('dd', { dataset: { key: k } }, v)])
    : [el('dt', {}, 'Attributes'), el('dd', {}, contact.phase === 'offered' ? 'shown when the contact connects' : 'none')]));
  $('contact-hangup').hidden = contact.phase !== 'connected';
  $('disposition-form').hidden = contact.phase !== 'ended';
  showOffer();
  showControls();
}

// An offer: Answer (agents who do not auto-accept) and Reject, with the time left to answer.
function showOffer() {
  const offered = !!contact && contact.phase === 'offered';
  $('offer-actions').hidden = !offered;
  $('contact-accept').hidden = !(offered && contact.needsAnswer);
  clearInterval(offerTimer);
  offerTimer = null;
  $('offer-countdown').textContent = '';
  if (!offered || !contact.expiresIn) return;
  const end = Date.now() + contact.expiresIn;
  const tick = () => {
    const left = Math.max(0, Math.ceil((end - Date.now()) / 1000));
    $('offer-countdown').textContent = `${contact.needsAnswer ? 'Answer' : 'Ringing'}: ${left} s left`;
    if (left === 0) { clearInterval(offerTimer); offerTimer = null; }
  };
  tick();
  offerTimer = setInterval(tick, 1000);
}

function showControls() {
  const live = !!contact && contact.phase === 'connected';
  $('call-controls').hidden = !live;
  if (!live) return;
  const c = controls.consult;
  const status = $('control-status');
  status.dataset.held = String(controls.held);
  status.dataset.muted = String(controls.muted);
  status.dataset.consult = c ? c.phase : 'none';
  const parts = [];
  if (controls.held) parts.push('Customer on hold');
  if (controls.muted) parts.push('Muted');
  if (c?.phase === 'ringing') parts.push(`Calling ${c.target}…`);
  if (c?.phase === 'talking') parts.push(`Consulting ${c.target} (the customer is on hold)`);
  if (c?.phase === 'conference') parts.push(`Conference with ${c.target}`);
  status.textContent = parts.join(' · ') || 'Talking with the customer';
  $('ctl-hold').textContent = controls.held ? 'Resume' : 'Hold';
  $('ctl-hold').setAttribute('aria-pressed', String(controls.held));
  $('ctl-mute').textContent = controls.muted ? 'Unmute' : 'Mute';
  $('ctl-mute').setAttribute('aria-pressed', String(controls.muted));
  $('ctl-hold').disabled = !!c;
  $('ctl-mute').disabled = !!c || controls.held;
  $('transfer-form').hidden = !!c;
  // While the target rings only Cancel is offered.
  $('consult-actions').hidden = !c;
  $('consult-complete').hidden = c?.phase === 'ringing';
  $('consult-conference').hidden = c?.phase !== 'talking';
}

async function control(path, body) {
  if (!contact) return;
  try {
    await api('POST', `/api/v1/agent/contacts/${encodeURIComponent(contact.id)}/${path}`, body);
    showError('');
  } catch (e) {
    showError(e.message);
  }
}

function onControl(ev) {
  if (ev.agent !== me) {
    // This agent is the target of someone else's transfer or consultation.
    if (ev.target_agent === me && ev.action === 'consult_ringing') {
      $('disposition-status').textContent = `${ev.agent} is calling you about contact ${ev.contact}.`;
      $('disposition-status').hidden = false;
    }
    return;
  }
  if (contact?.id !== ev.contact) return;
  switch (ev.action) {
    case 'hold': controls.held = ev.on; break;
    case 'mute': controls.muted = ev.on; break;
    case 'consult_ringing': controls.consult = { target: ev.target, mode: ev.mode, phase: 'ringing' }; controls.held = false; controls.muted = false; break;
    case 'consult_answered': if (controls.consult) controls.consult.phase = 'talking'; break;
    case 'conference_started': if (controls.consult) controls.consult.phase = 'conference'; break;
    case 'consult_failed': controls.consult = null; showError(`${ev.target}: ${ev.reason}`); break;
    case 'consult_ended': controls.consult = null; break;
    case 'transfer_completed':
      controls = { held: false, muted: false, consult: null };
      contact.phase = 'ended';
      $('disposition-status').textContent = `Transferred to ${ev.target}.`;
      $('disposition-status').hidden = false;
      showContact();
      return;
    default: return;
  }
  showControls();
}

function onEvent(ev) {
  switch (ev.event) {
    case 'agent_state_changed':
      showState(ev.state, ev.at_ms);
      break;
    case 'call_control':
      onControl(ev);
      break;
    case 'contact_offered':
      contact = { id: ev.contact, queue: ev.queue, phase: 'offered', attributes: {}, needsAnswer: !!ev.needs_answer,
        expiresIn: ev.expires_at_ms ? ev.expires_at_ms - ev.at_ms : 0 };
      controls = { held: false, muted: false, consult: null };
      $('disposition-status').hidden = true;
      showError('');
      showContact();
      break;
    case 'contact_connected':
      if (contact?.id !== ev.contact) controls = { held: false, muted: false, consult: null };
      contact = { ...(contact?.id === ev.contact ? contact : { id: ev.contact }), phase: 'connected', attributes: ev.attributes };
      showContact();
      break;
    case 'contact_ended':
      if (contact?.id === ev.contact) {
        contact.phase = 'ended';
        showContact();
      }
      break;
    default:
      break;
  }
}

// Sends a command on the socket; resolves with its reply (`ok`, or `softphone_answer` for a
// softphone offer), rejects with an `error`'s message.
function request(cmd) {
  if (!ws || ws.readyState !== WebSocket.OPEN) {
    return Promise.reject(new Error('The live connection is down; reconnecting. Try again in a moment.'));
  }
  return new Promise((resolve, reject) => {
    pending.push({ type: cmd.type, resolve, reject });
    ws.send(JSON.stringify(cmd));
  });
}

function send(cmd) {
  request(cmd).catch((e) => showError(e.message));
}

function connect() {
  ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/api/v1/agent/events`);
  ws.addEventListener('open', () => {
    $('socket-state').textContent = 'live';
    document.body.dataset.socket = 'up';
  });
  ws.addEventListener('message', (m) => {
    const msg = JSON.parse(m.data);
    if (msg.type === 'hello') {
      me = msg.agent;
      loggedIn = !!msg.view && (msg.view.leg_up || stateName(msg.view.state) !== 'Offline');
      showState(msg.view ? msg.view.state : null, msg.view?.since_ms);
      if (msg.view?.contact && !contact) {
        const offered = stateName(msg.view.state) !== 'OnContact';
        contact = { id: msg.view.contact, phase: offered ? 'offered' : 'connected', attributes: {}, needsAnswer: offered && !msg.view.auto_accept };
        showContact();
      }
    } else if (msg.type === 'event') {
      onEvent(msg.event);
    } else if (msg.type === 'ok' || msg.type === 'softphone_answer') {
      pending.shift()?.resolve(msg);
      showError('');
      if (msg.command === 'disposition') {
        $('disposition-status').textContent = `Disposition saved on ${contact?.id ?? 'the contact'}.`;
        $('disposition-status').hidden = false;
        contact = null;
        stopAcw();
        showContact();
      }
    } else if (msg.type === 'error') {
      pending.shift()?.reject(new Error(msg.message));
    } else if (msg.type === 'lagged') {
      ws.close(); // reconnecting sends a fresh hello with the current state
    }
  });
  ws.addEventListener('close', () => {
    // Commands in flight get no reply on this socket.
    for (const p of pending.splice(0)) p.reject(new Error('The live connection dropped; try again.'));
    $('socket-state').textContent = 'disconnected; reconnecting…';
    document.body.dataset.socket = 'down';
    setTimeout(connect, 2000);
  });
}

// The browser softphone: one WebRTC audio leg to the appliance's gateway. The SDP offer goes over
// the desktop socket (softphone_offer); its softphone_answer names the SIP endpoint the agent logs
// in with.
let pc = null;

function softphoneState(state) {
  $('softphone-state').textContent = state;
  $('softphone-state').dataset.state = state;
}

async function startSoftphone() {
  if (!window.isSecureContext || !navigator.mediaDevices) {
    throw new Error('The softphone needs HTTPS (set http.tls_cert and http.tls_key) unless the page is opened on the appliance itself.');
  }
  stopSoftphone(false);
  softphoneState('starting');
  const mic = await navigator.mediaDevices.getUserMedia({ audio: true });
  pc = new RTCPeerConnection({ iceServers: [] });
  for (const track of mic.getTracks()) pc.addTrack(track, mic);
  pc.addEventListener('track', (ev) => { $('softphone-audio').srcObject = ev.streams[0]; });
  pc.addEventListener('connectionstatechange', () => softphoneState(pc ? pc.connectionState : 'off'));
  await pc.setLocalDescription(await pc.createOffer());
  // No trickle ICE: the offer goes out with all its candidates.
  await new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') return resolve();
    pc.addEventListener('icegatheringstatechange', () => { if (pc.iceGatheringState === 'complete') resolve(); });
    setTimeout(resolve, 3000);
  });
  const answer = await request({ type: 'softphone_offer', sdp: pc.localDescription.sdp });
  await pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp });
  return answer.endpoint;
}

function stopSoftphone(tellServer) {
  if (pc) {
    for (const s of pc.getSenders()) s.track?.stop();
    pc.close();
    pc = null;
  }
  softphoneState('off');
  if (tellServer) request({ type: 'softphone_close' }).catch(() => api('DELETE', '/api/v1/agent/softphone').catch(() => {}));
}

// Leaving the page ends the browser leg at once (ICE alone notices only after ~20 s).
window.addEventListener('pagehide', async () => {
  if (!pc) return;
  fetch('/api/v1/agent/softphone', { method: 'DELETE', keepalive: true, credentials: 'same-origin',
    headers: { 'X-CSRF-Token': await csrfToken() } });
});

$('ep-kind').addEventListener('change', () => {
  const browser = $('ep-kind').value === 'browser';
  $('ep-value').disabled = browser;
  if (browser) $('ep-mode').value = 'nailed_up';
});

$('agent-login-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const browser = $('ep-kind').value === 'browser';
  let value = $('ep-value').value.trim();
  if (!browser && !value) return showError('Give the phone to call: a sip: URI or a registered user name.');
  if ($('ep-kind').value === 'uri' && !/^sips?:/.test(value)) return showError('A SIP URI starts with sip:');
  $('agent-login').disabled = true;
  $('agent-login').textContent = browser ? 'Starting the softphone…' : $('ep-mode').value === 'nailed_up' ? 'Calling your phone…' : 'Logging in…';
  try {
    if (browser) value = await startSoftphone();
    await api('POST', '/api/v1/agent/login', {
      endpoint: { kind: browser ? 'uri' : $('ep-kind').value, value }, mode: browser ? 'nailed_up' : $('ep-mode').value,
      routing_profile: $('ep-profile').value.trim() || null, auto_accept: $('ep-auto-accept').checked,
    });
    showError('');
    loggedIn = true;
    // The socket's agent_state_changed event shows the new state; until it arrives:
    if ($('agent-state').dataset.state === 'LoggedOut') showState('Offline');
    else showState(JSON.parse($('agent-state').dataset.raw ?? '"Offline"'));
  } catch (e) {
    if (browser) stopSoftphone(true);
    showError(e.message);
  } finally {
    $('agent-login').disabled = false;
    $('agent-login').textContent = 'Log in';
  }
});

$('state-select').addEventListener('change', () => { $('state-reason').disabled = $('state-select').value !== 'break'; });
$('state-reason').disabled = true;
$('state-apply').addEventListener('click', () => {
  const status = $('state-select').value;
  const reason = $('state-reason').value.trim();
  if (status === 'break' && !reason) return showError('A break needs a reason.');
  send({ type: 'state', status, reason: status === 'break' ? reason : null });
});

$('agent-logout').addEventListener('click', async () => {
  try {
    await api('POST', '/api/v1/agent/logout');
    stopSoftphone(true);
    showError('');
    loggedIn = false;
    showState(null);
  } catch (e) {
    showError(e.message);
  }
});

$('contact-hangup').addEventListener('click', () => {
  if (contact) send({ type: 'hangup', contact: contact.id });
});
$('contact-accept').addEventListener('click', () => {
  if (contact?.phase === 'offered') send({ type: 'accept', contact: contact.id });
});
$('contact-reject').addEventListener('click', () => {
  if (contact?.phase === 'offered') send({ type: 'reject', contact: contact.id });
});

$('ctl-hold').addEventListener('click', () => control('hold', { on: !controls.held }));
$('ctl-mute').addEventListener('click', () => control('mute', { on: !controls.muted }));
$('keypad').addEventListener('click', (ev) => {
  const digit = ev.target.closest('button')?.dataset.digit;
  if (!digit || !contact) return;
  // Keypad digits go over the live socket (sent as RFC 4733 on the customer's leg); while the
  // socket is down (reconnecting), over REST, so a key press is never lost.
  if (ws && ws.readyState === WebSocket.OPEN) send({ type: 'dtmf', contact: contact.id, digits: digit });
  else control('dtmf', { digits: digit });
});
$('transfer-kind').addEventListener('change', () => {
  $('transfer-target').placeholder = { agent: 'agent2', queue: 'sales', number: '+15551234567' }[$('transfer-kind').value];
});
$('transfer-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const kind = $('transfer-kind').value;
  const target = $('transfer-target').value.trim();
  if (!target) return showError(`Give the ${kind} to transfer to.`);
  if (kind === 'number' && !/^\+[1-9][0-9]{1,14}$/.test(target)) return showError('A number is + and its digits (E.164), e.g. +15551234567.');
  $('transfer-start').disabled = true;
  try {
    await control('transfer', { to: { [kind]: target }, mode: $('transfer-mode').value });
  } finally {
    $('transfer-start').disabled = false;
  }
});
$('consult-complete').addEventListener('click', () => control('consult/complete'));
$('consult-cancel').addEventListener('click', () => control('consult/cancel'));
$('consult-conference').addEventListener('click', () => control('consult/conference'));

$('disposition-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const code = $('disposition-code').value.trim();
  if (!code) return showError('Choose a disposition code.');
  const cmd = { type: 'disposition', contact: contact?.id, code };
  // A campaign lead's callback: local date and time in the form, RFC 3339 (UTC) on the wire.
  const when = $('callback-at').value;
  if (when) {
    const at = new Date(when);
    if (Number.isNaN(at.getTime())) return showError('The callback time is not a date and time.');
    cmd.callback = { at: at.toISOString(), mine: $('callback-mine').checked };
  }
  if (contact) send(cmd);
});

// Outbound preview (GET /api/v1/agent/preview, POST …/preview/dial, …/preview/skip): the agent
// asks for the next lead card; with the campaign's auto-dial countdown the appliance dials the
// card itself when it runs out (also with this page closed), so the page only shows the countdown
// and then waits for the call (contact_connected).
let previewTimer = null;

function clearPreview() {
  clearInterval(previewTimer);
  previewTimer = null;
  $('preview-card').hidden = true;
}

function showCard(card) {
  const l = card.lead;
  $('preview-name').textContent = [l.first_name, l.last_name].filter(Boolean).join(' ') || `Lead ${l.lead_id}`;
  $('preview-phone').textContent = card.phone.e164;
  $('preview-reason').textContent = `(${card.allowed_reason}; attempt ${l.attempts + 1})`;
  const fields = { email: l.email, postal_code: l.postal_code, subdivision: l.subdivision, country: l.country, ...l.attributes };
  $('preview-attributes').replaceChildren(...Object.entries(fields).filter(([, v]) => v !== null && v !== undefined && v !== '')
    .flatMap(([k, v]) => [el('dt', {}, k), el('dd', { dataset: { key: k } }, typeof v === 'string' ? v : JSON.stringify(v))]));
  $('preview-card').hidden = false;
  $('preview-auto').hidden = !card.auto_dial_s;
  if (card.auto_dial_s) {
    const end = Date.now() + card.auto_dial_s * 1000;
    const tick = () => {
      const left = Math.max(0, Math.ceil((end - Date.now()) / 1000));
      $('preview-countdown').textContent = `${left} s`;
      if (left === 0) {
        clearPreview();
        $('preview-status').textContent = 'Dialling automatically…';
        $('preview-status').hidden = false;
      }
    };
    tick();
    previewTimer = setInterval(tick, 250);
  }
}

$('preview-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const id = Number($('preview-campaign').value);
  if (!Number.isInteger(id) || id < 1) return showError('Give the preview campaign id.');
  clearPreview();
  $('preview-status').hidden = true;
  try {
    const card = await api('GET', `/api/v1/agent/preview?campaign=${id}`);
    showError('');
    $('preview-empty').hidden = card !== null;
    if (card) showCard(card);
  } catch (e) {
    showError(e.message);
  }
});

async function previewDial() {
  clearPreview();
  try {
    const placed = await api('POST', '/api/v1/agent/preview/dial');
    showError('');
    $('preview-status').textContent = `Dialling: contact ${placed.contact_id}.`;
    $('preview-status').hidden = false;
  } catch (e) {
    showError(e.message);
  }
}

$('preview-dial').addEventListener('click', previewDial);
$('preview-skip').addEventListener('click', async () => {
  clearPreview();
  try {
    await api('POST', '/api/v1/agent/preview/skip', {});
    showError('');
    $('preview-status').textContent = 'Skipped; the lead comes back later.';
    $('preview-status').hidden = false;
  } catch (e) {
    showError(e.message);
  }
});

connect();
