// The message list: what the page shows of each message, and the frames that
// change it, applied by seq (docs/websocket-protocol.md, "Sequence numbers").
// A message's markup is templates/conversations/_message.html: the server
// renders it for stored messages and once, empty, into the <template> cloned
// here; nothing here builds a message's markup.

import { attachmentUrls, fileCardMeta } from "./attachments.js";
import { copyText, newClientId } from "./browser.js";
import { format, gettext } from "./i18n.js";
import { enhanceProse, markdownToSafeHtml, placeCursor, sanitizeServerHtml, setProse } from "./render.js";
import { cloneTemplateElement, flashDone, formatCost, formatInt, toast } from "./ui.js";

export const ACTIVE = new Set(["pending", "streaming"]);
const RETRYABLE = new Set(["stopped", "error", "interrupted"]);
// Ask for a resume when a running reply has sent nothing for this long.
const QUIET_RESUME_MS = 5000;
const STICK_THRESHOLD_PX = 80;
// The live thinking preview shows this much of the latest thinking.
const THINKING_PREVIEW_CHARS = 280;

/** Model ids to their display names (the page's json_script "model-labels"). */
let modelLabels = null;
export function modelLabel(id) {
  if (!modelLabels) {
    try {
      modelLabels = JSON.parse(document.getElementById("model-labels")?.textContent || "{}") || {};
    } catch {
      modelLabels = {};
    }
  }
  return modelLabels[id] || id || "";
}

// A failed reply's error as the card shows it: what happened, and apart the
// sentence telling to press Retry (the frame's `retry_hint`, in the reader's
// language), shown only while Retry is there (chat.css).
function errorParts(error) {
  const message = (error && error.message) || gettext("Something went wrong with this answer.");
  const hint = (error && error.retry_hint) || "";
  if (!hint || !message.endsWith(hint)) return [message, ""];
  return [message.slice(0, message.length - hint.length).trim(), hint];
}

/** A message's time: local hours and minutes, the full date and time on hover. */
function showTime(el, date) {
  const time = el.querySelector(".msg-time");
  if (!time) return;
  const when = date || (time.dateTime ? new Date(time.dateTime) : null);
  if (!when || Number.isNaN(when.getTime())) return;
  time.dateTime = when.toISOString();
  time.textContent = when.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
  time.title = when.toLocaleString(undefined, { dateStyle: "full", timeStyle: "short" });
}

export class Thread {
  /**
   * @param {HTMLElement} root the conversation (#chat)
   * @param {object} hooks
   * @param {(frame: object) => boolean} hooks.send a frame to the server; false when offline
   * @param {() => void} hooks.onChange a reply started, ended or went away
   * @param {(message: string) => void} hooks.showError in the composer
   * @param {() => void} hooks.onUserAction the person did something (retry)
   */
  constructor(root, { send, onChange, showError, onUserAction }) {
    this.root = root;
    this.scroller = document.getElementById("thread");
    this.list = document.getElementById("messages");
    this.jumpButton = document.getElementById("jump-btn");
    this.send = send;
    this.onChange = onChange;
    this.showError = showError;
    this.onUserAction = onUserAction;
    /** id -> {id, role, el, status, lastSeq, text, thinking, raf, cache, resumeAskedAt, heardAt} */
    this.messages = new Map();
    this.endedMessage = "";
    this.stick = true;
    this.quietTimer = 0;
    this.urls = attachmentUrls(root);
  }

  start() {
    for (const el of this.list.querySelectorAll(".msg[data-message-id]")) this.adoptElement(el);
    this.applyStreamingState();
    this.bind();
    this.refreshRetry();
  }

  // ---- Messages on the page ------------------------------------------------

  adoptElement(el) {
    const state = {
      id: el.dataset.messageId,
      role: el.dataset.role,
      el,
      status: el.dataset.status,
      lastSeq: Number(el.dataset.seq) || 0,
      text: el.dataset.role === "user" ? el.querySelector(".bubble").textContent : null,
      thinking: null,
      raf: 0,
      cache: new Map(),
      resumeAskedAt: -1,
    };
    this.messages.set(state.id, state);
    showTime(el);
    if (state.role === "assistant") {
      const prose = el.querySelector(".prose");
      if (ACTIVE.has(state.status)) {
        el.classList.add("is-live");
        el.setAttribute("aria-busy", "true");
        this.renderLive(state);
      } else {
        enhanceProse(prose, { cache: state.cache });
      }
    }
    return state;
  }

  /** The reply that was streaming when the page was rendered: its text so far. */
  applyStreamingState() {
    const node = document.getElementById("streaming-state");
    if (!node) return;
    let data = null;
    try {
      data = JSON.parse(node.textContent);
    } catch {
      data = null;
    }
    if (!data || !data.message_id) return;
    const state = this.messages.get(data.message_id);
    if (!state) return;
    state.text = data.text || "";
    state.thinking = data.thinking || "";
    state.lastSeq = Number(data.seq) || 0;
    this.renderLive(state);
  }

  /** A message's element from its <template>, with the payload's values. */
  buildElement(payload) {
    const el = cloneTemplateElement(payload.role === "user" ? "tpl-user" : "tpl-assistant");
    el.dataset.messageId = payload.id;
    el.dataset.status = payload.status || (payload.role === "user" ? "complete" : "pending");
    el.dataset.seq = String(payload.seq || 0);
    this.setPosition(el, payload.position);
    if (payload.role === "user") {
      el.querySelector(".bubble").textContent = payload.text || "";
      el.dataset.clientId = payload.client_id || "";
      this.renderFiles(el, payload.attachments);
    } else if (payload.model) {
      el.querySelector(".msg-model").textContent = payload.model_label || modelLabel(payload.model);
    }
    showTime(el, payload.created_at ? new Date(payload.created_at) : new Date());
    this.renderVersions(el, payload.versions);
    return el;
  }

  /** `< 2/3 >`: this message's place among its versions (edits, regenerations). */
  renderVersions(el, versions) {
    const box = el.querySelector(".versions");
    if (!box || !versions) return;
    const ids = Array.isArray(versions.ids) ? versions.ids : [];
    box.dataset.versionIds = ids.join(",");
    box.hidden = ids.length < 2;
    box.querySelector(".versions-label").textContent = `${versions.index}/${versions.count}`;
    const [prev, next] = box.querySelectorAll("button");
    prev.disabled = versions.index <= 1;
    next.disabled = versions.index >= versions.count;
  }

  /** An answer's notes: where it stopped (with Continue), and condensed turns. */
  renderNotes(el, frame) {
    if (frame.stop_reason !== undefined) el.dataset.stopReason = frame.stop_reason || "";
    const note = el.querySelector(".stop-note");
    if (note && frame.stop_note !== undefined) {
      note.hidden = !frame.stop_note;
      note.querySelector(".stop-note-text").textContent = frame.stop_note || "";
    }
    const condensed = el.querySelector(".condensed");
    if (condensed) {
      condensed.hidden = !frame.condensed;
      condensed.querySelector(".condensed-body").textContent = frame.condensed || "";
    }
    const model = el.querySelector(".msg-model");
    if (model && frame.model_label) model.textContent = frame.model_label;
  }

  /**
   * A user message's files, from the templates of _message_attachment.html:
   * a thumbnail for an image, a card (name, kind, pages) for a document; each
   * opens the file in a new tab.
   */
  renderFiles(el, attachments) {
    const box = el.querySelector(".msg-files");
    if (!box || !Array.isArray(attachments) || !attachments.length) return;
    for (const attachment of attachments) {
      const image = attachment.kind === "image";
      const card = cloneTemplateElement(image ? "tpl-msg-image" : "tpl-msg-file");
      if (!card) continue;
      card.href = this.urls.file(attachment.id);
      card.title = attachment.name || "";
      card.dataset.attachmentId = attachment.id;
      card.dataset.kind = attachment.kind || "";
      if (image) {
        const img = card.querySelector("img");
        img.src = this.urls.thumbnail(attachment.id);
        img.alt = attachment.name || "";
      } else {
        card.querySelector(".msg-file-name").textContent = attachment.name || "";
        card.querySelector(".msg-file-meta").textContent = fileCardMeta(attachment);
      }
      box.append(card);
    }
    box.hidden = false;
  }

  /** `attachment.deleted`: its card goes, should the thread ever show one (only unsent files are deleted alone). */
  attachmentDeleted(id) {
    if (!id || !this.list) return;
    for (const card of this.list.querySelectorAll(`[data-attachment-id="${CSS.escape(id)}"]`)) {
      const box = card.closest(".msg-files");
      card.remove();
      if (box && !box.children.length) box.hidden = true;
    }
  }

  setPosition(el, position) {
    if (position === undefined || position === null || position === "") el.removeAttribute("data-position");
    else el.dataset.position = String(position);
  }

  insertElement(el) {
    const empty = document.getElementById("thread-empty");
    if (empty) empty.remove();
    const position = el.dataset.position === undefined ? NaN : Number(el.dataset.position);
    if (!Number.isNaN(position)) {
      for (const other of this.list.querySelectorAll(".msg[data-position]")) {
        if (other !== el && Number(other.dataset.position) > position) {
          other.before(el);
          return;
        }
      }
    }
    this.list.append(el);
  }

  /** A reply we hear about before its message.created (or never): add it at the end. */
  ensureAssistant(messageId, status = "streaming") {
    let state = this.messages.get(messageId);
    if (state) return state;
    const el = this.buildElement({ id: messageId, role: "assistant", status, seq: 0 });
    this.insertElement(el);
    state = this.adoptElement(el);
    state.text = "";
    state.thinking = "";
    return state;
  }

  setStatus(state, status) {
    state.status = status;
    state.el.dataset.status = status;
    state.el.classList.toggle("is-live", ACTIVE.has(status));
    // The thread is a live region: a reply is announced once, when it is written.
    if (ACTIVE.has(status)) state.el.setAttribute("aria-busy", "true");
    else state.el.removeAttribute("aria-busy");
  }

  activeReply() {
    for (const state of this.messages.values()) {
      if (state.role === "assistant" && ACTIVE.has(state.status)) return state;
    }
    return null;
  }

  /** Does the page show the user message sent with this client_id? */
  hasSent(clientId) {
    for (const state of this.messages.values()) {
      if (state.role === "user" && state.el.dataset.clientId === clientId) return true;
    }
    return false;
  }

  get size() {
    return this.messages.size;
  }

  refreshRetry() {
    const all = this.list.querySelectorAll(".msg[data-message-id]");
    all.forEach((el) => el.classList.remove("can-retry", "is-last"));
    const last = all[all.length - 1];
    if (last) last.classList.add("is-last");
    if (last && last.dataset.role === "assistant" && RETRYABLE.has(last.dataset.status)) {
      last.classList.add("can-retry");
    }
  }

  /**
   * The page's chat is over (signed out, or the conversation deleted): Retry
   * could only pretend to work, so it is turned off; `message` says why.
   */
  end(message) {
    this.endedMessage = message;
    this.stopWatching();
    for (const button of this.root.querySelectorAll('[data-action="retry"]')) button.disabled = true;
  }

  // ---- Frames --------------------------------------------------------------

  /**
   * `message.created`: append a message we do not have (dedupe by id). For a
   * reply we already show, adopt the payload only if it is newer (higher seq):
   * a resent `message.send` is answered with the reply as it stands.
   */
  created(payload) {
    if (!payload.id) return;
    let state = this.messages.get(payload.id);
    const seq = Number(payload.seq) || 0;
    if (!state) {
      const el = this.buildElement(payload);
      this.insertElement(el);
      state = this.adoptElement(el);
      if (payload.role === "assistant") this.adoptCreated(state, payload, seq);
    } else if (state.role === "assistant") {
      if (state.el.dataset.position === undefined && payload.position !== undefined) {
        // A placeholder made from a delta: now we know where it goes.
        this.setPosition(state.el, payload.position);
        this.insertElement(state.el);
      }
      const model = state.el.querySelector(".msg-model");
      if (model && !model.textContent && payload.model) model.textContent = modelLabel(payload.model);
      if (seq > state.lastSeq) {
        this.setStatus(state, payload.status || "streaming");
        this.adoptCreated(state, payload, seq);
      }
    }
    this.refreshRetry();
    this.followBottom();
  }

  adoptCreated(state, payload, seq) {
    state.text = payload.text || "";
    state.thinking = payload.thinking || "";
    state.lastSeq = seq;
    if (ACTIVE.has(payload.status)) {
      state.resumeAskedAt = -1;
      state.heardAt = Date.now();
      this.renderLive(state);
      // Created with progress already made (a resend after a reconnect): catch up.
      if (state.lastSeq > 0) this.askResume(state, state.lastSeq);
    } else {
      this.renderFinal(state, payload);
    }
  }

  /** `message.delta`: apply the next seq; ignore a duplicate; a gap asks for a resume. */
  delta(frame) {
    const state = this.messages.get(frame.message_id);
    if (!state) {
      // A reply we have not seen: ask for all of it.
      const placeholder = this.ensureAssistant(frame.message_id);
      this.askResume(placeholder, 0);
      this.onChange();
      return;
    }
    if (frame.seq <= state.lastSeq) return; // a duplicate
    if (frame.seq > state.lastSeq + 1) {
      this.askResume(state, state.lastSeq); // a gap: fill it first
      return;
    }
    if (state.text === null) state.text = "";
    if (state.thinking === null) state.thinking = "";
    if (frame.thinking) state.thinking += frame.thinking;
    if (frame.text) state.text += frame.text;
    state.lastSeq = frame.seq;
    state.resumeAskedAt = -1;
    state.heardAt = Date.now();
    if (state.status !== "streaming") {
      this.setStatus(state, "streaming");
      this.onChange();
    }
    this.scheduleRender(state);
  }

  /** `message.snapshot`: the whole reply so far replaces what we have. */
  snapshot(frame) {
    const state = this.messages.get(frame.message_id) || this.ensureAssistant(frame.message_id);
    if (frame.seq < state.lastSeq) return;
    state.text = frame.text || "";
    state.thinking = frame.thinking || "";
    state.lastSeq = frame.seq;
    state.resumeAskedAt = -1;
    state.heardAt = Date.now();
    this.setStatus(state, ACTIVE.has(frame.status) ? frame.status : "streaming");
    this.scheduleRender(state);
    this.onChange();
  }

  /** `message.completed`: replaces everything, unless the reply is already final with that seq. */
  completed(frame) {
    const state = this.messages.get(frame.message_id) || this.ensureAssistant(frame.message_id);
    if (!ACTIVE.has(state.status) && frame.seq <= state.lastSeq) return; // already final
    state.text = frame.text || "";
    state.thinking = frame.thinking || "";
    state.lastSeq = frame.seq;
    this.setStatus(state, frame.status || "complete");
    this.renderFinal(state, frame);
    this.refreshRetry();
    this.onChange();
  }

  /** `message.deleted` (before a retry's new reply). */
  deleted(frame) {
    const state = this.messages.get(frame.message_id);
    if (!state) return;
    if (state.raf) cancelAnimationFrame(state.raf);
    state.el.remove();
    this.messages.delete(frame.message_id);
    this.refreshRetry();
    this.onChange();
  }

  /**
   * `branch.switched`: the branch on show changed from `from_position` down.
   * Messages above stay; below, those of the new branch are kept (a reply that
   * streams keeps its state) or built, the others go.
   */
  branchSwitched(frame) {
    const from = Number(frame.from_position) || 0;
    const payloads = Array.isArray(frame.messages) ? frame.messages : [];
    const keep = new Set(payloads.map((p) => p.id));
    for (const [id, state] of [...this.messages]) {
      const position = Number(state.el.dataset.position);
      if (!keep.has(id) && !Number.isNaN(position) && position >= from) {
        if (state.raf) cancelAnimationFrame(state.raf);
        state.el.remove();
        this.messages.delete(id);
      }
    }
    for (const payload of payloads) {
      const known = this.messages.get(payload.id);
      if (known) {
        this.renderVersions(known.el, payload.versions);
        continue;
      }
      this.created(payload);
      const state = this.messages.get(payload.id);
    }
    this.refreshRetry();
    this.onChange();
  }

  /** `message.condensed`: the branch's older turns were condensed up to this message. */
  condensed(frame) {
    const state = this.messages.get(frame.message_id);
    if (state) this.renderNotes(state.el, { condensed: frame.condensed });
  }

  /** The editor of a user message, in place of its bubble (templates: tpl-edit). */
  openEditor(state) {
    if (state.el.querySelector(".edit-form")) return;
    const form = cloneTemplateElement("tpl-edit");
    if (!form) return;
    const input = form.querySelector("textarea");
    input.value = state.text || "";
    state.el.querySelector(".bubble").after(form);
    state.el.classList.add("is-editing");
    input.focus();
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.onUserAction();
      const sent = this.send({
        type: "message.edit",
        message_id: state.id,
        text: input.value,
        client_id: newClientId(),
      });
      if (!sent) {
        this.showError(gettext("Not connected. Send the edit once the connection is back."));
        return;
      }
      this.closeEditor(state);
    });
    input.addEventListener("keydown", (event) => {
      if (event.key === "Escape") this.closeEditor(state);
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
  }

  closeEditor(state) {
    state.el.querySelector(".edit-form")?.remove();
    state.el.classList.remove("is-editing");
  }

  // ---- Resumes -------------------------------------------------------------

  /** On every (re)open: catch up on every reply this page believes is still running. */
  resumeAll() {
    for (const state of this.messages.values()) {
      if (state.role === "assistant" && ACTIVE.has(state.status)) {
        this.send({ type: "resume", message_id: state.id, last_seq: state.lastSeq });
        state.resumeAskedAt = state.lastSeq;
      }
    }
  }

  askResume(state, lastSeq) {
    if (state.resumeAskedAt === lastSeq) return; // already asked for this gap
    state.resumeAskedAt = lastSeq;
    this.send({ type: "resume", message_id: state.id, last_seq: lastSeq });
  }

  /**
   * A reply that has gone quiet may have lost its last frames (the channel
   * layer drops under load, and a lost `message.completed` leaves no gap to
   * notice): ask the server where it stands.
   */
  watchQuiet() {
    clearInterval(this.quietTimer);
    this.quietTimer = setInterval(() => {
      const now = Date.now();
      for (const state of this.messages.values()) {
        if (state.role !== "assistant" || !ACTIVE.has(state.status)) continue;
        if (!state.heardAt) state.heardAt = now; // start the clock
        if (now - state.heardAt < QUIET_RESUME_MS) continue;
        state.heardAt = now;
        this.send({ type: "resume", message_id: state.id, last_seq: state.lastSeq });
      }
    }, QUIET_RESUME_MS / 2);
  }

  stopWatching() {
    clearInterval(this.quietTimer);
  }

  // ---- Rendering -----------------------------------------------------------

  scheduleRender(state) {
    if (state.raf) return;
    state.raf = requestAnimationFrame(() => {
      state.raf = 0;
      this.renderLive(state);
    });
  }

  renderLive(state) {
    const el = state.el;
    const prose = el.querySelector(".prose");
    if (state.text !== null) {
      setProse(prose, markdownToSafeHtml(state.text), state.text);
      enhanceProse(prose, { live: true, cache: state.cache });
    }
    placeCursor(prose);
    this.renderThinking(state, true);
    el.dataset.seq = String(state.lastSeq);
    this.followBottom();
  }

  renderThinking(state, live) {
    const details = state.el.querySelector(".thinking");
    if (state.thinking === null) {
      if (details && !details.hidden) this.setThinkingLabel(state, live);
      return;
    }
    if (!details) return;
    details.hidden = !state.thinking;
    details.querySelector(".thinking-body").textContent = state.thinking;
    this.setThinkingLabel(state, live);
    // While Claude thinks (and writes nothing yet), its latest thinking shows
    // under the closed summary; opening it shows all of it.
    const preview = details.querySelector(".thinking-preview");
    if (preview) {
      const thinkingNow = live && Boolean(state.thinking) && !(state.text || "").length;
      preview.hidden = !thinkingNow;
      preview.textContent = thinkingNow ? state.thinking.slice(-THINKING_PREVIEW_CHARS).trimStart() : "";
    }
  }

  setThinkingLabel(state, live) {
    const label = state.el.querySelector(".thinking-label");
    if (!label) return;
    label.textContent = live && !(state.text || "").length ? gettext("Thinking…") : gettext("Thought process");
  }

  renderFinal(state, frame) {
    if (state.raf) {
      cancelAnimationFrame(state.raf);
      state.raf = 0;
    }
    const el = state.el;
    const prose = el.querySelector(".prose");
    if (typeof frame.html === "string" && (frame.html || !frame.text)) {
      prose.innerHTML = sanitizeServerHtml(frame.html);
    } else {
      setProse(prose, markdownToSafeHtml(frame.text || ""), frame.text || "");
    }
    enhanceProse(prose, { cache: state.cache });
    this.renderThinking(state, false);
    el.querySelector(".stopped-marker").hidden = state.status !== "stopped";
    const card = el.querySelector(".error-card");
    const error = frame.error;
    const failed = Boolean(error) || state.status === "error" || state.status === "interrupted";
    card.hidden = !failed;
    if (failed) {
      const [main, hint] = errorParts(error);
      const text = card.querySelector(".error-text");
      const mainEl = text.querySelector(".error-main");
      const hintEl = text.querySelector(".error-retry-hint");
      if (mainEl && hintEl) {
        mainEl.textContent = main;
        hintEl.textContent = hint;
      } else {
        text.textContent = hint ? `${main} ${hint}` : main;
      }
    }
    if (frame.usage || frame.cost_usd) this.renderUsage(state, frame.usage, frame.cost_usd);
    this.renderNotes(el, frame);
    el.dataset.seq = String(state.lastSeq);
    this.followBottom();
  }

  /** Tokens and cost of a completed reply, in rows of templates/conversations/_usage_row.html. */
  renderUsage(state, usage, costUsd) {
    const pop = state.el.querySelector(".usage-pop");
    const button = state.el.querySelector(".act-usage");
    if (!pop || !button) return;
    const rows = [];
    const summary = [];
    if (usage) {
      const count = (n) => ({ count: formatInt(n) });
      rows.push([gettext("Input"), formatInt(usage.input_tokens)], [gettext("Output"), formatInt(usage.output_tokens)]);
      // Translators: parts of a reply's usage, "1,204 input · 310 output · 800 cache read · 40 cache write tokens".
      summary.push(format(gettext("%(count)s input"), count(usage.input_tokens)));
      summary.push(format(gettext("%(count)s output"), count(usage.output_tokens)));
      if (usage.cache_read_tokens) {
        rows.push([gettext("Cache read"), formatInt(usage.cache_read_tokens)]);
        summary.push(format(gettext("%(count)s cache read"), count(usage.cache_read_tokens)));
      }
      if (usage.cache_write_tokens) {
        rows.push([gettext("Cache write"), formatInt(usage.cache_write_tokens)]);
        summary.push(format(gettext("%(count)s cache write"), count(usage.cache_write_tokens)));
      }
    }
    const cost = formatCost(costUsd);
    if (cost) rows.push([gettext("Cost"), cost, true]);
    if (!rows.length) rows.push([gettext("No usage recorded"), null]);
    pop.replaceChildren(
      ...rows.map(([name, value, isCost]) => {
        const row = cloneTemplateElement("tpl-usage-row");
        const [label, figure] = row.children;
        label.textContent = name;
        if (value === null) figure.remove();
        else figure.textContent = value;
        row.classList.toggle("usage-cost", Boolean(isCost));
        return row;
      }),
    );
    const counts = summary.join(" · ");
    // Translators: %(counts)s is the parts above, joined by " · "; %(cost)s is in US dollars.
    if (cost) button.title = format(gettext("%(counts)s tokens · %(cost)s"), { counts, cost });
    // Translators: %(counts)s is the parts above, joined by " · ".
    else button.title = format(gettext("%(counts)s tokens"), { counts });
  }

  // ---- Scrolling and clicks --------------------------------------------------

  bind() {
    // Following the end stops only when the person scrolls up: a scroll that a
    // layout change caused (the composer's dock growing, a card above the end
    // wrapping) must not stop it before the resize observer below catches up.
    let lastTop = this.scroller.scrollTop;
    this.scroller.addEventListener(
      "scroll",
      () => {
        const top = this.scroller.scrollTop;
        const gap = this.scroller.scrollHeight - top - this.scroller.clientHeight;
        if (gap < STICK_THRESHOLD_PX) this.stick = true;
        else if (top < lastTop) this.stick = false;
        lastTop = top;
        this.jumpButton.hidden = this.stick;
      },
      { passive: true },
    );
    // A height that changes without a frame (the last frame's Retry wrapping
    // onto its own line on a phone, an error above the composer, the on-screen
    // keyboard) must not push the end of the thread behind the composer.
    if (typeof ResizeObserver === "function") {
      const keepBottom = new ResizeObserver(() => this.followBottom());
      keepBottom.observe(this.list);
      keepBottom.observe(this.scroller);
      const dock = this.root.querySelector(".composer-dock");
      if (dock) keepBottom.observe(dock);
    }
    this.root.addEventListener("click", (event) => this.onClick(event));
    document.addEventListener("click", (event) => {
      const target = event.target instanceof Element ? event.target : null;
      if (!target || target.closest(".usage-wrap")) return;
      this.root.querySelectorAll(".usage-wrap.is-open").forEach((w) => w.classList.remove("is-open"));
    });
  }

  /** A message a search result opened (`#message-<id>`): scrolled to and flashed. */
  revealFound(hash) {
    const match = /^#message-([0-9a-f-]{36})$/i.exec(hash || "");
    const state = match ? this.messages.get(match[1].toLowerCase()) : null;
    if (!state) return;
    state.el.scrollIntoView({ block: "center" });
    state.el.classList.add("is-found");
    const gap = this.scroller.scrollHeight - this.scroller.scrollTop - this.scroller.clientHeight;
    this.stick = gap < STICK_THRESHOLD_PX;
    this.jumpButton.hidden = this.stick;
  }

  /** The last message the person sent (for ↑ in an empty composer), or null. */
  lastUserMessage() {
    const all = this.list.querySelectorAll('.msg[data-role="user"][data-message-id]');
    const el = all[all.length - 1];
    return el ? this.messages.get(el.dataset.messageId) || null : null;
  }

  scrollToBottom(force = false) {
    if (!force && !this.stick) return;
    this.scroller.scrollTop = this.scroller.scrollHeight;
    this.stick = true;
    this.jumpButton.hidden = true;
  }

  /** Keep the last message in view while it grows, unless the person scrolled up. */
  followBottom() {
    if (this.stick) this.scroller.scrollTop = this.scroller.scrollHeight;
  }

  async onClick(event) {
    const target = event.target instanceof Element ? event.target : null;
    if (!target) return;
    const button = target.closest("[data-action]");
    if (!button || !this.root.contains(button)) return;
    const action = button.dataset.action;
    const msgEl = button.closest(".msg");
    const state = msgEl ? this.messages.get(msgEl.dataset.messageId) : null;
    if (action === "copy" && state) {
      let text = state.text;
      if (state.role === "assistant" && (text === null || ACTIVE.has(state.status))) {
        text = state.el.querySelector(".prose").innerText;
      }
      if (await copyText(text || "")) flashDone(button);
      else toast(gettext("Copying is not allowed here."));
    } else if (action === "copy-code") {
      const code = button.closest(".codeblock")?.querySelector("pre code, pre");
      if (code && (await copyText(code.textContent.replace(/\n$/, "")))) flashDone(button);
    } else if (action === "retry" && state) {
      if (this.endedMessage) {
        this.showError(this.endedMessage);
        return;
      }
      this.onUserAction();
      if (!this.send({ type: "message.retry", message_id: state.id })) {
        this.showError(gettext("Not connected. Retry once the connection is back."));
      } else {
        button.disabled = true;
        setTimeout(() => {
          if (!this.endedMessage) button.disabled = false;
        }, 3000);
      }
    } else if (action === "edit" && state) {
      if (this.endedMessage) return this.showError(this.endedMessage);
      this.openEditor(state);
    } else if (action === "edit-cancel" && state) {
      this.closeEditor(state);
    } else if ((action === "version-prev" || action === "version-next") && state) {
      const ids = (button.closest(".versions")?.dataset.versionIds || "").split(",").filter(Boolean);
      const target = ids[ids.indexOf(state.id) + (action === "version-prev" ? -1 : 1)];
      if (!target) return;
      this.onUserAction();
      if (!this.send({ type: "branch.switch", message_id: target })) {
        this.showError(gettext("Not connected. Switch once the connection is back."));
      }
    } else if ((action === "regenerate" || action === "continue") && state) {
      if (this.endedMessage) return this.showError(this.endedMessage);
      this.onUserAction();
      if (!this.send({ type: `message.${action}`, message_id: state.id })) {
        this.showError(gettext("Not connected. Try again once the connection is back."));
      }
    } else if (action === "usage") {
      const wrap = button.closest(".usage-wrap");
      const open = !wrap.classList.contains("is-open");
      this.root.querySelectorAll(".usage-wrap.is-open").forEach((w) => w.classList.remove("is-open"));
      wrap.classList.toggle("is-open", open);
      button.setAttribute("aria-expanded", String(open));
    } else if (action === "jump") {
      this.scroller.scrollTo({ top: this.scroller.scrollHeight, behavior: "smooth" });
      this.stick = true;
      this.jumpButton.hidden = true;
    }
  }
}
