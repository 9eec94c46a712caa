// The admin system health page: one read of GET /api/v1/system, again on Refresh (no polling).
import { api, el } from '/assets/shell.js';

const $ = (id) => document.getElementById(id);

function duration(s) {
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  return `${d ? `${d} d ` : ''}${h} h ${m} min`;
}

async function load() {
  try {
    const s = await api('GET', '/api/v1/system');
    $('system-error').hidden = true;
    const facts = [
      ['Status', s.status],
      ['Version', s.version],
      ['Uptime', duration(s.uptime_s)],
      ['Database', `${s.backend}: ${s.database}`],
      ['Draining', s.draining ? 'yes' : 'no'],
      ['Handles calls', s.runtime ? 'yes' : 'no'],
      ['Live contacts', s.live_contacts ?? '—'],
      ['SIP calls up', s.calls_active ?? 0],
      ['Bridge leases held', s.bridge_leases_active ?? 0],
      ['Softphone legs up', s.webrtc_legs_active ?? 0],
      ['Agents by state', Object.entries(s.agents).map(([k, v]) => `${k}: ${v}`).join(', ') || 'none'],
    ];
    $('system').replaceChildren(...facts.flatMap(([k, v]) => [el('dt', {}, k), el('dd', { dataset: { fact: k } }, String(v))]));
    const l = s.listening;
    const rows = [
      ['HTTP', `${l.http}${l.https ? ' (HTTPS)' : ''}`],
      ['SIP UDP', l.sip_udp],
      ['SIP TCP', l.sip_tcp],
      ['SIP TLS', l.sip_tls ?? 'off'],
      ['RTP ports', l.rtp_ports],
    ];
    $('listening').tBodies[0].replaceChildren(...rows.map(([k, v]) => el('tr', {}, el('th', { scope: 'row' }, k), el('td', {}, el('code', {}, v)))));
  } catch (e) {
    $('system-error').textContent = `Could not read the system state: ${e.message}`;
    $('system-error').hidden = false;
  }
}

$('system-refresh').addEventListener('click', load);
load();
