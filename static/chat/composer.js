// Writing messages: the first message on the empty state (a plain form post),
// and the conversation's composer (send, stop, draft, files, cost estimate, budget).

import { AttachmentTray } from "./attachments.js";
import { keys, newClientId, postForm, storageGet, storageSet } from "./browser.js";
import { format, gettext, ngettext } from "./i18n.js";
import { sendFrame } from "./outbox.js";
import { autoGrow, enterSends, formatCost, formatInt, isSendKey } from "./ui.js";

/** Fired on the document by ↑ in an empty composer, when no edit control took it. */
export const EDIT_LAST_EVENT = "chat:edit-last";

// The composer asks for a cost estimate only for long drafts, after typing pauses.
const ESTIMATE_MIN_CHARS = 2000;
const ESTIMATE_DEBOUNCE_MS = 600;
// Only a first message submitted moments ago belongs to a brand-new conversation.
const NEW_DRAFT_MAX_AGE_MS = 5 * 60_000;
// Files attached on the empty state come back after a reload for this long
// (the server removes uploads never sent after a day).
const NEW_FILES_MAX_AGE_MS = 12 * 3600_000;

/** Why a message over the limit cannot be sent (`advice`: how to make it fit). */
function tooLong(length, limit, advice = false) {
  const values = { length: formatInt(length), limit: formatInt(limit) };
  if (advice) {
    return format(
      ngettext(
        "That message is %(length)s character; the limit is %(limit)s. Shorten it or split it.",
        "That message is %(length)s characters; the limit is %(limit)s. Shorten it or split it.",
        length,
      ),
      values,
    );
  }
  return format(
    ngettext(
      "That message is %(length)s character; the limit is %(limit)s.",
      "That message is %(length)s characters; the limit is %(limit)s.",
      length,
    ),
    values,
  );
}

/** The empty state: a new conversation and its first message. */
export function initNewChat() {
  const form = document.getElementById("new-chat-form");
  if (!form) return;
  const area = form.querySelector("#first-message");
  const errorBox = document.getElementById("new-chat-error");
  const maxChars = Number(form.dataset.maxChars) || 100_000;
  // The keys' hint only where Enter does send: on a touch screen it breaks the
  // line, and the placeholder says so.
  if (area.dataset.keysHint && enterSends()) {
    // Translators: the first message's placeholder, then the keys that send, as "Ask anything… (Enter to send, Shift+Enter for a new line)".
    area.placeholder = format(gettext("%(placeholder)s (%(keys)s)"), { placeholder: area.placeholder, keys: area.dataset.keysHint });
  } else if (area.dataset.touchPlaceholder && !enterSends()) {
    area.placeholder = area.dataset.touchPlaceholder;
  }

  // A first message that did not make it (a refused form, the back button) comes back.
  const draft = storageGet(keys.newDraft);
  if (draft && draft.text && !area.value) area.value = draft.text;
  autoGrow(area);

  const showError = (message) => {
    errorBox.textContent = message;
    errorBox.hidden = !message;
  };
  const files = newChatFiles(form, showError);

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
    if (files.started()) {
      // Files were attached: the conversation exists already; its page sends the message.
      event.preventDefault();
      files.submit(text, maxChars);
      return;
    }
    if (!text.trim()) {
      event.preventDefault();
      showError(gettext("Type a message first."));
      area.focus();
      return;
    }
    if (text.length > maxChars) {
      event.preventDefault();
      showError(tooLong(text.length, maxChars));
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

/**
 * Files on the empty state. A file needs a conversation to upload into, and
 * (as on claude.ai) one can attach before the first message: the first file
 * makes the conversation, with the model and settings chosen so far (fixed
 * from then on), and the first message is sent by its page, files and all.
 */
function newChatFiles(form, showError) {
  const area = form.querySelector("#first-message");
  const button = form.querySelector('button[type="submit"]');
  const lockedNote = document.getElementById("options-locked");
  const errorBox = () => document.getElementById("new-chat-error");
  let created = null; // {id, url} of the conversation made for the files
  let creating = null;

  const lock = () => {
    for (const field of form.querySelectorAll("select, #system-prompt")) {
      if (field.tagName === "SELECT") field.disabled = true;
      else field.readOnly = true;
    }
    if (lockedNote) lockedNote.hidden = false;
  };
  const save = () => {
    storageSet(keys.newFiles, created ? { ...created, files: tray.serialize(), at: Date.now() } : null);
  };
  const conversationId = async () => {
    if (created) return created.id;
    if (!creating) {
      const params = new URLSearchParams(new FormData(form));
      params.delete("first_message");
      creating = postForm(form.action, params)
        .then((data) => {
          created = { id: data.id, url: data.url };
          lock();
          save();
          return created.id;
        })
        .finally(() => {
          creating = null;
        });
    }
    return creating;
  };
  const tray = new AttachmentTray({
    urlsFrom: form,
    conversationId,
    onChange: () => {
      save();
      const blocker = tray.blocker();
      button.classList.toggle("is-waiting", Boolean(blocker));
      button.setAttribute("aria-disabled", String(Boolean(blocker)));
      button.title = blocker || gettext("Send (Enter)");
      if (!blocker && errorBox().dataset.fromFiles) showError("");
    },
  });
  tray.bind({ dropZone: document.getElementById("welcome"), pasteTarget: area });

  const kept = storageGet(keys.newFiles);
  if (kept && kept.id && kept.url && Date.now() - (kept.at || 0) < NEW_FILES_MAX_AGE_MS) {
    created = { id: kept.id, url: kept.url };
    lock();
    tray.restore(kept.files || []);
  } else if (kept) {
    storageSet(keys.newFiles, null);
  }

  return {
    started: () => Boolean(created) || tray.size > 0,
    submit(text, maxChars) {
      const blocker = tray.blocker();
      const say = (message) => {
        showError(message);
        errorBox().dataset.fromFiles = blocker ? "1" : "";
      };
      if (blocker) return say(blocker);
      if (!text.trim() && !tray.ready().length) return say(gettext("Type a message first."));
      if (text.length > maxChars) return say(tooLong(text.length, maxChars));
      if (!created) return say(gettext("The conversation is not ready yet; try again in a moment."));
      storageSet(keys.newDraft, {
        text,
        client_id: newClientId(),
        at: Date.now(),
        conversation_id: created.id,
        attachments: tray.take(),
      });
      storageSet(keys.newFiles, null);
      button.disabled = true;
      window.location.assign(created.url);
    },
  };
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
    this.filesKey = "";
    this.blockerShown = false;
    this.tray = new AttachmentTray({
      urlsFrom: root,
      conversationId: () => this.conversationId,
      onChange: () => this.filesChanged(),
    });
    this.root = root;
  }

  start() {
    // On a touch screen Enter breaks the line: the placeholder says what does send.
    if (this.input.dataset.touchPlaceholder && !enterSends()) this.input.placeholder = this.input.dataset.touchPlaceholder;
    this.restoreDrafts();
    this.bind();
    this.tray.bind({ dropZone: this.root, pasteTarget: this.input });
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
    // One with files names its conversation: no other page may send it.
    if (fresh && fresh.conversation_id && fresh.conversation_id !== this.conversationId) fresh = null;
    const freshFiles = (fresh && Array.isArray(fresh.attachments) && fresh.attachments) || [];
    if (fresh && (fresh.text || freshFiles.length) && this.thread.size === 0 && this.outbox.size === 0) {
      this.outbox.add(fresh.text || "", fresh.client_id || newClientId(), freshFiles);
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
      if (draft && Array.isArray(draft.attachments)) this.tray.restore(draft.attachments);
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
      draftTimer = setTimeout(() => this.saveDraft(), 300);
    });
    this.input.addEventListener("keydown", (event) => {
      if (isSendKey(event)) {
        event.preventDefault();
        if (!this.thread.activeReply()) this.submit();
      } else if (
        event.key === "ArrowUp" && !this.input.value && !event.shiftKey && !event.altKey && !event.ctrlKey && !event.metaKey
      ) {
        if (this.editLast()) event.preventDefault();
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

  /**
   * ↑ in an empty composer: edit the last message sent. The message's own edit
   * control (a `[data-action="edit"]` button in its markup) does it when the
   * page has one; else EDIT_LAST_EVENT goes to the document with the message's
   * id and text, for whatever edits messages to act on. True if handled.
   */
  editLast() {
    if (this.disabled || this.thread.activeReply()) return false;
    const last = this.thread.lastUserMessage();
    if (!last) return false;
    const edit = last.el.querySelector('[data-action="edit"]');
    if (edit && !edit.disabled) {
      edit.click();
      return true;
    }
    const event = new CustomEvent(EDIT_LAST_EVENT, {
      detail: { messageId: last.id, text: last.text || "" },
      cancelable: true,
    });
    // A listener that takes it calls preventDefault().
    return !document.dispatchEvent(event);
  }

  /** The text and the files' chips, kept in the tab's session storage. */
  saveDraft() {
    const attachments = this.tray.serialize();
    const text = this.input.value;
    storageSet(this.draftKey, text || attachments.length ? { text, attachments } : null);
  }

  submit() {
    if (this.pending || this.disabled) return; // one message at a time; resent until confirmed
    const text = this.input.value;
    // Files still uploading or checking hold the send; one that cannot be sent stops it.
    const blocker = this.tray.blocker();
    if (blocker) {
      this.showError(blocker);
      this.blockerShown = true;
      return;
    }
    if (!text.trim() && !this.tray.ready().length) {
      this.input.focus();
      return;
    }
    if (text.length > this.maxChars) {
      this.showError(tooLong(text.length, this.maxChars, true));
      return;
    }
    this.onUserAction();
    this.showError("");
    // The chips go at once; the files travel with the send (and its resends).
    const entry = this.outbox.add(text, newClientId(), this.tray.take());
    this.send(sendFrame(entry));
    this.saveDraft();
    this.update();
    this.thread.scrollToBottom(true);
  }

  stop(state) {
    this.onUserAction();
    if (this.send({ type: "generation.stop", message_id: state.id })) {
      this.stopRequested.add(state.id);
      this.update();
    } else {
      this.showError(gettext("Not connected: the stop will be possible once the connection is back."));
    }
  }

  /** The server stored the message of this send: only now does the composer let go of the text. */
  confirmed(entry) {
    if (this.input.value === entry.text) {
      this.input.value = "";
      autoGrow(this.input);
      this.updateCount();
      this.scheduleEstimate();
      this.saveDraft();
    }
    this.showError("");
    this.thread.scrollToBottom(true);
  }

  /** The server refused this send: nothing was stored, the text and files stay in the composer. */
  refused(entry, message) {
    if (!this.input.value) this.input.value = entry.text;
    if (entry.attachments) this.tray.restore(entry.attachments);
    autoGrow(this.input);
    this.showError(message || gettext("That message could not be sent."));
    this.update();
  }

  /** Writing is over on this page (signed out, conversation deleted). */
  disable() {
    this.disabled = true;
    this.tray.disable();
    clearTimeout(this.estimateTimer);
    this.input.disabled = true;
    this.sendButton.disabled = true;
    this.form.classList.add("is-disabled");
    this.showError("");
  }

  showError(message) {
    this.errorBox.textContent = message || "";
    this.errorBox.hidden = !message;
    this.blockerShown = false;
  }

  /** `attachment.updated`: a file of the draft moved on (or another tab's, ignored). */
  attachmentUpdated(payload) {
    this.tray.apply(payload);
  }

  /** `attachment.deleted`: a file of the draft was removed (in another tab, or swept). */
  attachmentDeleted(id) {
    this.tray.forget(id);
  }

  /** The socket (re)opened: states heard of while it was down are asked for. */
  reconnected() {
    this.tray.refresh();
  }

  filesChanged() {
    this.update();
    this.saveDraft();
    if (this.blockerShown && !this.tray.blocker()) this.showError("");
    const key = this.tray.readyIds().join(",");
    if (key !== this.filesKey) {
      this.filesKey = key;
      this.scheduleEstimate();
    }
    this.thread.followBottom(); // the chips change the composer's height
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
      button.setAttribute("aria-label", stopping ? gettext("Stopping…") : gettext("Stop"));
      button.title = stopping ? gettext("Stopping…") : gettext("Stop the answer");
      button.disabled = stopping;
    } else {
      // Not `disabled`: a click still says why (and the button keeps its focus).
      const blocker = pending ? "" : this.tray.blocker();
      const label = blocker ? format(gettext("Send: %(reason)s"), { reason: blocker }) : gettext("Send");
      button.setAttribute("aria-label", pending ? gettext("Sending…") : label);
      button.title = pending ? gettext("Sending…") : blocker || gettext("Send (Enter)");
      button.disabled = false;
    }
    const waiting = !this.disabled && !active && !pending && Boolean(this.tray.blocker());
    button.classList.toggle("is-waiting", waiting);
    if (waiting) button.setAttribute("aria-disabled", "true");
    else button.removeAttribute("aria-disabled");
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

  /** A long draft, or one with files ready, gets the next call's estimated
   * cost, from the free token count, once typing pauses (debounced); short
   * drafts without files show nothing. */
  scheduleEstimate() {
    clearTimeout(this.estimateTimer);
    if (!this.estimateUrl || !this.costEstimate) return;
    const text = this.input.value;
    const files = this.tray.readyIds();
    if (text.trim().length < ESTIMATE_MIN_CHARS && !files.length) {
      this.estimateSeq += 1; // drop any answer still in flight
      this.costEstimate.hidden = true;
      return;
    }
    this.estimateTimer = setTimeout(() => this.fetchEstimate(text, files), ESTIMATE_DEBOUNCE_MS);
  }

  async fetchEstimate(text, files) {
    const seq = ++this.estimateSeq;
    let data = null;
    try {
      data = await postForm(this.estimateUrl, [["text", text], ...files.map((id) => ["attachments", id])]);
    } catch {
      return;
    }
    if (seq !== this.estimateSeq || !data) return; // the draft changed meanwhile
    const estimate = formatCost(data.estimated_cost_usd);
    const most = formatCost(data.max_cost_usd);
    const values = { estimate, tokens: formatInt(data.input_tokens), count: files.length, most };
    let sentence = files.length
      ? format(
          ngettext(
            "≈ %(estimate)s for the next message (%(tokens)s tokens in, with %(count)s file; up to %(most)s with a long answer)",
            "≈ %(estimate)s for the next message (%(tokens)s tokens in, with %(count)s files; up to %(most)s with a long answer)",
            files.length,
          ),
          values,
        )
      : format(
          gettext("≈ %(estimate)s for the next message (%(tokens)s tokens in; up to %(most)s with a long answer)"),
          values,
        );
    // A local estimate (the provider counts no tokens: Bedrock) says so.
    if (data.method === "local") {
      // Translators: the estimate's sentence, then how it was made ("Estimated locally.").
      sentence = format(gettext("%(estimate)s. %(note)s"), { estimate: sentence, note: data.note || gettext("Estimated locally.") });
    }
    this.costEstimate.textContent = sentence;
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
