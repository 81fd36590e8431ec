"""A batch summary job over N conversations against the fake (numbers, not a test).

    .venv/bin/python bench/batch.py [--conversations 10000] [--pg] [--redis] [--batch-seconds 2]

A fresh var folder (SQLite there, or with --pg a fresh PostgreSQL database
`teamchat_bench_batch`), `seed_demo --conversations N`, the standalone fake
(`manage.py fakeclaude`, so the worker talks HTTP to it as to the API) and one
Celery worker (`-P solo`, the filesystem broker, or Redis with --redis). The job
is started in this process (`summary_job_create`, as the team page does), and
the worker builds, submits, polls and ingests it.

Reports, from the rows' own timestamps:
- build + submit: job created -> its last batch stored as submitted;
- ingest: the first batch seen ended -> the job ended (results streamed,
  stored and billed a chunk per transaction);
- ledger rows written per second over the ingest;
- peak worker memory: the worker's VmHWM (peak resident set) from /proc, and
  its RSS sampled every 0.1 s;
- the totals (summaries, ledger rows, cost) as a check that each conversation
  was stored and billed once.
Writes build/bench/batch.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.site_env import bench_site_env, free_port  # noqa: E402

PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else sys.executable
OUT_DIR = ROOT / "build" / "bench"
PG_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432")
PG_DB = "teamchat_bench_batch"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
QUEUE = "bench-batch"


def _peak_kib(pid: int) -> int:
    """VmHWM: the process's peak resident set so far (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


class RssSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_kib = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        import psutil

        process = psutil.Process(self.pid)
        while not self.stopped.wait(0.1):
            try:
                self.peak_kib = max(self.peak_kib, process.memory_info().rss // 1024)
            except psutil.Error:
                return


def _psql(sql: str) -> None:
    subprocess.run(["psql", f"{PG_URL}/postgres", "-q", "-c", sql], check=True, capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--pg", action="store_true", help="PostgreSQL instead of SQLite")
    parser.add_argument("--redis", action="store_true", help="Redis broker instead of files")
    parser.add_argument("--batch-seconds", type=float, default=2.0)
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args()

    var = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    port = free_port()
    settings = {
        "LOG_LEVEL": "WARNING",
        "FAKE_CLAUDE_BATCH_SECONDS": str(args.batch_seconds),
        "FAKE_CLAUDE_BATCHES_DIR": str(var / "fake-batches"),
        "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{port}",
        "ANTHROPIC_API_KEY": "bench-key",
        "SUMMARIES_POLL_FIRST_SECONDS": "1",
        "SUMMARIES_POLL_MAX_SECONDS": "2",
        "CHANNEL_LAYER_PREFIX": "benchbatch",
        "CELERY_QUEUE": QUEUE,
    }
    if args.pg:
        _psql(f"DROP DATABASE IF EXISTS {PG_DB}")
        _psql(f"CREATE DATABASE {PG_DB}")
        settings["DATABASE_URL"] = f"{PG_URL}/{PG_DB}"
    if args.redis:
        settings["REDIS_URL"] = REDIS_URL
    env = bench_site_env(
        var, secret_key="bench-batch-secret-key-0123456789-abcdefghijklmnop", **settings
    )
    children: list[subprocess.Popen] = []
    try:
        subprocess.run(
            [PYTHON, "manage.py", "migrate", "--noinput"],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
        t0 = time.monotonic()
        subprocess.run(
            [PYTHON, "manage.py", "seed_demo", "--conversations", str(args.conversations)],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
        seed_seconds = time.monotonic() - t0
        fake = subprocess.Popen(
            [
                PYTHON,
                "manage.py",
                "fakeclaude",
                "--port",
                str(port),
                "--batch-seconds",
                str(args.batch_seconds),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(var / "fake.log").open("w"),
        )
        children.append(fake)
        worker_log = var / "worker.log"
        worker = subprocess.Popen(
            [
                PYTHON,
                "-m",
                "celery",
                "-A",
                "chatsite",
                "worker",
                "-P",
                "solo",
                "-Q",
                QUEUE,
                "--loglevel=WARNING",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            cwd=ROOT,
            env=env,
            stdout=worker_log.open("w"),
            stderr=subprocess.STDOUT,
        )
        children.append(worker)
        sampler = RssSampler(worker.pid)
        sampler.start()

        # This process starts the job, as the team page would, on the same settings.
        os.environ.update(env)
        import django

        django.setup()
        from django.db.models import Count, Max, Min, Sum

        from accounts.models import Team, User
        from summaries import services
        from summaries.models import Summary, SummaryBatch
        from usage.models import ApiCall

        time.sleep(3)  # the worker's start
        job = services.summary_job_create(
            team=Team.objects.get(slug="acme"), actor=User.objects.get(username="alice")
        )
        deadline = time.monotonic() + args.timeout
        while True:
            job.refresh_from_db()
            if not job.is_active:
                break
            if worker.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(
                    "the worker died or the job timed out:\n" + worker_log.read_text()[-3000:]
                )
            time.sleep(0.5)
        peak_kib = _peak_kib(worker.pid)
        sampler.stopped.set()
        batches = SummaryBatch.objects.filter(job=job).aggregate(
            n=Count("id"),
            submitted=Max("submitted_at"),
            first_ended=Min("ended_at"),
            rows=Sum("request_count"),
            bytes=Sum("byte_size"),
        )
        calls = ApiCall.objects.filter(purpose="summary").count()
        build_submit = (batches["submitted"] - job.created_at).total_seconds()
        ingest = (job.ended_at - batches["first_ended"]).total_seconds()
        result = {
            "conversations": args.conversations,
            "database": "postgresql" if args.pg else "sqlite",
            "broker": "redis" if args.redis else "filesystem",
            "fake_batch_seconds": args.batch_seconds,
            "seed_seconds": round(seed_seconds, 2),
            "batches": batches["n"],
            "batch_bytes": batches["bytes"],
            "build_submit_seconds": round(build_submit, 2),
            "ingest_seconds": round(ingest, 2),
            "ledger_rows": calls,
            "ledger_rows_per_second": round(calls / ingest, 1) if ingest else None,
            "summaries": Summary.objects.filter(job=job).count(),
            "cost_usd": f"{job.cost_usd:.6f}",
            "worker_peak_rss_mib": round(peak_kib / 1024, 1),
            "worker_sampled_rss_mib": round(sampler.peak_kib / 1024, 1),
            "status": job.status,
        }
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        (OUT_DIR / "batch.json").write_text(json.dumps(result, indent=2))
        print(json.dumps(result, indent=2))
        return 0
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
                try:
                    child.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
        if "django.db" in sys.modules:
            from django.db import connections

            connections.close_all()
        if args.pg:
            _psql(f"DROP DATABASE IF EXISTS {PG_DB}")
        shutil.rmtree(var, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
