// Files in the composer (docs/uploads.md is the server's side): a chip per
// file above the textarea, its upload with progress, its check, and the three
// ways in: the paperclip, a drop anywhere on the page, a paste.
//
// A chip's states: uploading (a progress bar), checking (the server has it; a
// worker is checking it), ready (a thumbnail, a page count or a size), and
// rejected (the server's reason, or why the upload failed). `attachment.updated`
// frames move them on, `attachment.deleted` takes one away (removed in another
// tab, or swept); they are at most once, and the empty state has no
// socket at all, so a chip still checking also asks the server now and then.
// A chip's markup is templates/conversations/_attachment_chip.html; names go in
// as text only.

import { RequestError, csrfToken } from "./browser.js";
import { format, gettext, ngettext } from "./i18n.js";
import { cloneTemplateElement, formatInt } from "./ui.js";

// The placeholder id in the URL patterns of templates/conversations/_attachment_urls.html.
const ZERO_ID = "00000000-0000-0000-0000-000000000000";
// A file still checking asks for its state after this, then less and less often.
const POLL_FIRST_MS = 1500;
const POLL_MAX_MS = 8000;
// States heard for a file whose upload has not answered yet (a quick check can
// beat the 202 home): kept for at most this many ids.
const EARLY_MAX = 50;
const WAITING = new Set(["uploading", "checking"]);

/** The attachment URLs of a page, from the data attributes of `el`. */
export function attachmentUrls(el) {
  const data = el ? el.dataset : {};
  const fill = (pattern, id) => (pattern && id ? pattern.replace(ZERO_ID, id) : "");
  return {
    upload: (conversationId) => fill(data.attachmentUploadUrl, conversationId),
    detail: (id) => fill(data.attachmentUrl, id),
    file: (id) => fill(data.attachmentFileUrl, id),
    thumbnail: (id) => fill(data.attachmentThumbnailUrl, id),
  };
}

/** "340 KB", "2.4 MB": a file's size as a person reads it. */
export function formatSize(bytes) {
  const n = Number(bytes) || 0;
  if (n < 1024) return format(gettext("%(size)s B"), { size: formatInt(n) });
  if (n < 1024 * 1024) return format(gettext("%(size)s KB"), { size: (n / 1024).toFixed(n < 10 * 1024 ? 1 : 0) });
  if (n < 1024 * 1024 * 1024) return format(gettext("%(size)s MB"), { size: (n / (1024 * 1024)).toFixed(1) });
  return format(gettext("%(size)s GB"), { size: (n / (1024 * 1024 * 1024)).toFixed(1) });
}

/** "12 pages": a PDF's length. */
function pageCount(n) {
  return format(ngettext("%(count)s page", "%(count)s pages", n), { count: formatInt(n) });
}

/** A reason as a sentence that ends with its stop. */
function sentence(text) {
  const t = (text || gettext("This file can’t be used")).trim();
  return /[.!?…]$/.test(t) ? t : `${t}.`;
}

/** The kind a file will probably be, for its icon until the server says. */
function guessKind(file) {
  const type = (file && file.type) || "";
  if (type.startsWith("image/")) return "image";
  if (type === "application/pdf" || /\.pdf$/i.test((file && file.name) || "")) return "pdf";
  return "text";
}

/** What the server said of an attachment, as the composer keeps it. */
function fromPayload(payload) {
  return {
    id: payload.id,
    name: payload.name || "",
    size: Number(payload.size) || 0,
    status: payload.status || "checking",
    reason: payload.reason || "",
    kind: payload.kind || "",
    pages: payload.pages || null,
    width: payload.width || null,
    height: payload.height || null,
    message_id: payload.message_id || null,
  };
}

export class AttachmentTray {
  /**
   * @param {object} options
   * @param {HTMLElement} options.urlsFrom the element with the URL patterns
   * @param {() => string | Promise<string>} options.conversationId where files go
   *   (the empty state makes its conversation on the first file)
   * @param {() => void} options.onChange any chip came, changed or went
   */
  constructor({ urlsFrom, conversationId, onChange }) {
    this.urls = attachmentUrls(urlsFrom);
    this.conversationId = conversationId;
    this.onChange = onChange || (() => {});
    this.list = document.getElementById("attach-tray");
    this.status = document.getElementById("attach-status");
    this.input = document.getElementById("attach-input");
    this.button = document.getElementById("attach-btn");
    this.overlay = document.getElementById("drop-overlay");
    /** @type {Array<object>} in the order they were added */
    this.items = [];
    this.early = new Map();
    this.disabled = false;
    this.nextKey = 1;
  }

  /** The paperclip, the picker, drops on `dropZone`, pastes into `pasteTarget`. */
  bind({ dropZone, pasteTarget }) {
    this.button?.addEventListener("click", () => {
      if (!this.disabled) this.input.click();
    });
    this.input?.addEventListener("change", () => {
      this.add([...this.input.files]);
      this.input.value = ""; // the same file again is a new choice
    });
    this.list?.addEventListener("click", (event) => {
      const button = event.target instanceof Element ? event.target.closest('[data-action="attachment-remove"]') : null;
      if (!button) return;
      const chip = button.closest(".chip");
      const item = this.items.find((i) => i.el === chip);
      if (item) this.remove(item, { focusNext: true });
    });
    if (pasteTarget) {
      pasteTarget.addEventListener("paste", (event) => {
        const files = [...(event.clipboardData?.files || [])];
        if (!files.length || this.disabled) return;
        event.preventDefault();
        this.add(files, { pasted: true });
      });
    }
    if (dropZone) this.bindDrop(dropZone);
  }

  bindDrop(zone) {
    let depth = 0;
    const hasFiles = (event) => [...(event.dataTransfer?.types || [])].includes("Files");
    const show = (on) => {
      if (this.overlay) this.overlay.hidden = !on;
      zone.classList.toggle("is-dropping", on);
    };
    zone.addEventListener("dragenter", (event) => {
      if (!hasFiles(event) || this.disabled) return;
      event.preventDefault();
      depth += 1;
      show(true);
    });
    zone.addEventListener("dragover", (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault(); // without it, the drop would not come here
      event.dataTransfer.dropEffect = this.disabled ? "none" : "copy";
    });
    zone.addEventListener("dragleave", () => {
      depth = Math.max(0, depth - 1);
      if (!depth) show(false);
    });
    zone.addEventListener("drop", (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      depth = 0;
      show(false);
      if (!this.disabled) this.add([...event.dataTransfer.files]);
    });
    // A file dropped just outside the zone must not replace the page with itself.
    window.addEventListener("dragover", (event) => {
      if (hasFiles(event)) event.preventDefault();
    });
    window.addEventListener("drop", (event) => {
      if (hasFiles(event)) event.preventDefault();
      depth = 0;
      show(false);
    });
  }

  // ---- What the composer asks ------------------------------------------------

  get size() {
    return this.items.length;
  }

  /** Files still uploading or checking: a send waits for them. */
  waiting() {
    return this.items.filter((i) => WAITING.has(i.status));
  }

  /** Files that cannot be sent: the person removes them to send. */
  refused() {
    return this.items.filter((i) => i.status === "rejected");
  }

  ready() {
    return this.items.filter((i) => i.status === "ready");
  }

  readyIds() {
    return this.ready().map((i) => i.id);
  }

  /** Why a send cannot go now, in words, or "" when it can. */
  blocker() {
    const refused = this.refused();
    if (refused.length === 1) {
      const [{ name, reason }] = refused;
      return format(gettext("“%(name)s” can’t be sent: %(reason)s Remove it to send."), { name, reason: sentence(reason) });
    }
    if (refused.length) {
      return format(
        ngettext("%(count)s file can’t be sent. Remove them to send.", "%(count)s files can’t be sent. Remove them to send.", refused.length),
        { count: formatInt(refused.length) },
      );
    }
    const waiting = this.waiting();
    const count = waiting.length;
    const uploading = waiting.some((i) => i.status === "uploading");
    if (count === 1) {
      return uploading ? gettext("Waiting for your file to finish uploading…") : gettext("Waiting for your file to finish checking…");
    }
    if (count) {
      const message = uploading
        ? ngettext("Waiting for %(count)s file to finish uploading…", "Waiting for %(count)s files to finish uploading…", count)
        : ngettext("Waiting for %(count)s file to finish checking…", "Waiting for %(count)s files to finish checking…", count);
      return format(message, { count: formatInt(count) });
    }
    return "";
  }

  /** The ready files, as sent with a message; the chips go (the files stay on the server). */
  take() {
    const sent = this.ready().map((i) => this.payloadOf(i));
    for (const item of [...this.items]) this.drop(item);
    this.changed();
    return sent;
  }

  /** Back into the composer (a send the server refused, a draft after a reload). */
  restore(payloads) {
    for (const payload of payloads || []) {
      if (!payload || !payload.id || this.items.some((i) => i.id === payload.id)) continue;
      const item = { key: this.nextKey++, file: null, progress: 1, ...fromPayload(payload) };
      this.items.push(item);
      this.mount(item);
      this.render(item);
      // It may have moved on (or gone) since: ask.
      this.poll(item, 0);
    }
    this.changed();
  }

  /** What a draft keeps of the chips to bring them back after a reload. */
  serialize() {
    return this.items.filter((i) => i.id && i.status !== "rejected").map((i) => this.payloadOf(i));
  }

  payloadOf(item) {
    const { id, name, size, status, reason, kind, pages, width, height } = item;
    return { id, name, size, status, reason, kind, pages, width, height };
  }

  /** The socket (re)opened: frames may have been lost meanwhile. */
  refresh() {
    for (const item of this.items) if (item.id && item.status === "checking") this.poll(item, 0);
  }

  disable() {
    this.disabled = true;
    if (this.button) this.button.disabled = true;
    for (const item of this.items) {
      clearTimeout(item.pollTimer);
      item.el.querySelector(".chip-remove").disabled = true;
    }
  }

  // ---- Adding and removing -------------------------------------------------

  add(files, { pasted = false } = {}) {
    if (this.disabled) return;
    for (const original of files) {
      if (!original) continue;
      let file = original;
      // A pasted screenshot is "image.png" every time: give each its own name.
      if (pasted && /^image\.\w+$/i.test(file.name)) {
        const stamp = new Date().toTimeString().slice(0, 8).replaceAll(":", "-");
        const name = format(gettext("Pasted image %(time)s"), { time: stamp });
        file = new File([file], `${name}.${file.name.split(".").pop()}`, { type: file.type });
      }
      const item = {
        key: this.nextKey++,
        id: null,
        file,
        name: file.name || gettext("file"),
        size: file.size,
        status: "uploading",
        reason: "",
        kind: guessKind(file),
        pages: null,
        progress: 0,
      };
      this.items.push(item);
      this.mount(item);
      this.render(item);
      this.upload(item);
    }
    this.changed();
  }

  remove(item, { focusNext = false } = {}) {
    const index = this.items.indexOf(item);
    if (index < 0) return;
    if (item.xhr) item.xhr.abort();
    if (item.id) this.discard(item.id);
    const next = this.items[index + 1] || this.items[index - 1];
    this.drop(item);
    this.announce(format(gettext("%(name)s removed."), { name: item.name }));
    if (focusNext) (next ? next.el.querySelector(".chip-remove") : document.querySelector(".composer-box textarea"))?.focus();
    this.changed();
  }

  /** `attachment.deleted`: the server removed it (another tab's ×, or the sweep); the chip goes quietly. */
  forget(id) {
    if (!id) return;
    this.early.delete(id);
    const item = this.items.find((i) => i.id === id);
    if (!item) return;
    this.drop(item);
    this.announce(format(gettext("%(name)s was removed."), { name: item.name }));
    this.changed();
  }

  /** Off the tray, without telling the server. */
  drop(item) {
    clearTimeout(item.pollTimer);
    item.gone = true;
    item.el.remove();
    this.items = this.items.filter((i) => i !== item);
  }

  /** An unsent file the person removed: the server may forget it (else it is swept after a day). */
  discard(id) {
    const url = this.urls.detail(id);
    if (!url) return;
    fetch(url, {
      method: "DELETE",
      credentials: "same-origin",
      redirect: "manual",
      headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" },
    }).catch(() => {});
  }

  changed() {
    this.list.hidden = this.items.length === 0;
    this.onChange();
  }

  // ---- Upload and check ------------------------------------------------------

  async upload(item) {
    let url = "";
    try {
      url = this.urls.upload(await this.conversationId());
    } catch (error) {
      this.fail(item, error instanceof RequestError ? error.message : gettext("The file could not be attached here."));
      return;
    }
    if (item.gone) return;
    if (!url) {
      this.fail(item, gettext("Files cannot be attached here."));
      return;
    }
    const xhr = new XMLHttpRequest();
    item.xhr = xhr;
    xhr.open("POST", url);
    xhr.setRequestHeader("X-CSRFToken", csrfToken());
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", (event) => {
      if (!event.lengthComputable) return;
      item.progress = event.loaded / event.total;
      this.render(item);
    });
    xhr.addEventListener("load", () => {
      item.xhr = null;
      let data = null;
      try {
        data = JSON.parse(xhr.responseText);
      } catch {
        data = null;
      }
      // A followed redirect to the sign-in page answers 200 with HTML.
      if (xhr.responseURL && new URL(xhr.responseURL).pathname !== new URL(url, location.href).pathname) {
        this.fail(item, gettext("You are signed out. Sign in again to attach files."));
      } else if (xhr.status === 202 && data && data.id) {
        this.uploaded(item, data);
      } else {
        const reason = format(gettext("The upload failed (the server answered %(status)s)."), { status: xhr.status });
        this.fail(item, (data && data.error) || reason);
      }
    });
    xhr.addEventListener("error", () => {
      item.xhr = null;
      this.fail(item, gettext("The upload failed: the server could not be reached."));
    });
    const body = new FormData();
    body.append("file", item.file, item.name);
    xhr.send(body);
  }

  uploaded(item, data) {
    if (item.gone) {
      this.discard(data.id);
      return;
    }
    Object.assign(item, fromPayload({ ...data, status: data.status || "checking" }));
    item.file = null;
    item.progress = 1;
    const early = this.early.get(item.id);
    this.early.delete(item.id);
    if (early) Object.assign(item, fromPayload({ ...data, ...early }));
    this.render(item);
    this.settled(item);
    if (item.status === "checking") this.poll(item, POLL_FIRST_MS);
    this.changed();
  }

  fail(item, reason) {
    if (item.gone) return;
    item.status = "rejected";
    item.reason = reason;
    this.render(item);
    this.settled(item);
    this.changed();
  }

  /** `attachment.updated`, or an answer to a poll. */
  apply(payload) {
    if (!payload || !payload.id) return;
    const item = this.items.find((i) => i.id === payload.id);
    if (!item) {
      if (this.items.some((i) => i.status === "uploading")) {
        this.early.set(payload.id, payload);
        if (this.early.size > EARLY_MAX) this.early.delete(this.early.keys().next().value);
      }
      return;
    }
    if (payload.message_id) {
      // Sent already (from another tab, with a draft restored in both): not a draft's any more.
      this.drop(item);
      this.changed();
      return;
    }
    const before = item.status;
    Object.assign(item, fromPayload({ ...this.payloadOf(item), ...payload }));
    this.render(item);
    if (before !== item.status) {
      this.settled(item);
      this.changed();
    }
  }

  /** Ask the server for a file still checking, after `delay` ms. */
  poll(item, delay) {
    clearTimeout(item.pollTimer);
    if (item.gone || this.disabled) return;
    item.pollDelay = delay;
    item.pollTimer = setTimeout(async () => {
      const url = this.urls.detail(item.id);
      if (!url || item.gone) return;
      let response = null;
      try {
        response = await fetch(url, { credentials: "same-origin", redirect: "manual", headers: { Accept: "application/json" } });
      } catch {
        response = null;
      }
      if (item.gone) return;
      if (response && response.status === 404) {
        this.fail(item, gettext("This file is no longer available."));
        return;
      }
      const data = response && response.ok ? await response.json().catch(() => null) : null;
      if (data && data.id === item.id) this.apply(data);
      if (!item.gone && item.status === "checking") {
        this.poll(item, Math.min(POLL_MAX_MS, Math.max(POLL_FIRST_MS, item.pollDelay * 1.5)));
      }
    }, delay);
  }

  // ---- The chip --------------------------------------------------------------

  mount(item) {
    item.el = cloneTemplateElement("tpl-attachment-chip");
    item.el.dataset.key = String(item.key);
    this.list.append(item.el);
  }

  render(item) {
    const el = item.el;
    if (!el) return;
    el.dataset.status = item.status;
    el.dataset.kind = item.kind || "text";
    const name = el.querySelector(".chip-name");
    name.textContent = item.name;
    el.title = item.status === "rejected" ? format(gettext("%(name)s: %(reason)s"), item) : item.name;
    el.querySelector(".chip-remove").setAttribute("aria-label", format(gettext("Remove %(name)s"), item));
    el.querySelector(".chip-meta").textContent = this.meta(item);
    const progress = el.querySelector(".chip-progress");
    progress.hidden = item.status !== "uploading";
    progress.value = Math.round((item.progress || 0) * 100);
    progress.setAttribute("aria-label", format(gettext("Uploading %(name)s"), item));
    const img = el.querySelector(".chip-img");
    const thumbnail = item.status === "ready" && item.kind === "image" ? this.urls.thumbnail(item.id) : "";
    if (thumbnail && img.getAttribute("src") !== thumbnail) img.src = thumbnail;
    img.hidden = !thumbnail;
    el.classList.toggle("has-thumb", Boolean(thumbnail));
  }

  meta(item) {
    switch (item.status) {
      case "uploading":
        if (!(item.progress > 0)) return gettext("Uploading…");
        return format(gettext("Uploading… %(percent)s%"), { percent: Math.round(item.progress * 100) });
      case "checking":
        return gettext("Checking…");
      case "rejected":
        return item.reason || gettext("This file can’t be used.");
      default:
        if (item.kind === "pdf" && item.pages) return pageCount(item.pages);
        return formatSize(item.size);
    }
  }

  /** Say the outcome once, for screen readers: ready, or why not. */
  settled(item) {
    if (item.status === "ready") this.announce(format(gettext("%(name)s is ready."), item));
    else if (item.status === "rejected") this.announce(format(gettext("%(name)s can’t be sent: %(reason)s"), item));
    else if (item.status === "checking") this.announce(format(gettext("%(name)s uploaded; checking it."), item));
  }

  announce(text) {
    if (this.status) this.status.textContent = text;
  }
}

/** The text of a sent file's card in the thread (the same words as _message_attachment.html). */
export function fileCardMeta(attachment) {
  if (attachment.kind === "pdf") {
    const pages = Number(attachment.pages) || 0;
    return pages ? format(ngettext("PDF · %(count)s page", "PDF · %(count)s pages", pages), { count: pages }) : "PDF";
  }
  return gettext("Text");
}
