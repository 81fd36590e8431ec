"""Search across the conversations a person may see: titles and message text.

The database's own full-text search, no extra server:

- PostgreSQL: a GIN index on the expression `to_tsvector('english', text)` of
  finished messages (`WHERE status <> 'streaming'`, so the checkpoints of a
  streaming answer never touch it; the answer is indexed once, when it ends),
  and `ts_headline` for the snippets.
- SQLite: an FTS5 table (`conversations_message_fts`) that triggers keep in
  step with the message table, for finished messages only as well, and FTS5's
  `snippet()`.

Both are created by migration 0008 (`message_search_index`), which branches on
the database. What the person typed never reaches either query language as
is: it is cut into words (letters and digits), every word must match, the
last as a prefix once it has three letters (so the palette finds as one types).

Visibility is `selectors.conversations_visible_to`, embedded as a subquery: a
conversation someone may not see is never read, let alone listed; one shared
with them (team, person or link share) is searched like their own.

Branches: every version of a message is searched (an edited question, a
regenerated answer), not only the branch on show; a conversation is still one
result, and the link opens it on its active branch.

Snippets are HTML: the database marks the matches with two private-use
characters, the text is escaped, then the marks become `<mark>`, and nh3
keeps nothing but `<mark>` (defence in depth: the result is inserted as HTML).
"""

from __future__ import annotations

import datetime as dt
import html
import re
import uuid
from dataclasses import dataclass

import nh3
from django.db import connection
from django.utils.translation import gettext

from accounts.models import User
from conversations.models import Conversation, Message
from conversations.search_index import FTS_TABLE
from conversations.selectors import conversations_visible_to

SEARCH_MIN_CHARS = 2
SEARCH_MAX_TERMS = 8
# The last word is a prefix from this many letters on ("bo" would match most of
# every conversation's words; "boo" is what one means as one types).
PREFIX_MIN_CHARS = 3
SEARCH_LIMIT = 20
# The text-search configuration of the PostgreSQL index. The index's expression
# and the query's must be the same text, so changing it needs a new migration.
PG_CONFIG = "english"
# Words around a match in a snippet.
SNIPPET_WORDS = 14

_OPEN, _CLOSE = "\ue000", "\ue001"
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class SearchResult:
    conversation_id: uuid.UUID
    title: str
    # Sanitised HTML: the title, escaped, with its matching words in <mark>.
    title_html: str
    # Sanitised HTML of the best matching message's words, or "" (title only).
    snippet_html: str
    message_id: uuid.UUID | None
    role: str
    updated_at: dt.datetime

    def as_json(self) -> dict:
        return {
            "conversation_id": str(self.conversation_id),
            "title": self.title,
            "title_html": self.title_html,
            "snippet_html": self.snippet_html,
            "message_id": str(self.message_id) if self.message_id else None,
            "role": self.role,
            "updated_at": self.updated_at.isoformat(),
        }


def search_terms(query: str) -> list[str]:
    """The words of what was typed that a search looks for (lower case, at most
    `SEARCH_MAX_TERMS`); [] when there is too little to search for."""
    if len(query.strip()) < SEARCH_MIN_CHARS:
        return []
    return [w.lower() for w in _WORD.findall(query)][:SEARCH_MAX_TERMS]


def conversation_search(*, user: User, query: str, limit: int = SEARCH_LIMIT) -> list[SearchResult]:
    """The conversations `user` may see whose title or messages contain every
    word of `query`, most recently active first, one result per conversation
    with a highlighted snippet of its newest matching message."""
    terms = search_terms(query)
    if not terms or not user.is_authenticated:
        return []
    visible = conversations_visible_to(user=user)
    if connection.vendor == "postgresql":
        rows = _search_postgresql(terms, visible, limit)
    else:
        visible_sql, visible_params = visible.values("id").query.sql_with_params()
        rows = _search_sqlite(terms, visible_sql, visible_params, limit)
    return [
        SearchResult(
            conversation_id=_uuid(conversation_id),
            title=title or gettext("New conversation"),
            title_html=_title_html(title or gettext("New conversation"), terms),
            snippet_html=_snippet_html(snippet) if snippet else "",
            message_id=_uuid(message_id) if message_id else None,
            role=role or "",
            updated_at=_datetime(updated_at),
        )
        for conversation_id, title, updated_at, message_id, role, snippet in rows
    ]


def _title_filter(terms: list[str]) -> tuple[str, list[str]]:
    """Every word in the title, as a substring (titles are short: no index needed)."""
    like = " AND ".join(["LOWER(c.title) LIKE %s ESCAPE '\\'"] * len(terms))
    return like, [f"%{_like_escape(t)}%" for t in terms]


def _like_escape(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


_MESSAGE = Message._meta.db_table
_CONVERSATION = Conversation._meta.db_table


# The visible conversations are searched newest first, a chunk at a time (each
# chunk twice the last), until a page of results is found.
PG_FIRST_CHUNK = 100


def _search_postgresql(terms: list[str], visible, limit: int) -> list[tuple]:
    """Newest conversations first, a chunk at a time: a word in nearly every
    message (measured: 400 ms over 50,000 messages of one person, when all its
    matches were read) fills the page from the first chunk, and a rare one costs
    a few cheap chunks. In a chunk the planner ANDs the GIN index's bitmap with
    the conversation index's, so only messages of the chunk that match are read."""
    ids = list(visible.order_by("-updated_at", "-id").values_list("id", flat=True))
    found: list[tuple] = []
    start, size = 0, PG_FIRST_CHUNK
    while start < len(ids) and len(found) < limit:
        found.extend(_search_postgresql_chunk(terms, ids[start : start + size], limit - len(found)))
        start += size
        size *= 2
    return found


def _search_postgresql_chunk(terms: list[str], ids: list[uuid.UUID], limit: int) -> list[tuple]:
    # Words only (\w+), so nothing in them is tsquery syntax; the last one a prefix.
    last = f"{terms[-1]}:*" if len(terms[-1]) >= PREFIX_MIN_CHARS else terms[-1]
    tsquery = " & ".join([*terms[:-1], last])
    title_sql, title_params = _title_filter(terms)
    # The WHERE repeats the index's expression and predicate word for word
    # (migration 0008), so the planner can use it. Only ids travel through the
    # sort; the text is read again for the few results that get a snippet.
    sql = f"""
        WITH q AS (SELECT to_tsquery('{PG_CONFIG}', %s) AS query),
        hits AS (
            SELECT DISTINCT ON (m.conversation_id)
                   m.conversation_id, m.id AS message_id, m.role
            FROM {_MESSAGE} m, q
            WHERE to_tsvector('{PG_CONFIG}', m.text) @@ q.query
              AND m.status <> 'streaming'
              AND m.conversation_id = ANY(%s::uuid[])
            ORDER BY m.conversation_id, m.position DESC, m.created_at DESC
        ),
        found AS (
            SELECT c.id, c.title, c.updated_at, h.message_id, h.role
            FROM {_CONVERSATION} c LEFT JOIN hits h ON h.conversation_id = c.id
            WHERE c.id = ANY(%s::uuid[])
              AND (h.message_id IS NOT NULL OR ({title_sql}))
            ORDER BY c.updated_at DESC, c.id DESC
            LIMIT %s
        )
        SELECT f.id, f.title, f.updated_at, f.message_id, f.role,
               CASE WHEN m.id IS NULL THEN NULL ELSE ts_headline(
                   '{PG_CONFIG}', translate(m.text, %s, ''), q.query, %s
               ) END
        FROM found f CROSS JOIN q LEFT JOIN {_MESSAGE} m ON m.id = f.message_id
        ORDER BY f.updated_at DESC, f.id DESC
    """
    options = (
        f"StartSel={_OPEN}, StopSel={_CLOSE}, MaxWords={SNIPPET_WORDS}, "
        f'MinWords={SNIPPET_WORDS // 2}, ShortWord=2, MaxFragments=1, FragmentDelimiter=" … "'
    )
    params = [tsquery, ids, ids, *title_params, limit, _OPEN + _CLOSE, options]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _search_sqlite(
    terms: list[str], visible_sql: str, visible_params: tuple, limit: int
) -> list[tuple]:
    # Each word quoted (a phrase of one word: no FTS5 syntax in it), the last a prefix.
    last = f'"{terms[-1]}"' + ("*" if len(terms[-1]) >= PREFIX_MIN_CHARS else "")
    match = " ".join([*(f'"{t}"' for t in terms[:-1]), last])
    title_sql, title_params = _title_filter(terms)
    # snippet() may only run where the MATCH is (not under GROUP BY): the newest
    # match of each conversation is found first, its snippet made for the few
    # results only. (The FTS table is not aliased: MATCH and snippet() name it.)
    # Versions of a message (branches) share a position: the match is kept by
    # its rowid (SQLite takes a bare column from the row MAX() picked), so a
    # conversation is one result, whichever of its versions matched.
    sql = f"""
        WITH hits AS (
            SELECT {FTS_TABLE}.conversation_id AS conversation_id,
                   MAX(m.position) AS position, m.rowid AS hit_rowid
            FROM {FTS_TABLE} JOIN {_MESSAGE} m ON m.rowid = {FTS_TABLE}.rowid
            WHERE {FTS_TABLE} MATCH %s
              AND {FTS_TABLE}.conversation_id IN ({visible_sql})
            GROUP BY {FTS_TABLE}.conversation_id
        ),
        found AS (
            SELECT c.id, c.title, c.updated_at, h.hit_rowid
            FROM {_CONVERSATION} c LEFT JOIN hits h ON h.conversation_id = c.id
            WHERE c.id IN ({visible_sql})
              AND (h.hit_rowid IS NOT NULL OR ({title_sql}))
            ORDER BY c.updated_at DESC
            LIMIT %s
        )
        SELECT f.id, f.title, f.updated_at, m.id, m.role,
               (SELECT snippet({FTS_TABLE}, 0, %s, %s, '…', %s) FROM {FTS_TABLE}
                WHERE {FTS_TABLE} MATCH %s AND {FTS_TABLE}.rowid = m.rowid)
        FROM found f LEFT JOIN {_MESSAGE} m ON m.rowid = f.hit_rowid
        ORDER BY f.updated_at DESC
    """
    params = [
        match,
        *visible_params,
        *visible_params,
        *title_params,
        limit,
        _OPEN,
        _CLOSE,
        SNIPPET_WORDS,
        match,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _snippet_html(marked: str) -> str:
    """The database's marked snippet as HTML: escaped, then only its marks as <mark>."""
    text = " ".join(marked.split())
    # An unbalanced mark (a match cut at the fragment's edge) is closed by nh3.
    escaped = html.escape(text, quote=False).replace(_OPEN, "<mark>").replace(_CLOSE, "</mark>")
    return nh3.clean(escaped, tags={"mark"}, attributes={})


def _title_html(title: str, terms: list[str]) -> str:
    """The title, escaped, with each searched word's occurrences in <mark>."""
    clean = title.replace(_OPEN, "").replace(_CLOSE, "")
    pattern = re.compile("|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True)), re.I)
    marked = pattern.sub(lambda m: f"{_OPEN}{m.group(0)}{_CLOSE}", clean)
    return _snippet_html(marked)


def _uuid(value) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _datetime(value) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    from django.utils.dateparse import parse_datetime

    parsed = parse_datetime(str(value))
    if parsed is not None and parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed
