// app.js: wires the protocol (proto.js), the state (state.js) and the page
// (view.js) together, and holds the user's actions.

import { ChatClient, ChatError, ERR, MSG, directConv, groupConv, randomId } from './proto.js';
import { Store } from './state.js';
import { View, el, errorText } from './view.js';

const TOKEN = 'clusterchat.token';
const LAST_ID = 'clusterchat.id';

const store = new Store();
const device = randomId(6); // cmids are device-counter, unique per sender
let counter = 0;
const inflight = new Set(); // cmids being sent now

const $ = (id) => document.getElementById(id);

function remember(key, value) {
  try {
    if (value === null) localStorage.removeItem(key);
    else localStorage.setItem(key, value);
  } catch { /* storage disabled: the session lasts as long as the page */ }
}

function recall(key) {
  try { return localStorage.getItem(key); } catch { return null; }
}

const client = new ChatClient({
  status(s) {
    store.setStatus(s);
    if (s === 'online') resendPending();
  },
  login(reply, resumed) {
    store.applyLogin(reply, resumed);
    if (client.token) saveToken(client.token);
    remember(LAST_ID, String(reply.id));
    if (!resumed) store.loadOutbox();
    refreshSocial();
  },
  messages(conv, msgs) { store.addMessages(conv, msgs); },
  presence(id, state) { store.setPresence(id, state); },
  friendAdded(f) { store.addFriend(f); refreshSocial(); },
  groupJoined(ev) {
    if (store.groups.has(ev.groupid)) store.memberJoined(ev.groupid, ev.id, ev.name);
    else refreshGroups();
  },
  read(conv, seq) { store.setRead(conv, seq); },
  // The server ended this session (its token was revoked, or is unknown):
  // the saved token is left alone. Another tab may have just saved the new
  // token of a password change, and Chromium's localStorage is not read
  // consistently across tabs, so removing "ours" could remove theirs. A
  // dead token left behind costs one "session ended" at the next load.
  loggedOut(reason) { signedOut(reason, false); },
  friendEvent(ev) {
    if (ev.event === 'removed' || ev.event === 'blocked') store.removeFriend(ev.id);
    refreshSocial();
  },
  groupEvent(ev) {
    const me = store.me ? store.me.id : 0;
    if (ev.event === 'deleted' || ((ev.event === 'removed' || ev.event === 'left') && ev.id === me)) {
      store.dropGroup(ev.groupid);
      if (ev.event !== 'left') store.setBanner(ev.event === 'deleted' ? `Group ${ev.groupid} was deleted.` : `You were removed from group ${ev.groupid}.`);
      return;
    }
    if (ev.event === 'removed' || ev.event === 'left') store.memberGone(ev.groupid, ev.id);
    else if (ev.event === 'role') store.setRole(ev.groupid, ev.id, ev.role);
    else if (ev.event === 'updated') store.groupUpdated(ev);
    if (ev.id === me || ev.event === 'invited') refreshSocial();
    if (store.info.has(ev.groupid)) refreshInfo(ev.groupid);
  },
  userEvent(ev) { store.rename(ev.id, ev.name); },
});

// ---- social: requests, blocks, people search, group administration

async function refreshSocial() {
  try { store.applySocial(await client.socialState()); } catch { /* shown at the next change */ }
}

async function refreshInfo(gid) {
  try { store.setInfo(await client.groupInfo(gid)); } catch (e) {
    if (e.errno === ERR.FORBIDDEN || e.errno === ERR.NOT_FOUND) store.dropGroup(gid);
  }
}

/** Runs a social request; on failure shows why in the banner. Refreshes what it changed. */
async function social(what, fn, after) {
  try {
    const r = await fn();
    store.setBanner('');
    if (after) await after(r);
  } catch (e) {
    store.setBanner(errorText(e, what));
  }
}

const people = {
  accept: (id) => social('friend', () => client.acceptFriend(id), (r) => { store.addFriend({ id, name: r.name, state: r.state }); refreshSocial(); }),
  decline: (id) => social('friend', () => client.declineFriend(id), refreshSocial),
  cancel: (id) => social('friend', () => client.cancelFriend(id), refreshSocial),
  unfriend: (id) => social('friend', () => client.removeFriend(id), () => store.removeFriend(id)),
  block: (id) => social('block', () => client.block(id), () => { store.removeFriend(id); refreshSocial(); }),
  unblock: (id) => social('block', () => client.unblock(id), refreshSocial),
  add: (id) => social('friend', () => client.requestFriend(id), (r) => {
    if (r.friend) store.addFriend({ id, name: r.name, state: r.state });
    refreshSocial();
  }),
  search: (prefix) => social('search', () => client.searchUsers(prefix), (r) => store.setFound(r.users || [])),
  joinInvited: (gid) => social('join', () => client.groupOp(MSG.GROUP_ASK, gid), async () => { await refreshGroups(); refreshSocial(); openConv(groupConv(gid)); }),
  leave: (gid) => social('group', () => client.groupOp(MSG.GROUP_LEAVE, gid), () => { store.dropGroup(gid); refreshSocial(); }),
};

const admin = {
  info: refreshInfo,
  invite: (gid, id) => social('group', () => client.groupOp(MSG.GROUP_INVITE, gid, id), () => refreshInfo(gid)),
  approve: (gid, id) => social('group', () => client.groupOp(MSG.GROUP_APPROVE, gid, id), () => refreshInfo(gid)),
  remove: (gid, id) => social('group', () => client.groupOp(MSG.GROUP_REMOVE, gid, id), () => refreshInfo(gid)),
  role: (gid, id, role) => social('group', () => client.groupOp(MSG.GROUP_ROLE, gid, id, role), () => refreshInfo(gid)),
  setPrivate: (gid, priv) => {
    const i = store.info.get(gid);
    if (!i) return;
    social('group', () => client.updateGroup(gid, i.groupname, i.groupdesc, priv, i.history), () => refreshInfo(gid));
  },
  /** GROUP_UPDATE from the edit form; throws, so the form says what failed. */
  async update(gid, name, desc, history) {
    const i = store.info.get(gid);
    await client.updateGroup(gid, name, desc, i ? i.private : false, history);
    await refreshInfo(gid);
  },
  leave: people.leave,
  deleteGroup: (gid) => social('group', () => client.groupOp(MSG.GROUP_DELETE, gid), () => store.dropGroup(gid)),
};

// ---- the account panel: each throws, so the panel shows the error under its form

const account = {
  async rename(name) {
    await client.setName(name);
    // The server stores the name trimmed and NFC-normalised; so does the page.
    store.rename(store.me.id, name.trim().normalize('NFC'));
  },
  async password(old, next) {
    await client.setPassword(old, next);
    // The old token was revoked with every other: keep the new one, or a
    // reload would find itself logged out.
    saveToken(client.token);
  },
  async logoutAll() {
    await client.logoutAll();
    remember(TOKEN, null); // dead, whichever tab saved it
    store.clearOutbox();
    signedOut('You have logged out on every device.');
  },
};

// ---- actions from the side panel: each is a small form. More (friend
// requests, blocks, group admin) are added here and rendered the same way.
const actions = {
  friend: {
    label: 'Add friend',
    fields: [{ name: 'id', label: 'User id', numeric: true }],
    async run({ id }) {
      const r = await client.addFriend(id);
      // By default a friendship needs consent: this was a request (friend
      // false) unless the other had asked first. Direct messages work
      // either way, so the conversation opens.
      if (r.friend === false) { store.names.set(id, r.name); refreshSocial(); } else store.addFriend({ id, name: r.name, state: r.state });
      openConv(directConv(store.me.id, id));
    },
    where: 'friend',
  },
  create: {
    label: 'New group',
    fields: [{ name: 'name', label: 'Group name' }, { name: 'desc', label: 'Description', optional: true },
      { name: 'access', label: 'Who can join', choices: [['public', 'Anyone with its id (public)'], ['private', 'Only people I invite or admit (private)']] },
      { name: 'history', label: 'New members see', choices: [['joined', 'Messages from their join on'], ['all', 'The whole history']] }],
    async run({ name, desc, access, history }) {
      const r = await client.createGroup(name, desc || '', access === 'private', history);
      store.putGroup({ id: r.groupid, groupname: name, groupdesc: desc || '', users: [{ id: store.me.id, name: store.me.name, state: 'online', role: 'creator' }] });
      openConv(groupConv(r.groupid));
    },
    where: 'group',
  },
  join: {
    label: 'Join group',
    fields: [{ name: 'id', label: 'Group id', numeric: true }],
    async run({ id }) {
      try {
        await client.joinGroup(id);
      } catch (e) {
        // A private group: ask its admins instead (joins at once when invited).
        if (!(e instanceof ChatError) || e.errno !== ERR.FORBIDDEN) throw e;
        const r = await client.groupOp(MSG.GROUP_ASK, id);
        if (!r.joined) { store.setBanner(`Group ${id} is private: you asked to join; an admin will answer.`); refreshSocial(); return; }
      }
      await refreshGroups();
      openConv(groupConv(id));
    },
    where: 'join',
  },
};

function showAction(name) {
  const a = actions[name];
  const form = $('action-form');
  if (!a || form.dataset.action === name) { form.hidden = true; form.dataset.action = ''; return; }
  const error = el('p', { class: 'error', role: 'alert' });
  const inputs = a.fields.map((f) => (f.choices
    ? el('select', { name: f.name, 'aria-label': f.label, title: f.label }, f.choices.map(([v, text]) => el('option', { value: v }, text)))
    : el('input', {
      name: f.name, placeholder: f.label, 'aria-label': f.label, required: !f.optional,
      inputmode: f.numeric ? 'numeric' : null, pattern: f.numeric ? '[0-9]+' : null, maxlength: f.numeric ? 18 : 200,
    })));
  form.replaceChildren(el('div', { class: 'action-title' }, a.label), ...inputs,
    el('div', { class: 'row' }, el('button', { type: 'submit' }, a.label), el('button', { type: 'button', class: 'link', onclick: () => showAction(name) }, 'Cancel')), error);
  form.dataset.action = name;
  form.hidden = false;
  form.onsubmit = async (ev) => {
    ev.preventDefault();
    const values = {};
    for (const f of a.fields) {
      const v = form.elements[f.name].value.trim();
      values[f.name] = f.numeric ? Number(v) : v;
    }
    error.textContent = '';
    try {
      await a.run(values);
      form.hidden = true;
      form.dataset.action = '';
    } catch (e) {
      error.textContent = errorText(e, a.where);
    }
  };
  inputs[0].focus();
}

async function refreshGroups() {
  try {
    const snap = await client.snapshot();
    for (const g of snap.groups || []) store.putGroup(g);
    for (const g of snap.groups || []) store.conv(groupConv(g.id));
    store.changed();
  } catch { /* the next login brings them */ }
}

// ---- conversations

function openConv(conv) {
  store.select(conv);
  if (location.hash.slice(1) !== conv) history.replaceState(null, '', `#${conv}`);
  view.paneError('');
  const c = store.conv(conv);
  if (c.msgs.length < 30) loadOlder(conv);
  requestAnimationFrame(() => $('text').focus());
}

async function loadOlder(conv) {
  const c = store.conv(conv);
  if (c.loading || !c.more || !client.live) return;
  if (c.lo <= 1) { c.more = false; store.changed(); return; }
  c.loading = true;
  try {
    const msgs = await client.history(conv, c.lo, 50);
    store.addHistory(conv, msgs, msgs.length === 50);
  } catch (e) {
    view.paneError(errorText(e, 'history'));
  } finally {
    c.loading = false;
    store.changed();
  }
}

function targetOf(conv) {
  const d = store.describe(conv);
  return d.kind === 'group' ? { group: d.id } : { to: d.id };
}

function sendText(text) {
  const conv = store.open;
  if (!conv || !store.me) return false;
  const p = { cmid: `${device}-${++counter}`, text, target: targetOf(conv), ts: Date.now(), state: 'pending', error: '' };
  store.addPending(conv, p);
  trySend(conv, p);
  return true;
}

async function trySend(conv, p) {
  if (inflight.has(p.cmid)) return;
  p.state = 'pending';
  p.error = '';
  store.changed();
  if (!client.live) return; // sent when the connection is back
  inflight.add(p.cmid);
  try {
    await client.send(p.target, p.text, p.cmid);
    store.settlePending(conv, p.cmid);
  } catch (e) {
    // Dropped connection: it stays pending and goes again, with the same
    // cmid, once reconnected (the server stores it once).
    if (!(e instanceof ChatError) || e.errno !== ERR.CLOSED) store.failPending(conv, p.cmid, errorText(e, 'send'));
  } finally {
    inflight.delete(p.cmid);
  }
}

function resendPending() {
  for (const c of store.convs.values()) {
    for (const p of c.pending) if (p.state === 'pending') trySend(c.id, p);
  }
}

function retry(conv, cmid) {
  const p = store.conv(conv).pending.find((q) => q.cmid === cmid);
  if (p) trySend(conv, p);
}

// Read markers: what is on screen, at the bottom, in a visible tab is read.
function markRead() {
  const conv = store.open;
  if (!conv || !client.live || document.visibilityState !== 'visible' || !view.atBottom()) return;
  const c = store.convs.get(conv);
  const seen = c && c.msgs.length ? c.msgs[c.msgs.length - 1].seq : 0;
  if (seen > c.read) {
    store.setRead(conv, seen);
    client.read(conv, seen).catch(() => {});
  }
}

// ---- logging in and out

// The token this page saved or resumed with. The tabs of a browser share
// the saved one: a tab whose session ends forgets it only if it is its own,
// so that a tab logged out by another's password change cannot delete the
// new token that tab just saved.
let pageToken = null;

function saveToken(token) {
  pageToken = token;
  remember(TOKEN, token);
}

function signedOut(reason, forget = true) {
  if (forget && recall(TOKEN) === pageToken) remember(TOKEN, null);
  pageToken = null;
  store.reset();
  store.changed();
  history.replaceState(null, '', location.pathname);
  view.showAuth(reason);
  const id = recall(LAST_ID);
  if (id) $('login-id').value = id;
}

async function enter(cred, where) {
  const reply = await client.login(cred);
  view.showChat();
  const want = location.hash.slice(1);
  if (want && store.convs.has(want)) openConv(want);
  return reply;
}

async function resumeSaved() {
  const token = recall(TOKEN);
  pageToken = token;
  if (!token) { signedOut(''); return; }
  store.setBanner('');
  for (let attempt = 0; ; attempt++) {
    try {
      await enter({ token });
      store.setBanner('');
      return;
    } catch (e) {
      if (e.errno === ERR.AUTH) { signedOut('Your session has ended; please log in again.'); return; }
      if (e.errno === ERR.RATE_LIMITED || e.errno > 0) { signedOut(errorText(e, 'login')); return; }
      view.showChat();
      store.setBanner('Cannot reach the server — retrying…');
      const base = Math.min(15000, 500 * 2 ** Math.min(attempt, 5));
      await new Promise((r) => setTimeout(r, base / 2 + Math.random() * base));
    }
  }
}

function setupAuth() {
  const tabs = { login: $('tab-login'), register: $('tab-register') };
  const select = (which) => {
    tabs.login.classList.toggle('active', which === 'login');
    tabs.register.classList.toggle('active', which === 'register');
    $('login-form').hidden = which !== 'login';
    $('register-form').hidden = which !== 'register';
    $('auth-error').textContent = '';
  };
  tabs.login.addEventListener('click', () => select('login'));
  tabs.register.addEventListener('click', () => select('register'));
  $('login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    $('auth-error').textContent = '';
    const id = Number($('login-id').value.trim());
    if (!Number.isInteger(id) || id <= 0) { $('auth-error').textContent = 'Your user id is a number (it was shown when you registered).'; return; }
    try {
      await enter({ id, password: $('login-pw').value });
      $('login-pw').value = '';
    } catch (e) {
      $('auth-error').textContent = errorText(e, 'login');
    }
  });
  $('register-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    $('auth-error').textContent = '';
    const name = $('reg-name').value.trim();
    const password = $('reg-pw').value;
    try {
      const id = await client.register(name, password);
      $('login-id').value = String(id);
      remember(LAST_ID, String(id));
      await enter({ id, password });
      $('reg-pw').value = '';
    } catch (e) {
      $('auth-error').textContent = errorText(e, 'register');
    }
  });
}

const view = new View({
  selectConv: openConv,
  people,
  admin,
  account,
  back() { store.select(null); history.replaceState(null, '', location.pathname); },
  send: sendText,
  retry,
  loadOlder,
  scrolled: markRead,
  redraw: () => store.changed(),
  async logout() {
    store.clearOutbox();
    await client.logout();
    signedOut('You have logged out.');
  },
});

for (const b of document.querySelectorAll('[data-action]')) b.addEventListener('click', () => showAction(b.dataset.action));
$('people-toggle').addEventListener('click', () => { view.togglePeople(); if (view.peopleOpen) refreshSocial(); });
store.subscribe((s) => { view.render(s); markRead(); });
document.addEventListener('visibilitychange', markRead);
window.addEventListener('hashchange', () => {
  const want = location.hash.slice(1);
  if (want && want !== store.open && store.convs.has(want)) openConv(want);
});
setupAuth();
resumeSaved();
