// Keyboard shortcuts of every page, as on claude.ai:
//   Ctrl+K (⌘K)        search the chats (the palette, search.js)
//   Ctrl+Shift+O (⇧⌘O) a new chat
//   Esc                 stop the answer being written (the chat page listens for STOP_EVENT)
// ↑ in an empty composer edits the last message: composer.js.

import { searchPalette } from "./search.js";

/** Fired on the document when Esc asks the chat page to stop its answer. */
export const STOP_EVENT = "chat:stop";

function modifier(event) {
  return event.ctrlKey || event.metaKey;
}

/** Something else owns Esc now: an open dialog, menu or inline editor. */
function escapeTaken(event) {
  if (event.defaultPrevented) return true;
  if (document.querySelector("dialog[open], .conv-menu:not([hidden]), .user-menu[open]")) return true;
  const target = event.target instanceof Element ? event.target : null;
  return Boolean(target && target.closest(".title-input"));
}

export function initKeys({ homeUrl = "/" } = {}) {
  document.addEventListener("keydown", (event) => {
    const key = event.key.toLowerCase();
    if (modifier(event) && !event.shiftKey && !event.altKey && key === "k") {
      const palette = searchPalette();
      if (!palette) return;
      event.preventDefault();
      if (palette.isOpen) palette.close();
      else palette.open();
    } else if (modifier(event) && event.shiftKey && !event.altKey && key === "o") {
      event.preventDefault();
      window.location.assign(homeUrl);
    } else if (event.key === "Escape" && !escapeTaken(event)) {
      document.dispatchEvent(new CustomEvent(STOP_EVENT));
    }
  });
}
