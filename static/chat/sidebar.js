// The sidebar's own controls: each entry's menu (rename, pin, delete), the
// desktop's collapse button, and the theme switch in the user menu. The
// entry's markup is templates/conversations/_conv_item.html; its menu is the
// one #conv-menu (_search_palette.html), placed by the button that opened it.

import { postForm } from "./browser.js";
import {
  SIGNED_OUT_EVENT,
  forgetConversation,
  removeFromSidebar,
  renameInline,
} from "./shell.js";
import { format, gettext } from "./i18n.js";
import { toast } from "./ui.js";

const THEME_COOKIE = "chat_theme";
const SIDEBAR_COOKIE = "chat_sidebar";
const YEAR_SECONDS = 365 * 24 * 3600;

function setCookie(name, value) {
  document.cookie = `${name}=${encodeURIComponent(value)}; path=/; max-age=${YEAR_SECONDS}; SameSite=Lax`;
}

/** What a toast says when an entry's `action` failed: signed out, or another reason. */
function failure(action) {
  switch (action) {
    case "rename":
      return [gettext("You are signed out: sign in again to rename."), gettext("That did not work (rename). %(reason)s")];
    case "pin":
      return [gettext("You are signed out: sign in again to pin."), gettext("That did not work (pin). %(reason)s")];
    case "unpin":
      return [gettext("You are signed out: sign in again to unpin."), gettext("That did not work (unpin). %(reason)s")];
    default:
      return [gettext("You are signed out: sign in again to delete."), gettext("That did not work (delete). %(reason)s")];
  }
}

function failed(action, error) {
  const [signedOut, other] = failure(action);
  if (error && error.signedOut) {
    document.dispatchEvent(new CustomEvent(SIGNED_OUT_EVENT));
    toast(signedOut);
  } else {
    toast(format(other, { reason: error ? error.message : "" }));
  }
}

class EntryMenu {
  constructor(menu) {
    this.menu = menu;
    this.item = null;
    this.button = null;
  }

  bind() {
    document.addEventListener("click", (event) => {
      const target = event.target instanceof Element ? event.target : null;
      if (!target) return;
      const opener = target.closest('[data-action="conv-menu"]');
      if (opener) {
        event.preventDefault();
        if (this.button === opener) this.close();
        else this.open(opener);
        return;
      }
      const choice = target.closest("#conv-menu [data-menu]");
      if (choice) {
        const item = this.item;
        this.close(false);
        if (item) this.act(choice.dataset.menu, item);
        return;
      }
      if (!this.menu.hidden && !this.menu.contains(target)) this.close(false);
    });
    document.addEventListener("keydown", (event) => {
      if (this.menu.hidden) return;
      const buttons = [...this.menu.querySelectorAll("button")];
      const at = buttons.indexOf(document.activeElement);
      if (event.key === "Escape") {
        event.preventDefault();
        this.close();
      } else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        event.preventDefault();
        const step = event.key === "ArrowDown" ? 1 : -1;
        buttons[(at + step + buttons.length) % buttons.length].focus();
      }
    }, true); // capture: before the shell's Esc, which would close the phone's drawer
    window.addEventListener("resize", () => this.close(false));
    document.getElementById("conv-list")?.addEventListener("scroll", () => this.close(false), { passive: true });
  }

  open(button) {
    this.close(false);
    this.item = button.closest(".conv-item");
    if (!this.item) return;
    this.button = button;
    button.setAttribute("aria-expanded", "true");
    this.menu.dataset.pinned = this.item.dataset.pinned === "true" ? "true" : "false";
    this.menu.hidden = false;
    const box = button.getBoundingClientRect();
    const height = this.menu.offsetHeight;
    const top = box.bottom + height + 8 > window.innerHeight ? box.top - height - 4 : box.bottom + 4;
    // CSSOM, not a style attribute: the CSP allows only this.
    this.menu.style.top = `${Math.max(8, top)}px`;
    this.menu.style.left = `${Math.max(8, Math.min(box.left, window.innerWidth - this.menu.offsetWidth - 8))}px`;
    this.menu.querySelector("button")?.focus();
  }

  close(refocus = true) {
    if (this.menu.hidden) return;
    this.menu.hidden = true;
    if (this.button) {
      this.button.setAttribute("aria-expanded", "false");
      if (refocus) this.button.focus();
    }
    this.button = null;
    this.item = null;
  }

  act(action, item) {
    if (action === "rename") this.rename(item);
    else if (action === "pin") this.pin(item);
    else if (action === "delete") this.remove(item);
  }

  rename(item) {
    const link = item.querySelector(".conv-link");
    renameInline({
      label: item.querySelector(".conv-title"),
      hide: link,
      place: (input) => item.prepend(input),
      url: item.dataset.renameUrl,
      conversationId: item.dataset.conversationId,
      onFail: (error) => failed("rename", error),
    });
  }

  async pin(item) {
    const pinned = item.dataset.pinned !== "true";
    try {
      await postForm(item.dataset.pinUrl, { pinned: String(pinned) });
    } catch (error) {
      failed(pinned ? "pin" : "unpin", error);
      return;
    }
    // The list's order and headings are the server's: show it as it now stands.
    window.location.reload();
  }

  async remove(item) {
    const id = item.dataset.conversationId;
    const title = item.querySelector(".conv-title")?.textContent.trim() || "";
    if (!window.confirm(format(gettext("Delete “%(title)s”? This cannot be undone."), { title }))) return;
    try {
      await postForm(item.dataset.deleteUrl);
    } catch (error) {
      failed("delete", error);
      return;
    }
    forgetConversation(id);
    const header = document.getElementById("chat-header");
    if (header && header.dataset.conversationId === id) {
      window.location.assign(header.dataset.homeUrl || "/");
      return;
    }
    removeFromSidebar(id);
  }
}

function initCollapse() {
  const body = document.body;
  const collapse = document.querySelector('[data-action="sidebar-collapse"]');
  const opener = document.querySelector('[data-action="sidebar-open"]');
  const desktop = () => window.matchMedia("(min-width: 801px)").matches;
  const set = (collapsed) => {
    body.classList.toggle("sidebar-collapsed", collapsed);
    setCookie(SIDEBAR_COOKIE, collapsed ? "collapsed" : "open");
    if (collapse) collapse.setAttribute("aria-expanded", String(!collapsed));
    if (opener) opener.setAttribute("aria-expanded", String(!collapsed));
  };
  if (collapse) collapse.addEventListener("click", () => set(true));
  // On the desktop the topbar's menu button brings a collapsed sidebar back
  // (on a phone it opens the drawer: shell.js).
  if (opener) {
    opener.addEventListener("click", (event) => {
      if (desktop() && body.classList.contains("sidebar-collapsed")) {
        event.stopPropagation(); // not also the phone's drawer (shell.js)
        set(false);
      }
    });
  }
}

function initTheme() {
  const buttons = document.querySelectorAll("[data-theme-choice]");
  for (const button of buttons) {
    button.addEventListener("click", (event) => {
      event.preventDefault();
      const theme = button.dataset.themeChoice;
      setCookie(THEME_COOKIE, theme);
      const root = document.documentElement;
      if (theme === "system") delete root.dataset.theme;
      else root.dataset.theme = theme;
      for (const other of buttons) other.setAttribute("aria-checked", String(other === button));
      const media = {
        light: ["all", "not all"],
        dark: ["not all", "all"],
        system: ["(prefers-color-scheme: light)", "(prefers-color-scheme: dark)"],
      }[theme];
      for (const link of document.querySelectorAll("link[data-theme-media]")) {
        link.media = link.dataset.themeMedia === "light" ? media[0] : media[1];
      }
      const metas = document.querySelectorAll('meta[name="theme-color"]');
      if (metas.length === 2) {
        metas[0].media = media[0];
        metas[1].media = media[1];
      }
    });
  }
}

export function initSidebar() {
  const menu = document.getElementById("conv-menu");
  if (menu) new EntryMenu(menu).bind();
  initCollapse();
  initTheme();
}
