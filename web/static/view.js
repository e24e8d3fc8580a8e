// view.js: draws the Store into the page. User text only ever goes in as
// text (el() sets textContent), never as HTML.
//
// View.render(store) redraws what changed; the user's actions go to the
// callbacks in `on` (see app.js). New panels (friend requests, blocks, group
// admin) add a render method and an entry in app.js's actions.

import { ERR, directConv } from './proto.js';

/** el('div', {class: 'x', onclick: f}, 'text', child...) builds an element; strings become text nodes. */
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

const $ = (id) => document.getElementById(id);

function hhmm(ts) {
  return new Date(ts).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

function fullDate(ts) {
  return new Date(ts).toLocaleString([], { dateStyle: 'full', timeStyle: 'medium' });
}

function dayLabel(ts) {
  const d = new Date(ts);
  const today = new Date();
  const yesterday = new Date(Date.now() - 864e5);
  if (d.toDateString() === today.toDateString()) return 'Today';
  if (d.toDateString() === yesterday.toDateString()) return 'Yesterday';
  return d.toLocaleDateString([], { weekday: 'long', day: 'numeric', month: 'long', year: 'numeric' });
}

/** "1 member", "5 members". */
function memberCount(g) {
  const n = g.users.length;
  return n === 1 ? '1 member' : `${n} members`;
}

/** What the page says of a person's presence (friends only see each other's). */
function presenceText(d) {
  if (!d.friend) return 'not a friend';
  return d.state === 'online' ? 'online' : 'offline';
}

/** A wait in the unit a person would say it in: 40 s, 5 min, 3 h. */
function waitText(ms) {
  const s = Math.ceil(ms / 1000);
  if (s < 120) return `${s} s`;
  if (s < 2 * 3600) return `${Math.ceil(s / 60)} min`;
  return `${Math.ceil(s / 3600)} h`;
}

/** Words a person understands for a failed request, by where it happened. */
export function errorText(e, where) {
  switch (e.errno) {
    case ERR.AUTH:
      if (where === 'login') return 'Wrong user id or password.';
      if (where === 'password') return 'Your current password is wrong.';
      return 'Your session has ended; please log in again.';
    case ERR.SESSIONS: return 'This account is already signed in elsewhere.';
    case ERR.EXISTS:
      if (where === 'register' || where === 'name') return 'That name is taken; pick another.';
      if (where === 'friend') return 'You are already friends.';
      if (where === 'group') return 'That group name is taken; pick another.';
      return `Already exists: ${e.message}`;
    case ERR.NOT_FOUND: return `Not found: ${e.message}.`;
    case ERR.FORBIDDEN:
      if (e.message === 'refused') return where === 'send' ? 'Not sent: this person does not take your messages.' : 'Refused.';
      if (where === 'send') return e.message && e.message.includes('block') ? `Not sent: ${e.message}.` : 'Not sent: you are not a member of this group.';
      if (where === 'join' || where === 'group') return `Not allowed: ${e.message}.`;
      return 'You are not allowed to do that (not a member).';
    case ERR.TOO_LARGE: return 'Too long: the message is over the server\'s limit.';
    case ERR.RATE_LIMITED: {
      const wait = e.retryMs ? waitText(e.retryMs) : 'a minute';
      if (e.message && e.message.includes('quota')) return `Not sent: you have sent a lot of text today; you can send more in ${wait}.`;
      return e.retryMs ? `Too many attempts; try again in ${wait}.` : 'Too many attempts; wait a minute and try again.';
    }
    case ERR.UNAVAILABLE: return 'The server cannot reach its storage right now; try again shortly.';
    case ERR.INVALID: return `Not accepted: ${e.message}.`;
    case ERR.UNREACHABLE: return 'Cannot reach the server. Check that it is running.';
    case ERR.TIMEOUT: return 'The server did not answer in time.';
    case ERR.CLOSED: return 'Not connected to the server.';
    default: return e.message || 'Something went wrong.';
  }
}

export class View {
  /**
   * on: {selectConv(conv), back(), send(text), retry(conv, cmid),
   *      loadOlder(conv), logout(), action(name), toggleMembers(),
   *      people: {...}, admin: {...}, account: {rename, password, logoutAll}}
   *      (see app.js; the account's and admin.update's promises reject
   *      with a ChatError, shown in words under the form)
   */
  constructor(on) {
    this.on = on;
    this.shown = { conv: null, first: 0, last: 0, pending: '' };
    this.membersOpen = false;
    this.peopleOpen = false;
    this.accountOpen = false;
    this.buildPeople();
    this.buildMembers();
    this.buildAccount();
    $('me-toggle').addEventListener('click', () => this.toggleAccount());
    $('peer-block').addEventListener('click', () => {
      const d = this.peer;
      if (d) (d.blocked ? this.on.people.unblock : this.on.people.block)(d.id);
    });
    $('peer-unfriend').addEventListener('click', () => { if (this.peer) this.on.people.unfriend(this.peer.id); });
    const msgs = $('messages');
    msgs.addEventListener('scroll', () => {
      if (msgs.scrollTop < 60 && this.shown.conv) this.on.loadOlder(this.shown.conv);
      if (this.atBottom()) $('new-below').hidden = true;
      this.on.scrolled();
    });
    $('new-below').addEventListener('click', () => { this.scrollToBottom(); });
    $('back').addEventListener('click', () => this.on.back());
    // Escape closes the conversation (back to the list on a phone).
    document.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape' && !$('chat').hidden) this.on.back();
    });
    $('logout').addEventListener('click', () => this.on.logout());
    $('members-toggle').addEventListener('click', () => {
      this.membersOpen = !this.membersOpen;
      if (this.membersOpen && this.group) this.on.admin.info(this.group);
      this.on.redraw();
    });
    const text = $('text');
    let sentByEnter = false; // swallow the line break of the Enter that sent
    text.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        sentByEnter = true;
        this.submit();
      }
    });
    text.addEventListener('beforeinput', (ev) => {
      if (sentByEnter && (ev.inputType === 'insertLineBreak' || ev.data === '\n' || ev.data === '\r')) ev.preventDefault();
      sentByEnter = false;
    });
    text.addEventListener('keyup', () => { sentByEnter = false; });
    text.addEventListener('input', () => this.grow());
    $('composer').addEventListener('submit', (ev) => { ev.preventDefault(); this.submit(); });
  }

  submit() {
    const text = $('text');
    const v = text.value;
    if (!v.trim()) return;
    if (this.on.send(v) !== false) {
      text.value = '';
      this.grow();
    }
  }

  grow() {
    const t = $('text');
    t.style.height = 'auto';
    t.style.height = `${Math.min(t.scrollHeight, 160)}px`;
  }

  atBottom() {
    const m = $('messages');
    return m.scrollHeight - m.scrollTop - m.clientHeight < 40;
  }

  scrollToBottom() {
    const m = $('messages');
    m.scrollTop = m.scrollHeight;
    $('new-below').hidden = true;
  }

  render(s) {
    this.renderBanner(s);
    const chat = $('chat');
    chat.classList.toggle('has-open', !!s.open);
    $('me-name').textContent = s.me ? s.me.name : '';
    $('me-id').textContent = s.me ? `id ${s.me.id}` : '';
    this.renderConvs(s);
    this.renderPeople(s);
    this.renderAccount(s);
    this.renderPane(s);
    const unread = [...s.convs.values()].reduce((n, c) => n + c.unread, 0);
    document.title = unread ? `(${unread}) clusterchat` : 'clusterchat';
  }

  renderBanner(s) {
    const b = $('banner');
    let text = s.banner;
    if (!text && (s.status === 'reconnecting' || s.status === 'connecting')) text = 'Connection lost — reconnecting…';
    else if (!text && s.status === 'syncing' && s.me) text = 'Catching up…';
    b.textContent = text;
    b.hidden = !text;
    b.classList.toggle('warn', s.status === 'reconnecting');
  }

  renderConvs(s) {
    // Keyed: an item stays the same element while its conversation exists,
    // so focus and clicks are not lost when the list updates.
    const ul = $('convs');
    if (!this.items) this.items = new Map();
    const seen = new Set();
    const list = s.sortedConvs();
    list.forEach((c, i) => {
      seen.add(c.id);
      let li = this.items.get(c.id);
      if (!li) {
        li = el('li', {
          class: 'conv', 'data-conv': c.id, tabindex: 0, role: 'button',
          onclick: () => this.on.selectConv(c.id),
          onkeydown: (ev) => { if (ev.key === 'Enter') this.on.selectConv(c.id); },
        });
        this.items.set(c.id, li);
      }
      this.fillConv(s, c, li);
      if (ul.children[i] !== li) ul.insertBefore(li, ul.children[i] || null);
    });
    for (const [id, li] of this.items) {
      if (!seen.has(id)) { li.remove(); this.items.delete(id); }
    }
    let hint = ul.querySelector('.hint');
    if (list.length === 0 && !hint) ul.append(el('li', { class: 'hint muted' }, 'No conversations yet: add a friend by id, or create or join a group.'));
    else if (list.length && hint) hint.remove();
  }

  fillConv(s, c, li) {
    const d = s.describe(c.id);
    const dot = d.kind === 'user' ? el('span', { class: `dot ${d.state === 'online' ? 'on' : 'off'}`, title: presenceText(d) }) : el('span', { class: 'dot group', title: 'group' }, '#');
    const sub = d.kind === 'group' ? (d.group ? memberCount(d.group) : '') : presenceText(d);
    const last = c.lastText();
    li.classList.toggle('active', s.open === c.id);
    li.replaceChildren(dot,
      el('div', { class: 'conv-body' },
        el('div', { class: 'conv-title' }, el('span', { class: 'conv-name' }, d.title), c.unread ? el('span', { class: 'badge', 'aria-label': `${c.unread} unread` }, String(c.unread)) : null),
        el('div', { class: 'conv-last muted' }, last ? last.split('\n')[0].slice(0, 60) : sub)));
  }

  renderPane(s) {
    const c = s.open ? s.convs.get(s.open) : null;
    $('empty').hidden = !!c;
    $('pane-main').hidden = !c;
    if (!c) { this.shown.conv = null; return; }
    const d = s.describe(c.id);
    $('title').textContent = d.title;
    const sub = $('subtitle');
    if (d.kind === 'group') sub.textContent = d.group ? memberCount(d.group) : '';
    else sub.textContent = presenceText(d);
    sub.className = d.kind === 'user' && d.state === 'online' ? 'online' : 'muted';
    const toggle = $('members-toggle');
    toggle.hidden = d.kind !== 'group';
    this.group = d.kind === 'group' ? d.id : 0;
    const blocked = d.kind === 'user' && s.blocked.some((u) => u.id === d.id);
    this.peer = d.kind === 'user' ? { id: d.id, blocked } : null;
    $('peer-block').hidden = d.kind !== 'user';
    $('peer-block').textContent = blocked ? 'Unblock' : 'Block';
    $('peer-unfriend').hidden = !(d.kind === 'user' && d.friend);
    const panel = $('members');
    panel.hidden = !(d.kind === 'group' && this.membersOpen);
    if (!panel.hidden && d.group) this.renderMembers(s, d.group);
    this.renderMessages(s, c, d);
  }

  renderMessages(s, c, d) {
    const box = $('messages');
    const first = c.msgs.length ? c.msgs[0].seq : 0;
    const last = c.msgs.length ? c.msgs[c.msgs.length - 1].seq : 0;
    const pendingKey = c.pending.map((p) => p.cmid + p.state).join(',') + (c.more ? '+' : '');
    const same = this.shown.conv === c.id;
    if (same && this.shown.first === first && this.shown.last === last && this.shown.pending === pendingKey) return;
    const wasBottom = this.atBottom();
    const oldHeight = box.scrollHeight;
    const oldTop = box.scrollTop;
    const prepended = same && first < this.shown.first;
    const grew = same && last > this.shown.last;

    const nodes = [];
    if (!c.more || c.lo <= 1) nodes.push(el('div', { class: 'start muted' }, 'This is the beginning of the conversation.'));
    else nodes.push(el('div', { class: 'start muted' }, c.loading ? 'Loading…' : 'Scroll up for older messages'));
    let day = '';
    let prevFrom = 0;
    const me = s.me ? s.me.id : 0;
    for (const m of c.msgs) {
      const dd = new Date(m.ts).toDateString();
      if (dd !== day) { nodes.push(el('div', { class: 'day' }, el('span', {}, dayLabel(m.ts)))); day = dd; prevFrom = 0; }
      const own = m.from === me;
      const showName = d.kind === 'group' && !own && prevFrom !== m.from;
      nodes.push(el('div', { class: `msg${own ? ' own' : ''}`, 'data-seq': m.seq, 'data-from': m.from },
        showName ? el('div', { class: 'sender' }, m.name || s.nameOf(m.from)) : null,
        el('div', { class: 'text' }, m.text),
        el('time', { class: 'time', datetime: new Date(m.ts).toISOString(), title: fullDate(m.ts) }, hhmm(m.ts))));
      prevFrom = m.from;
    }
    for (const p of c.pending) {
      nodes.push(el('div', { class: `msg own ${p.state}`, 'data-cmid': p.cmid },
        el('div', { class: 'text' }, p.text),
        p.state === 'failed'
          ? el('div', { class: 'status' }, el('span', { class: 'error' }, p.error || 'Not sent.'), ' ',
            el('button', { class: 'link retry', onclick: () => this.on.retry(c.id, p.cmid) }, 'Retry'))
          : el('div', { class: 'status muted' }, 'sending…')));
    }
    box.replaceChildren(...nodes);
    this.shown = { conv: c.id, first, last, pending: pendingKey };
    if (!same || wasBottom) this.scrollToBottom();
    else if (prepended) box.scrollTop = oldTop + (box.scrollHeight - oldHeight);
    else if (grew) $('new-below').hidden = false;
    if (!same) $('new-below').hidden = true;
  }

  togglePeople() { this.peopleOpen = !this.peopleOpen; this.on.redraw(); }

  /** The people panel's fixed parts: built once, so typing survives redraws. */
  buildPeople() {
    const search = el('input', { id: 'people-search', placeholder: 'Name starts with…', 'aria-label': 'Search people by name', maxlength: 50 });
    this.peopleLists = { requests: el('ul', { id: 'requests' }), invites: el('ul', { id: 'invites' }), blocked: el('ul', { id: 'blocked' }), found: el('ul', { id: 'found' }) };
    $('people').replaceChildren(
      el('h3', {}, 'Friend requests'), this.peopleLists.requests,
      el('h3', {}, 'Group invitations'), this.peopleLists.invites,
      el('h3', {}, 'Find people'),
      el('form', { id: 'people-search-form', onsubmit: (ev) => { ev.preventDefault(); if (search.value.trim()) this.on.people.search(search.value.trim()); } },
        search, el('button', { type: 'submit', class: 'small' }, 'Search')),
      this.peopleLists.found,
      el('h3', {}, 'Blocked'), this.peopleLists.blocked);
  }

  renderPeople(s) {
    const me = s.me ? s.me.id : 0;
    const incoming = s.requests.filter((r) => r.to === me);
    const invites = s.invites.filter((p) => p.kind === 'invite');
    const badge = $('people-badge');
    badge.textContent = String(incoming.length + invites.length);
    badge.hidden = incoming.length + invites.length === 0;
    $('people').hidden = !this.peopleOpen;
    if (!this.peopleOpen) return;
    if (this.unchanged('people', [me, s.requests, s.invites, s.found, s.blocked, (s.found || []).map((u) => s.friends.has(u.id))])) return;
    const btn = (text, onclick, cls = 'small') => el('button', { type: 'button', class: cls, onclick }, text);
    const L = this.peopleLists;
    L.requests.replaceChildren(...[...s.requests.map((r) => (r.to === me
      ? el('li', { 'data-from': r.from }, el('span', { class: 'grow' }, `${r.fromname} #${r.from} asks to be your friend`),
        btn('Accept', () => this.on.people.accept(r.from)), btn('Decline', () => this.on.people.decline(r.from), 'small plain'))
      : el('li', { 'data-to': r.to }, el('span', { class: 'grow muted' }, `you asked ${r.toname} #${r.to}`),
        btn('Cancel', () => this.on.people.cancel(r.to), 'small plain')))),
    s.requests.length ? null : el('li', { class: 'muted' }, 'None.')].filter(Boolean));
    L.invites.replaceChildren(...[...s.invites.map((p) => (p.kind === 'invite'
      ? el('li', { 'data-group': p.groupid }, el('span', { class: 'grow' }, `invited to “${p.groupname}” #${p.groupid}`),
        btn('Join', () => this.on.people.joinInvited(p.groupid)), btn('Decline', () => this.on.people.leave(p.groupid), 'small plain'))
      : el('li', { 'data-group': p.groupid }, el('span', { class: 'grow muted' }, `you asked to join “${p.groupname}” #${p.groupid}`),
        btn('Withdraw', () => this.on.people.leave(p.groupid), 'small plain')))),
    s.invites.length ? null : el('li', { class: 'muted' }, 'None.')].filter(Boolean));
    L.found.replaceChildren(...[...(s.found || []).map((u) => el('li', { 'data-user': u.id },
      el('span', { class: 'grow' }, `${u.name} #${u.id}`),
      u.id === me || s.friends.has(u.id) ? null : btn('Add friend', () => this.on.people.add(u.id)),
      u.id === me ? null : btn('Message', () => this.on.selectConv(directConv(me, u.id)), 'small plain'))),
    s.found && s.found.length === 0 ? el('li', { class: 'muted' }, 'Nobody by that name.') : null].filter(Boolean));
    L.blocked.replaceChildren(...[...s.blocked.map((u) => el('li', { 'data-user': u.id },
      el('span', { class: 'grow' }, `${u.name} #${u.id}`), btn('Unblock', () => this.on.people.unblock(u.id), 'small plain'))),
    s.blocked.length ? null : el('li', { class: 'muted' }, 'Nobody.')].filter(Boolean));
  }

  toggleAccount() {
    this.accountOpen = !this.accountOpen;
    $('me-toggle').setAttribute('aria-expanded', String(this.accountOpen));
    if (this.accountOpen) {
      for (const p of this.accountParts.notes) p.textContent = '';
      this.accountParts.name.value = $('me-name').textContent;
    }
    this.on.redraw();
    if (this.accountOpen) this.accountParts.name.focus();
  }

  /**
   * The account panel (opened from the user's name): display name,
   * password, log out everywhere. Built once, so typing survives redraws;
   * each form says how it went under itself.
   */
  buildAccount() {
    const note = () => el('p', { class: 'note', role: 'status' });
    const name = el('input', { id: 'account-name', 'aria-label': 'Display name', maxlength: 50, autocomplete: 'nickname', required: true });
    const oldPw = el('input', { id: 'account-old-pw', type: 'password', placeholder: 'Current password', 'aria-label': 'Current password', autocomplete: 'current-password', maxlength: 72, required: true });
    const newPw = el('input', { id: 'account-new-pw', type: 'password', placeholder: 'New password', 'aria-label': 'New password', autocomplete: 'new-password', maxlength: 72, required: true });
    const notes = [note(), note(), note()];
    // run shows fn's outcome under its form: ok text, or the error in words.
    const run = async (i, where, fn, ok) => {
      notes[i].textContent = '';
      notes[i].className = 'note';
      try {
        await fn();
        notes[i].textContent = ok;
      } catch (e) {
        notes[i].textContent = errorText(e, where);
        notes[i].className = 'note error';
      }
    };
    const submit = (fn) => (ev) => { ev.preventDefault(); fn(); };
    this.accountParts = { name, notes };
    $('account').replaceChildren(
      el('h3', {}, 'Display name'),
      el('form', { id: 'account-name-form', onsubmit: submit(() => run(0, 'name', () => this.on.account.rename(name.value.trim()), 'Saved: your friends see the new name.')) },
        name, el('button', { type: 'submit', class: 'small' }, 'Save')),
      notes[0],
      el('h3', {}, 'Password'),
      el('form', { id: 'account-pw-form', class: 'stack', onsubmit: submit(() => run(1, 'password', async () => {
        await this.on.account.password(oldPw.value, newPw.value);
        oldPw.value = '';
        newPw.value = '';
      }, 'Changed: your other devices and tabs were logged out.')) },
      oldPw, newPw, el('button', { type: 'submit', class: 'small' }, 'Change password')),
      notes[1],
      el('h3', {}, 'Sessions'),
      el('p', { class: 'muted' }, 'Lost a device? This logs you out on every device and tab, this one too.'),
      el('button', { id: 'logout-all', type: 'button', class: 'small danger', onclick: () => run(2, 'logout', () => this.on.account.logoutAll(), '') }, 'Log out everywhere'),
      notes[2]);
  }

  renderAccount(s) {
    $('account').hidden = !this.accountOpen || !s.me;
  }

  /** The members panel's invite form: built once, kept across redraws. */
  buildMembers() {
    const input = el('input', { id: 'invite-id', placeholder: 'User id', 'aria-label': 'User id to invite', inputmode: 'numeric', pattern: '[0-9]+', maxlength: 18 });
    this.inviteForm = el('form', { id: 'invite-form', onsubmit: (ev) => {
      ev.preventDefault();
      const id = Number(input.value.trim());
      if (this.group && Number.isInteger(id) && id > 0) { this.on.admin.invite(this.group, id); input.value = ''; }
    } }, input, el('button', { type: 'submit', class: 'small' }, 'Invite'));
    this.memberParts = { title: el('h3', {}, 'Members'), pendingTitle: el('h3', {}, 'Pending'), desc: el('p', { class: 'desc', id: 'group-desc' }), settings: el('div', { class: 'settings muted' }), list: el('ul', { id: 'member-list' }), pending: el('ul', { class: 'pending', id: 'pending-list' }), buttons: el('div', { class: 'row' }) };
    this.buildGroupEdit();
  }

  /** Admins' form for the group's name, description and history setting (GROUP_UPDATE). */
  buildGroupEdit() {
    const name = el('input', { id: 'group-edit-name', maxlength: 50, required: true });
    const desc = el('input', { id: 'group-edit-desc', maxlength: 200 });
    const history = el('select', { id: 'group-edit-history' },
      el('option', { value: 'joined' }, 'Messages from their join on'),
      el('option', { value: 'all' }, 'The whole history'));
    const field = (label, input) => el('label', { class: 'field' }, label, input);
    const note = el('p', { class: 'note', role: 'status' });
    const form = el('form', { id: 'group-edit', class: 'stack', hidden: true, onsubmit: async (ev) => {
      ev.preventDefault();
      note.textContent = '';
      note.className = 'note';
      try {
        await this.on.admin.update(this.group, name.value.trim(), desc.value.trim(), history.value);
        note.textContent = 'Saved.';
      } catch (e) {
        note.textContent = errorText(e, 'group');
        note.className = 'note error';
      }
    } }, el('div', { class: 'action-title' }, 'Group settings'),
    field('Name', name), field('Description', desc), field('New members see', history),
    el('div', { class: 'row' }, el('button', { type: 'submit', class: 'small' }, 'Save'),
      el('button', { type: 'button', class: 'small plain', onclick: () => { form.hidden = true; } }, 'Close')), note);
    this.groupEdit = { form, name, desc, history, note, key: '' };
  }

  /**
   * Puts the group's settings into the edit form when they differ from what
   * it was last filled with (another group, or an admin changed them), so
   * a redraw while typing does not undo the typing.
   */
  fillGroupEdit(info) {
    const E = this.groupEdit;
    const key = JSON.stringify([info.groupid, info.groupname, info.groupdesc, info.history]);
    if (E.key === key) return;
    if (E.key && JSON.parse(E.key)[0] !== info.groupid) { E.form.hidden = true; E.note.textContent = ''; }
    E.key = key;
    E.name.value = info.groupname;
    E.desc.value = info.groupdesc || '';
    E.history.value = info.history === 'all' ? 'all' : 'joined';
  }

  /** Members with roles; for admins the admin actions (docs/protocol.md "Groups"). */
  renderMembers(s, g) {
    const info = s.info.get(g.id);
    const me = s.me ? s.me.id : 0;
    const mine = info ? info.role : (g.users.find((u) => u.id === me)?.role || 'normal');
    const isAdmin = mine === 'admin' || mine === 'creator';
    const P = this.memberParts;
    const E = this.groupEdit;
    if (isAdmin && info) this.fillGroupEdit(info);
    else E.form.hidden = true;
    if (!this.unchanged('members', [g.id, g.users, info, me])) this.drawMembers(g, info, me, mine, isAdmin);
    const pending = info && isAdmin ? info.pending || [] : [];
    const canInvite = isAdmin || (info && !info.private);
    // The same nodes most of the time: moving them would blur a field
    // being typed in, so the panel changes only when its parts do.
    const parts = [P.title, P.desc.textContent ? P.desc : null, P.settings, P.list, pending.length ? P.pendingTitle : null, P.pending,
      canInvite ? this.inviteForm : null, P.buttons, isAdmin && info ? E.form : null].filter(Boolean);
    const box = $('members');
    if (box.children.length !== parts.length || parts.some((n, i) => box.children[i] !== n)) box.replaceChildren(...parts);
  }

  /**
   * True when what slot shows was drawn from the same data. Lists are
   * redrawn only when their data changes: a button replaced between a
   * click's press and release loses the click.
   */
  unchanged(slot, data) {
    if (!this.drawn) this.drawn = new Map();
    const key = JSON.stringify(data);
    if (this.drawn.get(slot) === key) return true;
    this.drawn.set(slot, key);
    return false;
  }

  /** The members panel's lists and buttons for group g. */
  drawMembers(g, info, me, mine, isAdmin) {
    const btn = (text, onclick, cls = 'small plain') => el('button', { type: 'button', class: cls, onclick }, text);
    const P = this.memberParts;
    const E = this.groupEdit;
    P.desc.textContent = info ? info.groupdesc || '' : g.desc || '';
    P.settings.textContent = info ? `${info.private ? 'Private' : 'Public'} group · new members see ${info.history === 'all' ? 'the whole history' : 'messages from their join on'} · you are ${mine}` : '';
    P.list.replaceChildren(...g.users.map((u) => el('li', { 'data-user': u.id },
      el('span', { class: `dot ${u.state === 'online' ? 'on' : 'off'}`, title: u.state }),
      el('span', { class: 'grow' }, u.name, el('span', { class: 'muted' }, ` #${u.id}`)),
      u.role && u.role !== 'normal' ? el('span', { class: 'role' }, u.role) : null,
      mine === 'creator' && u.id !== me ? btn(u.role === 'admin' ? 'Make member' : 'Make admin', () => this.on.admin.role(g.id, u.id, u.role === 'admin' ? 'normal' : 'admin')) : null,
      isAdmin && u.id !== me && (u.role === 'normal' || (u.role === 'admin' && mine === 'creator')) ? btn('Remove', () => this.on.admin.remove(g.id, u.id)) : null)));
    const pending = info && isAdmin ? info.pending || [] : [];
    P.pending.replaceChildren(...pending.map((p) => el('li', { 'data-user': p.id },
      el('span', { class: 'grow' }, p.kind === 'request' ? `${p.name} #${p.id} asks to join` : `${p.name} #${p.id} is invited`),
      p.kind === 'request' ? btn('Approve', () => this.on.admin.approve(g.id, p.id), 'small') : null,
      btn(p.kind === 'request' ? 'Refuse' : 'Withdraw', () => this.on.admin.remove(g.id, p.id)))));
    P.buttons.replaceChildren(...[
      isAdmin && info ? el('button', { type: 'button', id: 'group-edit-toggle', class: 'small plain', onclick: () => {
        E.form.hidden = !E.form.hidden;
        E.note.textContent = '';
        if (!E.form.hidden) E.name.focus();
      } }, 'Edit group') : null,
      isAdmin && info ? btn(info.private ? 'Make public' : 'Make private', () => this.on.admin.setPrivate(g.id, !info.private)) : null,
      mine === 'creator' ? btn('Delete group', () => this.on.admin.deleteGroup(g.id)) : btn('Leave group', () => this.on.admin.leave(g.id))].filter(Boolean));
  }

  /** Shows the forms for logging in; error under them. */
  showAuth(error = '', note = '') {
    if (this.accountOpen) this.toggleAccount(); // closed for whoever logs in next
    $('auth').hidden = false;
    $('chat').hidden = true;
    $('auth-error').textContent = error;
    $('auth-note').textContent = note;
  }

  showChat() {
    $('auth').hidden = true;
    $('chat').hidden = false;
  }

  /** An error near the composer or the action form. */
  paneError(text) { $('pane-error').textContent = text; $('pane-error').hidden = !text; }
}
