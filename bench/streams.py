"""Streaming benchmark: what the site adds between Claude and the browser.

    .venv/bin/python bench/streams.py [--n 50,200,500] [--tps 50] [--tokens 200]
                                      [--processes 1,2] [--ramp S] [--profile]

For each run (site processes P x concurrent streams N) it starts a fresh site,
opens N signed-in websocket clients (one conversation each) and has each send
one message, while the fake Claude streams T tokens/s per reply. One table is
printed and `build/bench/streams.json` holds one record per run.

Setup
-----
* The fake is `bench/fake_recorder.py`: the product's fake app under uvicorn, as
  `manage.py fakeclaude` serves it, plus a recorder of when each request arrived
  and when each response chunk left (parsed only after the run).
* P=1: one daphne on SQLite in a temporary `CHAT_VAR_DIR`, in-memory channel layer.
  P=2: two daphnes on PostgreSQL (`teamchat_bench_streams`, created and dropped)
  and Redis (`redis://127.0.0.1:6379/13`, flushed); clients split over both ports.
* Every daphne is pinned to core 0 (`taskset -c 0`), so the site gets one core in
  both configurations; this harness, its clients and the fake are pinned to core 1.
  Redis and PostgreSQL are not pinned. `DJANGO_DEBUG=false`, no access log,
  `CLAUDE_MAX_RETRIES=0` (a failure shows as an error, not as latency).
* Sessions are created directly in the database; each socket sends the session
  cookie and `Origin: http://127.0.0.1:<port>`. Sends are spread evenly over
  `--ramp` seconds, by default one answer's duration (tokens / T = 4 s): N
  streams are then open at once, arriving at the steady rate that keeps N open
  (N / 4 s; Little's law). `--ramp 1` is a burst instead: N sends in one second
  is the arrival rate of 4N concurrent streams. The table shows sends/s.
* Each process is warmed up with one reply first. The fake and this harness run
  with the garbage collector paused while measuring, so their own pauses are not
  charged to the site (a full collection in the fake once added 120 ms).

What is measured (all clocks are `time.time()` on this one machine)
-------------------------------------------------------------------
* The message is an echo (`[[fake echo=1 tps=T ttft_ms=...]]` then `tokens`
  distinct 5-character words, one fake token each), so the reply's exact text
  is known in advance, and so is where each token ends in it.
* Added time to first token = (client: first `message.delta` received - `message.send`
  sent) - (fake: first text chunk sent - request arrived). That is everything the
  site does before the first token and to deliver it: storing the messages,
  starting the task, the SDK request, coalescing, the channel layer, the socket.
* Token to client = for every token, (client: time of the frame that completed it)
  - (fake: time of the chunk that completed it), from the recorder. p50/p99 over
  all tokens of all streams.
* Frames/s per stream: deltas / (last delta - first delta); bytes per answer: all
  websocket payload bytes the client received for its reply (created, deltas,
  completed, which repeats the text and adds HTML).
* Site CPU: user+sys seconds of the daphne processes during the streaming phase /
  wall seconds (1.0 = one core). Peak RSS: sum over daphnes, sampled every 50 ms.
  Memory per socket: (RSS with N idle sockets open - RSS before) / N.
  Harness CPU (this process: the clients) and fake CPU are reported beside it.
* Errors: failed connects, `error` frames, replies not complete, timeouts. Lost or
  duplicated text: the assembled deltas must equal the expected text exactly, and
  so must `message.completed.text`; seq gaps are counted (the client resumes as
  the browser does, and text must still match).
* SDK floor: the same N echo streams consumed straight from the fake by one
  `anthropic.AsyncAnthropic` (`messages.create(stream=True)`, as the site's gateway
  does), measured the same way: what no site in front of the API can beat.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import gc
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.site_env import bench_site_env, free_port, wait_port  # noqa: E402

PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else sys.executable
OUT_DIR = ROOT / "build" / "bench"
PG_URL = "postgres://postgres@127.0.0.1:5432"
PG_DB = "teamchat_bench_streams"
# redis-py 8 reads with a 5 s socket timeout by default, the same 5 s that
# channels_redis blocks in BZPOPMIN: an idle consumer's receive raises
# TimeoutError and its socket is closed. A longer timeout in the URL avoids it.
REDIS_URL = "redis://127.0.0.1:6379/13?socket_timeout=30"
SITE_CORE, HARNESS_CORE = 0, 1
FAKE_TTFT_MS = 200
COALESCE: float | None = None  # --coalesce: CHAT_COALESCE_SECONDS for the site
WORD = 5  # "t0001": one fake token, plus the space before the next


@contextlib.contextmanager
def collector_paused():
    """No garbage collection in this process while it measures: a full collection
    over the clients' records stalls them for tens of ms, which would be charged
    to the site. What piles up is freed when the run ends."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[index]


def ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 1)



def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def expected_text(tokens: int) -> str:
    return " ".join(f"t{k:04d}" for k in range(tokens))


def token_ends(tokens: int) -> list[int]:
    """Text length at which token k is complete (its trailing space comes with it)."""
    total = tokens * (WORD + 1) - 1
    return [min((k + 1) * (WORD + 1), total) for k in range(tokens)]


def first_at_or_after(times: list[float], lengths: list[int], length: int) -> float | None:
    i = bisect.bisect_left(lengths, length)
    return times[i] if i < len(times) else None


# ---------------------------------------------------------------------------
# One websocket client


@dataclass
class Stream:
    marker: str
    conversation: str
    port: int
    text: str = ""
    sent_at: float = 0.0
    recv: list[tuple[float, int]] = field(default_factory=list)  # (time, cumulative length)
    deltas: int = 0
    bytes: int = 0
    completed: dict | None = None
    error: str = ""
    gaps: int = 0


async def ws_client(
    stream: Stream,
    cookie: str,
    message: str,
    opened: asyncio.Event,
    go: asyncio.Event,
    delay: float,
    connect_limit: asyncio.Semaphore,
) -> Any:
    from websockets.asyncio.client import connect

    url = f"ws://127.0.0.1:{stream.port}/ws/c/{stream.conversation}/"
    headers = {"Cookie": cookie, "Origin": f"http://127.0.0.1:{stream.port}"}
    try:
        async with connect_limit:
            ws = await connect(
                url,
                additional_headers=headers,
                compression=None,
                max_size=None,
                ping_interval=None,
                open_timeout=30,
            )
    except Exception as exc:  # noqa: BLE001 - every failure is a counted error
        stream.error = f"connect: {exc!r}"
        opened.set()
        return
    opened.set()
    try:
        await go.wait()
        await asyncio.sleep(delay)
        reply_id = None
        last_seq = 0
        client_id = uuid.uuid4().hex
        stream.sent_at = time.time()
        await ws.send(json.dumps({"type": "message.send", "text": message, "client_id": client_id}))
        async with asyncio.timeout(90):
            async for raw in ws:
                now = time.time()
                stream.bytes += len(raw)
                frame = json.loads(raw)
                kind = frame["type"]
                if kind == "message.delta":
                    seq = frame["seq"]
                    if seq <= last_seq:
                        continue
                    if seq > last_seq + 1:
                        stream.gaps += 1
                        await ws.send(
                            json.dumps(
                                {
                                    "type": "resume",
                                    "message_id": frame["message_id"],
                                    "last_seq": last_seq,
                                }
                            )
                        )
                        continue
                    last_seq = seq
                    stream.deltas += 1
                    stream.text += frame.get("text", "")
                    stream.recv.append((now, len(stream.text)))
                elif kind == "message.snapshot":
                    if frame["seq"] >= last_seq:
                        last_seq = frame["seq"]
                        stream.text = frame["text"]
                        stream.recv.append((now, len(stream.text)))
                elif kind == "message.created":
                    if frame["message"]["role"] == "assistant":
                        reply_id = frame["message"]["id"]
                elif kind == "message.completed" and frame["message_id"] == reply_id:
                    stream.completed = frame
                    break
                elif kind == "error":
                    stream.error = f"error frame: {frame.get('code')}"
                    break
    except TimeoutError:
        stream.error = "timeout waiting for the reply"
    except Exception as exc:  # noqa: BLE001
        stream.error = f"socket: {exc!r}"
    return ws


# ---------------------------------------------------------------------------
# Process CPU and memory


class Meter:
    """CPU seconds and peak RSS of a set of processes over a phase."""

    def __init__(self, pids: list[int]) -> None:
        import psutil

        self.procs = [psutil.Process(pid) for pid in pids]
        self.peak_rss = 0
        self._task: asyncio.Task | None = None

    def rss(self) -> int:
        return sum(p.memory_info().rss for p in self.procs)

    def cpu(self) -> float:
        total = 0.0
        for p in self.procs:
            t = p.cpu_times()
            total += t.user + t.system
        return total

    async def _sample(self) -> None:
        while True:
            self.peak_rss = max(self.peak_rss, self.rss())
            await asyncio.sleep(0.05)

    def start(self) -> None:
        self.cpu0, self.wall0 = self.cpu(), time.monotonic()
        self.peak_rss = self.rss()
        self._task = asyncio.create_task(self._sample())

    async def stop(self) -> float:
        """CPU use over the phase, in cores."""
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        wall = time.monotonic() - self.wall0
        return (self.cpu() - self.cpu0) / wall if wall > 0 else 0.0


def redis_pids() -> list[int]:
    import psutil

    return [p.pid for p in psutil.process_iter(["name"]) if p.info["name"] == "redis-server"]


# ---------------------------------------------------------------------------
# The site


@dataclass
class Site:
    processes: int
    ports: list[int]
    procs: list[subprocess.Popen]
    env: dict[str, str]
    var_dir: Path
    cookie: str
    conversations: list[str]


def site_env(processes: int, var_dir: Path, fake_port: int) -> dict[str, str]:
    env = bench_site_env(
        var_dir,
        secret_key="bench-streams",
        ANTHROPIC_BASE_URL=f"http://127.0.0.1:{fake_port}",
        CLAUDE_MAX_RETRIES="0",
        # Every stream is one user's: lift the per-user rate limit for the load test.
        USAGE_RATE_LIMIT_PER_MINUTE="100000",
        LOG_LEVEL="WARNING",
        **({"CHAT_COALESCE_SECONDS": str(COALESCE)} if COALESCE is not None else {}),
    )
    if processes == 1:
        env["DATABASE_URL"] = f"sqlite:///{var_dir / 'db.sqlite3'}"
        env["REDIS_URL"] = ""
    else:
        env["DATABASE_URL"] = f"{PG_URL}/{PG_DB}"
        env["REDIS_URL"] = REDIS_URL
        env["CHANNEL_LAYER_PREFIX"] = "bench"
    return env


def run(cmd: list[str], env: dict[str, str] | None = None) -> str:
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def backends_reset(processes: int) -> None:
    if processes == 1:
        return
    psql = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-q", "-c"]
    run([*psql, f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)"])
    run([*psql, f"CREATE DATABASE {PG_DB}"])
    run(["redis-cli", "-u", REDIS_URL.split("?")[0], "FLUSHDB"])


def backends_drop(processes: int) -> None:
    if processes == 1:
        return
    with contextlib.suppress(RuntimeError):
        run(
            [
                "psql",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-q",
                "-c",
                f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)",
            ]
        )
        run(["redis-cli", "-u", REDIS_URL.split("?")[0], "FLUSHDB"])


async def site_start(processes: int, n: int, fake_port: int) -> Site:
    var_dir = Path(tempfile.mkdtemp(prefix="bench-streams-"))
    env = site_env(processes, var_dir, fake_port)
    backends_reset(processes)
    run([PYTHON, "manage.py", "migrate", "--noinput"], env)
    # N conversations for the streams, plus one warm-up per process.
    setup = json.loads(run([PYTHON, "-m", "bench.site_setup", str(n + processes)], env))
    ports = [free_port() for _ in range(processes)]
    procs = []
    for port in ports:
        log = (var_dir / f"daphne-{port}.log").open("wb")
        cmd = [PYTHON, "-m", "chatsite.web", "-b", "127.0.0.1", "-p", str(port), "chatsite.asgi:application"]
        if shutil.which("taskset"):
            cmd = ["taskset", "-c", str(SITE_CORE), *cmd]
        procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
        log.close()
    for port, proc in zip(ports, procs, strict=True):
        await wait_port(port, proc)
    return Site(processes, ports, procs, env, var_dir, setup["cookie"], setup["conversations"])


def site_stop(site: Site, keep_logs: bool) -> None:
    for proc in site.procs:
        stop(proc)
    if keep_logs:
        for log in site.var_dir.glob("daphne-*.log"):
            shutil.copy(log, OUT_DIR / f"p{site.processes}-{log.name}")
    shutil.rmtree(site.var_dir, ignore_errors=True)
    backends_drop(site.processes)


def fetch_records(fake_port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{fake_port}/bench/records", timeout=60) as r:
        return json.loads(r.read())


# ---------------------------------------------------------------------------
# Analysis shared by the site runs and the SDK floor


def analyse(streams: list[Stream], records: dict[str, Any], tokens: int) -> dict[str, Any]:
    added_ttft, gaps, fps, sizes = [], [], [], []
    # The added TTFT in two parts: send -> request at the fake, first chunk -> client.
    to_upstream, first_delivery = [], []
    timeline = []
    errors = lost_or_dup = seq_gaps = 0
    error_kinds: dict[str, int] = {}
    for s in streams:
        seq_gaps += s.gaps
        # The echo repeats the marker, then the words.
        expected = f"{s.marker} {expected_text(tokens)}"
        ends = [len(s.marker) + 1 + end for end in token_ends(tokens)]
        if s.completed is not None and s.completed.get("status") != "complete":
            s.error = s.error or f"reply {s.completed.get('status')}: {s.completed.get('error')}"
        if s.error:
            errors += 1
            kind = s.error.split(":")[0]
            error_kinds[kind] = error_kinds.get(kind, 0) + 1
            continue
        final = s.completed["text"] if s.completed is not None else s.text
        if s.text != expected or final != expected:
            lost_or_dup += 1
        record = records.get(s.marker)
        if not record or not record["emitted"] or not s.recv:
            errors += 1
            continue
        e_times = [t for t, _ in record["emitted"]]
        e_lens = [n for _, n in record["emitted"]]
        r_times = [t for t, _ in s.recv]
        r_lens = [n for _, n in s.recv]
        fake_ttft = e_times[0] - record["arrived"]
        added_ttft.append((r_times[0] - s.sent_at) - fake_ttft)
        to_upstream.append(record["arrived"] - s.sent_at)
        first_delivery.append(r_times[0] - e_times[0])
        timeline.append((s.sent_at, record["arrived"] - s.sent_at, r_times[0] - e_times[0]))
        for end in ends:
            emitted = first_at_or_after(e_times, e_lens, end)
            received = first_at_or_after(r_times, r_lens, end)
            if emitted is not None and received is not None:
                gaps.append(received - emitted)
        if s.deltas > 1 and r_times[-1] > r_times[0]:
            fps.append((s.deltas - 1) / (r_times[-1] - r_times[0]))
        sizes.append(s.bytes)
    return {
        "streams": len(streams),
        "added_ttft_ms": {q: ms(pct(added_ttft, q)) for q in (50, 95, 99)},
        "token_to_client_ms": {q: ms(pct(gaps, q)) for q in (50, 99)},
        "send_to_upstream_ms": {q: ms(pct(to_upstream, q)) for q in (50, 99)},
        "first_token_delivery_ms": {q: ms(pct(first_delivery, q)) for q in (50, 99)},
        # Per stream, in send order: (s after the first send, to upstream ms, first delivery ms).
        "t0": timeline[0][0] if timeline else None,
        "timeline": [
            (round(t - timeline[0][0], 3), ms(up), ms(first))
            for t, up, first in sorted(timeline)
        ]
        if timeline
        else [],
        "frames_per_s_per_stream": round(sum(fps) / len(fps), 1) if fps else None,
        "bytes_per_answer": int(sum(sizes) / len(sizes)) if sizes else None,
        "errors": errors,
        "lost_or_duplicated": lost_or_dup,
        "seq_gaps": seq_gaps,
        "error_kinds": error_kinds,
        "error_examples": sorted({s.error for s in streams if s.error})[:5],
    }


def echo_message(marker: str, tps: float, tokens: int) -> str:
    return f"[[fake echo=1 tps={tps:g} ttft_ms={FAKE_TTFT_MS}]] {marker} {expected_text(tokens)}"


# ---------------------------------------------------------------------------
# One site run


async def site_run(
    processes: int,
    n: int,
    tps: float,
    tokens: int,
    ramp: float,
    fake: subprocess.Popen,
    fake_port: int,
    run_id: int,
    profile: bool,
) -> dict[str, Any]:
    import psutil

    site = await site_start(processes, n, fake_port)
    keep_logs = False
    try:
        web = Meter([p.pid for p in site.procs])
        # Warm each process up (imports, SDK client, connection pool) with one reply.
        cookie = site.cookie
        warm = [
            Stream(f"r{run_id}s{900000 + i}x", site.conversations[n + i], port)
            for i, port in enumerate(site.ports)
        ]
        gate = asyncio.Event()
        gate.set()
        limit = asyncio.Semaphore(50)
        await asyncio.gather(
            *(
                ws_client(w, cookie, echo_message(w.marker, 0, 5), asyncio.Event(), gate, 0, limit)
                for w in warm
            )
        )
        for w in warm:
            if w.error:
                raise RuntimeError(f"warm-up failed: {w.error}")
        await asyncio.sleep(0.5)
        rss_before = web.rss()

        # Open N idle sockets, split over the processes.
        streams = [
            Stream(f"r{run_id}s{i}x", site.conversations[i], site.ports[i % processes])
            for i in range(n)
        ]
        go = asyncio.Event()
        opened = [asyncio.Event() for _ in streams]
        tasks = [
            asyncio.create_task(
                ws_client(
                    s,
                    cookie,
                    echo_message(s.marker, tps, tokens),
                    opened[i],
                    go,
                    ramp * i / max(1, n - 1),
                    limit,
                )
            )
            for i, s in enumerate(streams)
        ]
        await asyncio.gather(*(o.wait() for o in opened))
        await asyncio.sleep(1.0)
        rss_idle = web.rss()

        me = psutil.Process()
        fake_proc = psutil.Process(fake.pid)
        redis = Meter(redis_pids()) if processes > 1 else None
        me_cpu0, fake_cpu0 = sum(me.cpu_times()[:2]), sum(fake_proc.cpu_times()[:2])
        wall0 = time.monotonic()
        web.start()
        if redis:
            redis.start()
        profiler = None
        if profile and shutil.which("py-spy", path=str(Path(PYTHON).parent)) is not None:
            profiler = subprocess.Popen(
                [
                    str(Path(PYTHON).with_name("py-spy")),
                    "record",
                    "--pid",
                    str(site.procs[0].pid),
                    "--duration",
                    str(int(ramp + tokens / tps + 2)),
                    "--rate",
                    "200",
                    "--gil",  # on-CPU time only: threads waiting on I/O or locks are not counted
                    "--format",
                    "raw",
                    "-o",
                    str(OUT_DIR / f"profile-p{processes}-n{n}.txt"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
        go.set()
        with collector_paused():
            sockets = await asyncio.gather(*tasks)
        site_cpu = await web.stop()
        wall = time.monotonic() - wall0
        harness_cpu = (sum(me.cpu_times()[:2]) - me_cpu0) / wall
        fake_cpu = (sum(fake_proc.cpu_times()[:2]) - fake_cpu0) / wall
        redis_cpu = await redis.stop() if redis else None
        if profiler:
            profiler.wait(timeout=60)
        for ws in sockets:
            if ws is not None:
                with contextlib.suppress(Exception):
                    await ws.close()
        records = fetch_records(fake_port)
        result = analyse(streams, records, tokens)
        keep_logs = bool(result["errors"] or result["lost_or_duplicated"])
        result.update(
            kind="site",
            processes=processes,
            n=n,
            tps=tps,
            tokens=tokens,
            ramp_s=ramp,
            sends_per_s=round((n - 1) / ramp, 1) if ramp else None,
            wall_s=round(wall, 2),
            coalesce_s=COALESCE,
            site_cpu_cores=round(site_cpu, 2),
            site_peak_rss_mb=round(web.peak_rss / 2**20, 1),
            site_rss_idle_mb=round(rss_idle / 2**20, 1),
            memory_per_socket_kb=round((rss_idle - rss_before) / n / 1024, 1),
            harness_cpu_cores=round(harness_cpu, 2),
            fake_cpu_cores=round(fake_cpu, 2),
            redis_cpu_cores=round(redis_cpu, 2) if redis_cpu is not None else None,
        )
        return result
    finally:
        site_stop(site, keep_logs)


# ---------------------------------------------------------------------------
# The floor: the same streams straight from the fake with the SDK


async def sdk_run(
    n: int, tps: float, tokens: int, ramp: float, fake_port: int, run_id: int
) -> dict:
    import anthropic
    import psutil

    # The transport the site's gateway uses (aiohttp).
    client = anthropic.AsyncAnthropic(
        api_key="bench",
        base_url=f"http://127.0.0.1:{fake_port}",
        max_retries=0,
        http_client=anthropic.DefaultAioHttpClient(),
    )
    streams = [Stream(f"r{run_id}s{i}x", "", 0) for i in range(n)]

    async def one(s: Stream, delay: float) -> None:
        await asyncio.sleep(delay)
        s.sent_at = time.time()
        try:
            response = await client.messages.create(
                model="claude-sonnet-5-5",
                max_tokens=4096,
                messages=[{"role": "user", "content": echo_message(s.marker, tps, tokens)}],
                stream=True,
            )
            async with response:
                async for event in response:
                    if event.type == "content_block_delta" and event.delta.type == "text_delta":
                        s.deltas += 1
                        s.text += event.delta.text
                        s.recv.append((time.time(), len(s.text)))
        except Exception as exc:  # noqa: BLE001
            s.error = repr(exc)

    me = psutil.Process()
    cpu0, wall0 = sum(me.cpu_times()[:2]), time.monotonic()
    with collector_paused():
        await asyncio.gather(*(one(s, ramp * i / max(1, n - 1)) for i, s in enumerate(streams)))
    wall = time.monotonic() - wall0
    harness_cpu = (sum(me.cpu_times()[:2]) - cpu0) / wall
    await client.close()
    result = analyse(streams, fetch_records(fake_port), tokens)
    result.update(
        kind="sdk-floor",
        processes=0,
        n=n,
        tps=tps,
        tokens=tokens,
        ramp_s=ramp,
        sends_per_s=round((n - 1) / ramp, 1) if ramp else None,
        wall_s=round(wall, 2),
        harness_cpu_cores=round(harness_cpu, 2),
        bytes_per_answer=None,
    )
    return result


# ---------------------------------------------------------------------------


COLUMNS = [
    ("run", lambda r: "SDK floor" if r["kind"] == "sdk-floor" else f"site x{r['processes']}"),
    ("N", lambda r: r["n"]),
    ("sends/s", lambda r: r.get("sends_per_s")),
    ("+ttft p50", lambda r: r["added_ttft_ms"][50]),
    ("p95", lambda r: r["added_ttft_ms"][95]),
    ("p99", lambda r: r["added_ttft_ms"][99]),
    ("tok->cli p50", lambda r: r["token_to_client_ms"][50]),
    ("p99", lambda r: r["token_to_client_ms"][99]),
    ("fps/str", lambda r: r["frames_per_s_per_stream"]),
    ("B/answer", lambda r: r.get("bytes_per_answer")),
    ("site CPU", lambda r: r.get("site_cpu_cores")),
    ("peak MB", lambda r: r.get("site_peak_rss_mb")),
    ("KB/sock", lambda r: r.get("memory_per_socket_kb")),
    ("harness CPU", lambda r: r.get("harness_cpu_cores")),
    ("fake CPU", lambda r: r.get("fake_cpu_cores")),
    ("redis CPU", lambda r: r.get("redis_cpu_cores")),
    ("errors", lambda r: r["errors"]),
    ("lost/dup", lambda r: r["lost_or_duplicated"]),
    ("gaps", lambda r: r["seq_gaps"]),
]


def table(results: list[dict]) -> str:
    rows = [[name for name, _ in COLUMNS]]
    for r in results:
        rows.append(["-" if (v := get(r)) is None else str(v) for _, get in COLUMNS])
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", default="50,200,500", help="concurrent streams, comma-separated")
    parser.add_argument("--tps", type=float, default=50, help="fake tokens/s per stream")
    parser.add_argument("--tokens", type=int, default=200, help="tokens per answer")
    parser.add_argument(
        "--processes", default="1,2", help="daphne processes: 1 (SQLite), 2 (PG+Redis)"
    )
    parser.add_argument(
        "--ramp",
        type=float,
        default=None,
        help="spread the sends over this many s (default: one answer's duration, tokens/tps)",
    )
    parser.add_argument("--no-floor", action="store_true", help="skip the SDK floor runs")
    parser.add_argument(
        "--profile", action="store_true", help="py-spy the first daphne (raw stacks)"
    )
    parser.add_argument(
        "--coalesce", type=float, default=None, help="CHAT_COALESCE_SECONDS (default: the site's)"
    )
    args = parser.parse_args()
    if args.ramp is None:
        args.ramp = args.tokens / args.tps
    global COALESCE
    COALESCE = args.coalesce
    sizes = [int(x) for x in args.n.split(",")]
    process_counts = [int(x) for x in args.processes.split(",")]

    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hasattr(os, "sched_setaffinity") and os.cpu_count() and os.cpu_count() > 1:
        os.sched_setaffinity(0, {HARNESS_CORE})
    OUT_DIR.mkdir(parents=True, exist_ok=True)

    fake_port = free_port()
    fake_env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "chatsite.settings",
        "DJANGO_DEBUG": "true",
        "CHAT_VAR_DIR": tempfile.mkdtemp(prefix="bench-fake-"),
    }
    fake = subprocess.Popen(
        [PYTHON, "-m", "bench.fake_recorder", "--port", str(fake_port), "--tps", str(args.tps)],
        cwd=ROOT,
        env=fake_env,
    )
    results: list[dict] = []
    run_id = 0
    try:
        await wait_port(fake_port, fake)
        for n in sizes:
            if not args.no_floor:
                run_id += 1
                print(f"SDK floor, N={n} ...", flush=True)
                results.append(
                    await sdk_run(n, args.tps, args.tokens, args.ramp, fake_port, run_id)
                )
            for processes in process_counts:
                run_id += 1
                print(f"site x{processes}, N={n} ...", flush=True)
                try:
                    results.append(
                        await site_run(
                            processes,
                            n,
                            args.tps,
                            args.tokens,
                            args.ramp,
                            fake,
                            fake_port,
                            run_id,
                            args.profile,
                        )
                    )
                except Exception as exc:  # noqa: BLE001 - one broken run must not lose the rest
                    print(f"  run failed: {exc}", flush=True)
                    results.append(
                        {
                            "kind": "site",
                            "processes": processes,
                            "n": n,
                            "tps": args.tps,
                            "tokens": args.tokens,
                            "failed": str(exc),
                        }
                    )
    finally:
        stop(fake)
        shutil.rmtree(fake_env["CHAT_VAR_DIR"], ignore_errors=True)
    good = [r for r in results if "failed" not in r]
    print()
    print(
        f"T={args.tps:g} tokens/s per stream, {args.tokens} tokens per answer, "
        f"fake ttft {FAKE_TTFT_MS} ms, times in ms"
    )
    print(table(good))
    out = OUT_DIR / "streams.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"\nSaved {out.relative_to(ROOT)}")
    failed = [r for r in results if "failed" in r or r.get("errors") or r.get("lost_or_duplicated")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
