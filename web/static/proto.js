// proto.js: the native clusterchat protocol over a WebSocket (docs/protocol.md).
//
// Connection is one socket: requests carry a rid and resolve with their
// reply; everything else is an event. ChatClient is a session on top of it:
// login (password or token), reconnect with jittered backoff, token resume,
// per-conversation cursors with SYNC after a reconnect or a gap, duplicate
// drop by seq, and sends with a client message id (cmid) that are retried
// with the same cmid so the server stores each message once.
//
// Nothing here touches the page: ChatClient reports to the handler object it
// is given (see ChatClient's constructor), and state.js keeps what it hears.

export const MSG = Object.freeze({
  LOGIN: 1, LOGIN_ACK: 2, LOGOUT: 3, REG: 4, REG_ACK: 5, ONE_CHAT: 6, ADD_FRIEND: 7,
  CREATE_GROUP: 8, ADD_GROUP: 9, GROUP_CHAT: 10, REPLY: 11, PRESENCE: 12, FRIEND_ADDED: 13,
  SYNC: 14, HISTORY: 15, READ: 16, RECONNECT: 17, PING: 18, GROUP_JOINED: 19,
  LOGOUT_ALL: 40, // docs/protocol.md "Register and login"
  // social (docs/protocol.md "Friends, blocks, people" and "Groups")
  FRIEND_REQUEST: 60, FRIEND_ACCEPT: 61, FRIEND_DECLINE: 62, FRIEND_CANCEL: 63, FRIEND_REMOVE: 64,
  BLOCK: 65, UNBLOCK: 66, SOCIAL_STATE: 67, SEARCH_USERS: 68, SET_NAME: 69, SET_PASSWORD: 70,
  GROUP_INFO: 71, GROUP_INVITE: 72, GROUP_ASK: 73, GROUP_APPROVE: 74, GROUP_REMOVE: 75,
  GROUP_LEAVE: 76, GROUP_ROLE: 77, GROUP_UPDATE: 78, GROUP_DELETE: 79,
  FRIEND_EVENT: 80, GROUP_EVENT: 81, USER_EVENT: 82,
});

// Error codes (errno) of docs/protocol.md, plus ours for transport failures.
export const ERR = Object.freeze({
  AUTH: 1, SESSIONS: 2, INVALID: 3, NOT_FOUND: 4, EXISTS: 5, FORBIDDEN: 6, TOO_LARGE: 7,
  NOT_LOGGED_IN: 8, UNAVAILABLE: 9, INTERNAL: 10, UNKNOWN: 11, RATE_LIMITED: 12,
  UNREACHABLE: -1, TIMEOUT: -2, CLOSED: -3,
});

/** A failed request: errno from the server, or a negative ERR code. */
export class ChatError extends Error {
  constructor(errno, message, req = 0, retryMs = 0) {
    super(message || `error ${errno}`);
    this.errno = errno;
    this.req = req;
    this.retryMs = retryMs || 0; // rate limited: when to try again
  }
  /** True when resending the same request later may succeed. */
  get transient() {
    return this.errno < 0 || this.errno === ERR.UNAVAILABLE || this.errno === ERR.INTERNAL;
  }
}

const REQUEST_TIMEOUT = 15000;

// The server closes a native session that sends nothing for its idle
// timeout (3 min by default, -idle-timeout): ping well within it. A hidden
// tab's timers may be throttled to once a minute, which this still meets.
const PING_INTERVAL = 60000;

/** The WebSocket URL of the page's own server. */
export function defaultURL() {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/ws`;
}

/** A random id (hex) that works without a secure context. */
export function randomId(bytes = 8) {
  const a = new Uint8Array(bytes);
  crypto.getRandomValues(a);
  return Array.from(a, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** The conversation of two users, or of a group. */
export function directConv(a, b) { return a < b ? `d:${a}:${b}` : `d:${b}:${a}`; }
export function groupConv(g) { return `g:${g}`; }

/** One WebSocket: requests with rids, events to onEvent, onClose once. */
export class Connection {
  constructor(url, onEvent, onClose) {
    this.url = url;
    this.onEvent = onEvent;
    this.onClose = onClose;
    this.rid = 0;
    this.waiting = new Map(); // rid -> {resolve, reject, timer, req}
    this.ws = null;
    this.closed = false;
    this.pinger = 0;
  }

  /** Opens the socket; rejects with ChatError(UNREACHABLE) if it cannot. */
  open() {
    return new Promise((resolve, reject) => {
      let opened = false;
      let ws;
      try {
        ws = new WebSocket(this.url);
      } catch (e) {
        reject(new ChatError(ERR.UNREACHABLE, `cannot connect: ${e.message}`));
        return;
      }
      this.ws = ws;
      ws.onopen = () => {
        opened = true;
        // Before login the server answers errno 8; the ping is for the
        // session's idle deadline, so that answer does not matter.
        this.pinger = setInterval(() => this.request({ msgid: MSG.PING }).catch(() => {}), PING_INTERVAL);
        resolve();
      };
      ws.onmessage = (ev) => this.receive(ev.data);
      ws.onclose = (ev) => {
        this.closed = true;
        clearInterval(this.pinger);
        const err = new ChatError(ERR.CLOSED, 'connection closed');
        for (const w of this.waiting.values()) { clearTimeout(w.timer); w.reject(err); }
        this.waiting.clear();
        if (!opened) reject(new ChatError(ERR.UNREACHABLE, 'server unreachable'));
        else if (this.onClose) this.onClose(ev);
      };
    });
  }

  receive(data) {
    let m;
    try { m = JSON.parse(data); } catch { return; }
    if (typeof m !== 'object' || m === null) return;
    const w = m.rid !== undefined ? this.waiting.get(m.rid) : undefined;
    if (w && (m.msgid === MSG.REPLY || m.msgid === MSG.LOGIN_ACK || m.msgid === MSG.REG_ACK)) {
      this.waiting.delete(m.rid);
      clearTimeout(w.timer);
      if (m.errno) w.reject(new ChatError(m.errno, m.errmsg, w.req, m.retry_ms));
      else w.resolve(m);
      return;
    }
    this.onEvent(m);
  }

  /** Sends obj with a fresh rid and resolves with its reply (errno 0). */
  request(obj, timeout = REQUEST_TIMEOUT) {
    if (this.closed || !this.ws || this.ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new ChatError(ERR.CLOSED, 'not connected'));
    }
    const rid = ++this.rid;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(rid);
        reject(new ChatError(ERR.TIMEOUT, 'no answer from the server'));
      }, timeout);
      this.waiting.set(rid, { resolve, reject, timer, req: obj.msgid });
      this.ws.send(JSON.stringify({ ...obj, rid }));
    });
  }

  close() {
    this.closed = true;
    if (this.ws) this.ws.close();
  }
}

/** Normalises a chat object from the wire (live or in SYNC/HISTORY). */
function toMessage(m) {
  return {
    conv: m.conv, seq: m.seq, mid: m.mid, from: m.id, name: m.name,
    to: m.to ?? 0, group: m.groupid ?? 0, text: m.msg, ts: m.ts || Date.now(),
  };
}

/**
 * ChatClient is one logged-in user's session, across reconnects.
 *
 * handler methods (all optional):
 *   status(s)                'connecting' | 'online' | 'reconnecting' | 'offline'
 *   login(reply, resumed)    a login reply (friends, groups, convs); resumed after a reconnect
 *   messages(conv, msgs)     new messages of conv, in seq order, each exactly once
 *   presence(id, state)      a friend went online/offline
 *   friendAdded(ev)          {id, name, state}
 *   groupJoined(ev)          {groupid, id, name}
 *   read(conv, seq)          the user's read marker moved (another tab or device)
 *   friendEvent(ev)          {event, id, name}: a friend request, decline, removal, block...
 *   groupEvent(ev)           {event, groupid, id, name, role, groupname, ...}: a group changed
 *   userEvent(ev)            {id, name}: a friend (or this user elsewhere) changed name
 *   loggedOut(reason)        the session cannot go on (bad token); show the login form
 */
export class ChatClient {
  constructor(handler, url = defaultURL()) {
    this.h = handler;
    this.url = url;
    this.conn = null;
    this.token = null;
    this.me = 0;
    this.cursors = new Map(); // conv -> {hi, held: Map(seq -> msg), syncing: Promise|null}
    this.attempt = 0;
    this.timer = null;
    this.stopped = true;
    this.live = false; // logged in on the current connection
  }

  emit(name, ...args) { if (this.h[name]) this.h[name](...args); }

  /** Opens a connection that is not logged in (register, login forms). */
  async connect() {
    if (this.conn && !this.conn.closed) return this.conn;
    const conn = new Connection(this.url, (m) => this.event(conn, m), () => this.dropped(conn));
    this.conn = conn;
    await conn.open();
    return conn;
  }

  /** Registers an account and returns its id. */
  async register(name, password) {
    const conn = await this.connect();
    const r = await conn.request({ msgid: MSG.REG, proto: 2, name, password });
    return r.id;
  }

  /** Logs in with {id, password} or {token}; returns the login reply. */
  async login(cred) {
    const conn = await this.connect();
    const req = cred.token ? { msgid: MSG.LOGIN, proto: 2, token: cred.token }
      : { msgid: MSG.LOGIN, proto: 2, id: cred.id, password: cred.password };
    const reply = await conn.request(req);
    this.stopped = false;
    this.attempt = 0;
    await this.started(conn, reply, false);
    return reply;
  }

  /** Applies a login reply: cursors, then catch-up, then 'online'. */
  async started(conn, reply, resumed) {
    this.me = reply.id;
    if (reply.token) this.token = reply.token;
    this.live = true;
    const behind = [];
    for (const c of reply.convs || []) {
      const cur = this.cursor(c.conv);
      // A fresh page starts at each conversation's end (older messages
      // are history, loaded when shown); a resumed one catches up.
      if (!resumed && cur.hi === 0) cur.hi = c.last;
      if (c.last > cur.hi) behind.push(c.conv);
    }
    this.emit('login', reply, resumed);
    this.emit('status', 'syncing');
    await Promise.all(behind.map((conv) => this.sync(conv).catch(() => {})));
    if (conn === this.conn && !conn.closed) this.emit('status', 'online');
  }

  cursor(conv) {
    let c = this.cursors.get(conv);
    if (!c) {
      c = { hi: 0, held: new Map(), syncing: null };
      this.cursors.set(conv, c);
    }
    return c;
  }

  /** The highest seq of conv delivered to the handler. */
  hi(conv) { return this.cursor(conv).hi; }

  /** Takes messages of conv from anywhere (live, ack, SYNC) and hands on each once, in order. */
  accept(conv, msgs) {
    const cur = this.cursor(conv);
    for (const m of msgs) if (m.seq > cur.hi) cur.held.set(m.seq, m);
    const out = [];
    while (cur.held.has(cur.hi + 1)) {
      const m = cur.held.get(cur.hi + 1);
      cur.held.delete(cur.hi + 1);
      cur.hi = m.seq;
      out.push(m);
    }
    for (const s of cur.held.keys()) if (s <= cur.hi) cur.held.delete(s);
    if (out.length) this.emit('messages', conv, out);
    if (cur.held.size && !cur.syncing) this.sync(conv).catch(() => {});
  }

  /** Fetches conv from its cursor until the server has nothing newer. */
  sync(conv) {
    const cur = this.cursor(conv);
    if (cur.syncing) return cur.syncing;
    cur.syncing = (async () => {
      try {
        for (;;) {
          const r = await this.conn.request({ msgid: MSG.SYNC, conv, after: cur.hi, limit: 200 });
          // A group joined later is readable from the join on: nothing at
          // or below r.from will ever come.
          if (r.from > cur.hi) {
            cur.hi = r.from;
            for (const q of cur.held.keys()) if (q <= cur.hi) cur.held.delete(q);
          }
          this.accept(conv, (r.msgs || []).map(toMessage));
          if (cur.hi >= r.last || !(r.msgs || []).length) break;
        }
      } finally {
        cur.syncing = null;
      }
    })();
    return cur.syncing;
  }

  event(conn, m) {
    if (conn !== this.conn) return;
    switch (m.msgid) {
      case MSG.ONE_CHAT:
      case MSG.GROUP_CHAT:
        if (m.conv && m.seq) this.accept(m.conv, [toMessage(m)]);
        break;
      case MSG.PRESENCE: this.emit('presence', m.id, m.state); break;
      case MSG.FRIEND_ADDED: this.emit('friendAdded', m); break;
      case MSG.GROUP_JOINED: this.emit('groupJoined', m); break;
      case MSG.READ: this.emit('read', m.conv, m.seq); break;
      case MSG.FRIEND_EVENT: this.emit('friendEvent', m); break;
      case MSG.GROUP_EVENT:
        if (m.event === 'deleted' || ((m.event === 'removed' || m.event === 'left') && m.id === this.me)) {
          this.cursors.delete(groupConv(m.groupid)); // nothing more comes, nothing to catch up
        }
        this.emit('groupEvent', m);
        break;
      case MSG.USER_EVENT: this.emit('userEvent', m); break;
      case MSG.RECONNECT:
        if (m.reason === 'resync') {
          for (const conv of this.cursors.keys()) this.sync(conv).catch(() => {});
        } else if (m.reason === 'revoked') {
          // Logged out everywhere, or the password changed: the token is
          // dead, so do not try to resume with it.
          this.stop();
          conn.close();
          this.emit('loggedOut', 'You were logged out on every device (log out everywhere, or a new password); please log in again.');
        } else {
          conn.close(); // the server is going away: reconnect (elsewhere)
        }
        break;
      default:
    }
  }

  dropped(conn) {
    if (conn !== this.conn) return;
    this.live = false;
    if (this.stopped) { this.emit('status', 'offline'); return; }
    this.emit('status', 'reconnecting');
    this.schedule();
  }

  /**
   * Reconnects after a growing delay, 0.25 s doubling up to 8 s, each drawn
   * from 0.5x to 1.5x so that the users of a restarted server do not all
   * come back at once (at most 12 s: a person waits for the banner to go).
   */
  schedule() {
    clearTimeout(this.timer);
    const base = Math.min(8000, 250 * 2 ** Math.min(this.attempt, 5));
    const delay = base / 2 + Math.random() * base;
    this.attempt++;
    this.timer = setTimeout(() => this.resume(), delay);
  }

  async resume() {
    if (this.stopped) return;
    let conn;
    try {
      conn = await this.connect();
      const reply = await conn.request({ msgid: MSG.LOGIN, proto: 2, token: this.token });
      this.attempt = 0;
      await this.started(conn, reply, true);
    } catch (e) {
      if (e instanceof ChatError && e.errno === ERR.AUTH) {
        this.stop();
        this.emit('loggedOut', 'Your session has ended; please log in again.');
        return;
      }
      if (conn && !conn.closed) conn.close(); // dropped() schedules the next try
      else if (!conn) this.schedule();
    }
  }

  /** Ends the session: logs out on the server and forgets the token. */
  async logout() {
    const conn = this.conn;
    this.stop();
    if (conn && !conn.closed) {
      try { await conn.request({ msgid: MSG.LOGOUT }, 3000); } catch { /* closing anyway */ }
      conn.close();
    }
    this.token = null;
    this.cursors.clear();
  }

  /**
   * Logs out everywhere (LOGOUT_ALL): every token of the user is revoked and
   * their other sessions are closed by the server. Unlike logout() a
   * failure is thrown, since the user must know their other devices may
   * still be logged in; this session stays as it was then.
   */
  async logoutAll() {
    await this.call({ msgid: MSG.LOGOUT_ALL });
    const conn = this.conn;
    this.stop();
    conn.close();
    this.token = null;
    this.cursors.clear();
  }

  stop() {
    this.stopped = true;
    this.live = false;
    clearTimeout(this.timer);
  }

  /** A request on the logged-in connection. */
  call(obj, timeout) {
    if (!this.conn || !this.live) return Promise.reject(new ChatError(ERR.CLOSED, 'not connected'));
    return this.conn.request(obj, timeout);
  }

  /**
   * Sends text to a user ({to}) or a group ({group}) with cmid, resolving
   * with the ack once the server has committed it. The acknowledged message
   * is also handed on through messages(), in its place.
   */
  async send(target, text, cmid) {
    const req = target.group ? { msgid: MSG.GROUP_CHAT, groupid: target.group, msg: text, cmid }
      : { msgid: MSG.ONE_CHAT, to: target.to, msg: text, cmid };
    const ack = await this.call(req);
    this.accept(ack.conv, [{
      conv: ack.conv, seq: ack.seq, mid: ack.mid, from: this.me, name: null,
      to: target.to || 0, group: target.group || 0, text, ts: ack.ts,
    }]);
    return ack;
  }

  /** Up to limit messages of conv before seq `before`, ascending. */
  async history(conv, before, limit = 50) {
    const r = await this.call({ msgid: MSG.HISTORY, conv, before, limit });
    return (r.msgs || []).map(toMessage);
  }

  read(conv, seq) { return this.call({ msgid: MSG.READ, conv, seq }); }
  addFriend(id) { return this.call({ msgid: MSG.ADD_FRIEND, friendid: id }); }
  createGroup(name, desc, priv = false, history = 'joined') {
    return this.call({ msgid: MSG.CREATE_GROUP, groupname: name, groupdesc: desc, private: priv, history });
  }
  joinGroup(id) { return this.call({ msgid: MSG.ADD_GROUP, groupid: id }); }

  // Social: each resolves with the server's reply once it is stored.
  requestFriend(id) { return this.call({ msgid: MSG.FRIEND_REQUEST, id }); }
  acceptFriend(id) { return this.call({ msgid: MSG.FRIEND_ACCEPT, id }); }
  declineFriend(id) { return this.call({ msgid: MSG.FRIEND_DECLINE, id }); }
  cancelFriend(id) { return this.call({ msgid: MSG.FRIEND_CANCEL, id }); }
  removeFriend(id) { return this.call({ msgid: MSG.FRIEND_REMOVE, id }); }
  block(id) { return this.call({ msgid: MSG.BLOCK, id }); }
  unblock(id) { return this.call({ msgid: MSG.UNBLOCK, id }); }
  socialState() { return this.call({ msgid: MSG.SOCIAL_STATE }); }
  searchUsers(prefix, cursor = '', limit = 20) { return this.call({ msgid: MSG.SEARCH_USERS, name: prefix, cursor, limit }); }
  groupInfo(gid) { return this.call({ msgid: MSG.GROUP_INFO, groupid: gid }); }
  groupOp(msgid, gid, id = 0, role = '') {
    const req = { msgid, groupid: gid };
    if (id) req.id = id;
    if (role) req.role = role;
    return this.call(req);
  }
  setName(name) { return this.call({ msgid: MSG.SET_NAME, name }); }

  /**
   * Changes the password. The server revokes every token of the account,
   * this session's too, and answers with a new one for this session's
   * reconnects: it replaces the old one here before the promise resolves.
   */
  async setPassword(old, next) {
    const r = await this.call({ msgid: MSG.SET_PASSWORD, password: old, newpassword: next });
    if (r.token) this.token = r.token;
    return r;
  }

  updateGroup(gid, name, desc, priv, history) {
    return this.call({ msgid: MSG.GROUP_UPDATE, groupid: gid, groupname: name, groupdesc: desc, private: priv, history });
  }

  /**
   * A fresh login reply (friends, groups with members, convs) from a second,
   * short-lived session with the token: the protocol has no "get group"
   * request, and a joined group's name and members are only in a login.
   */
  async snapshot() {
    const side = new Connection(this.url, () => {}, null);
    await side.open();
    try {
      return await side.request({ msgid: MSG.LOGIN, proto: 2, token: this.token });
    } finally {
      side.close(); // no LOGOUT: closing ends that session only
    }
  }
}
