// The admin queues page: live queue figures and routing profiles in use from GET /api/v1/system
// (?queues= adds queues by name), read once and on Refresh (no polling).
import { api, el } from '/assets/shell.js';

const $ = (id) => document.getElementById(id);
const secs = (ms) => `${Math.round(ms / 1000)} s`;

async function load() {
  const names = $('queue-names').value.split(',').map((q) => q.trim()).filter(Boolean);
  try {
    const s = await api('GET', `/api/v1/system${names.length ? `?queues=${encodeURIComponent(names.join(','))}` : ''}`);
    $('queues-error').hidden = true;
    const rows = s.queues.map((q) => {
      const st = q.stats;
      const cells = st
        ? [st.waiting, secs(st.oldest_wait_ms), st.agents_available, st.agents_staffed, st.answered, st.abandoned,
          `${Math.round(st.service_level * 100)} %`, secs(st.asa_ms), secs(st.aht_ms)].map((v) => el('td', {}, String(v)))
        : [el('td', { colspan: 9, class: 'error' }, q.error ?? 'no figures')];
      return el('tr', { dataset: { queue: q.name } },
        el('th', { scope: 'row' }, q.name), el('td', {}, q.campaigns.join(', ') || '—'), ...cells);
    });
    $('queues').tBodies[0].replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { colspan: 11 }, 'No queue named yet: campaigns name theirs, or name some above.'))]));
    const profiles = s.routing_profiles.map((p) => el('tr', { dataset: { profile: p.name } },
      el('th', { scope: 'row' }, p.name), el('td', {}, p.agents.join(', '))));
    $('profiles').tBodies[0].replaceChildren(...(profiles.length ? profiles : [el('tr', {}, el('td', { colspan: 2 }, 'The ACD knows no agent now.'))]));
    const acd = s.acd ?? { queues: [], profiles: [] };
    const settings = acd.queues.map((q) => el('tr', { dataset: { queueSettings: q.name } },
      el('th', { scope: 'row' }, q.name),
      el('td', {}, String(q.strategy ?? '—')),
      el('td', {}, q.max_contacts == null ? 'no limit' : String(q.max_contacts)),
      el('td', {}, q.max_wait_s == null ? 'no limit' : `${q.max_wait_s} s`),
      el('td', {}, q.overflow ?? '—'),
      el('td', {}, [q.announce_position && 'position', q.announce_wait && 'wait'].filter(Boolean).join(' + ')
        + (q.announce_position || q.announce_wait ? ` every ${q.announce_every_s ?? 30} s` : 'off')),
      el('td', {}, q.callback_attempts == null ? 'flow\'s policy' : `${q.callback_attempts} attempts`)));
    $('queue-settings').tBodies[0].replaceChildren(...(settings.length ? settings : [el('tr', {}, el('td', { colspan: 7 }, 'This node has no ACD.'))]));
    const profileRows = acd.profiles.map((p) => el('tr', { dataset: { profileSettings: p.name } },
      el('th', { scope: 'row' }, p.name),
      el('td', {}, p.queues.map((q) => `${q.queue} (${q.priority}, ${q.delay_s ?? 0} s)`).join(', ')),
      el('td', {}, `${p.acw_s ?? 0} s`)));
    $('profile-settings').tBodies[0].replaceChildren(...profileRows);
    const states = Object.entries(s.agents).map(([k, v]) => `${k}: ${v}`).join(', ');
    $('agent-states').textContent = states ? `Agents by state: ${states}` : '';
  } catch (e) {
    $('queues-error').textContent = `Could not read the queues: ${e.message}`;
    $('queues-error').hidden = false;
  }
}

$('queues-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  load();
});
load();
