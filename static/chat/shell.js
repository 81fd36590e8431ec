// Every page's frame: the sidebar of conversations, the user menu, the
// conversation header (rename, delete), and a notice carried to the next page.
// Light and dark follow the system (prefers-color-scheme, in chat.css) unless
// the theme switch (sidebar.js) chose one.

import { keys, postForm, storageGet, storageSet } from "./browser.js";
import { format, gettext } from "./i18n.js";
import { toast } from "./ui.js";

export function initShell() {
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
    // An Esc something else took (the entry menu, the palette, a title editor) is not the sidebar's.
    if (event.key !== "Escape" || event.defaultPrevented) return;
    close();
    const menu = document.querySelector(".user-menu[open]");
    if (menu) menu.open = false;
  });
  const current = document.querySelector(".conv-link.is-current");
  if (current) current.scrollIntoView({ block: "nearest" });
  showFlash();
}

function sidebarLink(conversationId) {
  return document.querySelector(`.conv-link[data-conversation-id="${CSS.escape(conversationId)}"]`);
}

/** A new title, from this tab's rename or another tab's (`conversation.updated`). */
export function applyTitle(conversationId, title) {
  const header = document.getElementById("chat-header");
  if (header && header.dataset.conversationId === conversationId) {
    const button = document.getElementById("chat-title");
    if (button) button.textContent = title;
    document.title = format(gettext("%(title)s · Team chat"), { title });
  }
  const link = sidebarLink(conversationId);
  if (link) {
    const text = link.querySelector(".conv-title");
    if (text) text.textContent = title;
    else link.textContent = title;
    link.title = title;
  }
}

/** A conversation deleted anywhere leaves the sidebar (and its day heading, if it was the last). */
export function removeFromSidebar(conversationId) {
  const found = sidebarLink(conversationId);
  if (!found) return;
  const link = found.closest(".conv-item") || found;
  const heading = link.previousElementSibling;
  const next = link.nextElementSibling;
  link.remove();
  if (heading && heading.matches(".conv-group") && (!next || next.matches(".conv-group"))) heading.remove();
}

/** Forget what this tab kept of a conversation that is gone. */
export function forgetConversation(conversationId) {
  storageSet(keys.pending(conversationId), null);
  storageSet(keys.draft(conversationId), null);
}

/** Say something on the next page this tab shows (after a redirect). */
export function flashNext(message) {
  storageSet(keys.flash, { message, at: Date.now() });
}

function showFlash() {
  const flash = storageGet(keys.flash);
  if (!flash) return;
  storageSet(keys.flash, null);
  if (flash.message && Date.now() - (flash.at || 0) < 60_000) toast(flash.message);
}

/** Fired on the document when a request finds the session gone (the page ends its chat). */
export const SIGNED_OUT_EVENT = "chat:signed-out";

function reportSignedOut() {
  document.dispatchEvent(new CustomEvent(SIGNED_OUT_EVENT));
}

/** Signed out: rename and delete could only pretend to work, so they are turned off. */
export function disableHeader() {
  const header = document.getElementById("chat-header");
  if (!header) return;
  for (const button of header.querySelectorAll('[data-action="rename"], [data-action="delete"]')) {
    button.disabled = true;
    button.title = gettext("Sign in again first");
  }
}

/** Rename a conversation in place: an input where `hide` was, holding the title
 * `label` shows. Enter or leaving the field saves, Esc cancels; the title changes
 * at once and goes back if the server refuses (`onFail` says why). The chat's
 * header and each sidebar entry use it. */
export function renameInline({ label, hide, place, url, conversationId, onFail }) {
  const input = document.createElement("input");
  input.type = "text";
  input.className = "title-input";
  input.maxLength = 200;
  input.value = label.textContent.trim();
  input.setAttribute("aria-label", gettext("Conversation title"));
  hide.hidden = true;
  place(input);
  input.focus();
  input.select();
  let done = false;
  const finish = async (save) => {
    if (done) return;
    done = true;
    const title = input.value.trim();
    const before = label.textContent.trim();
    input.remove();
    hide.hidden = false;
    if (!save || !title || title === before) {
      hide.focus();
      return;
    }
    label.textContent = title; // optimistic
    try {
      const data = await postForm(url, { title });
      applyTitle(conversationId, data.title || title);
    } catch (error) {
      label.textContent = before;
      onFail(error);
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
}

export function initHeader() {
  const header = document.getElementById("chat-header");
  if (!header) return;
  const titleButton = document.getElementById("chat-title");

  const startRename = () =>
    renameInline({
      label: titleButton,
      hide: titleButton,
      place: (input) => titleButton.after(input),
      url: header.dataset.renameUrl,
      conversationId: header.dataset.conversationId,
      onFail: (error) => {
        if (error.signedOut) {
          reportSignedOut(); // first: the notice it shows moves the toast up
          toast(gettext("You are signed out: sign in again to rename."));
        } else {
          toast(format(gettext("The title could not be saved. %(reason)s"), { reason: error.message }));
        }
      },
    });

  header.addEventListener("click", async (event) => {
    const target = event.target instanceof Element ? event.target : null;
    const button = target ? target.closest("[data-action]") : null;
    if (!button || button.disabled) return;
    if (button.dataset.action === "rename") {
      startRename();
    } else if (button.dataset.action === "delete") {
      if (!window.confirm(gettext("Delete this conversation? This cannot be undone."))) return;
      try {
        await postForm(header.dataset.deleteUrl);
      } catch (error) {
        if (error.signedOut) {
          reportSignedOut(); // first: the notice it shows moves the toast up
          toast(gettext("You are signed out: sign in again to delete."));
        } else {
          toast(format(gettext("The conversation could not be deleted. %(reason)s"), { reason: error.message }));
        }
        return;
      }
      forgetConversation(header.dataset.conversationId);
      window.location.assign(header.dataset.homeUrl || "/");
    }
  });
}
