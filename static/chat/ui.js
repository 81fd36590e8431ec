// Small pieces of the page shared by the other modules: templates to clone,
// the toast, number formats, the growing textarea and the send key.

/** A fresh copy of a server-rendered <template>'s content (markup lives in templates/). */
export function cloneTemplate(id) {
  const template = document.getElementById(id);
  return template ? template.content.cloneNode(true) : null;
}

/** The first element of a <template>, cloned. */
export function cloneTemplateElement(id) {
  const fragment = cloneTemplate(id);
  return fragment ? fragment.firstElementChild : null;
}

/** A check mark on a copy button for a moment. */
export function flashDone(button) {
  const done = cloneTemplate(button.classList.contains("code-copy") ? "tpl-copied-code" : "tpl-copied");
  if (!done) return;
  const original = [...button.childNodes];
  button.replaceChildren(done);
  button.classList.add("is-done");
  setTimeout(() => {
    button.replaceChildren(...original);
    button.classList.remove("is-done");
  }, 1500);
}

let toastTimer = 0;
export function toast(message) {
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

export function formatInt(n) {
  return Number(n || 0).toLocaleString("en-US");
}

export function formatCost(usd) {
  if (usd === null || usd === undefined || usd === "") return "";
  const n = Number(usd);
  if (!Number.isFinite(n)) return "";
  if (n > 0 && n < 0.0001) return "<$0.0001";
  return `$${n.toFixed(4)}`;
}

export function autoGrow(area) {
  area.style.height = "auto";
  area.style.height = `${area.scrollHeight}px`;
}

function isCoarsePointer() {
  return window.matchMedia && window.matchMedia("(pointer: coarse)").matches;
}

/** Enter sends, Shift+Enter breaks the line (on touch screens Enter breaks the line too). */
export function isSendKey(event) {
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
