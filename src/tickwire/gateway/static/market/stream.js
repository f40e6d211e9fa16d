// The page's one WebSocket (the server allows 6 an IP; a page needs one). Views say which
// codes they want; the connection subscribes the union with Key and drops the rest with
// UnKey, sends the documented heartbeat, and after any loss reconnects with a capped,
// jittered backoff and subscribes everything again.

const HEARTBEAT_MS = 10000;
const SILENT_MS = 25000;        // nothing at all for this long, pongs included: dead
const BACKOFF_FIRST_MS = 500;
const BACKOFF_CAP_MS = 10000;
const CODES_PER_MESSAGE = 200;  // keeps each message far below the 64 KiB frame limit
export const MAX_CODES = 480;   // the server holds 500 codes a connection by default

export class Stream {
  constructor(url) {
    this.url = url;
    this.wanted = new Map();     // owner -> Set of codes
    this.subscribed = new Set(); // what this connection has asked for
    this.latest = new Map();     // code -> the last quote body received
    this.quoteListeners = [];
    this.stateListeners = [];
    this.openListeners = [];
    this.state = { name: 'connecting', retryAt: 0 };
    this.failures = 0;
    this.socket = null;
    this.lastHeard = 0;
    this.timer = null;
    this.heartbeat = setInterval(() => this.beat(), HEARTBEAT_MS);
    this.connect();
  }

  onQuote(listener) { this.quoteListeners.push(listener); }
  onState(listener) { this.stateListeners.push(listener); listener(this.state); }
  /** Called after each reconnect (not the first connect): what was missed may be fetched. */
  onReopen(listener) { this.openListeners.push(listener); }

  /** What `owner` (a view) wants now, replacing what it wanted before. */
  want(owner, codes) {
    this.wanted.set(owner, new Set(codes));
    this.sync();
  }

  union() {
    const all = new Set();
    for (const codes of this.wanted.values()) {
      for (const code of codes) if (all.size < MAX_CODES) all.add(code);
    }
    return all;
  }

  sync() {
    if (this.socket?.readyState !== WebSocket.OPEN) return;
    const union = this.union();
    const add = [...union].filter((c) => !this.subscribed.has(c));
    const drop = [...this.subscribed].filter((c) => !union.has(c));
    for (let i = 0; i < drop.length; i += CODES_PER_MESSAGE) {
      this.send({ UnKey: drop.slice(i, i + CODES_PER_MESSAGE).join(',') });
    }
    for (let i = 0; i < add.length; i += CODES_PER_MESSAGE) {
      this.send({ Key: add.slice(i, i + CODES_PER_MESSAGE).join(',') });
    }
    this.subscribed = union;
  }

  send(message) {
    this.socket.send(JSON.stringify(message));
  }

  setState(name, retryAt = 0) {
    this.state = { name, retryAt };
    for (const listener of this.stateListeners) listener(this.state);
  }

  connect() {
    const socket = new WebSocket(this.url);
    const reopened = this.failures > 0;
    this.socket = socket;
    socket.onopen = () => {
      this.failures = 0;
      this.lastHeard = performance.now();
      this.subscribed = new Set();
      this.setState('live');
      this.sync();
      if (reopened) for (const listener of this.openListeners) listener();
    };
    socket.onmessage = (event) => {
      this.lastHeard = performance.now();
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      const body = message?.body;
      if (body && typeof body.StockCode === 'string') {
        this.latest.set(body.StockCode, body);
        for (const listener of this.quoteListeners) listener(body);
      }
    };
    socket.onclose = () => this.lost(socket);
  }

  lost(socket) {
    if (this.socket !== socket) return;
    this.socket = null;
    this.failures += 1;
    const cap = Math.min(BACKOFF_CAP_MS, BACKOFF_FIRST_MS * 2 ** (this.failures - 1));
    const delay = cap / 2 + Math.random() * cap / 2;
    this.setState('reconnecting', Date.now() + delay);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  beat() {
    const socket = this.socket;
    if (socket?.readyState !== WebSocket.OPEN) return;
    if (performance.now() - this.lastHeard > SILENT_MS) {
      socket.close();  // a dead peer may never finish the close: do not wait for it
      this.lost(socket);
      return;
    }
    this.send({ ping: Math.floor(Date.now() / 1000) });
  }
}
