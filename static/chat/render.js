// Markdown of a streaming answer: parse, then sanitise the resulting HTML
// (never the other way round), then enhance the DOM: highlighted code in a
// frame with a copy button, links that open safely, the live cursor.
//
// markdown-it, DOMPurify and highlight.js are vendored UMD builds loaded as
// deferred classic scripts before the modules run (window.markdownit,
// window.DOMPurify, window.hljs); each is optional, and without them the text
// is shown as plain text, never as unsanitised HTML.
//
// Maths and task lists: the same markup as the server's (conversations/rendering.py,
// mdit-py-plugins): `<span class="math inline">` / `<div class="math block">`
// holding the TeX as text (markdown-it-texmath's tokenizer), typeset after
// sanitising by KaTeX, which builds DOM nodes from the text (its styles are set
// through the DOM, so the CSP's style-src stays strict); task items are
// disabled checkboxes (markdown-it-task-lists).

import { gettext } from "./i18n.js";
import { cloneTemplateElement } from "./ui.js";

const SANITIZE_CONFIG = {
  ALLOWED_TAGS: [
    "a", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
    "li", "ol", "p", "pre", "strong", "table", "tbody", "td", "th", "thead", "tr", "ul", "s",
    "span", "div", "input",
  ],
  ALLOWED_ATTR: ["href", "title", "class", "start", "align", "type", "checked", "disabled"],
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
    const texmath = mathTokenizer();
    if (texmath) {
      markdown.use(texmath, { engine: window.katex || {}, delimiters: "dollars" });
      const escape = markdown.utils.escapeHtml;
      for (const [name, block] of [
        ["math_inline", false], ["math_inline_double", false], ["math_block", true], ["math_block_eqno", true],
      ]) {
        markdown.renderer.rules[name] = (tokens, idx) =>
          block
            ? `<div class="math block">\n${escape(tokens[idx].content.trim())}\n</div>\n`
            : `<span class="math inline">${escape(tokens[idx].content)}</span>`;
      }
    }
    if (typeof window.markdownitTaskLists === "function") markdown.use(window.markdownitTaskLists);
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

// markdown-it-texmath is a classic script with a top-level declaration: a
// global binding, not a property of window.
function mathTokenizer() {
  // eslint-disable-next-line no-undef
  return typeof texmath === "function" ? texmath : null;
}

// The classes each tag may keep (the server's rendering.py keeps the same).
const KEPT_CLASSES = {
  CODE: (c) => /^language-[A-Za-z0-9]+$/.test(c),
  SPAN: (c) => c === "math" || c === "inline",
  DIV: (c) => c === "math" || c === "block",
  UL: (c) => c === "contains-task-list",
  LI: (c) => c === "task-list-item",
  INPUT: (c) => c === "task-list-item-checkbox",
};

function purifier() {
  const purify = window.DOMPurify;
  if (!purify || typeof purify.sanitize !== "function") return null;
  if (!purifyReady) {
    purifyReady = true;
    purify.addHook("uponSanitizeAttribute", (node, data) => {
      if (data.attrName === "class") {
        const keep = KEPT_CLASSES[node.nodeName] || (() => false);
        const kept = data.attrValue.split(/\s+/).filter(keep);
        if (kept.length) data.attrValue = kept.join(" ");
        else data.keepAttr = false;
      } else if (["type", "checked", "disabled"].includes(data.attrName) && node.nodeName !== "INPUT") {
        data.keepAttr = false;
      }
    });
    // The only input is a task item's checkbox, and it cannot be ticked.
    purify.addHook("afterSanitizeAttributes", (node) => {
      if (node.nodeName === "INPUT") {
        node.setAttribute("type", "checkbox");
        node.setAttribute("disabled", "");
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
    frame.querySelector(".codeblock-lang").textContent = lang || gettext("code");
    pre.replaceWith(frame);
    frame.append(pre);
  });
  prose.querySelectorAll("a[href]").forEach((a) => {
    a.target = "_blank";
    a.rel = "noopener noreferrer nofollow";
  });
  typesetMath(prose);
}

/** Typeset the maths of sanitised HTML with KaTeX (its source is the element's text). */
function typesetMath(prose) {
  const katex = window.katex;
  if (!katex || typeof katex.render !== "function") return;
  for (const el of prose.querySelectorAll("span.math.inline, div.math.block")) {
    if (el.dataset.typeset) continue;
    const source = el.textContent.trim();
    try {
      // trust: false (no \href, \url, \includegraphics); errors show as red source.
      katex.render(source, el, {
        displayMode: el.tagName === "DIV",
        throwOnError: false,
        trust: false,
        strict: "ignore",
        output: "htmlAndMathml",
      });
      el.dataset.typeset = "1";
      el.setAttribute("title", source);
    } catch {
      el.textContent = source;
    }
  }
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
