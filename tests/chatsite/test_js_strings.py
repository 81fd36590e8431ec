"""The browser modules' words go through gettext (static/chat/i18n.js).

A static look at static/chat/*.js, no JavaScript parser: every place where a
module hands words to a person (a toast, an element's text, a title or
aria-label, a confirm(), the composer's error line...) must get them from
`gettext`/`ngettext`, not from a bare string or template literal. And
xgettext, which `makemessages -d djangojs` runs, must find the messages: a
literal first argument each, no template literals.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from tests.i18n_pseudo import NOT_TRANSLATED

ROOT = Path(__file__).resolve().parents[2]
# The chat's modules and the summary job page's.
MODULES = sorted(
    [*(ROOT / "static" / "chat").glob("*.js"), *(ROOT / "static" / "summaries").glob("*.js")]
)

# Where a module's words reach a person. Each pattern ends where the words
# begin; what follows, up to the end of the statement or of the call, must hold
# no literal words.
SINKS = {
    # The toast (ui.js), the browser's own dialogs.
    "toast": r"\btoast\(",
    "dialog": r"\b(?:confirm|alert|prompt)\(",
    # Text and read-aloud properties of an element (document.title too).
    "property": r"\.(?:textContent|innerText|title|placeholder|ariaLabel|alt)\s*=(?!=)",
    # The same as attributes.
    "attribute": r"""\.setAttribute\(\s*["'](?:aria-label|aria-description|title|placeholder|alt)["']\s*,""",
    # The modules' own ways of saying something: the composer's error line, the
    # search palette's status, the tray's screen-reader announcements, a chip's
    # reason, the end of a chat, a notice for the next page, a request's error.
    "helper": r"\b(?:showError|say|announce|flashNext|errorParts)\(|\.end\(|\bfail\(\s*\w+\s*,|\bnew RequestError\(",
    # The summary job page's `text(id, value)`: an element's text by its id.
    "element text": r"""\btext\(\s*["'][\w-]+["']\s*,""",
    # A function that returns words for a caller to show (a chip's meta, a
    # send's blocker); here only a literal that reads as words counts (one
    # that starts with a capital, or has a space), not a kind like "image".
    "return": r"\breturn\b",
}
PROSE_ONLY = {"return"}
PROSE = re.compile(r"^\W*[A-Z][a-z]|[A-Za-z] +[A-Za-z]")

# Before looking: what is not words for people, or is marked already.
NEUTRAL = [
    # Comments (not `://` inside a URL).
    (re.compile(r"/\*.*?\*/", re.S), ""),
    (re.compile(r"(?:^|(?<=\s))//.*$", re.M), ""),
    # Marked: the literal arguments of gettext/ngettext (xgettext checks them below).
    (re.compile(r'\bn?gettext\(\s*"(?:[^"\\]|\\.)*"(?:\s*,\s*"(?:[^"\\]|\\.)*")?'), "gettext(_"),
    # A value compared with (`status === "rejected"`) is a state, not words.
    (re.compile(r'[!=]==\s*"[^"\n]*"'), "=== _"),
    # A locale's date and number formats: their options are not words.
    (re.compile(r"\.toLocale\w*String\([^)]*\)"), ".toLocaleString()"),
]

WORD = re.compile(r"[A-Za-z]{2,}")
PLACEHOLDER = re.compile(r"\$\{[^{}]*(?:\{[^{}]*\}[^{}]*)*\}")
LITERAL = re.compile(r'"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'|`(?:[^`\\]|\\.)*`')


def statement_after(source: str, start: int, in_call: bool) -> str:
    """The code from `start` to the end of its call (an unbalanced `)`) or, for
    an assignment, to its `;` or line end; strings are skipped whole."""
    depth, i = 0, start
    while i < len(source):
        char = source[i]
        if char in "\"'`":
            literal = LITERAL.match(source, i)
            i = literal.end() if literal else i + 1
            continue
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth < 0:
                break
        elif depth == 0 and not in_call and char in ";\n":
            break
        i += 1
    return source[start:i]


def literal_words(code: str, prose_only: bool = False) -> list[str]:
    """Words in the string and template literals of `code` (not in `${...}`)."""
    found = []
    for literal in LITERAL.findall(code):
        text = literal[1:-1]
        if literal[0] == "`":
            text = PLACEHOLDER.sub(" ", text)
        if prose_only and not PROSE.search(text):
            continue
        for name in NOT_TRANSLATED:
            text = re.sub(rf"\b{name}\b", " ", text)
        found += WORD.findall(text)
    return found


def unmarked(source: str, name: str) -> list[str]:
    """Each place of `source` (module `name`) that shows people bare words."""
    for pattern, replacement in NEUTRAL:
        # (Keeping the line breaks, for the line numbers below.)
        source = pattern.sub(lambda m, r=replacement: r + "\n" * m.group().count("\n"), source)
    problems = []
    for sink, pattern in SINKS.items():
        for match in re.finditer(pattern, source):
            in_call = match.group().endswith(("(", ","))
            code = statement_after(source, match.end(), in_call)
            if literal_words(code, prose_only=sink in PROSE_ONLY):
                line = source.count("\n", 0, match.start()) + 1
                problems.append(f"{name}:{line} ({sink}): {match.group()}{code.strip()[:90]}")
    # gettext's first argument is a literal xgettext can read.
    # (Not the catalog's own django.gettext, nor i18n.js defining them.)
    for match in re.finditer(r"(?<![.\w])(?<!function )n?gettext\((?!_)", source):
        line = source.count("\n", 0, match.start()) + 1
        problems.append(f"{name}:{line}: gettext() needs a string literal first")
    return problems


def test_modules_say_nothing_unmarked():
    assert MODULES, "static/chat/*.js"
    problems = [problem for path in MODULES for problem in unmarked(path.read_text(), path.name)]
    assert problems == [], "Words shown to people without gettext:\n" + "\n".join(problems)


def test_the_check_sees_unmarked_words():
    """The check itself: each kind of sink, bare and then marked."""
    bare = [
        'toast("Saved.");',
        "el.textContent = `${n} of context`;",
        'button.title = ok ? "Stop" : "";',
        'input.setAttribute("aria-label", "Conversation title");',
        "if (!window.confirm(`Delete “${title}”?`)) return;",
        'this.showError(message || "That message could not be sent.");',
        'this.say(\n  n ? format(ngettext("%(n)s chat", "%(n)s chats", n), { n }) : "Nothing found.",\n);',
        "return `Waiting for ${n} files…`;",
    ]
    for code in bare:
        assert unmarked(code, "bare.js"), code
    marked = [
        'toast(gettext("Saved."));',
        'el.textContent = format(gettext("%(percent)s%% of context"), { percent });',
        'button.title = ok ? gettext("Stop") : "";',
        'time.title = when.toLocaleString(undefined, { dateStyle: "full" });',
        'el.dataset.kind = "text"; return "image";',
        "text.textContent = hint ? `${main} ${hint}` : main;",
    ]
    for code in marked:
        assert unmarked(code, "marked.js") == [], code


# The least each module with words gives the catalog (a little under today's
# count: a message moved or merged is fine, a module gone quiet is not).
MIN_MESSAGES = {
    "attachments.js": 30,
    "browser.js": 3,
    "composer.js": 16,
    "main.js": 3,
    "render.js": 1,
    "search.js": 4,
    "settings.js": 3,
    "shell.js": 7,
    "sidebar.js": 8,
    "socket.js": 2,
    "thread.js": 18,
}


def test_xgettext_extracts_every_module(tmp_path):
    if shutil.which("xgettext") is None:
        message = "xgettext is missing (Debian's gettext package): the catalog cannot be checked"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI is set, so it must run.")
        pytest.skip(message)
    out = tmp_path / "djangojs.po"
    done = subprocess.run(
        [
            "xgettext",
            "--language=JavaScript",
            "--from-code=UTF-8",
            "--keyword=gettext",
            "--keyword=ngettext:1,2",
            "-o",
            str(out),
            *(str(path.relative_to(ROOT)) for path in MODULES),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr.lower(), done.stderr
    # Each message's "#: static/chat/x.js:12" lines name the modules it is in.
    # (xgettext writes no file when it finds nothing.)
    catalog = out.read_text() if out.exists() else ""
    per_module: Counter[str] = Counter()
    for entry in catalog.split("\n\n")[1:]:
        for module in set(re.findall(r"static/chat/([\w.]+\.js):\d+", entry)):
            per_module[module] += 1
    short = {
        module: per_module[module]
        for module, least in MIN_MESSAGES.items()
        if per_module[module] < least
    }
    assert short == {}, f"Too few messages extracted (want {MIN_MESSAGES}): {dict(per_module)}"
