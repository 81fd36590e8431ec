// The conversation's websocket: connect, reconnect with backoff, ping, and
// the close codes after which reconnecting cannot help. What to send on each
// (re)open (resumes, unacknowledged sends) is the caller's: see main.js and
// docs/websocket-protocol.md.

import { gettext } from "./i18n.js";

const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 10_000;
const PING_EVERY_MS = 25_000;

/** The server closed: the person lost access (signed out, deactivated, password changed). */
export const CLOSE_ACCESS_REVOKED = 4403;
/** The server closed: the conversation was deleted. */
export const CLOSE_CONVERSATION_DELETED = 4404;
const FINAL_CLOSE_CODES = new Set([CLOSE_ACCESS_REVOKED, CLOSE_CONVERSATION_DELETED]);

/** What the connection state line says (nothing while open). */
function statusText(state) {
  if (state === "connecting") return gettext("Connecting…");
  if (state === "offline") return gettext("Offline, reconnecting…");
  return "";
}

export class ChatSocket {
  /**
   * @param {object} options
   * @param {string} options.path the socket's path (`/ws/c/<id>/`)
   * @param {HTMLElement|null} options.status where the connection state is shown
   * @param {() => void} options.onOpen called on every (re)open, before anything else is sent
   * @param {(frame: object) => void} options.onFrame called with each parsed frame
   * @param {(code: number) => void} options.onEnd called once when the server closed for good
   */
  constructor({ path, status, onOpen, onFrame, onEnd }) {
    this.path = path;
    this.status = status;
    this.onOpen = onOpen;
    this.onFrame = onFrame;
    this.onEnd = onEnd;
    this.ws = null;
    this.attempt = 0;
    this.reconnectTimer = 0;
    this.pingTimer = 0;
    this.lastFrameAt = 0;
    this.unloading = false;
    this.ended = false;
  }

  start() {
    window.addEventListener("pagehide", () => {
      this.unloading = true;
    });
    window.addEventListener("online", () => this.reconnectNow());
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") this.reconnectNow();
    });
    this.connect();
  }

  connect() {
    clearTimeout(this.reconnectTimer);
    if (this.ended) return;
    this.setStatus("connecting");
    const scheme = window.location.protocol === "https:" ? "wss" : "ws";
    let ws;
    try {
      ws = new WebSocket(`${scheme}://${window.location.host}${this.path}`);
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.addEventListener("open", () => {
      if (this.ws !== ws) return;
      this.attempt = 0;
      this.lastFrameAt = Date.now();
      this.setStatus("open");
      this.onOpen();
      // The server holds live frames until the first frame of a new socket, so
      // nothing overtakes what onOpen sent: with nothing to resume, say so now.
      this.send({ type: "ping" });
      clearInterval(this.pingTimer);
      this.pingTimer = setInterval(() => this.keepAlive(), PING_EVERY_MS);
    });
    ws.addEventListener("message", (event) => {
      if (this.ws !== ws) return;
      this.lastFrameAt = Date.now();
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      this.onFrame(frame);
    });
    ws.addEventListener("close", (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      clearInterval(this.pingTimer);
      if (FINAL_CLOSE_CODES.has(event.code)) {
        // Reconnecting would be refused again: stop here and let the page say why.
        this.end();
        this.onEnd(event.code);
      } else if (!this.unloading && !this.ended) {
        this.scheduleReconnect();
      }
    });
  }

  keepAlive() {
    if (!this.ws) return;
    if (Date.now() - this.lastFrameAt > PING_EVERY_MS * 2.5) {
      this.ws.close(); // a silent, half-dead socket: start over
      return;
    }
    this.send({ type: "ping" });
  }

  scheduleReconnect() {
    clearTimeout(this.reconnectTimer);
    this.setStatus("offline");
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.attempt);
    const delay = Math.min(BACKOFF_MAX_MS, base * (0.8 + Math.random() * 0.4));
    this.attempt += 1;
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }

  reconnectNow() {
    if (this.ws || this.unloading || this.ended) return;
    this.attempt = 0;
    this.connect();
  }

  /** Stop for good: no reconnect (access revoked, conversation deleted). */
  end() {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.reconnectTimer);
    clearInterval(this.pingTimer);
    this.setStatus("closed");
  }

  setStatus(state) {
    if (!this.status) return;
    this.status.dataset.state = state;
    this.status.textContent = statusText(state);
  }

  /** Send a frame if the socket is open; false if it is not (the caller decides). */
  send(frame) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }
}
