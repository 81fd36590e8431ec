"""Search benchmark: full-text search over many messages on PostgreSQL, and
what keeping the index costs the hot path.

    .venv/bin/python bench/search.py [--conversations 5000] [--messages 20] [--refill]

Fills its own PostgreSQL database (`teamchat_search_bench`, created next to
the one `DATABASE_URL` names; default postgres://postgres@127.0.0.1:5432/test,
which is never touched) with `--conversations` conversations of `--messages`
messages each (100,000 messages by default) through the ORM's bulk_create
(so whatever fields the models have are filled as the app fills them):
Zipf-distributed words from a 6,000-word vocabulary, 20 to 160 words a
message, over 50 people: one "heavy" person owns half the conversations, 49
share the rest. The migration's GIN index (conversations/search_index.py) is
there during the fill; then VACUUM ANALYZE, as autovacuum would.

Then it times:

- a search (`conversations.search.conversation_search`, the palette's whole
  query: visibility, matching, one result per conversation, snippets for 20),
  for the heavy person and for a typical one, over common, middling, rare and
  two-word queries and the prefixes of one being typed: p50 / p95 / max;
- the index's share of each hot-path write (`infra.rows`, as message_send and
  the stream runner write): a user message's INSERT, a streaming checkpoint's
  UPDATE, and the final UPDATE that ends an answer, each timed with the index
  and again after dropping it (the index is put back at the end).

Writes build/bench/search.json. A second run reuses the rows unless `--refill`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BENCH_DB = "teamchat_search_bench"
PEOPLE = 50
VOCABULARY = 6000
# Words planted in a known number of messages, to search for: (word, messages).
PLANTED = (("quokka", 12), ("marmalade", 400), ("zeppelin", 3000))


def _bench_database(url: str) -> str:
    import psycopg

    parts = urlsplit(url)
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [BENCH_DB]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{BENCH_DB}"')
    return urlunsplit(parts._replace(path=f"/{BENCH_DB}"))


def _setup(url: str) -> None:
    os.environ["DATABASE_URL"] = _bench_database(url)
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only")
    os.environ.setdefault("DJANGO_DEBUG", "false")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _vocabulary(rng: random.Random) -> list[str]:
    syllables = [a + b for a in "bcdfghklmnprstvwz" for b in ("a", "e", "i", "o", "u", "ai", "ou")]
    words: set[str] = set()
    while len(words) < VOCABULARY:
        words.add("".join(rng.choice(syllables) for _ in range(rng.choice((1, 2, 2, 3, 3, 4)))))
    return sorted(words, key=lambda w: (len(w), w))  # short words are the common ones


def _fill(conversations: int, per: int, rng: random.Random) -> tuple[float, list[str]]:
    from django.db import connection, transaction

    from accounts.models import User
    from conversations.models import Conversation, Message

    words = _vocabulary(rng)
    weights = [1 / (rank + 1) for rank in range(len(words))]  # Zipf
    cumulative = []
    total = 0.0
    for w in weights:
        total += w
        cumulative.append(total)
    people = [
        User.objects.get_or_create(username=f"search-bench-{i:02d}")[0] for i in range(PEOPLE)
    ]
    started = time.perf_counter()
    total_messages = conversations * per
    planted = {
        word: set(rng.sample(range(total_messages), min(count, total_messages)))
        for word, count in PLANTED
    }
    batch_conversations = max(1, 2000 // per)
    done = 0
    index = 0
    while done < conversations:
        count = min(batch_conversations, conversations - done)
        rows = []
        for i in range(count):
            n = done + i
            # The heavy person: every other conversation; the rest round-robin.
            owner = people[0] if n % 2 == 0 else people[1 + (n // 2) % (PEOPLE - 1)]
            title = " ".join(rng.choices(words, cum_weights=cumulative, k=rng.randint(2, 6)))
            rows.append(
                Conversation(owner=owner, title=title.capitalize(), model="claude-sonnet-5-5")
            )
        with transaction.atomic():
            Conversation.objects.bulk_create(rows)
            messages = []
            for conversation in rows:
                for position in range(per):
                    text_words = rng.choices(words, cum_weights=cumulative, k=rng.randint(20, 160))
                    for word, where in planted.items():
                        if index in where:
                            text_words.insert(rng.randrange(len(text_words)), word)
                    text = " ".join(text_words).capitalize() + "."
                    messages.append(
                        Message(
                            conversation=conversation,
                            position=position,
                            role="user" if position % 2 == 0 else "assistant",
                            status="complete",
                            content=[{"type": "text", "text": text}],
                            text=text,
                            model="" if position % 2 == 0 else "claude-sonnet-5-5",
                        )
                    )
                    index += 1
            Message.objects.bulk_create(messages, batch_size=1000)
        done += count
        print(f"\r  filled {done:,} / {conversations:,} conversations", end="", flush=True)
    print()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE conversations_message")
        cursor.execute("VACUUM ANALYZE conversations_conversation")
    return time.perf_counter() - started, words


def _percentiles(samples_ms: list[float]) -> dict:
    ordered = sorted(samples_ms)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered), 3),
        "p95_ms": round(pick(0.95), 3),
        "max_ms": round(ordered[-1], 3),
    }


def _queries(words: list[str]) -> list[str]:
    common, middling, rare = words[3], words[300], words[4000]
    typed = "marmalade"
    return [
        common,
        middling,
        rare,
        *(word for word, _ in PLANTED),
        f"{middling} {common}",
        f"{rare} {middling}",
        *(typed[:k] for k in range(2, len(typed) + 1)),  # as it is typed, each keystroke
        "nothingmatchesthis",
    ]


def _time_searches(user, queries: list[str], repeat: int) -> tuple[dict, dict]:
    from conversations.search import conversation_search

    for q in queries:  # warm the cache, as a running site has it
        conversation_search(user=user, query=q)
    samples: list[float] = []
    per_query: dict[str, list[float]] = {q: [] for q in queries}
    for _ in range(repeat):
        for q in queries:
            started = time.perf_counter()
            conversation_search(user=user, query=q)
            elapsed = (time.perf_counter() - started) * 1000
            samples.append(elapsed)
            per_query[q].append(elapsed)
    return _percentiles(samples), {q: round(statistics.median(v), 2) for q, v in per_query.items()}


def _time_writes(conversation, n: int, rng: random.Random, words: list[str]) -> dict:
    """One hot-path write of each kind, n times, in autocommit as the runner does."""
    from django.utils import timezone

    from conversations.models import Message
    from infra.rows import rows_insert, rows_update

    last = conversation.messages.order_by("-position").first()
    position = (last.position + 1) if last else 0
    inserts: list[float] = []
    checkpoints: list[float] = []
    finals: list[float] = []
    for _ in range(n):
        answer = " ".join(rng.choices(words[:2000], k=300)) + "."
        user_message = Message(
            conversation=conversation,
            position=position,
            role="user",
            status="complete",
            text="A question of twenty words or so " * 3,
            content=[{"type": "text", "text": "A question"}],
        )
        reply = Message(
            conversation=conversation,
            position=position + 1,
            role="assistant",
            status="streaming",
            heartbeat_at=timezone.now(),
            model="claude-sonnet-5-5",
        )
        position += 2
        started = time.perf_counter()
        rows_insert(user_message)
        inserts.append((time.perf_counter() - started) * 1000)
        rows_insert(reply)
        started = time.perf_counter()
        rows_update(
            Message,
            {
                "seq": 10,
                "text": answer[: len(answer) // 2],
                "thinking": "",
                "heartbeat_at": timezone.now(),
            },
            where={"id": reply.id, "status": "streaming", "stop_requested_at": None},
        )
        checkpoints.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        rows_update(
            Message,
            {
                "status": "complete",
                "seq": 20,
                "text": answer,
                "thinking": "",
                "content": [{"type": "text", "text": answer}],
                "html": f"<p>{answer}</p>",
                "model": "claude-sonnet-5-5",
                "stop_reason": "end_turn",
                "error_code": "",
                "error_message": "",
                "heartbeat_at": None,
                "updated_at": timezone.now(),
            },
            where={"id": reply.id, "status": ("streaming",)},
        )
        finals.append((time.perf_counter() - started) * 1000)
    return {
        "user_message_insert": inserts,
        "checkpoint_update": checkpoints,
        "final_update": finals,
    }


def _merged(blocks: list[dict]) -> dict:
    return {kind: _percentiles([ms for b in blocks for ms in b[kind]]) for kind in blocks[0]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=5000)
    parser.add_argument("--messages", type=int, default=20, help="per conversation")
    parser.add_argument("--refill", action="store_true")
    parser.add_argument("--repeat", type=int, default=10, help="rounds of the query set")
    parser.add_argument("--writes", type=int, default=300, help="writes of each kind, each way")
    args = parser.parse_args()
    _setup(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test"))

    from django.db import connection

    from accounts.models import User
    from conversations import search_index
    from conversations.models import Conversation, Message

    if connection.vendor != "postgresql":
        print("bench/search.py measures PostgreSQL: set DATABASE_URL=postgres://...")
        return 2
    rng = random.Random(13)
    wanted = args.conversations * args.messages
    have = Message.objects.count()
    if args.refill or have != wanted:
        print(f"Filling {args.conversations:,} conversations × {args.messages} messages ...")
        Message.objects.all().delete()
        Conversation.objects.all().delete()
        fill_seconds, words = _fill(args.conversations, args.messages, rng)
        print(f"  {wanted:,} messages in {fill_seconds:.1f} s (the index kept up during the fill)")
    else:
        words = _vocabulary(rng)
        print(f"Reusing {have:,} messages (--refill to make them again)")

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_size_pretty(pg_relation_size(%s))", [search_index.PG_INDEX])
        index_size = cursor.fetchone()[0]
        cursor.execute("SELECT pg_size_pretty(pg_relation_size('conversations_message'))")
        table_size = cursor.fetchone()[0]
    heavy = User.objects.get(username="search-bench-00")
    typical = User.objects.get(username="search-bench-07")
    queries = _queries(words)
    print(
        f"\nSearch ({len(queries)} queries × {args.repeat}; index {index_size}, table {table_size})"
    )
    results: dict = {
        "conversations": Conversation.objects.count(),
        "messages": Message.objects.count(),
        "index_size": index_size,
        "table_size": table_size,
        "search": {},
        "writes": {},
    }
    for label, user in (("heavy", heavy), ("typical", typical)):
        visible = Conversation.objects.filter(owner=user).count()
        overall, per_query = _time_searches(user, queries, args.repeat)
        results["search"][label] = {
            "conversations_visible": visible,
            **overall,
            "median_by_query_ms": per_query,
        }
        print(
            f"  {label:8} ({visible:,} conversations): p50 {overall['p50_ms']:.1f} ms, "
            f"p95 {overall['p95_ms']:.1f} ms, max {overall['max_ms']:.1f} ms"
        )
        slowest = sorted(per_query.items(), key=lambda kv: -kv[1])[:3]
        print("           slowest medians: " + ", ".join(f"{q!r} {ms} ms" for q, ms in slowest))

    with connection.cursor() as cursor:
        cursor.execute(
            "EXPLAIN (ANALYZE, BUFFERS, FORMAT TEXT) SELECT count(*) FROM conversations_message "
            "WHERE to_tsvector('english', text) @@ to_tsquery('english', %s) "
            "AND status <> 'streaming'",
            [words[3]],
        )
        plan = [row[0] for row in cursor.fetchall()]
    uses_index = any(search_index.PG_INDEX in line for line in plan)
    results["plan_uses_index"] = uses_index
    print(f"  the common word's match uses {search_index.PG_INDEX}: {uses_index}")

    conversation = Conversation.objects.create(
        owner=typical, title="bench writes", model="claude-sonnet-5-5", id=uuid.uuid4()
    )
    print(f"\nHot-path writes ({args.writes} of each kind, each way, in 4 alternating blocks)")
    # The WAL flush of each commit is the disk's time, the same with or without the
    # index, and on a shared host it is most of a write and most of its noise:
    # synchronous_commit off for these writes leaves what the statements cost.
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit = off")
    blocks: dict[bool, list[dict]] = {True: [], False: []}
    try:
        for with_it in (True, False, True, False):
            with connection.cursor() as cursor:
                cursor.execute(search_index.PG_CREATE if with_it else search_index.PG_DROP)
            blocks[with_it].append(_time_writes(conversation, args.writes // 2, rng, words))
    finally:
        with connection.cursor() as cursor:
            cursor.execute(search_index.PG_CREATE)
            cursor.execute("SET synchronous_commit = on")
    with_index = _merged(blocks[True])
    without_index = _merged(blocks[False])
    results["writes"] = {
        "synchronous_commit": "off",
        "with_index": with_index,
        "without_index": without_index,
    }
    for kind in with_index:
        a, b = with_index[kind], without_index[kind]
        print(
            f"  {kind:20} with the index p50 {a['p50_ms']:.3f} / p95 {a['p95_ms']:.3f} ms; "
            f"without p50 {b['p50_ms']:.3f} / p95 {b['p95_ms']:.3f} ms; "
            f"the index: {a['p50_ms'] - b['p50_ms']:+.3f} ms at p50"
        )
    conversation.delete()

    out = ROOT / "build" / "bench" / "search.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"\nSaved {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
