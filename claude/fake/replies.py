"""Deterministic reply and thinking text, already split into output "tokens".

The fake must answer like a helpful assistant (so the UI's Markdown rendering,
code blocks and streaming can be seen and tested) while being reproducible: the
same model and last user text always give the same reply. Splitting into
tokens once, up front, keeps the per-event work of a stream to a join and one
`json.dumps`.
"""

from __future__ import annotations

import hashlib
import re

# A word with its trailing whitespace; leading whitespace of the text sticks to
# the first word.
_WORD = re.compile(r"(?:^\s+)?\S+\s*")
# Longer words are cut into pieces of this size, like a BPE tokenizer would.
_PIECE = 4
_LONG_WORD = 6

_TEMPLATES: tuple[str, ...] = (
    """## Short answer

You asked: "{quote}". Here is a compact way to approach it, with a working example you can adapt.

- **Start small**: reproduce the problem in isolation before changing anything else.
- Keep the state in one place, and pass it explicitly instead of using globals.
- Measure first: `time.perf_counter()` around the slow part tells you more than guessing.

```python
def summarize(items: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {{}}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return counts
```

The function above runs in linear time and keeps the order of first appearance. If you need the most frequent entries, `collections.Counter` does the same with `most_common()`.
""",
    """**Good question.** Regarding "{quote}", there are three things worth checking.

1. What the input looks like at the boundary of your code.
2. Which part owns the data, and who is allowed to change it.
3. How errors travel back to the caller.

- Prefer `const` over `let` unless the value really changes.
- Await promises where you create them, so failures are not lost.

```js
async function fetchJson(url) {{
  const response = await fetch(url);
  if (!response.ok) throw new Error(`HTTP ${{response.status}}`);
  return response.json();
}}
```

With this helper the error carries the status code, which makes the failing request easy to find in the logs.
""",
    """### Overview

To answer "{quote}" properly, it helps to look at the data first. A query like the one below gives you the numbers to reason about.

```sql
SELECT team_id, COUNT(*) AS messages, MAX(created_at) AS last_seen
FROM chat_message
GROUP BY team_id
ORDER BY messages DESC
LIMIT 10;
```

- An index on `(team_id, created_at)` keeps this fast as the table grows.
- **Avoid** `SELECT *` in production code: name the columns you need.
- Run `EXPLAIN ANALYZE` to confirm the plan uses the index.

Once you have the numbers, the right trade-off is usually obvious.
""",
    """# Step by step

Here is how I would handle "{quote}" from the command line.

- Check the current state with `git status` before touching anything.
- **Back up** the files you are about to change.
- Run the commands one at a time and read the output.

```bash
set -euo pipefail
mkdir -p backup
cp -r config backup/
grep -rn "TODO" src/ | sort | head -20
```

The `set -euo pipefail` line makes the script stop at the first error instead of carrying on with a broken state.
""",
)

_EXTRA_PARAGRAPHS: tuple[str, ...] = (
    "\n\nA further point: write a small test that pins the behaviour down before refactoring, "
    "so you notice when something changes by accident.",
    "\n\nIt is also worth reading the error messages in full; the last line names the symptom, "
    "but the first frame of your own code usually names the cause.",
    "\n\n**Tip:** keep functions short enough to read in one screen, and give them names that "
    "say what they return rather than how they work.",
    "\n\n- Log the inputs at the boundary.\n- Keep the happy path unindented.\n"
    "- Fail early with a clear message.",
    "\n\nFinally, document the decision in a sentence or two next to the code, so the next "
    "person knows why it is this way.",
)

_THINKING_SENTENCES: tuple[str, ...] = (
    " I should give a direct answer first and then an example.",
    " A short list of the key points will make it easy to scan.",
    " A code block in the right language will help them try it.",
    " Let me check the edge cases before I answer.",
    " I will keep the explanation concrete.",
)

REFUSAL_TEXT = "I can't help with that request."


def split_tokens(text: str) -> list[str]:
    """Split text into word-ish pieces (~4 characters) whose concatenation is `text`.

    Any prefix of the result joined and split again gives the same pieces, so a
    client can recount what it received.
    """
    tokens: list[str] = []
    for match in _WORD.finditer(text):
        word = match.group()
        core = word.strip()
        if len(core) <= _LONG_WORD:
            tokens.append(word)
            continue
        lead = word[: len(word) - len(word.lstrip())]
        tail = word[len(lead) + len(core) :]
        pieces = [core[i : i + _PIECE] for i in range(0, len(core), _PIECE)]
        pieces[0] = lead + pieces[0]
        pieces[-1] += tail
        tokens.extend(pieces)
    return tokens


def _digest(model: str, user_text: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{model}\0{user_text}".encode()).digest()[:8], "big")


def _quote(user_text: str, limit: int = 60) -> str:
    """A short, single-line snippet of what the user asked."""
    text = " ".join(user_text.split()).replace('"', "'")
    if not text:
        return "your message"
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0] + "…"


def _split_extra(text: str) -> tuple[str, list[str]]:
    """An extra paragraph as (its leading whitespace, its tokens)."""
    body = text.lstrip()
    return text[: len(text) - len(body)], split_tokens(body)


_EXTRA_SPLIT = tuple(_split_extra(p) for p in _EXTRA_PARAGRAPHS)
_THINKING_SPLIT = tuple(_split_extra(s) for s in _THINKING_SENTENCES)


def _extend(
    tokens: list[str], extras: tuple[tuple[str, list[str]], ...], start: int, count: int
) -> list[str]:
    """Append extras (cycled from `start`) until there are `count` tokens, then cut.

    The leading whitespace of an extra joins the previous token, exactly as
    `split_tokens` would do on the joined text; the extras are split once, at
    import, so a long reply costs no re-splitting.
    """
    tokens = list(tokens)
    index = start % len(extras)
    while len(tokens) < count:
        lead, extra = extras[index]
        tokens[-1] += lead
        tokens.extend(extra)
        index = (index + 1) % len(extras)
    del tokens[count:]
    return tokens


def attachments_sentence(descriptions: list[str]) -> str:
    """The opening line of a reply to a message with files, naming what was read."""
    if len(descriptions) == 1:
        listed = descriptions[0]
    else:
        listed = "; ".join(descriptions[:-1]) + "; and " + descriptions[-1]
    return f"**I read the attachments:** {listed}.\n\n"


def reply_tokens(
    model: str, user_text: str, count: int | None = None, opening: str = ""
) -> list[str]:
    """The reply to `user_text`: its natural length (~200 tokens), or exactly `count`.

    `opening` goes first (the sentence naming the attachments, so a test or a
    demo can see Claude "read" them); without it replies are as they always were.
    """
    digest = _digest(model, user_text)
    template = _TEMPLATES[digest % len(_TEMPLATES)]
    text = opening + template.format(quote=_quote(user_text))
    tokens = split_tokens(text.rstrip("\n"))
    start = digest >> 8
    if count is None:
        # Two whole extra paragraphs make the natural reply a realistic length.
        count = len(tokens) + sum(
            len(_EXTRA_SPLIT[(start + i) % len(_EXTRA_SPLIT)][1]) for i in range(2)
        )
    return _extend(tokens, _EXTRA_SPLIT, start, count)


def thinking_tokens(model: str, user_text: str, count: int) -> list[str]:
    """Thinking text of exactly `count` tokens ("The user asks about …")."""
    opening = f'The user asks about "{_quote(user_text, 40)}".'
    return _extend(split_tokens(opening), _THINKING_SPLIT, _digest(model, user_text), count)


_PERSON = re.compile(r"<person>\s*(.*?)\s*</person>", re.S)


def title_text(user_text: str) -> str:
    """The fake's answer to the product's title request: the first words of what
    the person asked (at most six), as a model's short title would read."""
    found = _PERSON.search(user_text)
    asked = (found.group(1) if found else user_text).strip()
    first_line = next((line for line in asked.splitlines() if line.strip()), "")
    words = re.findall(r"[\w'’-]+", first_line)[:6]
    if not words:
        return "New conversation"
    title = " ".join(words)
    return title[0].upper() + title[1:]


def compaction_summary(messages: list[dict]) -> str:
    """What the fake's compaction condenses a conversation into: one line per user
    turn, deterministic, so a test can see which turns it covers."""
    asked = []
    for message in messages:
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            text = content
        else:
            text = " ".join(
                b.get("text", "") for b in content or () if isinstance(b, dict) and b.get("type") == "text"
            )
        if text.strip():
            asked.append(f"- The user asked: \"{_quote(text, 80)}\"")
    lines = "\n".join(asked) or "- (no user turns)"
    return f"Summary of the earlier conversation ({len(asked)} user turns):\n{lines}"
