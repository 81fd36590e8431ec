"""Uploads through the HTTP endpoint, checked by two Celery workers (numbers, not a test).

    .venv/bin/python bench/uploads.py [--uploads 100] [--concurrency 8] [--workers 2]

On PostgreSQL and Redis (both local): a fresh database, one web process
(`chatsite.web`), N workers (`celery worker -P solo`, one process each, so each
one's memory is its own; each check runs in a child process of its worker,
`conversations.attachments.checks`). The mix, per the issue: 5 MB JPEGs and
20-page PDFs, one 100-page PDF of ~30 MB and one 8000 x 8000 PNG.

Reports: the upload request's p50/p99 (`POST /c/<id>/attachments/` must answer
202 before any checking), the time from the request to `GET /attachments/<id>/`
saying ready (p50/p99), the peak memory (RSS) of the web process, of each worker
and of each worker with its check children, and files per second per worker.
Writes build/bench/uploads.json.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.site_env import bench_site_env, free_port, wait_port  # noqa: E402

PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else sys.executable
OUT_DIR = ROOT / "build" / "bench"
PG_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432")
PG_DB = "teamchat_bench_uploads"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")


# --- The files ---------------------------------------------------------------------


def jpeg_5mb(seed: int) -> bytes:
    """A photo-sized JPEG of ~5 MB (noise does not compress, like a sharp photo)."""
    from PIL import Image

    rng = random.Random(seed)
    noise = Image.frombytes("RGB", (1400, 1000), rng.randbytes(1400 * 1000 * 3))
    image = noise.resize((2600, 1950))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=97)
    return buffer.getvalue()


def pdf_of_pages(pages: int, *, page_bytes: int, seed: int) -> bytes:
    """A PDF of scanned-looking pages (one JPEG each), about `page_bytes` a page."""
    from PIL import Image

    rng = random.Random(seed)
    side = int((page_bytes / 1.2) ** 0.5)
    frames = [
        Image.frombytes("L", (side // 2, side // 2), rng.randbytes((side // 2) ** 2))
        .resize((side, side))
        .convert("RGB")
        for _ in range(min(pages, 10))
    ]
    buffer = io.BytesIO()
    sequence = [frames[i % len(frames)] for i in range(pages)]
    sequence[0].save(buffer, "PDF", save_all=True, append_images=sequence[1:], quality=90)
    return buffer.getvalue()


def png_8000() -> bytes:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (8000, 8000), (240, 240, 255))
    draw = ImageDraw.Draw(image)
    for i in range(0, 8000, 50):
        draw.line([(0, i), (8000, 8000 - i)], fill=(i % 255, 100, 200), width=3)
        draw.ellipse([i, i, i + 300, i + 200], outline=(0, i % 255, 0), width=4)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=6)
    return buffer.getvalue()


def corpus(total: int, folder: Path) -> list[tuple[str, Path]]:
    """(upload name, file) for `total` uploads: the two big ones, then JPEGs and
    20-page PDFs in turn. Distinct JPEGs and PDFs are reused (the check cannot tell)."""
    files: list[tuple[str, Path]] = []

    def put(name: str, data: bytes) -> Path:
        path = folder / name
        path.write_bytes(data)
        return path

    big_pdf = put("book.pdf", pdf_of_pages(100, page_bytes=620_000, seed=1))
    big_png = put("poster.png", png_8000())
    jpegs = [put(f"photo{i}.jpg", jpeg_5mb(i)) for i in range(4)]
    pdfs = [
        put(f"slides{i}.pdf", pdf_of_pages(20, page_bytes=120_000, seed=10 + i)) for i in range(4)
    ]
    files += [("book.pdf", big_pdf), ("poster.png", big_png)]
    for i in range(total - 2):
        source = jpegs[i % 4] if i % 2 == 0 else pdfs[i % 4]
        files.append((f"{source.stem}-{i}{source.suffix}", source))
    random.Random(7).shuffle(files)
    return files


# --- The site ----------------------------------------------------------------------


def run(cmd: list[str], env: dict[str, str] | None = None) -> str:
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def site_env(var_dir: Path) -> dict[str, str]:
    return bench_site_env(
        var_dir,
        secret_key="bench-uploads",
        DATABASE_URL=f"{PG_URL}/{PG_DB}",
        REDIS_URL=REDIS_URL,
        CHANNEL_LAYER_PREFIX="bench-uploads",
        # Every upload is one person's: room for all of them.
        ATTACHMENT_QUOTA_BYTES=str(10 * 1024**3),
        # The 30 MB PDF is past what a request carries inline (base64): it goes
        # by Files API id, uploaded once by the worker (to the fake's store).
        CLAUDE_FILES_API="true",
        FAKE_CLAUDE_FILES_DIR=str(var_dir / "fake-claude-files"),
        LOG_LEVEL="INFO",
    )



class Peaks:
    """Peak RSS of processes (and of each with its children), sampled every 50 ms."""

    def __init__(self, named: dict[str, int]) -> None:
        import psutil

        self.procs = {name: psutil.Process(pid) for name, pid in named.items()}
        self.own = dict.fromkeys(named, 0)
        self.tree = dict.fromkeys(named, 0)
        self.child_max = dict.fromkeys(named, 0)
        self._task: asyncio.Task | None = None

    def sample(self) -> None:
        import psutil

        for name, proc in self.procs.items():
            try:
                own = proc.memory_info().rss
                children = 0
                for child in proc.children(recursive=True):
                    with_child = child.memory_info().rss
                    children += with_child
                    self.child_max[name] = max(self.child_max[name], with_child)
            except psutil.Error:
                continue
            self.own[name] = max(self.own[name], own)
            self.tree[name] = max(self.tree[name], own + children)

    async def _loop(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(0.05)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 1)


# --- The run -------------------------------------------------------------------------


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    import httpx2

    var_dir = Path(tempfile.mkdtemp(prefix="bench-uploads-"))
    files_dir = var_dir / "files"
    files_dir.mkdir()
    print("making the files ...", flush=True)
    uploads = corpus(args.uploads, files_dir)
    env = site_env(var_dir)
    psql = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-q", "-c"]
    run([*psql, f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)"])
    run([*psql, f"CREATE DATABASE {PG_DB}"])
    run(["redis-cli", "-u", REDIS_URL, "FLUSHDB"])
    run([PYTHON, "manage.py", "migrate", "--noinput"], env)
    setup = json.loads(run([PYTHON, "-m", "bench.site_setup", "1"], env))
    conversation = setup["conversations"][0]

    port = free_port()
    procs: dict[str, subprocess.Popen] = {}
    logs: dict[str, Path] = {}
    for name, cmd in [
        (
            "web",
            [
                PYTHON,
                "-m",
                "chatsite.web",
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                "chatsite.asgi:application",
            ],
        ),
        *[
            (
                f"worker{i}",
                [
                    PYTHON,
                    "-m",
                    "celery",
                    "-A",
                    "chatsite",
                    "worker",
                    "-P",
                    "solo",
                    "-n",
                    f"bench{i}@%h",
                    "--loglevel=INFO",
                    "--without-gossip",
                    "--without-mingle",
                ],
            )
            for i in range(1, args.workers + 1)
        ],
    ]:
        logs[name] = var_dir / f"{name}.log"
        with logs[name].open("wb") as log:
            procs[name] = subprocess.Popen(
                cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )
    try:
        await wait_port(port, procs["web"])
        for name in procs:
            if name.startswith("worker"):
                while "ready." not in logs[name].read_text(errors="replace"):
                    if procs[name].poll() is not None:
                        raise RuntimeError(f"{name} exited: {logs[name].read_text()[-2000:]}")
                    await asyncio.sleep(0.2)
        peaks = Peaks({name: proc.pid for name, proc in procs.items()})
        peaks.start()
        base = f"http://127.0.0.1:{port}"
        # Cookies in the jar (not a fixed header), so the CSRF cookie the page sets goes back.
        session_cookies = dict(
            part.strip().split("=", 1) for part in setup["cookie"].split(";") if "=" in part
        )
        async with httpx2.AsyncClient(base_url=base, cookies=session_cookies, timeout=300) as client:
            page = await client.get(f"/c/{conversation}/")
            token = client.cookies.get("csrftoken") or re.search(
                r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text
            ).group(1)
            headers = {"X-CSRFToken": token, "Origin": base, "Referer": f"{base}/c/{conversation}/"}
            gate = asyncio.Semaphore(args.concurrency)
            poll_gate = asyncio.Semaphore(4)
            results: list[dict[str, Any]] = []

            async def one(name: str, path: Path) -> None:
                async with gate:
                    started = time.monotonic()
                    with path.open("rb") as file:
                        response = await client.post(
                            f"/c/{conversation}/attachments/",
                            files={"file": (name, file)},
                            headers=headers,
                        )
                    answered = time.monotonic()
                if response.status_code != 202:
                    results.append(
                        {"name": name, "error": response.status_code, "body": response.text[:300]}
                    )
                    return
                attachment_id = response.json()["id"]
                while True:
                    # Polls share a few connections: each request in flight is a
                    # database connection of the web process (as a browser's chips
                    # would be, had they no socket), and 100 at once exhaust PostgreSQL's.
                    async with poll_gate:
                        answer = await client.get(f"/attachments/{attachment_id}/")
                    if answer.status_code != 200:
                        results.append({"name": name, "error": answer.status_code,
                                        "body": answer.text[:300], "during": "status"})
                        return
                    status = answer.json()
                    if status["status"] != "checking":
                        break
                    await asyncio.sleep(0.1)
                results.append(
                    {
                        "name": name,
                        "size": path.stat().st_size,
                        "request_s": answered - started,
                        "ready_s": time.monotonic() - started,
                        "status": status["status"],
                        "reason": status.get("reason"),
                    }
                )

            wall_start = time.monotonic()
            await asyncio.gather(*(one(name, path) for name, path in uploads))
            wall = time.monotonic() - wall_start
        peaks.sample()
        await peaks.stop()
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for name, path in logs.items():
        shutil.copy(path, OUT_DIR / f"uploads-{name}.log")

    done = [r for r in results if "error" not in r]
    per_worker = {}
    for name, path in logs.items():
        if not name.startswith("worker"):
            continue
        text = path.read_text(errors="replace")
        durations = [
            float(s)
            for s in re.findall(r"attachment_check_task\[[^\]]+\] succeeded in ([\d.]+)s", text)
        ]
        child_peaks = [int(m) for m in re.findall(r"peak memory was (\d+) MB", text)]
        per_worker[name] = {
            "files": len(durations),
            "busy_s": round(sum(durations), 2),
            "files_per_s_busy": round(len(durations) / sum(durations), 2) if durations else None,
            "files_per_s_wall": round(len(durations) / wall, 2),
            "peak_rss_mb": round(peaks.own[name] / 2**20),
            "peak_rss_with_checks_mb": round(peaks.tree[name] / 2**20),
            "check_child_peak_mb (VmHWM, from its log)": max(child_peaks, default=None),
        }
    big = {r["name"]: r for r in done if r["name"] in ("book.pdf", "poster.png")}
    report = {
        "uploads": len(uploads),
        "ok": len(done),
        "errors": [r for r in results if "error" in r][:5],
        "statuses": {
            s: sum(1 for r in done if r["status"] == s) for s in {r["status"] for r in done}
        },
        "rejected": [(r["name"], r["reason"]) for r in done if r["status"] == "rejected"][:5],
        "concurrency": args.concurrency,
        "wall_s": round(wall, 2),
        "upload_request_ms": {
            "p50": ms(pct([r["request_s"] for r in done], 50)),
            "p99": ms(pct([r["request_s"] for r in done], 99)),
        },
        "time_to_ready_ms": {
            "p50": ms(pct([r["ready_s"] for r in done], 50)),
            "p99": ms(pct([r["ready_s"] for r in done], 99)),
        },
        "big_files_ready_ms": {name: ms(r["ready_s"]) for name, r in big.items()},
        "web_peak_rss_mb": round(peaks.own["web"] / 2**20),
        "workers": per_worker,
    }
    (OUT_DIR / "uploads.json").write_text(json.dumps(report, indent=2))
    shutil.rmtree(var_dir, ignore_errors=True)
    run([*psql, f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)"])
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--uploads", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    report = asyncio.run(bench(parser.parse_args()))
    print(json.dumps(report, indent=2))
    return 0 if report["ok"] == report["uploads"] else 1


if __name__ == "__main__":
    sys.exit(main())
