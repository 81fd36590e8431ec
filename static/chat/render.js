// Markdown of a streaming answer: parse, then sanitise the resulting HTML
// (never the other way round), then enhance the DOM: highlighted code in a
// frame with a copy button, links that open safely, the live cursor.
//
// markdown-it, DOMPurify and highlight.js are vendored UMD builds loaded as
// deferred classic scripts before the modules run (window.markdownit,
// window.DOMPurify, window.hljs); each is optional, and without them the text
// is shown as plain text, never as unsanitised HTML.

import { cloneTemplateElement } from "./ui.js";

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
export function markdownToSafeHtml(source) {
  const md = markdownRenderer();
  const purify = purifier();
  if (!md || !purify) return null;
  return purify.sanitize(md.render(source), SANITIZE_CONFIG);
}

/** The server's HTML is sanitised there (nh3); sanitising it again costs little. */
export function sanitizeServerHtml(html) {
  const purify = purifier();
  return purify ? purify.sanitize(html, SANITIZE_CONFIG) : html;
}

export function setProse(prose, html, fallbackText) {
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
 * Highlight code blocks, put each in its frame (templates/conversations/_codeblock.html)
 * with a copy button, make links open safely. `cache` (per message) keeps the
 * highlighted HTML of finished blocks so streaming does not re-highlight the
 * whole answer every frame.
 */
export function enhanceProse(prose, { live = false, cache = null } = {}) {
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
    const frame = cloneTemplateElement("tpl-codeblock");
    if (!frame) return;
    frame.querySelector(".codeblock-lang").textContent = lang || "code";
    pre.replaceWith(frame);
    frame.append(pre);
  });
  prose.querySelectorAll("a[href]").forEach((a) => {
    a.target = "_blank";
    a.rel = "noopener noreferrer nofollow";
  });
}

/** Put the blinking cursor at the end of the deepest last text block. */
export function placeCursor(prose) {
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
