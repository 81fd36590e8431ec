// Writing messages: the first message on the empty state (a plain form post),
// and the conversation's composer (send, stop, draft, cost estimate, budget).

import { keys, newClientId, postForm, storageGet, storageSet } from "./browser.js";
import { autoGrow, enterSends, formatCost, formatInt, isSendKey } from "./ui.js";

// The composer asks for a cost estimate only for long drafts, after typing pauses.
const ESTIMATE_MIN_CHARS = 2000;
const ESTIMATE_DEBOUNCE_MS = 600;
// Only a first message submitted moments ago belongs to a brand-new conversation.
const NEW_DRAFT_MAX_AGE_MS = 5 * 60_000;

/** The empty state: a new conversation and its first message. */
export function initNewChat() {
  const form = document.getElementById("new-chat-form");
  if (!form) return;
  const area = form.querySelector("#first-message");
  const errorBox = document.getElementById("new-chat-error");
  const maxChars = Number(form.dataset.maxChars) || 100_000;
  // The keys' hint only where Enter does send: on a touch screen it breaks the line.
  if (area.dataset.keysHint && enterSends()) area.placeholder = `${area.placeholder} (${area.dataset.keysHint})`;

  // A first message that did not make it (a refused form, the back button) comes back.
  const draft = storageGet(keys.newDraft);
  if (draft && draft.text && !area.value) area.value = draft.text;
  autoGrow(area);

  const showError = (message) => {
    errorBox.textContent = message;
    errorBox.hidden = !message;
  };

  area.addEventListener("input", () => {
    autoGrow(area);
    if (!errorBox.hidden) showError("");
  });
  area.addEventListener("keydown", (event) => {
    if (isSendKey(event)) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  form.addEventListener("submit", (event) => {
    const text = area.value;
    if (!text.trim()) {
      event.preventDefault();
      showError("Type a message first.");
      area.focus();
      return;
    }
    if (text.length > maxChars) {
      event.preventDefault();
      showError(`That message is ${formatInt(text.length)} characters; the limit is ${formatInt(maxChars)}.`);
      return;
    }
    // Messages travel over the websocket: keep the text until the new page sends it.
    storageSet(keys.newDraft, { text, client_id: newClientId(), at: Date.now() });
    const button = form.querySelector('button[type="submit"]');
    if (button) button.disabled = true;
  });
  // Re-enable the button if the page is restored from the back/forward cache.
  window.addEventListener("pageshow", () => {
    const button = form.querySelector('button[type="submit"]');
    if (button) button.disabled = false;
  });
}

export class Composer {
  /**
   * @param {HTMLElement} root the conversation (#chat)
   * @param {object} parts
   * @param {import("./thread.js").Thread} parts.thread
   * @param {import("./outbox.js").Outbox} parts.outbox
   * @param {(frame: object) => boolean} parts.send
   * @param {() => void} parts.onUserAction
   */
  constructor(root, { thread, outbox, send, onUserAction }) {
    this.thread = thread;
    this.outbox = outbox;
    this.send = send;
    this.onUserAction = onUserAction;
    this.conversationId = root.dataset.conversationId;
    this.maxChars = Number(root.dataset.maxChars) || 100_000;
    this.estimateUrl = root.dataset.estimateUrl || "";
    this.form = document.getElementById("composer");
    this.input = document.getElementById("composer-input");
    this.sendButton = document.getElementById("send-btn");
    this.errorBox = document.getElementById("composer-error");
    this.charCount = document.getElementById("char-count");
    this.budgetNote = document.getElementById("budget-note");
    this.costEstimate = document.getElementById("cost-estimate");
    this.draftKey = keys.draft(this.conversationId);
    this.estimateTimer = 0;
    this.estimateSeq = 0;
    this.stopRequested = new Set();
    this.disabled = false;
  }

  start() {
    this.restoreDrafts();
    this.bind();
    this.update();
  }

  /** The send the server has not confirmed yet; one at a time. */
  get pending() {
    return this.outbox.unconfirmed();
  }

  restoreDrafts() {
    // A first message typed on the empty state, for this brand-new conversation.
    let fresh = storageGet(keys.newDraft);
    if (fresh && !(Date.now() - (fresh.at || 0) < NEW_DRAFT_MAX_AGE_MS)) fresh = null;
    if (fresh && fresh.text && this.thread.size === 0 && this.outbox.size === 0) {
      this.outbox.add(fresh.text, fresh.client_id || newClientId());
    }
    if (fresh && this.thread.size === 0) storageSet(keys.newDraft, null);
    // Sends this page already shows were stored: they need no resend.
    this.outbox.settle((clientId) => this.thread.hasSent(clientId));
    const pending = this.pending;
    if (pending) {
      this.input.value = pending.text;
    } else {
      const draft = storageGet(this.draftKey);
      if (draft && typeof draft.text === "string") this.input.value = draft.text;
    }
    autoGrow(this.input);
    this.updateCount();
  }

  bind() {
    let draftTimer = 0;
    this.input.addEventListener("input", () => {
      autoGrow(this.input);
      this.updateCount();
      this.scheduleEstimate();
      if (!this.errorBox.hidden && !this.pending) this.showError("");
      clearTimeout(draftTimer);
      draftTimer = setTimeout(() => {
        storageSet(this.draftKey, this.input.value ? { text: this.input.value } : null);
      }, 300);
    });
    this.input.addEventListener("keydown", (event) => {
      if (isSendKey(event)) {
        event.preventDefault();
        if (!this.thread.activeReply()) this.submit();
      }
    });
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      if (this.disabled) return;
      const active = this.thread.activeReply();
      if (active) this.stop(active);
      else this.submit();
    });
    if (!this.pending) this.input.focus({ preventScroll: true });
  }

  submit() {
    if (this.pending || this.disabled) return; // one message at a time; resent until confirmed
    const text = this.input.value;
    if (!text.trim()) {
      this.input.focus();
      return;
    }
    if (text.length > this.maxChars) {
      this.showError(
        `That message is ${formatInt(text.length)} characters; the limit is ${formatInt(this.maxChars)}. Shorten it or split it.`,
      );
      return;
    }
    this.onUserAction();
    this.showError("");
    const entry = this.outbox.add(text, newClientId());
    this.send({ type: "message.send", text: entry.text, client_id: entry.client_id });
    this.update();
    this.thread.scrollToBottom(true);
  }

  stop(state) {
    this.onUserAction();
    if (this.send({ type: "generation.stop", message_id: state.id })) {
      this.stopRequested.add(state.id);
      this.update();
    } else {
      this.showError("Not connected: the stop will be possible once the connection is back.");
    }
  }

  /** The server stored the message of this send: only now does the composer let go of the text. */
  confirmed(entry) {
    if (this.input.value === entry.text) {
      this.input.value = "";
      autoGrow(this.input);
      this.updateCount();
      this.scheduleEstimate();
      storageSet(this.draftKey, null);
    }
    this.showError("");
    this.thread.scrollToBottom(true);
  }

  /** The server refused this send: nothing was stored, the text stays in the composer. */
  refused(entry, message) {
    if (!this.input.value) this.input.value = entry.text;
    autoGrow(this.input);
    this.showError(message || "That message could not be sent.");
    this.update();
  }

  /** Writing is over on this page (signed out, conversation deleted). */
  disable() {
    this.disabled = true;
    clearTimeout(this.estimateTimer);
    this.input.disabled = true;
    this.sendButton.disabled = true;
    this.form.classList.add("is-disabled");
    this.showError("");
  }

  showError(message) {
    this.errorBox.textContent = message || "";
    this.errorBox.hidden = !message;
  }

  update() {
    const active = this.thread.activeReply();
    for (const id of this.stopRequested) if (!active || id !== active.id) this.stopRequested.delete(id);
    const button = this.sendButton;
    const pending = this.pending;
    button.classList.toggle("is-stop", Boolean(active));
    button.classList.toggle("is-busy", Boolean(pending) && !active);
    if (this.disabled) {
      button.disabled = true;
    } else if (active) {
      const stopping = this.stopRequested.has(active.id);
      button.setAttribute("aria-label", stopping ? "Stopping…" : "Stop");
      button.title = stopping ? "Stopping…" : "Stop the answer";
      button.disabled = stopping;
    } else {
      button.setAttribute("aria-label", pending ? "Sending…" : "Send");
      button.title = pending ? "Sending…" : "Send (Enter)";
      button.disabled = false;
    }
  }

  updateCount() {
    const length = this.input.value.length;
    const near = length > this.maxChars * 0.8;
    this.charCount.hidden = !near;
    if (near) {
      this.charCount.textContent = `${formatInt(length)} / ${formatInt(this.maxChars)}`;
      this.charCount.classList.toggle("is-over", length > this.maxChars);
    }
  }

  // ---- Cost estimate and budget --------------------------------------------

  /** A long draft gets the next call's estimated cost, from the free token
   * count, once typing pauses (debounced); short drafts show nothing. */
  scheduleEstimate() {
    clearTimeout(this.estimateTimer);
    if (!this.estimateUrl || !this.costEstimate) return;
    const text = this.input.value;
    if (text.trim().length < ESTIMATE_MIN_CHARS) {
      this.estimateSeq += 1; // drop any answer still in flight
      this.costEstimate.hidden = true;
      return;
    }
    this.estimateTimer = setTimeout(() => this.fetchEstimate(text), ESTIMATE_DEBOUNCE_MS);
  }

  async fetchEstimate(text) {
    const seq = ++this.estimateSeq;
    let data = null;
    try {
      data = await postForm(this.estimateUrl, { text });
    } catch {
      return;
    }
    if (seq !== this.estimateSeq || !data) return; // the draft changed meanwhile
    const estimate = formatCost(data.estimated_cost_usd);
    const most = formatCost(data.max_cost_usd);
    this.costEstimate.textContent = `≈ ${estimate} for the next message (${formatInt(data.input_tokens)} tokens in; up to ${most} with a long answer)`;
    this.costEstimate.hidden = false;
    this.thread.followBottom(); // the composer grew: keep the last reply in view
  }

  /** `budget.status`: a warning from 80% of the tighter budget, a refusal notice at 100%. */
  budget(frame) {
    if (!this.budgetNote) return;
    const show = frame.level === "warning" || frame.level === "exceeded";
    this.budgetNote.hidden = !show;
    this.budgetNote.dataset.level = frame.level || "";
    this.budgetNote.textContent = show ? frame.message || "" : "";
    // The note changes the composer's height: keep the last reply in view.
    this.thread.followBottom();
  }
}
