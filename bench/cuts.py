"""Random cuts: does a streamed reply survive a dropped socket and a reconnect to the other process?

    .venv/bin/python bench/cuts.py [--cuts 1000] [--concurrency 8] [--seed 1]
                                   [--database-url URL] [--redis-url URL] [--prefix chat-cuts]
                                   [--tokens 60] [--tps 40] [--late-share 0.5]
                                   [--stuck-after 10] [--site-env KEY=VALUE ...]
                                   [--log-dir DIR]

A benchmark that reports counts, not a timed test; `tests/integration/test_cuts.py`
runs a few dozen cuts through the same code in the PostgreSQL + Redis pass.

The site
--------
The standalone fake Claude (`manage.py fakeclaude`) and two web processes
(`python -m chatsite.web`, daphne), started as `tests/integration/servers.py`
starts them, on 127.0.0.1 only. PostgreSQL: a throwaway database created next
to the one `--database-url` (or `DATABASE_URL`) names and dropped at the end;
Redis: `--redis-url` (or `REDIS_URL`) with channel-layer prefix `--prefix`
(or `CHANNEL_LAYER_PREFIX`); the replay records of this run's replies are
deleted at the end. The demo users are seeded; the client signs in as alice
through the login form. `USAGE_RATE_LIMIT_PER_MINUTE=0`: hundreds of sends a
minute are the point here. Each reply is `[[fake tokens=T tps=S ttft_ms=100]]`,
about 1.6 s with the defaults; everything else is the site's defaults
(`--site-env` overrides any setting, e.g. `CHAT_CHECKPOINT_SECONDS=0.5`).

The client
----------
Written from docs/websocket-protocol.md, not from the browser's code. A trial:

1. creates a conversation (HTTP, the page's form) and opens its socket on a
   random process, A; sends `message.send` with a fresh `client_id`;
2. applies frames as the protocol's client rules say (deltas in seq order,
   `seq <= last` ignored, a gap answered with one `resume`, a snapshot
   replacing the text), and at the planned moment aborts the TCP connection
   (no close frame, as when the network drops). The moment is drawn uniformly
   over the reply's expected duration D (measured first, at the same
   concurrency, from `message.send` to `message.completed`), except that a
   share `--late-share` of the cuts fall in the last second before D, where
   replies were seen to get stuck;
3. connects at once to the OTHER process, B, and sends, in this order: `resume`
   with the last applied seq if it knows the reply and has not seen it end;
   the same `message.send` (same `client_id`) unless it had seen both
   `message.created` frames (the acknowledgement rule); then a `ping`;
4. reads until the reply is final for it (`message.completed`, or the reply's
   `message.created` already carrying a final status, as a resend's answer does).

A trial whose reply ended before the cut is ok if its texts check; the table
shows how many cuts fell where, so a run that cut mostly after the end says so.

Verdicts (a trial gets the first that applies)
----------------------------------------------
* error: an `error` frame, a failed connection, a reply that did not end `complete`,
  or a stored reply still not final 30 s after it should have ended.
* stuck: the stored reply is final but the client heard no end within
  `--stuck-after` seconds of seeing that (polling the database every 0.5 s).
* wrong: the texts disagree: the `message.completed` text (and thinking) must equal
  the stored row's, and the text the client assembled from deltas and
  snapshots must equal it (or, when the end frame covered a gap, be a prefix of it).
* lost: a socket skipped frames: a delta with seq > n + 1 on a socket that had
  already delivered seq n for the reply, or had been told n by a `resume`.
  (A socket told nothing, e.g. after a resend's `message.created`, may
  start anywhere: the client resumes and that is no fault.)
* dup: a socket sent a delta twice, one at or below the `last_seq` its client
  resumed from, or a snapshot older than that. The client drops it, but the
  server promised not to send it.
* ok: none of these.

Exit status 1 if any trial is not ok. `build/bench/cuts.json` holds the counts
and every failed trial (which process, when the cut fell, what B sent back).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx2
import psycopg
from websockets.asyncio.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.integration.servers import (  # noqa: E402 - the repository root is on sys.path now
    Server,
    drop_database,
    login_cookie,
    prepare_site_database,
    site_env,
    start_daphne,
    start_fake_claude,
)

OUT_DIR = ROOT / "build" / "bench"
# The local services `make test` uses when nothing else is given.
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_PREFIX = "chat-cuts"
MODEL = "claude-sonnet-5-5"
FINAL = frozenset({"complete", "stopped", "error", "interrupted"})
VERDICTS = ("ok", "stuck", "lost", "dup", "wrong", "error")
POLL_SECONDS = 0.5
# A stored reply not final this long after it should have ended is an error, not a hang.
UNFINISHED_SECONDS = 30.0


# --- the site -----------------------------------------------------------------


@dataclass
class Site:
    a: Server
    b: Server
    fake: Server
    db_url: str
    cookie: str
    log_dir: Path

    def process(self, name: str) -> Server:
        return self.a if name == "a" else self.b


def _drop_replay_records(db_url: str, redis_url: str) -> None:
    """Delete this run's replay records (they expire anyway): only keys of its replies."""
    import redis

    with psycopg.connect(db_url) as conn:
        ids = [
            str(row[0])
            for row in conn.execute("SELECT id FROM conversations_message WHERE role = 'assistant'")
        ]
    client = redis.Redis.from_url(redis_url)
    try:
        for start in range(0, len(ids), 500):
            client.delete(*(f"replay:{i}" for i in ids[start : start + 500]))
    finally:
        client.close()


@contextlib.contextmanager
def site_running(
    *,
    database_url: str,
    redis_url: str,
    prefix: str,
    log_dir: Path,
    extra_env: dict[str, str] | None = None,
) -> Iterator[Site]:
    """The fake Claude and two web processes on a throwaway database; all stopped after."""
    parts = urlsplit(database_url)
    db_name = f"{parts.path.lstrip('/') or 'postgres'}_cuts_{os.getpid()}"
    db_url = urlunsplit(parts._replace(path=f"/{db_name}"))
    servers: list[Server] = []
    migrated = False
    try:
        fake = start_fake_claude(log_dir)
        servers.append(fake)
        env = site_env(
            DATABASE_URL=db_url,
            REDIS_URL=redis_url,
            CHANNEL_LAYER_PREFIX=prefix,
            ANTHROPIC_BASE_URL=fake.url,
            CHAT_VAR_DIR=str(log_dir / "var"),
            USAGE_RATE_LIMIT_PER_MINUTE="0",
            **(extra_env or {}),
        )
        prepare_site_database(database_url, db_name, env)
        migrated = True
        a = start_daphne(log_dir, env=env, name="web-a")
        servers.append(a)
        b = start_daphne(log_dir, env=env, name="web-b")
        servers.append(b)
        cookie = login_cookie(a, "alice", env["DEMO_PASSWORD"])
        yield Site(a=a, b=b, fake=fake, db_url=db_url, cookie=cookie, log_dir=log_dir)
    finally:
        for server in reversed(servers):
            server.stop()
        with contextlib.suppress(Exception):  # cleanup must not hide the run's own error
            if migrated:
                _drop_replay_records(db_url, redis_url)
        drop_database(database_url, db_name)


class Conversations:
    """Creates conversations through the page's form, as a signed-in browser does."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self._client = httpx2.AsyncClient(
            headers={"Cookie": site.cookie}, follow_redirects=False, timeout=30
        )
        self._token: str | None = None

    async def create(self, server: Server) -> str:
        if self._token is None:
            # One CSRF token serves every form post of the session, on either process.
            page = await self._client.get(f"{self.site.a.url}/")
            self._token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)[1]
        response = await self._client.post(
            f"{server.url}/c/new/",
            data={"model": MODEL, "system_prompt": "", "csrfmiddlewaretoken": self._token},
            headers={"Referer": f"{server.url}/"},
        )
        if response.status_code != 302:
            raise RuntimeError(f"creating a conversation: HTTP {response.status_code}")
        return response.headers["location"].strip("/").split("/")[-1]

    async def aclose(self) -> None:
        await self._client.aclose()


class Database:
    """Reads the stored reply, the truth the client's view is checked against."""

    def __init__(self, conn: psycopg.AsyncConnection) -> None:
        self._conn = conn
        self._lock = asyncio.Lock()  # one connection, queries one at a time

    async def reply(self, conversation_id: str) -> dict[str, Any] | None:
        async with self._lock:
            cursor = await self._conn.execute(
                "SELECT id, status, text, thinking, seq FROM conversations_message"
                " WHERE conversation_id = %s AND role = 'assistant'",
                (uuid.UUID(conversation_id),),
            )
            row = await cursor.fetchone()
        if row is None:
            return None
        return dict(zip(("id", "status", "text", "thinking", "seq"), row, strict=True))


# --- the client ---------------------------------------------------------------


@dataclass
class SocketView:
    """What one socket has delivered for the reply: the server's promises are per socket."""

    name: str
    resent: bool  # this socket carried a resend: its message.created frames are state, not news
    received: set[int] = field(default_factory=set)
    hi: int | None = None  # the highest seq the server knows this client has, via this socket
    declared: int = -1  # the highest last_seq resumed from on this socket
    ended: bool = False
    log: list[str] = field(default_factory=list)

    def know(self, seq: int) -> None:
        self.hi = seq if self.hi is None else max(self.hi, seq)


class ReplyClient:
    """One page's view of one reply, by the client rules of docs/websocket-protocol.md."""

    def __init__(self, client_id: str) -> None:
        self.client_id = client_id
        self.user_acked = False
        self.reply_id: str | None = None
        self.text = ""
        self.thinking = ""
        self.last = 0
        self.final: dict[str, Any] | None = None  # the frame that ended the reply for us
        self.streamed: tuple[str, str, int] | None = None  # (text, thinking, last) at the end
        self.resume_pending = False  # a gap's resume is out and nothing was applied since
        self.faults: list[tuple[str, str]] = []

    @property
    def acked(self) -> bool:
        """Both message.created frames seen: the send needs no resend."""
        return self.user_acked and self.reply_id is not None

    def resume(self, sock: SocketView) -> dict[str, Any]:
        sock.declared = max(sock.declared, self.last)
        # The answer is "the frames after last_seq": those this socket already sent
        # after it may come again, and that is no fault.
        sock.received = {seq for seq in sock.received if seq <= self.last}
        sock.know(self.last)
        return {"type": "resume", "message_id": self.reply_id, "last_seq": self.last}

    def _end(self, frame: dict[str, Any]) -> None:
        self.streamed = (self.text, self.thinking, self.last)
        self.final = frame

    def handle(self, frame: dict[str, Any], sock: SocketView) -> list[dict[str, Any]]:
        """Apply one server frame; return the frames the client sends in answer."""
        kind = frame.get("type")
        if kind == "message.created":
            return self._created(frame["message"], sock)
        if kind == "error":
            sock.log.append(f"error {frame.get('code')}")
            self.faults.append(("error", f"{sock.name}: error frame {frame.get('code')}"))
            return []
        if kind == "pong":
            sock.log.append("pong")
        if kind not in ("message.delta", "message.snapshot", "message.completed"):
            return []  # pong, conversation.updated, budget.status: nothing to do with the reply
        seq = frame["seq"]
        sock.log.append(f"{kind.removeprefix('message.')} {seq}")
        if frame["message_id"] != self.reply_id:
            if self.reply_id is not None:
                return []
            # The rule for an unknown message_id: resume it from 0.
            self.reply_id = frame["message_id"]
            return [self.resume(sock)]
        if kind == "message.delta":
            return self._delta(frame, seq, sock)
        if kind == "message.snapshot":
            if seq < sock.declared:
                self.faults.append(
                    ("dup", f"{sock.name}: snapshot {seq} below resume {sock.declared}")
                )
            sock.know(seq)
            if self.final is None and seq >= self.last:
                self.text, self.thinking, self.last = frame["text"], frame["thinking"], seq
                self.resume_pending = False
            return []
        # message.completed
        if sock.ended:
            self.faults.append(("dup", f"{sock.name}: message.completed twice"))
        sock.ended = True
        if self.final is None:
            self._end(frame)
        return []

    def _created(self, message: dict[str, Any], sock: SocketView) -> list[dict[str, Any]]:
        if message["role"] == "user":
            if message["client_id"] == self.client_id:
                self.user_acked = True
            return []
        sock.log.append(f"created {message['status']} {message['seq']}")
        if self.reply_id is not None:
            return []  # a message it already has: dedupe by id
        # A new conversation holds one reply: this is ours.
        self.reply_id = message["id"]
        self.text, self.thinking, self.last = message["text"], message["thinking"], message["seq"]
        if not sock.resent:
            sock.know(message["seq"])  # announced as news: every later frame follows here
        if message["status"] in FINAL:
            self._end({"type": "message.created", **message})
        return []

    def _delta(self, frame: dict[str, Any], seq: int, sock: SocketView) -> list[dict[str, Any]]:
        if seq in sock.received or seq <= sock.declared:
            self.faults.append(
                ("dup", f"{sock.name}: delta {seq} again (resumed from {sock.declared})")
            )
        elif sock.hi is not None and seq > sock.hi + 1:
            self.faults.append(("lost", f"{sock.name}: delta {seq} after {sock.hi}"))
        if not self.resume_pending:
            # While a gap's resume is out, live frames still in flight may come again
            # in its answer ("the frames after last_seq"): no fault, so not counted.
            sock.received.add(seq)
        sock.know(seq)
        if self.final is not None or seq <= self.last:
            return []
        if seq == self.last + 1:
            self.text += frame.get("text", "")
            self.thinking += frame.get("thinking", "")
            self.last = seq
            self.resume_pending = False
            return []
        # A gap: resume once from what was applied, ignore this frame.
        if self.resume_pending:
            return []
        self.resume_pending = True
        return [self.resume(sock)]


# --- a trial ------------------------------------------------------------------


@dataclass
class Plan:
    index: int
    first: str  # "a" or "b": where the reply is sent; the reconnect goes to the other
    cut_after: float  # seconds after message.send
    late: bool  # drawn from the last second before the expected end
    client_id: str


@dataclass
class Outcome:
    index: int
    first: str
    cut_after: float
    late: bool
    verdict: str = "ok"
    faults: list[str] = field(default_factory=list)
    at_cut: str = ""  # the client's view when the cut fell: unacked, streaming or ended
    last_at_cut: int = 0
    resent: bool = False
    resumed: bool = False
    reply_seconds: float | None = None  # message.send to the end frame, when no cut came first
    wait_seconds: float | None = None  # reconnect to the end frame
    stored: dict[str, Any] | None = None
    on_a: list[str] = field(default_factory=list)
    on_b: list[str] = field(default_factory=list)


@dataclass
class Config:
    tokens: int = 60
    tps: float = 40
    ttft_ms: int = 100
    stuck_after: float = 10.0

    def prompt(self, index: int) -> str:
        return (
            f"Cut trial {index}: how do replicas agree? "
            f"[[fake tokens={self.tokens} tps={self.tps} ttft_ms={self.ttft_ms}]]"
        )

    @property
    def nominal_seconds(self) -> float:
        return self.ttft_ms / 1000 + self.tokens / self.tps


def _socket(server: Server, conversation_id: str, cookie: str):
    return connect(
        f"ws://127.0.0.1:{server.port}/ws/c/{conversation_id}/",
        origin=f"http://127.0.0.1:{server.port}",
        additional_headers={"Cookie": cookie},
        open_timeout=10,
        max_size=None,
    )


async def _send(ws: ClientConnection, frames: list[dict[str, Any]]) -> None:
    for frame in frames:
        await ws.send(json.dumps(frame))


async def run_trial(
    plan: Plan, site: Site, conversations: Conversations, db: Database, config: Config
) -> Outcome:
    outcome = Outcome(plan.index, plan.first, round(plan.cut_after, 3), plan.late)
    try:
        await _trial(plan, site, conversations, db, config, outcome)
    except Exception as exc:  # noqa: BLE001 - any failure is a counted error, not the end of the run
        outcome.faults.append(f"error: {type(exc).__name__}: {exc}")
        outcome.verdict = "error"
    return outcome


async def _trial(
    plan: Plan,
    site: Site,
    conversations: Conversations,
    db: Database,
    config: Config,
    outcome: Outcome,
) -> None:
    loop = asyncio.get_running_loop()
    first = site.process(plan.first)
    other = site.process("b" if plan.first == "a" else "a")
    conversation_id = await conversations.create(first)
    client = ReplyClient(plan.client_id)
    send = {"type": "message.send", "text": config.prompt(plan.index), "client_id": plan.client_id}

    sock_a = SocketView("A", resent=False)
    ws = await _socket(first, conversation_id, site.cookie)
    try:
        sent_at = loop.time()
        await ws.send(json.dumps(send))
        cut_at = sent_at + plan.cut_after
        while client.final is None and (remaining := cut_at - loop.time()) > 0:
            try:
                raw = await asyncio.wait_for(ws.recv(), remaining)
            except TimeoutError:
                break
            await _send(ws, client.handle(json.loads(raw), sock_a))
        if client.final is not None:
            outcome.reply_seconds = round(loop.time() - sent_at, 3)
    finally:
        # The cut: no close frame, the connection just goes (a reset, as a dropped network).
        ws.transport.abort()
    outcome.on_a = sock_a.log
    outcome.last_at_cut = client.last
    outcome.at_cut = "ended" if client.final else ("streaming" if client.acked else "unacked")

    if client.final is None:
        sock_b = SocketView("B", resent=not client.acked)
        opening: list[dict[str, Any]] = []
        if client.reply_id is not None:
            opening.append(client.resume(sock_b))
            outcome.resumed = True
        if not client.acked:
            opening.append(send)
            outcome.resent = True
        opening.append({"type": "ping"})
        async with _socket(other, conversation_id, site.cookie) as ws_b:
            reopened_at = loop.time()
            await _send(ws_b, opening)
            give_up = reopened_at + config.nominal_seconds + UNFINISHED_SECONDS
            stuck_at: float | None = None
            next_poll = reopened_at + POLL_SECONDS
            while client.final is None:
                now = loop.time()
                if stuck_at is None and now >= next_poll:
                    row = await db.reply(conversation_id)
                    if row is not None and row["status"] in FINAL:
                        stuck_at = now + config.stuck_after
                    next_poll = now + POLL_SECONDS
                limit = stuck_at if stuck_at is not None else min(next_poll, give_up)
                if now >= give_up or (stuck_at is not None and now >= stuck_at):
                    break
                try:
                    raw = await asyncio.wait_for(ws_b.recv(), max(limit - now, 0.001))
                except TimeoutError:
                    continue
                await _send(ws_b, client.handle(json.loads(raw), sock_b))
            if client.final is not None:
                outcome.wait_seconds = round(loop.time() - reopened_at, 3)
        outcome.on_b = sock_b.log

    stored = await db.reply(conversation_id)
    outcome.stored = stored and {k: stored[k] for k in ("status", "seq")}
    judge(client, stored, outcome)


def judge(client: ReplyClient, stored: dict[str, Any] | None, outcome: Outcome) -> None:
    faults: list[tuple[str, str]] = list(client.faults)
    if stored is None:
        faults.append(("error", "no reply stored"))
    elif stored["status"] not in FINAL:
        faults.append(("error", f"stored reply still {stored['status']}"))
    elif client.final is None:
        faults.append(("stuck", f"no end frame; stored {stored['status']} seq {stored['seq']}"))
    else:
        final, (text, thinking, last) = client.final, client.streamed
        if final["status"] != "complete" or stored["status"] != "complete":
            faults.append(("error", f"ended {final['status']}, stored {stored['status']}"))
        if (final["text"], final["thinking"]) != (stored["text"], stored["thinking"]):
            faults.append(("wrong", f"{final['type']} text differs from the stored reply"))
        covers_gap = final["type"] == "message.completed" and last < final["seq"] - 1
        if covers_gap:
            if not (final["text"].startswith(text) and final["thinking"].startswith(thinking)):
                faults.append(("wrong", f"streamed text (to seq {last}) is not a prefix"))
        elif final["type"] == "message.completed" and (text, thinking) != (
            final["text"],
            final["thinking"],
        ):
            faults.append(("wrong", f"streamed text (to seq {last}) differs from completed"))
    outcome.faults = [f"{kind}: {detail}" for kind, detail in faults]
    kinds = {kind for kind, _ in faults}
    outcome.verdict = next(
        (v for v in ("error", "stuck", "wrong", "lost", "dup") if v in kinds), "ok"
    )


# --- a run --------------------------------------------------------------------


@dataclass
class Report:
    cuts: int
    concurrency: int
    seed: int
    expected_seconds: float
    wall_seconds: float
    counts: dict[str, int]
    outcomes: list[Outcome]

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.verdict != "ok"]


def make_plans(cuts: int, *, seed: int, expected_seconds: float, late_share: float) -> list[Plan]:
    rng = random.Random(seed)
    plans = []
    for index in range(cuts):
        first = rng.choice("ab")
        late = rng.random() < late_share
        low = max(0.0, expected_seconds - 1.0) if late else 0.0
        cut_after = rng.uniform(low, expected_seconds)
        plans.append(Plan(index, first, cut_after, late, uuid.UUID(int=rng.getrandbits(128)).hex))
    return plans


async def _pool(jobs: list[Plan], concurrency: int, work, progress=None) -> list[Outcome]:
    queue: asyncio.Queue[Plan] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)
    results: list[Outcome] = []

    async def worker() -> None:
        while not queue.empty():
            outcome = await work(queue.get_nowait())
            results.append(outcome)
            if progress:
                progress(results)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return sorted(results, key=lambda o: o.index)


async def run_cuts(
    site: Site,
    *,
    cuts: int,
    concurrency: int,
    seed: int,
    config: Config | None = None,
    late_share: float = 0.5,
    progress: bool = False,
) -> Report:
    """Measure the reply's duration at this concurrency, then run `cuts` trials."""
    config = config or Config()
    conversations = Conversations(site)
    conn = await psycopg.AsyncConnection.connect(site.db_url, autocommit=True)
    db = Database(conn)
    try:

        async def work(plan: Plan) -> Outcome:
            return await run_trial(plan, site, conversations, db, config)

        # Uncut replies on both processes, at the run's concurrency: a first round warms
        # the site up (its first replies are slower), a second measures the duration D.
        uncut = config.nominal_seconds + UNFINISHED_SECONDS
        for _ in range(2):
            warmups = [
                Plan(-1 - i, "ab"[i % 2], uncut, False, uuid.uuid4().hex)
                for i in range(max(2, concurrency))
            ]
            warm = await _pool(warmups, concurrency, work)
            broken = [o for o in warm if o.verdict != "ok" or o.reply_seconds is None]
            if broken:
                raise RuntimeError(f"uncut replies failed: {[asdict(o) for o in broken]}")
        expected = statistics.median(o.reply_seconds for o in warm)

        def report_progress(done: list[Outcome]) -> None:
            if len(done) % 50 == 0 or len(done) == cuts:
                tally = Counter(o.verdict for o in done)
                shown = "  ".join(f"{v} {tally[v]}" for v in VERDICTS if tally[v])
                print(f"  {len(done):5d}/{cuts}  {shown}", file=sys.stderr, flush=True)

        plans = make_plans(cuts, seed=seed, expected_seconds=expected, late_share=late_share)
        started = time.monotonic()
        outcomes = await _pool(plans, concurrency, work, report_progress if progress else None)
        wall = time.monotonic() - started
    finally:
        await conversations.aclose()
        await conn.close()
    counts = Counter(o.verdict for o in outcomes)
    return Report(
        cuts=cuts,
        concurrency=concurrency,
        seed=seed,
        expected_seconds=round(expected, 3),
        wall_seconds=round(wall, 1),
        counts={v: counts.get(v, 0) for v in VERDICTS},
        outcomes=outcomes,
    )


def _where(outcome: Outcome, expected: float) -> str:
    if outcome.at_cut == "ended":
        return "after the end frame"
    if outcome.at_cut == "unacked":
        return "before both message.created"
    if outcome.cut_after >= expected - 1.0:
        return "streaming, last second"
    return "streaming, earlier"


def summary(report: Report) -> str:
    total = report.cuts or 1
    lines = [
        f"{report.cuts} cuts, concurrency {report.concurrency}, seed {report.seed}; "
        f"reply {report.expected_seconds:.2f} s (send to completed, uncut); "
        f"wall {report.wall_seconds:.0f} s",
        "",
        f"{'verdict':<8} {'trials':>7} {'rate':>7}",
    ]
    for verdict in VERDICTS:
        n = report.counts[verdict]
        lines.append(f"{verdict:<8} {n:>7} {100 * n / total:>6.1f}%")
    lines += [
        "",
        f"{'where the cut fell':<30} {'cuts':>5} " + " ".join(f"{v:>6}" for v in VERDICTS[1:]),
    ]
    groups: dict[str, Counter] = {}
    for outcome in report.outcomes:
        groups.setdefault(_where(outcome, report.expected_seconds), Counter())[outcome.verdict] += 1
    order = (
        "before both message.created",
        "streaming, earlier",
        "streaming, last second",
        "after the end frame",
    )
    for name in order:
        tally = groups.get(name, Counter())
        lines.append(
            f"{name:<30} {sum(tally.values()):>5} "
            + " ".join(f"{tally[v]:>6}" for v in VERDICTS[1:])
        )
    waits = [o.wait_seconds for o in report.outcomes if o.wait_seconds is not None]
    if waits:
        waits.sort()
        lines.append(
            f"\nreconnect to end frame: median {statistics.median(waits):.2f} s, "
            f"max {waits[-1]:.2f} s ({len(waits)} reconnects)"
        )
    failures = report.failures
    if failures:
        lines.append(f"\nfirst failures (of {len(failures)}):")
        for o in failures[:10]:
            lines.append(
                f"  #{o.index} {o.verdict}: sent on {o.first}, cut at {o.cut_after:.2f} s "
                f"({o.at_cut}, last seq {o.last_at_cut}), resume={o.resumed} resend={o.resent}; "
                f"{'; '.join(o.faults)}; B sent: {' | '.join(o.on_b[:8]) or 'nothing'}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cuts", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL),
        help="PostgreSQL; a throwaway database is made next to the one named",
    )
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", DEFAULT_REDIS_URL))
    parser.add_argument("--prefix", default=os.environ.get("CHANNEL_LAYER_PREFIX", DEFAULT_PREFIX))
    parser.add_argument("--tokens", type=int, default=60, help="reply length in tokens")
    parser.add_argument("--tps", type=float, default=40, help="tokens per second")
    parser.add_argument(
        "--late-share", type=float, default=0.5, help="share of cuts in the last second"
    )
    parser.add_argument(
        "--stuck-after", type=float, default=10.0, help="seconds past the stored end"
    )
    parser.add_argument(
        "--site-env", action="append", default=[], metavar="KEY=VALUE", help="a site setting"
    )
    parser.add_argument("--log-dir", help="keep the servers' logs here (default: removed)")
    args = parser.parse_args(argv)
    if not args.database_url.startswith("postgres"):
        parser.error("--database-url must be PostgreSQL")
    extra_env = dict(item.split("=", 1) for item in args.site_env)
    config = Config(tokens=args.tokens, tps=args.tps, stuck_after=args.stuck_after)

    # SIGTERM unwinds like Ctrl-C, so the servers and the database are cleaned up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with contextlib.ExitStack() as stack:
        if args.log_dir:
            log_dir = Path(args.log_dir)
            log_dir.mkdir(parents=True, exist_ok=True)
        else:
            log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-cuts-")))
        with site_running(
            database_url=args.database_url,
            redis_url=args.redis_url,
            prefix=args.prefix,
            log_dir=log_dir,
            extra_env=extra_env,
        ) as site:
            report = asyncio.run(
                run_cuts(
                    site,
                    cuts=args.cuts,
                    concurrency=args.concurrency,
                    seed=args.seed,
                    config=config,
                    late_share=args.late_share,
                    progress=True,
                )
            )
    print(summary(report))
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    record = {
        **{k: v for k, v in asdict(report).items() if k != "outcomes"},
        "config": asdict(config),
        "site_env": extra_env,
        "failures": [asdict(o) for o in report.failures],
    }
    (OUT_DIR / "cuts.json").write_text(json.dumps(record, indent=1, default=str))
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
