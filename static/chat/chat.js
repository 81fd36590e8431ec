// Team chat: the one browser module. No build step; see docs/websocket-protocol.md.
//
// markdown-it, DOMPurify and highlight.js are vendored UMD builds loaded as
// deferred classic scripts before this module (window.markdownit,
// window.DOMPurify, window.hljs). Every page loads this module; each part
// starts only if its elements are on the page.

const ACTIVE = new Set(["pending", "streaming"]);
// Ask for a resume when a running reply has sent nothing for this long.
const QUIET_RESUME_MS = 5000;
const RETRYABLE = new Set(["stopped", "error", "interrupted"]);
const NEW_DRAFT_KEY = "chat:new-draft";
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 10_000;
const PING_EVERY_MS = 25_000;
// The composer asks for a cost estimate only for long drafts, after typing pauses.
const ESTIMATE_MIN_CHARS = 2000;
const ESTIMATE_DEBOUNCE_MS = 600;
const STICK_THRESHOLD_PX = 80;

const COPY_ICON =
  '<svg viewBox="0 0 24 24" aria-hidden="true"><rect x="8" y="8" width="12" height="12" rx="2" stroke="currentColor" stroke-width="1.8" fill="none"/><path d="M16 8V6a2 2 0 0 0-2-2H6a2 2 0 0 0-2 2v8a2 2 0 0 0 2 2h2" stroke="currentColor" stroke-width="1.8" fill="none"/></svg>';
const CHECK_ICON =
  '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M5 12.5l4.5 4.5L19 7.5" stroke="currentColor" stroke-width="2" fill="none" stroke-linecap="round" stroke-linejoin="round"/></svg>';

// ---------------------------------------------------------------------------
// Small helpers

function storageGet(key) {
  try {
    const raw = sessionStorage.getItem(key);
    return raw ? JSON.parse(raw) : null;
  } catch {
    return null;
  }
}

function storageSet(key, value) {
  try {
    if (value === null || value === undefined) sessionStorage.removeItem(key);
    else sessionStorage.setItem(key, JSON.stringify(value));
  } catch {
    /* storage full or disabled: the text stays in the textarea */
  }
}

function newClientId() {
  if (window.crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
  // crypto.randomUUID needs a secure context; plain http on a LAN address has none.
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  if (match) return decodeURIComponent(match[1]);
  const input = document.querySelector('input[name="csrfmiddlewaretoken"]');
  return input ? input.value : "";
}

async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // Fallback for insecure contexts.
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "visually-hidden";
    document.body.append(area);
    area.select();
    let ok = false;
    try {
      ok = document.execCommand("copy");
    } catch {
      ok = false;
    }
    area.remove();
    return ok;
  }
}

function flashDone(button) {
  const original = button.innerHTML;
  button.innerHTML = CHECK_ICON + (button.classList.contains("code-copy") ? "<span>Copied</span>" : "");
  button.classList.add("is-done");
  setTimeout(() => {
    button.innerHTML = original;
    button.classList.remove("is-done");
  }, 1500);
}

let toastTimer = 0;
function toast(message) {
  let el = document.querySelector(".toast");
  if (!el) {
    el = document.createElement("div");
    el.className = "toast";
    el.setAttribute("role", "status");
    document.body.append(el);
  }
  el.textContent = message;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    el.hidden = true;
  }, 4000);
}

function formatInt(n) {
  return Number(n || 0).toLocaleString("en-US");
}

function formatCost(usd) {
  if (usd === null || usd === undefined || usd === "") return "";
  const n = Number(usd);
  if (!Number.isFinite(n)) return "";
  if (n > 0 && n < 0.0001) return "<$0.0001";
  return `$${n.toFixed(4)}`;
}

function autoGrow(area) {
  area.style.height = "auto";
  area.style.height = `${area.scrollHeight}px`;
}

function isCoarsePointer() {
  return window.matchMedia && window.matchMedia("(pointer: coarse)").matches;
}

// Enter sends, Shift+Enter breaks the line (on touch screens Enter breaks the line too).
function isSendKey(event) {
  return (
    event.key === "Enter" &&
    !event.shiftKey &&
    !event.altKey &&
    !event.ctrlKey &&
    !event.metaKey &&
    !event.isComposing &&
    event.keyCode !== 229 &&
    !isCoarsePointer()
  );
}

// ---------------------------------------------------------------------------
// Markdown: parse, then sanitise the resulting HTML, then enhance the DOM.

const SANITIZE_CONFIG = {
  ALLOWED_TAGS: [
    "a", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
    "li", "ol", "p", "pre", "strong", "table", "tbody", "td", "th", "thead", "tr", "ul", "s",
  ],
  ALLOWED_ATTR: ["href", "title", "class", "start", "align"],
  ALLOWED_URI_REGEXP: /^(?:(?:https?|mailto):|[^a-z]|[a-z+.-]+(?:[^a-z+.\-:]|$))/i,
  ALLOW_DATA_ATTR: false,
};

let markdown = null;
let purifyReady = false;

function markdownRenderer() {
  if (!markdown && typeof window.markdownit === "function") {
    markdown = window
      .markdownit("commonmark", { html: false, linkify: false, typographer: false })
      .enable(["table", "strikethrough"]);
    // Table alignment comes out as style="text-align:…", which the CSP forbids
    // (even parsing it for sanitising reports a violation): use align="…".
    markdown.core.ruler.push("align_attribute", (state) => {
      for (const token of state.tokens) {
        if ((token.type === "th_open" || token.type === "td_open") && token.attrs) {
          const style = token.attrGet("style") || "";
          const match = /text-align:\s*(left|right|center)/.exec(style);
          token.attrs = match ? [["align", match[1]]] : null;
        }
      }
    });
  }
  return markdown;
}

function purifier() {
  const purify = window.DOMPurify;
  if (!purify || typeof purify.sanitize !== "function") return null;
  if (!purifyReady) {
    purifyReady = true;
    purify.addHook("uponSanitizeAttribute", (_node, data) => {
      if (data.attrName === "class") {
        const kept = data.attrValue.split(/\s+/).filter((c) => /^language-[A-Za-z0-9]+$/.test(c));
        if (kept.length) data.attrValue = kept.join(" ");
        else data.keepAttr = false;
      }
    });
  }
  return purify;
}

/** Markdown source to sanitised HTML; null if the libraries did not load. */
function markdownToSafeHtml(source) {
  const md = markdownRenderer();
  const purify = purifier();
  if (!md || !purify) return null;
  return purify.sanitize(md.render(source), SANITIZE_CONFIG);
}

function sanitizeServerHtml(html) {
  const purify = purifier();
  return purify ? purify.sanitize(html, SANITIZE_CONFIG) : html;
}

function setProse(prose, html, fallbackText) {
  if (html === null) {
    // The vendored libraries are missing: show the text, never unsanitised HTML.
    prose.textContent = "";
    const p = document.createElement("p");
    p.className = "plain-fallback";
    p.textContent = fallbackText;
    prose.append(p);
  } else {
    prose.innerHTML = html;
  }
}

function codeLanguage(code) {
  const match = /(?:^|\s)language-([A-Za-z0-9]+)/.exec(code.className || "");
  return match ? match[1].toLowerCase() : "";
}

/**
 * Highlight code blocks, wrap them with a header and a copy button, make links
 * open safely. `cache` (per message) keeps the highlighted HTML of finished
 * blocks so streaming does not re-highlight the whole answer every frame.
 */
function enhanceProse(prose, { live = false, cache = null } = {}) {
  const hljs = window.hljs;
  if (hljs && !hljs.__chatConfigured) {
    hljs.configure({ ignoreUnescapedHTML: true });
    hljs.__chatConfigured = true;
  }
  const blocks = prose.querySelectorAll("pre > code");
  blocks.forEach((code, index) => {
    const pre = code.parentElement;
    const lang = codeLanguage(code);
    const isLast = index === blocks.length - 1;
    if (hljs && lang && hljs.getLanguage(lang)) {
      const key = `${lang}\n${code.textContent}`;
      const cached = cache && cache.get(key);
      if (cached !== undefined) {
        code.innerHTML = cached;
        code.classList.add("hljs");
      } else {
        try {
          hljs.highlightElement(code);
          if (cache && !(live && isLast)) cache.set(key, code.innerHTML);
        } catch {
          /* leave it plain */
        }
      }
    }
    if (pre.parentElement && pre.parentElement.classList.contains("codeblock")) return;
    const wrap = document.createElement("div");
    wrap.className = "codeblock";
    const head = document.createElement("div");
    head.className = "codeblock-head";
    const label = document.createElement("span");
    label.textContent = lang || "code";
    const button = document.createElement("button");
    button.type = "button";
    button.className = "code-copy";
    button.dataset.action = "copy-code";
    button.setAttribute("aria-label", "Copy code");
    button.innerHTML = `${COPY_ICON}<span>Copy</span>`;
    head.append(label, button);
    pre.replaceWith(wrap);
    wrap.append(head, pre);
  });
  prose.querySelectorAll("a[href]").forEach((a) => {
    a.target = "_blank";
    a.rel = "noopener noreferrer nofollow";
  });
}

/** Put the blinking cursor at the end of the deepest last text block. */
function placeCursor(prose) {
  prose.querySelectorAll(".live-cursor").forEach((c) => c.remove());
  let host = prose;
  for (;;) {
    const last = host.lastElementChild;
    if (!last) break;
    const tag = last.tagName;
    if (tag === "P" || /^H[1-6]$/.test(tag)) {
      host = last;
      break;
    }
    if (tag === "UL" || tag === "OL" || tag === "LI" || tag === "BLOCKQUOTE") {
      host = last;
      continue;
    }
    if (last.classList.contains("codeblock")) {
      host = last.querySelector("code") || prose;
      break;
    }
    break;
  }
  const cursor = document.createElement("span");
  cursor.className = "live-cursor";
  cursor.setAttribute("aria-hidden", "true");
  host.append(cursor);
}

// ---------------------------------------------------------------------------
// Sidebar and user menu (every page)

function initShell() {
  const body = document.body;
  const menuButton = document.querySelector('[data-action="sidebar-open"]');
  const open = () => {
    body.classList.add("sidebar-open");
    if (menuButton) menuButton.setAttribute("aria-expanded", "true");
  };
  const close = () => {
    body.classList.remove("sidebar-open");
    if (menuButton) menuButton.setAttribute("aria-expanded", "false");
  };
  document.addEventListener("click", (event) => {
    const target = event.target instanceof Element ? event.target : null;
    if (!target) return;
    if (target.closest('[data-action="sidebar-open"]')) open();
    else if (target.closest('[data-action="sidebar-close"]')) close();
    else if (target.closest(".conv-link, .new-chat")) close();
    // Close the user menu when clicking elsewhere.
    const menu = document.querySelector(".user-menu[open]");
    if (menu && !menu.contains(target)) menu.open = false;
  });
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    close();
    const menu = document.querySelector(".user-menu[open]");
    if (menu) menu.open = false;
  });
  const current = document.querySelector(".conv-link.is-current");
  if (current) current.scrollIntoView({ block: "nearest" });
}

function sidebarLink(conversationId) {
  return document.querySelector(`.conv-link[data-conversation-id="${CSS.escape(conversationId)}"]`);
}

// ---------------------------------------------------------------------------
// The empty state: a new conversation and its first message

function initNewChat() {
  const form = document.getElementById("new-chat-form");
  if (!form) return;
  const area = form.querySelector("#first-message");
  const errorBox = document.getElementById("new-chat-error");
  const maxChars = Number(form.dataset.maxChars) || 100_000;

  // A first message that did not make it (a refused form, the back button) comes back.
  const draft = storageGet(NEW_DRAFT_KEY);
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
    storageSet(NEW_DRAFT_KEY, { text, client_id: newClientId(), at: Date.now() });
    const button = form.querySelector('button[type="submit"]');
    if (button) button.disabled = true;
  });
  // Re-enable the button if the page is restored from the back/forward cache.
  window.addEventListener("pageshow", () => {
    const button = form.querySelector('button[type="submit"]');
    if (button) button.disabled = false;
  });
}

// ---------------------------------------------------------------------------
// Conversation header: rename and delete

function initHeader() {
  const header = document.getElementById("chat-header");
  if (!header) return;
  const titleButton = document.getElementById("chat-title");

  const post = (url, body) =>
    fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" },
      body,
    });

  const startRename = () => {
    const input = document.createElement("input");
    input.type = "text";
    input.className = "title-input";
    input.maxLength = 200;
    input.value = titleButton.textContent.trim();
    input.setAttribute("aria-label", "Conversation title");
    titleButton.hidden = true;
    titleButton.after(input);
    input.focus();
    input.select();
    let done = false;
    const finish = async (save) => {
      if (done) return;
      done = true;
      const title = input.value.trim();
      const before = titleButton.textContent.trim();
      input.remove();
      titleButton.hidden = false;
      if (!save || !title || title === before) {
        titleButton.focus();
        return;
      }
      titleButton.textContent = title; // optimistic
      try {
        const response = await post(header.dataset.renameUrl, new URLSearchParams({ title }));
        const data = await response.json().catch(() => ({}));
        if (!response.ok) throw new Error(data.error || "The title could not be saved.");
        applyTitle(header.dataset.conversationId, data.title || title);
      } catch (error) {
        titleButton.textContent = before;
        toast(error.message || "The title could not be saved.");
      }
    };
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        finish(true);
      } else if (event.key === "Escape") {
        event.preventDefault();
        event.stopPropagation();
        finish(false);
      }
    });
    input.addEventListener("blur", () => finish(true));
  };

  header.addEventListener("click", async (event) => {
    const target = event.target instanceof Element ? event.target : null;
    if (!target) return;
    if (target.closest('[data-action="rename"]')) {
      startRename();
    } else if (target.closest('[data-action="delete"]')) {
      if (!window.confirm("Delete this conversation? This cannot be undone.")) return;
      try {
        const response = await post(header.dataset.deleteUrl, new URLSearchParams());
        if (!response.ok) throw new Error(`The server answered ${response.status}.`);
        storageSet(`chat:pending:${header.dataset.conversationId}`, null);
        storageSet(`chat:draft:${header.dataset.conversationId}`, null);
        window.location.assign(header.dataset.homeUrl || "/");
      } catch (error) {
        toast(`The conversation could not be deleted. ${error.message || ""}`.trim());
      }
    }
  });
}

function applyTitle(conversationId, title) {
  const header = document.getElementById("chat-header");
  if (header && header.dataset.conversationId === conversationId) {
    const button = document.getElementById("chat-title");
    if (button) button.textContent = title;
    document.title = `${title} · Team chat`;
  }
  const link = sidebarLink(conversationId);
  if (link) {
    link.textContent = title;
    link.title = title;
  }
}

// ---------------------------------------------------------------------------
// The conversation page: messages, socket, composer

class ChatPage {
  constructor(root) {
    this.root = root;
    this.conversationId = root.dataset.conversationId;
    this.wsPath = root.dataset.wsPath;
    this.maxChars = Number(root.dataset.maxChars) || 100_000;
    this.thread = document.getElementById("thread");
    this.list = document.getElementById("messages");
    this.form = document.getElementById("composer");
    this.input = document.getElementById("composer-input");
    this.sendButton = document.getElementById("send-btn");
    this.errorBox = document.getElementById("composer-error");
    this.connStatus = document.getElementById("conn-status");
    this.charCount = document.getElementById("char-count");
    this.jumpButton = document.getElementById("jump-btn");
    this.budgetNote = document.getElementById("budget-note");
    this.costEstimate = document.getElementById("cost-estimate");
    this.estimateUrl = root.dataset.estimateUrl || "";
    this.estimateTimer = 0;
    this.estimateSeq = 0;
    this.pendingKey = `chat:pending:${this.conversationId}`;
    this.draftKey = `chat:draft:${this.conversationId}`;

    /** id -> {id, role, el, status, lastSeq, text, thinking, raf, cache, resumeAskedAt} */
    this.messages = new Map();
    this.pending = null; // unacknowledged message.send: {text, client_id}
    this.stopRequested = new Set();
    this.lastUserActionAt = 0;

    this.ws = null;
    this.attempt = 0;
    this.reconnectTimer = 0;
    this.pingTimer = 0;
    this.lastFrameAt = 0;
    this.stick = true;
    this.unloading = false;
  }

  start() {
    for (const el of this.list.querySelectorAll(".msg[data-message-id]")) this.adoptElement(el);
    this.applyStreamingState();
    this.restoreDrafts();
    this.bindComposer();
    this.bindThread();
    this.refreshRetry();
    this.updateComposer();
    this.scrollToBottom(true);
    window.addEventListener("pagehide", () => {
      this.unloading = true;
    });
    window.addEventListener("online", () => this.reconnectNow());
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") this.reconnectNow();
    });
    this.connect();
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
    if (state.role === "assistant") {
      const prose = el.querySelector(".prose");
      if (ACTIVE.has(state.status)) {
        el.classList.add("is-live");
        this.renderLive(state);
      } else {
        enhanceProse(prose, { cache: state.cache });
      }
    }
    return state;
  }

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

  buildElement(payload) {
    const template = document.getElementById(payload.role === "user" ? "tpl-user" : "tpl-assistant");
    const el = template.content.firstElementChild.cloneNode(true);
    el.dataset.messageId = payload.id;
    el.dataset.status = payload.status || (payload.role === "user" ? "complete" : "pending");
    el.dataset.seq = String(payload.seq || 0);
    if (payload.position !== undefined && payload.position !== null) el.dataset.position = String(payload.position);
    if (payload.role === "user") {
      el.querySelector(".bubble").textContent = payload.text || "";
      if (payload.client_id) el.dataset.clientId = payload.client_id;
    } else if (payload.model) {
      el.querySelector(".msg-model").textContent = payload.model;
    }
    return el;
  }

  insertElement(el) {
    const empty = document.getElementById("thread-empty");
    if (empty) empty.remove();
    const position = el.dataset.position === undefined ? NaN : Number(el.dataset.position);
    if (!Number.isNaN(position)) {
      for (const other of this.list.querySelectorAll(".msg[data-position]")) {
        if (Number(other.dataset.position) > position) {
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
  }

  setThinkingLabel(state, live) {
    const label = state.el.querySelector(".thinking-label");
    if (!label) return;
    label.textContent = live && !(state.text || "").length ? "Thinking…" : "Thought process";
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
      card.querySelector(".error-text").textContent =
        (error && error.message) || "Something went wrong with this answer.";
    }
    if (frame.usage || frame.cost_usd) this.renderUsage(state, frame.usage, frame.cost_usd);
    el.dataset.seq = String(state.lastSeq);
    this.followBottom();
  }

  renderUsage(state, usage, costUsd) {
    const pop = state.el.querySelector(".usage-pop");
    const button = state.el.querySelector(".act-usage");
    if (!pop || !button) return;
    const rows = [];
    const summary = [];
    if (usage) {
      rows.push(["Input", formatInt(usage.input_tokens)], ["Output", formatInt(usage.output_tokens)]);
      summary.push(`${formatInt(usage.input_tokens)} input`, `${formatInt(usage.output_tokens)} output`);
      if (usage.cache_read_tokens) {
        rows.push(["Cache read", formatInt(usage.cache_read_tokens)]);
        summary.push(`${formatInt(usage.cache_read_tokens)} cache read`);
      }
      if (usage.cache_write_tokens) {
        rows.push(["Cache write", formatInt(usage.cache_write_tokens)]);
        summary.push(`${formatInt(usage.cache_write_tokens)} cache write`);
      }
    }
    const cost = formatCost(costUsd);
    pop.textContent = "";
    for (const [name, value] of rows) {
      const row = document.createElement("span");
      row.className = "usage-row";
      const a = document.createElement("span");
      a.textContent = name;
      const b = document.createElement("span");
      b.textContent = value;
      row.append(a, b);
      pop.append(row);
    }
    if (cost) {
      const row = document.createElement("span");
      row.className = "usage-row usage-cost";
      const a = document.createElement("span");
      a.textContent = "Cost";
      const b = document.createElement("span");
      b.textContent = cost;
      row.append(a, b);
      pop.append(row);
    }
    if (!pop.childElementCount) {
      const row = document.createElement("span");
      row.className = "usage-row";
      row.textContent = "No usage recorded";
      pop.append(row);
    }
    button.title = `${summary.join(" · ")} tokens${cost ? ` · ${cost}` : ""}`;
  }

  refreshRetry() {
    const all = this.list.querySelectorAll(".msg[data-message-id]");
    all.forEach((el) => el.classList.remove("can-retry"));
    const last = all[all.length - 1];
    if (last && last.dataset.role === "assistant" && RETRYABLE.has(last.dataset.status)) {
      last.classList.add("can-retry");
    }
  }

  activeReply() {
    for (const state of this.messages.values()) {
      if (state.role === "assistant" && ACTIVE.has(state.status)) return state;
    }
    return null;
  }

  // ---- Scrolling -----------------------------------------------------------

  bindThread() {
    this.thread.addEventListener(
      "scroll",
      () => {
        const gap = this.thread.scrollHeight - this.thread.scrollTop - this.thread.clientHeight;
        this.stick = gap < STICK_THRESHOLD_PX;
        this.jumpButton.hidden = this.stick;
      },
      { passive: true },
    );
    this.root.addEventListener("click", (event) => this.onClick(event));
    document.addEventListener("click", (event) => {
      const target = event.target instanceof Element ? event.target : null;
      if (!target || target.closest(".usage-wrap")) return;
      this.root.querySelectorAll(".usage-wrap.is-open").forEach((w) => w.classList.remove("is-open"));
    });
  }

  scrollToBottom(force = false) {
    if (!force && !this.stick) return;
    this.thread.scrollTop = this.thread.scrollHeight;
    this.stick = true;
    this.jumpButton.hidden = true;
  }

  followBottom() {
    if (this.stick) this.thread.scrollTop = this.thread.scrollHeight;
  }

  // ---- Clicks on messages --------------------------------------------------

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
      else toast("Copying is not allowed here.");
    } else if (action === "copy-code") {
      const code = button.closest(".codeblock")?.querySelector("pre code, pre");
      if (code && (await copyText(code.textContent.replace(/\n$/, "")))) flashDone(button);
    } else if (action === "retry" && state) {
      this.lastUserActionAt = Date.now();
      if (!this.send({ type: "message.retry", message_id: state.id })) {
        this.showError("Not connected. Retry once the connection is back.");
      } else {
        button.disabled = true;
        setTimeout(() => {
          button.disabled = false;
        }, 3000);
      }
    } else if (action === "usage") {
      const wrap = button.closest(".usage-wrap");
      const open = !wrap.classList.contains("is-open");
      this.root.querySelectorAll(".usage-wrap.is-open").forEach((w) => w.classList.remove("is-open"));
      wrap.classList.toggle("is-open", open);
      button.setAttribute("aria-expanded", String(open));
    } else if (action === "jump") {
      this.thread.scrollTo({ top: this.thread.scrollHeight, behavior: "smooth" });
      this.stick = true;
      this.jumpButton.hidden = true;
    }
  }

  // ---- Composer ------------------------------------------------------------

  restoreDrafts() {
    // A first message typed on the empty state, for this brand-new conversation.
    let fresh = storageGet(NEW_DRAFT_KEY);
    // Only a draft submitted moments ago belongs to this brand-new conversation.
    if (fresh && !(Date.now() - (fresh.at || 0) < 5 * 60_000)) fresh = null;
    if (fresh && fresh.text && this.messages.size === 0 && !storageGet(this.pendingKey)) {
      storageSet(this.pendingKey, { text: fresh.text, client_id: fresh.client_id || newClientId() });
    }
    if (fresh && this.messages.size === 0) storageSet(NEW_DRAFT_KEY, null);
    const pending = storageGet(this.pendingKey);
    if (pending && pending.text && pending.client_id) {
      const acknowledged = [...this.messages.values()].some(
        (m) => m.role === "user" && m.el.dataset.clientId === pending.client_id,
      );
      if (acknowledged) {
        storageSet(this.pendingKey, null);
      } else {
        this.pending = pending;
        this.input.value = pending.text;
      }
    }
    if (!this.pending) {
      const draft = storageGet(this.draftKey);
      if (draft && typeof draft.text === "string") this.input.value = draft.text;
    }
    autoGrow(this.input);
    this.updateCount();
  }

  bindComposer() {
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
        if (!this.activeReply()) this.submit();
      }
    });
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      const active = this.activeReply();
      if (active) this.stop(active);
      else this.submit();
    });
    if (!this.pending) this.input.focus({ preventScroll: true });
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
    const body = new URLSearchParams({ text });
    let data = null;
    try {
      const response = await fetch(this.estimateUrl, {
        method: "POST",
        headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" },
        body,
        credentials: "same-origin",
      });
      if (!response.ok) return;
      data = await response.json();
    } catch {
      return;
    }
    if (seq !== this.estimateSeq || !data) return; // the draft changed meanwhile
    const estimate = formatCost(data.estimated_cost_usd);
    const most = formatCost(data.max_cost_usd);
    this.costEstimate.textContent = `≈ ${estimate} for the next message (${formatInt(data.input_tokens)} tokens in; up to ${most} with a long answer)`;
    this.costEstimate.hidden = false;
    this.followBottom(); // the composer grew: keep the last reply in view
  }

  /** `budget.status`: a warning from 80% of the tighter budget, a refusal notice at 100%. */
  onBudget(frame) {
    if (!this.budgetNote) return;
    const show = frame.level === "warning" || frame.level === "exceeded";
    this.budgetNote.hidden = !show;
    this.budgetNote.dataset.level = frame.level || "";
    this.budgetNote.textContent = show ? frame.message || "" : "";
    // The note changes the composer's height: keep the last reply in view.
    this.followBottom();
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

  submit() {
    if (this.pending) return; // one message at a time; it is resent until acknowledged
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
    this.lastUserActionAt = Date.now();
    this.showError("");
    this.pending = { text, client_id: newClientId() };
    storageSet(this.pendingKey, this.pending);
    this.sendPending();
    this.updateComposer();
    this.scrollToBottom(true);
  }

  sendPending() {
    if (!this.pending) return;
    this.send({ type: "message.send", text: this.pending.text, client_id: this.pending.client_id });
  }

  stop(state) {
    this.lastUserActionAt = Date.now();
    if (this.send({ type: "generation.stop", message_id: state.id })) {
      this.stopRequested.add(state.id);
      this.updateComposer();
    } else {
      this.showError("Not connected: the stop will be possible once the connection is back.");
    }
  }

  showError(message) {
    this.errorBox.textContent = message || "";
    this.errorBox.hidden = !message;
  }

  updateComposer() {
    const active = this.activeReply();
    const button = this.sendButton;
    button.classList.toggle("is-stop", Boolean(active));
    button.classList.toggle("is-busy", Boolean(this.pending) && !active);
    if (active) {
      const stopping = this.stopRequested.has(active.id);
      button.setAttribute("aria-label", stopping ? "Stopping…" : "Stop");
      button.title = stopping ? "Stopping…" : "Stop the answer";
      button.disabled = stopping;
    } else {
      button.setAttribute("aria-label", this.pending ? "Sending…" : "Send");
      button.title = this.pending ? "Sending…" : "Send (Enter)";
      button.disabled = false;
    }
  }

  // ---- Socket --------------------------------------------------------------

  connect() {
    clearTimeout(this.reconnectTimer);
    this.setConn("connecting");
    const scheme = window.location.protocol === "https:" ? "wss" : "ws";
    let ws;
    try {
      ws = new WebSocket(`${scheme}://${window.location.host}${this.wsPath}`);
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.addEventListener("open", () => {
      if (this.ws !== ws) return;
      this.attempt = 0;
      this.lastFrameAt = Date.now();
      this.setConn("open");
      this.onOpen();
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
    ws.addEventListener("close", () => {
      if (this.ws !== ws) return;
      this.ws = null;
      clearInterval(this.pingTimer);
      if (!this.unloading) this.scheduleReconnect();
    });
  }

  scheduleReconnect() {
    clearTimeout(this.reconnectTimer);
    this.setConn("offline");
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.attempt);
    const delay = Math.min(BACKOFF_MAX_MS, base * (0.8 + Math.random() * 0.4));
    this.attempt += 1;
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }

  reconnectNow() {
    if (this.ws || this.unloading) return;
    this.attempt = 0;
    this.connect();
  }

  setConn(state) {
    if (!this.connStatus) return;
    this.connStatus.dataset.state = state;
    this.connStatus.textContent =
      state === "connecting" ? "Connecting…" : state === "offline" ? "Offline, reconnecting…" : "";
  }

  send(frame) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  onOpen() {
    // Catch up on every reply this page believes is still running...
    for (const state of this.messages.values()) {
      if (state.role === "assistant" && ACTIVE.has(state.status)) {
        this.send({ type: "resume", message_id: state.id, last_seq: state.lastSeq });
        state.resumeAskedAt = state.lastSeq;
      }
    }
    // ...and resend a message the server has not acknowledged (same client_id).
    this.sendPending();
    // The server holds live frames until the first frame of a new socket, so
    // nothing overtakes the resumes above: with nothing to resume, say so now.
    this.send({ type: "ping" });
    clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => {
      if (!this.ws) return;
      if (Date.now() - this.lastFrameAt > PING_EVERY_MS * 2.5) {
        this.ws.close(); // a silent, half-dead socket: start over
        return;
      }
      this.send({ type: "ping" });
    }, PING_EVERY_MS);
    // A reply that has gone quiet may have lost its last frames (the channel
    // layer drops under load, and a lost `message.completed` leaves no gap to
    // notice): ask the server where it stands.
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

  askResume(state, lastSeq) {
    if (state.resumeAskedAt === lastSeq) return; // already asked for this gap
    state.resumeAskedAt = lastSeq;
    this.send({ type: "resume", message_id: state.id, last_seq: lastSeq });
  }

  onFrame(frame) {
    switch (frame.type) {
      case "message.created":
        this.onCreated(frame.message || {});
        break;
      case "message.delta":
        this.onDelta(frame);
        break;
      case "message.snapshot":
        this.onSnapshot(frame);
        break;
      case "message.completed":
        this.onCompleted(frame);
        break;
      case "message.deleted":
        this.onDeleted(frame);
        break;
      case "conversation.updated":
        if (frame.conversation_id && frame.title) applyTitle(frame.conversation_id, frame.title);
        break;
      case "error":
        this.onError(frame);
        break;
      case "budget.status":
        this.onBudget(frame);
        break;
      case "pong":
      default:
        break;
    }
  }

  onCreated(payload) {
    if (!payload.id) return;
    let state = this.messages.get(payload.id);
    if (!state) {
      const el = this.buildElement(payload);
      this.insertElement(el);
      state = this.adoptElement(el);
      if (payload.role === "assistant") {
        state.text = payload.text || "";
        state.thinking = payload.thinking || "";
        state.lastSeq = Number(payload.seq) || 0;
        if (ACTIVE.has(payload.status)) {
          this.renderLive(state);
          // Created with progress already made (a resend after a reconnect): catch up.
          if (state.lastSeq > 0) this.askResume(state, state.lastSeq);
        } else {
          this.renderFinal(state, payload);
        }
      }
    }
    if (payload.role === "user" && this.pending && payload.client_id === this.pending.client_id) {
      // Acknowledged: only now does the composer let go of the text.
      if (this.input.value === this.pending.text) {
        this.input.value = "";
        autoGrow(this.input);
        this.updateCount();
        this.scheduleEstimate();
        storageSet(this.draftKey, null);
      }
      this.pending = null;
      storageSet(this.pendingKey, null);
      this.showError("");
      this.scrollToBottom(true);
    }
    this.refreshRetry();
    this.updateComposer();
    this.followBottom();
  }

  onDelta(frame) {
    const state = this.messages.get(frame.message_id);
    if (!state) {
      // A reply we have not seen: ask for all of it.
      const placeholder = this.ensureAssistant(frame.message_id);
      this.askResume(placeholder, 0);
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
      this.updateComposer();
    }
    this.scheduleRender(state);
  }

  onSnapshot(frame) {
    const state = this.messages.get(frame.message_id) || this.ensureAssistant(frame.message_id);
    if (frame.seq < state.lastSeq) return;
    state.text = frame.text || "";
    state.thinking = frame.thinking || "";
    state.lastSeq = frame.seq;
    state.resumeAskedAt = -1;
    state.heardAt = Date.now();
    this.setStatus(state, ACTIVE.has(frame.status) ? frame.status : "streaming");
    this.scheduleRender(state);
    this.updateComposer();
  }

  onCompleted(frame) {
    const state = this.messages.get(frame.message_id) || this.ensureAssistant(frame.message_id);
    if (!ACTIVE.has(state.status) && frame.seq <= state.lastSeq) return; // already final
    state.text = frame.text || "";
    state.thinking = frame.thinking || "";
    state.lastSeq = frame.seq;
    this.setStatus(state, frame.status || "complete");
    this.stopRequested.delete(state.id);
    this.renderFinal(state, frame);
    this.refreshRetry();
    this.updateComposer();
  }

  onDeleted(frame) {
    const state = this.messages.get(frame.message_id);
    if (!state) return;
    if (state.raf) cancelAnimationFrame(state.raf);
    state.el.remove();
    this.messages.delete(frame.message_id);
    this.stopRequested.delete(frame.message_id);
    this.refreshRetry();
    this.updateComposer();
  }

  onError(frame) {
    if (frame.client_id && this.pending && frame.client_id === this.pending.client_id) {
      // Refused: nothing was stored. The text stays in the composer.
      if (!this.input.value) this.input.value = this.pending.text;
      autoGrow(this.input);
      this.pending = null;
      storageSet(this.pendingKey, null);
      this.showError(frame.message || "That message could not be sent.");
      this.updateComposer();
      return;
    }
    // A resume for a reply that no longer exists is not worth a word unless the
    // person just did something.
    if (frame.code === "not_found" && Date.now() - this.lastUserActionAt > 3000) return;
    this.showError(frame.message || "Something went wrong.");
  }
}

// ---------------------------------------------------------------------------

function main() {
  initShell();
  initNewChat();
  initHeader();
  const root = document.getElementById("chat");
  if (root && root.dataset.wsPath) {
    const page = new ChatPage(root);
    page.start();
    window.__chatPage = page; // for debugging in the console
  }
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", main);
else main();
