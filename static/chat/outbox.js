// Sends the server has not acknowledged yet, kept in session storage so a
// reload or a reconnect sends them again with the same client_id.
//
// A send is acknowledged by two `message.created` frames: the user's message
// (carrying its client_id) and then the reply at the next position. A resend
// with the same client_id is always safe: the server stores nothing new and
// answers with both messages as they stand, then goes on streaming the reply.
// So until both are seen, every (re)open of the socket resends it.

import { keys, storageGet, storageSet } from "./browser.js";

export class Outbox {
  constructor(conversationId) {
    this.key = keys.pending(conversationId);
    const raw = storageGet(this.key);
    // Earlier versions kept one {text, client_id} object.
    const list = Array.isArray(raw) ? raw : raw ? [raw] : [];
    this.entries = list.filter((e) => e && typeof e.text === "string" && e.client_id);
  }

  save() {
    storageSet(this.key, this.entries.length ? this.entries : null);
  }

  get size() {
    return this.entries.length;
  }

  /** `attachments`: the ready files sent with it (as the composer showed them). */
  add(text, clientId, attachments = []) {
    const entry = { text, client_id: clientId };
    if (attachments.length) entry.attachments = attachments;
    this.entries.push(entry);
    this.save();
    return entry;
  }

  /** The send whose own message the server has not confirmed yet (the composer waits on it). */
  unconfirmed() {
    return this.entries.find((e) => !e.user_id) || null;
  }

  /** The `message.send` frames to send again on a new socket, oldest first. */
  frames() {
    return this.entries.map((e) => sendFrame(e));
  }

  /**
   * Note a `message.created`. Returns the entry whose user message this is, the
   * first time it is seen (the composer lets go of its text then), else null.
   */
  created(payload) {
    let confirmed = null;
    if (payload.role === "user" && payload.client_id) {
      const entry = this.entries.find((e) => e.client_id === payload.client_id);
      if (entry && !entry.user_id) {
        entry.user_id = payload.id;
        entry.position = Number(payload.position);
        confirmed = entry;
      }
    } else if (payload.role === "assistant") {
      const position = Number(payload.position);
      this.entries = this.entries.filter((e) => !(e.user_id && position === e.position + 1));
    }
    this.save();
    return confirmed;
  }

  /** A refused send (an `error` with its client_id): nothing was stored. */
  refused(clientId) {
    const entry = this.entries.find((e) => e.client_id === clientId) || null;
    if (entry) {
      this.entries = this.entries.filter((e) => e !== entry);
      this.save();
    }
    return entry;
  }

  /** Drop sends the page already shows as stored (a reload after the server had them). */
  settle(isStored) {
    const before = this.entries.length;
    this.entries = this.entries.filter((e) => !isStored(e.client_id));
    if (this.entries.length !== before) this.save();
  }
}

/** The `message.send` of an entry: its files by id, when it has any. */
export function sendFrame(entry) {
  const frame = { type: "message.send", text: entry.text, client_id: entry.client_id };
  if (Array.isArray(entry.attachments) && entry.attachments.length) {
    frame.attachments = entry.attachments.map((a) => a.id);
  }
  return frame;
}
