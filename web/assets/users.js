// The admin users page: list (GET /api/v1/users), add (POST), edit / reset password / disable
// (PUT /api/v1/users/{id}), delete (DELETE). Agents' skills are "name:level" pairs.
import { api, el } from '/assets/shell.js';

const $ = (id) => document.getElementById(id);
let editing = null; // the user being edited, or null when adding

function showError(node, text) {
  node.textContent = text;
  node.hidden = !text;
}

const skillsText = (skills) => Object.entries(skills).map(([k, v]) => `${k}:${v}`).join(', ');

/// "sales:4, billing:2" → {sales: 4, billing: 2}; throws with the bad part named.
function parseSkills(text) {
  const out = {};
  for (const part of text.split(',').map((p) => p.trim()).filter(Boolean)) {
    const m = /^([^:]+):\s*(\d+)$/.exec(part);
    if (!m) throw new Error(`Skill "${part}": write it as name:level, e.g. sales:4.`);
    out[m[1].trim()] = Number(m[2]);
  }
  return out;
}

function resetForm() {
  editing = null;
  $('user-form').reset();
  $('user-username').readOnly = false;
  $('user-form-title').textContent = 'Add a user';
  $('user-save').textContent = 'Add user';
  $('user-password-label').textContent = 'Password';
  $('user-cancel').hidden = true;
  showError($('user-form-error'), '');
}

function edit(u) {
  editing = u;
  $('user-username').value = u.username;
  $('user-username').readOnly = true;
  $('user-display').value = u.display_name;
  $('user-role').value = u.role;
  $('user-password').value = '';
  $('user-skills').value = skillsText(u.skills);
  $('user-disabled').checked = u.disabled;
  $('user-form-title').textContent = `Edit ${u.username}`;
  $('user-save').textContent = 'Save changes';
  $('user-password-label').textContent = 'New password (leave empty to keep)';
  $('user-cancel').hidden = false;
  showError($('user-form-error'), '');
  $('user-display').focus();
}

async function load() {
  try {
    const users = await api('GET', '/api/v1/users');
    showError($('users-error'), '');
    const me = document.getElementById('who-user').textContent;
    const rows = users.map((u) => {
      const editBtn = el('button', { type: 'button', class: 'link', 'data-action': 'edit' }, 'Edit');
      editBtn.addEventListener('click', () => edit(u));
      const del = el('button', { type: 'button', class: 'link', 'data-action': 'delete', disabled: u.username === me }, 'Delete');
      del.addEventListener('click', async () => {
        if (!confirm(`Delete the user ${u.username}? Their audit trail stays.`)) return;
        try {
          await api('DELETE', `/api/v1/users/${u.id}`);
          if (editing?.id === u.id) resetForm();
          await load();
        } catch (e) {
          showError($('users-error'), e.message);
        }
      });
      const status = u.disabled ? el('span', { class: 'badge plain' }, 'disabled')
        : u.locked_until ? el('span', { class: 'badge plain', title: `until ${u.locked_until}` }, 'locked') : el('span', { class: 'badge' }, 'active');
      const skills = Object.entries(u.skills).map(([k, v]) => el('span', { class: 'badge phone', title: `proficiency ${v} of 5` }, `${k} ${v}`));
      return el('tr', { dataset: { user: u.username, id: u.id } },
        el('th', { scope: 'row' }, u.username),
        el('td', {}, u.display_name || '—'),
        el('td', {}, u.role),
        el('td', { class: 'skills' }, ...(skills.length ? skills : ['—'])),
        el('td', {}, status),
        el('td', { class: 'row-actions' }, editBtn, del));
    });
    $('users').tBodies[0].replaceChildren(...rows);
  } catch (e) {
    showError($('users-error'), `Could not load the users: ${e.message}`);
  }
}

$('user-cancel').addEventListener('click', resetForm);

$('user-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const err = $('user-form-error');
  let skills;
  try {
    skills = parseSkills($('user-skills').value);
  } catch (e) {
    return showError(err, e.message);
  }
  const password = $('user-password').value;
  $('user-save').disabled = true;
  try {
    if (editing) {
      const body = {
        display_name: $('user-display').value.trim(),
        role: $('user-role').value,
        disabled: $('user-disabled').checked,
        skills,
      };
      if (password) body.password = password;
      await api('PUT', `/api/v1/users/${editing.id}`, body);
    } else {
      const username = $('user-username').value.trim();
      if (!username) throw new Error('Give the user name.');
      const made = await api('POST', '/api/v1/users', {
        username, password, role: $('user-role').value, display_name: $('user-display').value.trim(), skills,
      });
      if ($('user-disabled').checked) await api('PUT', `/api/v1/users/${made.id}`, { disabled: true });
    }
    resetForm();
    await load();
  } catch (e) {
    showError(err, e.message);
  } finally {
    $('user-save').disabled = false;
  }
});

load();
