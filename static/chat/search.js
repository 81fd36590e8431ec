// The search palette (Ctrl+K, or "Search chats" in the sidebar), as on claude.ai:
// type, and the conversations whose title or messages have every word appear
// with the matching words highlighted. It asks /search/?q= for JSON
// (conversations/search.py); each result's markup is
// templates/conversations/_search_result.html, cloned from its <template>.

import { format, gettext, ngettext } from "./i18n.js";
import { cloneTemplateElement } from "./ui.js";

const DEBOUNCE_MS = 150;
const MIN_CHARS = 2;

/**
 * The server's snippet HTML (escaped text with <mark>, sanitised there by nh3)
 * as DOM nodes, keeping nothing but text and <mark>: parsed in an inert
 * <template>, so nothing in it runs or loads, and rebuilt node by node.
 */
export function markedFragment(html) {
  const inert = document.createElement("template");
  inert.innerHTML = html || "";
  const out = document.createDocumentFragment();
  const walk = (from, into) => {
    for (const node of from.childNodes) {
      if (node.nodeType === Node.TEXT_NODE) {
        into.append(node.textContent);
      } else if (node.nodeType === Node.ELEMENT_NODE) {
        if (node.nodeName === "MARK") {
          const mark = document.createElement("mark");
          walk(node, mark);
          into.append(mark);
        } else {
          walk(node, into);
        }
      }
    }
  };
  walk(inert.content, out);
  return out;
}

function formatWhen(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  const sameYear = date.getFullYear() === new Date().getFullYear();
  return date.toLocaleDateString(undefined, { day: "numeric", month: "short", ...(sameYear ? {} : { year: "numeric" }) });
}

export class SearchPalette {
  constructor(dialog) {
    this.dialog = dialog;
    this.url = dialog.dataset.searchUrl;
    this.input = dialog.querySelector("#search-input");
    this.list = dialog.querySelector("#search-results");
    this.status = dialog.querySelector("#search-status");
    this.timer = 0;
    this.controller = null;
    this.selected = -1;
    this.lastQuery = null;
    this.returnFocus = null;
  }

  bind() {
    this.input.addEventListener("input", () => this.schedule());
    this.input.addEventListener("keydown", (event) => this.onKey(event));
    this.dialog.addEventListener("click", (event) => {
      // A click on the backdrop (the dialog itself, outside its content) closes it.
      if (event.target === this.dialog) this.close();
    });
    this.dialog.addEventListener("close", () => {
      if (this.returnFocus && document.contains(this.returnFocus)) this.returnFocus.focus({ preventScroll: true });
    });
    this.dialog.querySelector("form").addEventListener("submit", (event) => {
      // Enter opens the chosen result; with none, the /search/ page (the form's own action).
      const link = this.selectedLink();
      if (link) {
        event.preventDefault();
        window.location.assign(link.href);
      }
    });
  }

  get isOpen() {
    return this.dialog.open;
  }

  open() {
    if (this.isOpen) {
      this.input.select();
      return;
    }
    this.returnFocus = document.activeElement;
    document.body.classList.remove("sidebar-open");
    this.dialog.showModal();
    this.input.focus();
    this.input.select();
    if (this.input.value.trim().length >= MIN_CHARS && this.lastQuery !== this.input.value) this.run();
  }

  close() {
    if (this.isOpen) this.dialog.close();
  }

  schedule() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.run(), DEBOUNCE_MS);
  }

  async run() {
    const query = this.input.value;
    this.lastQuery = query;
    if (this.controller) this.controller.abort();
    if (query.trim().length < MIN_CHARS) {
      this.render([]);
      this.say("");
      return;
    }
    const controller = new AbortController();
    this.controller = controller;
    let data;
    try {
      const response = await fetch(`${this.url}?${new URLSearchParams({ q: query, format: "json" })}`, {
        credentials: "same-origin",
        redirect: "manual",
        headers: { Accept: "application/json" },
        signal: controller.signal,
      });
      if (response.type === "opaqueredirect") {
        this.say(gettext("You are signed out: sign in again to search."));
        return;
      }
      data = await response.json();
    } catch (error) {
      if (error && error.name === "AbortError") return;
      this.say(gettext("The search could not reach the server."));
      return;
    }
    if (controller !== this.controller) return; // a newer query is on its way
    const results = Array.isArray(data.results) ? data.results : [];
    this.render(results);
    this.say(
      results.length
        ? format(ngettext("%(count)s conversation", "%(count)s conversations", results.length), { count: results.length })
        : gettext("Nothing found in your chats."),
    );
  }

  say(text) {
    this.status.textContent = text;
  }

  render(results) {
    const items = results.map((result, index) => {
      const item = cloneTemplateElement("tpl-search-result");
      item.id = `search-result-${index}`;
      item.dataset.conversationId = result.conversation_id;
      const link = item.querySelector(".search-link");
      link.href = result.url;
      link.tabIndex = -1;
      item.querySelector(".search-title").replaceChildren(markedFragment(result.title_html));
      const snippet = item.querySelector(".search-snippet");
      snippet.replaceChildren(markedFragment(result.snippet_html));
      snippet.hidden = !result.snippet_html;
      const when = item.querySelector(".search-when");
      when.dateTime = result.updated_at;
      when.textContent = formatWhen(result.updated_at);
      item.addEventListener("mousemove", () => this.select(index));
      return item;
    });
    this.list.replaceChildren(...items);
    this.input.setAttribute("aria-expanded", String(items.length > 0));
    this.select(items.length ? 0 : -1);
  }

  select(index) {
    const items = [...this.list.children];
    this.selected = index;
    items.forEach((item, i) => item.setAttribute("aria-selected", String(i === index)));
    if (index >= 0 && items[index]) {
      this.input.setAttribute("aria-activedescendant", items[index].id);
      items[index].scrollIntoView({ block: "nearest" });
    } else {
      this.input.removeAttribute("aria-activedescendant");
    }
  }

  selectedLink() {
    const item = this.list.children[this.selected];
    return item ? item.querySelector(".search-link") : null;
  }

  onKey(event) {
    const count = this.list.children.length;
    if (event.key === "Escape") {
      // A search field's own Esc would only clear it: Esc closes the palette.
      event.preventDefault();
      this.close();
    } else if (event.key === "ArrowDown" && count) {
      event.preventDefault();
      this.select((this.selected + 1) % count);
    } else if (event.key === "ArrowUp" && count) {
      event.preventDefault();
      this.select((this.selected - 1 + count) % count);
    }
  }
}

let palette = null;

/** The palette of this page (every signed-in page has one), or null. */
export function searchPalette() {
  if (palette) return palette;
  const dialog = document.getElementById("search-palette");
  if (!dialog || typeof dialog.showModal !== "function") return null;
  palette = new SearchPalette(dialog);
  palette.bind();
  return palette;
}

export function initSearch() {
  const opener = document.querySelector('[data-action="search-open"]');
  if (!opener) return;
  opener.addEventListener("click", (event) => {
    const found = searchPalette();
    if (!found) return; // no <dialog>: the link opens the /search/ page
    event.preventDefault();
    found.open();
  });
}
