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
  // Above the composer, if the page has one: over it, the toast would hide
  // what is typed and the notice that says why writing is over.
  const dock = document.querySelector(".composer-dock");
  const above = dock ? window.innerHeight - dock.getBoundingClientRect().top : 0;
  el.style.bottom = above > 0 ? `${Math.round(above + 8)}px` : "";
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    el.hidden = true;
  }, 4000);
}

export function formatInt(n) {
  return Number(n || 0).toLocaleString("en-US");
}

/**
 * A USD amount (the server sends decimal strings) to 4 places, rounded half up
 * like the server's pages (Django's floatformat), not through a binary float:
 * "0.000150" is $0.0002 on both. A cost above zero but under $0.0001 says so.
 */
export function formatCost(usd) {
  if (usd === null || usd === undefined || usd === "") return "";
  const match = /^(\d+)(?:\.(\d*))?$/.exec(String(usd).trim());
  if (!match) {
    const n = Number(usd);
    return Number.isFinite(n) ? `$${n.toFixed(4)}` : "";
  }
  const fraction = (match[2] || "").padEnd(5, "0");
  let units = BigInt(match[1]) * 10000n + BigInt(fraction.slice(0, 4));
  if (fraction[4] >= "5") units += 1n;
  if (BigInt(match[1]) === 0n && fraction.slice(0, 4) === "0000" && /[1-9]/.test(fraction)) return "<$0.0001";
  const digits = units.toString().padStart(5, "0");
  return `$${digits.slice(0, -4)}.${digits.slice(-4)}`;
}

export function autoGrow(area) {
  area.style.height = "auto";
  area.style.height = `${area.scrollHeight}px`;
}

function isCoarsePointer() {
  return window.matchMedia && window.matchMedia("(pointer: coarse)").matches;
}

/** Does Enter send here? Not on touch screens, where it breaks the line (see isSendKey). */
export function enterSends() {
  return !isCoarsePointer();
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
