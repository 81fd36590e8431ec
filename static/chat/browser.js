// What the browser offers, made safe to call anywhere: session storage that
// may be full or disabled, the clipboard outside a secure context, ids, CSRF.

import { format, gettext } from "./i18n.js";

export function storageGet(key) {
  try {
    const raw = sessionStorage.getItem(key);
    return raw ? JSON.parse(raw) : null;
  } catch {
    return null;
  }
}

export function storageSet(key, value) {
  try {
    if (value === null || value === undefined) sessionStorage.removeItem(key);
    else sessionStorage.setItem(key, JSON.stringify(value));
  } catch {
    /* storage full or disabled: the text stays in the textarea */
  }
}

/** The session-storage keys of a conversation (see composer.js and socket.js). */
export const keys = {
  newDraft: "chat:new-draft",
  // The conversation the empty state made for files attached before the first message.
  newFiles: "chat:new-files",
  flash: "chat:flash",
  pending: (conversationId) => `chat:pending:${conversationId}`,
  draft: (conversationId) => `chat:draft:${conversationId}`,
};

export function newClientId() {
  if (window.crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
  // crypto.randomUUID needs a secure context; plain http on a LAN address has none.
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  if (match) return decodeURIComponent(match[1]);
  const input = document.querySelector('input[name="csrfmiddlewaretoken"]');
  return input ? input.value : "";
}

/** A request to our own origin that did not do what it asked; `signedOut` when the session is gone. */
export class RequestError extends Error {
  constructor(message, { status = 0, signedOut = false } = {}) {
    super(message);
    this.name = "RequestError";
    this.status = status;
    this.signedOut = signedOut;
  }
}

/**
 * POST a form body to our own origin and return its JSON answer. Anything
 * else throws a RequestError: no network, a non-OK answer (its JSON `error`
 * as the message), or a redirect. Our JSON endpoints never redirect, but
 * `login_required` sends a signed-out person to the sign-in page, and a
 * followed redirect would end in that page's 200: so redirects are not
 * followed (`manual`) and one means the person is signed out.
 */
export async function postForm(url, params) {
  let response;
  try {
    response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      redirect: "manual",
      headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" },
      body: new URLSearchParams(params || {}),
    });
  } catch {
    throw new RequestError(gettext("The server could not be reached."));
  }
  if (response.type === "opaqueredirect" || response.redirected) {
    throw new RequestError(gettext("You are signed out."), { signedOut: true });
  }
  const data = await response.json().catch(() => null);
  if (!response.ok || data === null || typeof data !== "object") {
    throw new RequestError((data && data.error) || format(gettext("The server answered %(status)s."), { status: response.status }), {
      status: response.status,
    });
  }
  return data;
}

export async function copyText(text) {
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
