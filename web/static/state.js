// state.js: what the page knows, and nothing about how it is drawn.
//
// Store holds the user, friends, groups and conversations (messages in seq
// order, pending sends, read markers, unread counts). Every change goes
// through a method that ends in changed(), which tells the subscribers
// (the renderer) once per animation frame. Views read the fields directly.

import { directConv, groupConv } from './proto.js';

const OUTBOX = 'clusterchat.outbox.'; // + user id: pending sends, kept across reloads

export class Store {
  constructor() {
    this.listeners = new Set();
    this.scheduled = false;
    this.reset();
  }

  reset() {
    this.me = null;                 // {id, name}
    this.friends = new Map();       // id -> {id, name, state}
    this.groups = new Map();        // id -> {id, name, desc, users: [{id, name, state, role}]}
    this.convs = new Map();         // conv -> Conversation
    this.names = new Map();         // user id -> name, from anything seen
    this.open = null;               // the conversation shown, or null
    this.status = 'offline';        // connection: see ChatClient.status
    this.banner = '';               // an error to show at the top, if any
    // social (SOCIAL_STATE, GROUP_INFO, search)
    this.requests = [];             // open friend requests, sent and received: {from, fromname, to, toname, ts}
    this.blocked = [];              // {id, name}
    this.invites = [];              // the user's group invitations and requests: {groupid, groupname, kind, by, ts}
    this.found = null;              // search results [{id, name}], null before any search
    this.info = new Map();          // group id -> GROUP_INFO reply (settings, my role, members with roles, pending)
  }

  /** A SOCIAL_STATE reply. */
  applySocial(r) {
    this.requests = r.requests || [];
    this.blocked = r.blocked || [];
    this.invites = r.pending || [];
    for (const q of this.requests) { this.names.set(q.from, q.fromname); this.names.set(q.to, q.toname); }
    this.changed();
  }

  setFound(users) {
    this.found = users;
    for (const u of users) this.names.set(u.id, u.name);
    this.changed();
  }

  /** A GROUP_INFO reply: settings, roles and pending rows of one group. */
  setInfo(r) {
    this.info.set(r.groupid, r);
    const g = this.groups.get(r.groupid);
    if (g) { g.name = r.groupname; g.desc = r.groupdesc; g.users = (r.users || []).map((u) => ({ ...u })); }
    for (const u of r.users || []) this.names.set(u.id, u.name);
    this.changed();
  }

  removeFriend(id) {
    this.friends.delete(id);
    this.changed();
  }

  /** The user is no longer in group gid (left, removed, deleted). */
  dropGroup(gid) {
    this.groups.delete(gid);
    this.info.delete(gid);
    const conv = groupConv(gid);
    this.convs.delete(conv);
    if (this.open === conv) this.open = null;
    this.changed();
  }

  memberGone(gid, id) {
    const g = this.groups.get(gid);
    if (g) g.users = g.users.filter((u) => u.id !== id);
    this.changed();
  }

  setRole(gid, id, role) {
    const g = this.groups.get(gid);
    if (g) for (const u of g.users) if (u.id === id) u.role = role;
    const info = this.info.get(gid);
    if (info && this.me && id === this.me.id) info.role = role;
    this.changed();
  }

  groupUpdated(ev) {
    const g = this.groups.get(ev.groupid);
    if (g) { g.name = ev.groupname; g.desc = ev.groupdesc; }
    const info = this.info.get(ev.groupid);
    if (info) Object.assign(info, { groupname: ev.groupname, groupdesc: ev.groupdesc, private: ev.private, history: ev.history });
    this.changed();
  }

  rename(id, name) {
    if (this.me && id === this.me.id) this.me.name = name;
    const f = this.friends.get(id);
    if (f) f.name = name;
    this.names.set(id, name);
    this.changed();
  }

  subscribe(fn) { this.listeners.add(fn); return () => this.listeners.delete(fn); }

  changed() {
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => {
      this.scheduled = false;
      for (const fn of this.listeners) fn(this);
    });
  }

  /** The conversation named conv, created empty when first needed. */
  conv(conv) {
    let c = this.convs.get(conv);
    if (!c) {
      c = new Conversation(conv, this.me ? this.me.id : 0);
      this.convs.set(conv, c);
    }
    return c;
  }

  nameOf(id) {
    if (this.me && id === this.me.id) return this.me.name;
    return this.friends.get(id)?.name ?? this.names.get(id) ?? `user ${id}`;
  }

  /** A login reply: replaces friends and groups, updates every conversation's counters. */
  applyLogin(reply, resumed) {
    if (!resumed && (!this.me || this.me.id !== reply.id)) {
      const listeners = this.listeners;
      this.reset();
      this.listeners = listeners;
    }
    this.me = { id: reply.id, name: reply.name };
    this.friends = new Map((reply.friends || []).map((f) => [f.id, { ...f }]));
    for (const f of this.friends.values()) this.names.set(f.id, f.name);
    this.groups = new Map();
    for (const g of reply.groups || []) this.putGroup(g);
    for (const f of this.friends.values()) this.conv(directConv(this.me.id, f.id));
    for (const g of this.groups.values()) this.conv(groupConv(g.id));
    for (const c of reply.convs || []) {
      const cv = this.conv(c.conv);
      cv.last = Math.max(cv.last, c.last);
      cv.read = Math.max(cv.read, c.read);
      if (!resumed && cv.msgs.length === 0) cv.lo = c.last + 1;
    }
    this.changed();
  }

  putGroup(g) {
    const users = (g.users || []).map((u) => ({ ...u }));
    for (const u of users) this.names.set(u.id, u.name);
    this.groups.set(g.id, { id: g.id, name: g.groupname, desc: g.groupdesc, users });
  }

  /** New messages of conv, in order, each once (ChatClient guarantees it). */
  addMessages(conv, msgs) {
    const c = this.conv(conv);
    for (const m of msgs) {
      if (!m.name) m.name = this.nameOf(m.from);
      else this.names.set(m.from, m.name);
      if (this.me && m.from === this.me.id) c.read = Math.max(c.read, m.seq);
      c.append(m);
    }
    this.changed();
  }

  /** Older messages from HISTORY; more is false once the beginning is reached. */
  addHistory(conv, msgs, more) {
    const c = this.conv(conv);
    for (const m of msgs) if (m.name) this.names.set(m.from, m.name);
    c.prepend(msgs);
    c.more = more && c.lo > 1;
    this.changed();
  }

  setPresence(id, state) {
    const f = this.friends.get(id);
    if (f) f.state = state;
    for (const g of this.groups.values()) for (const u of g.users) if (u.id === id) u.state = state;
    this.changed();
  }

  addFriend(f) {
    this.friends.set(f.id, { id: f.id, name: f.name, state: f.state || 'offline' });
    this.names.set(f.id, f.name);
    this.conv(directConv(this.me.id, f.id));
    this.changed();
  }

  memberJoined(gid, id, name) {
    const g = this.groups.get(gid);
    if (g && !g.users.some((u) => u.id === id)) g.users.push({ id, name, state: 'online', role: 'normal' });
    this.names.set(id, name);
    this.changed();
  }

  setRead(conv, seq) {
    const c = this.conv(conv);
    if (seq > c.read) { c.read = seq; this.changed(); }
  }

  setStatus(s) { this.status = s; this.changed(); }
  setBanner(text) { this.banner = text; this.changed(); }
  select(conv) { this.open = conv; if (conv) this.conv(conv); this.changed(); }

  /** How a conversation is titled and what it is. */
  describe(conv) {
    const [kind, a, b] = conv.split(':');
    if (kind === 'g') {
      const g = this.groups.get(Number(a));
      return { kind: 'group', id: Number(a), title: g ? g.name : `group ${a}`, group: g };
    }
    const peer = this.me && Number(a) === this.me.id ? Number(b) : Number(a);
    const f = this.friends.get(peer);
    // Presence is shared between friends only: a stranger's is unknown,
    // not "offline".
    return { kind: 'user', id: peer, title: this.nameOf(peer), state: f ? f.state : 'unknown', friend: !!f };
  }

  /** Conversations for the list: most recent activity first, then by name. */
  sortedConvs() {
    const list = [...this.convs.values()].filter((c) => c.id.startsWith('g:') || this.me);
    return list.sort((x, y) => (y.activity() - x.activity()) || this.describe(x.id).title.localeCompare(this.describe(y.id).title));
  }

  // ---- pending sends (the outbox survives reloads, so nothing typed is lost)

  outboxKey() { return OUTBOX + this.me.id; }

  saveOutbox() {
    const all = [];
    for (const c of this.convs.values()) for (const p of c.pending) all.push({ conv: c.id, cmid: p.cmid, text: p.text, target: p.target, ts: p.ts });
    try { localStorage.setItem(this.outboxKey(), JSON.stringify(all)); } catch { /* private mode: in memory only */ }
  }

  loadOutbox() {
    let all = [];
    try { all = JSON.parse(localStorage.getItem(this.outboxKey()) || '[]'); } catch { all = []; }
    for (const p of all) {
      const c = this.conv(p.conv);
      if (!c.pending.some((q) => q.cmid === p.cmid)) c.pending.push({ ...p, state: 'pending', error: '' });
    }
    this.changed();
    return all;
  }

  addPending(conv, p) { this.conv(conv).pending.push(p); this.saveOutbox(); this.changed(); }

  settlePending(conv, cmid) {
    const c = this.conv(conv);
    c.pending = c.pending.filter((p) => p.cmid !== cmid);
    this.saveOutbox();
    this.changed();
  }

  failPending(conv, cmid, error) {
    const p = this.conv(conv).pending.find((q) => q.cmid === cmid);
    if (p) { p.state = 'failed'; p.error = error; this.changed(); }
  }

  clearOutbox() { try { localStorage.removeItem(this.outboxKey()); } catch { /* nothing kept */ } }
}

/** One conversation: messages lo..hi in seq order, with no gaps. */
export class Conversation {
  constructor(id, me) {
    this.id = id;
    this.me = me;
    this.msgs = [];      // ascending seq, contiguous
    this.lo = 1;         // seq of the oldest message held (or the next one to come)
    this.last = 0;       // highest seq known on the server
    this.read = 0;       // the user's read marker
    this.more = true;    // older messages may exist (HISTORY not yet at the start)
    this.loading = false;
    this.pending = [];   // {cmid, text, target, ts, state: 'pending'|'failed', error}
  }

  append(m) {
    if (this.msgs.length === 0) this.lo = m.seq;
    else if (m.seq !== this.msgs[this.msgs.length - 1].seq + 1) return; // never a gap or a repeat
    this.msgs.push(m);
    this.last = Math.max(this.last, m.seq);
  }

  prepend(older) {
    const fresh = older.filter((m) => m.seq < this.lo);
    if (fresh.length === 0) return;
    if (this.msgs.length === 0) this.last = Math.max(this.last, fresh[fresh.length - 1].seq);
    this.msgs = fresh.concat(this.msgs);
    this.lo = fresh[0].seq;
  }

  get unread() { return Math.max(0, this.last - this.read); }

  activity() {
    const m = this.msgs[this.msgs.length - 1];
    if (this.pending.length) return this.pending[this.pending.length - 1].ts;
    return m ? m.ts : (this.last ? 1 : 0);
  }

  lastText() {
    if (this.pending.length) return this.pending[this.pending.length - 1].text;
    const m = this.msgs[this.msgs.length - 1];
    return m ? m.text : '';
  }
}
