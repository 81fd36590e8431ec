"""Can the second test pass reach PostgreSQL and Redis?

Exit 0: both reachable, run the pass. Exit 3: one is missing and CI is not set,
so the pass is skipped with a loud line. Exit 1: missing under CI, a failure.
"""

from __future__ import annotations

import os
import sys

import psycopg
import redis


def main() -> int:
    problems = []
    database_url = os.environ["DATABASE_URL"]
    redis_url = os.environ["REDIS_URL"]
    try:
        psycopg.connect(database_url, connect_timeout=3).close()
    except Exception as exc:  # noqa: BLE001 - any failure means unreachable
        problems.append(f"PostgreSQL at {database_url.split('@')[-1]}: {exc}".strip())
    try:
        redis.Redis.from_url(redis_url, socket_connect_timeout=3).ping()
    except Exception as exc:  # noqa: BLE001
        problems.append(f"Redis at {redis_url.split('@')[-1]}: {exc}")
    if not problems:
        return 0
    banner = "=" * 78
    print(banner, file=sys.stderr)
    for problem in problems:
        print(f"!!! UNREACHABLE {problem}", file=sys.stderr)
    if os.environ.get("CI"):
        print("!!! CI is set: a missing server fails the run.", file=sys.stderr)
        print(banner, file=sys.stderr)
        return 1
    print("!!! SKIPPED the PostgreSQL + Redis pass (real_backends tests).", file=sys.stderr)
    print(banner, file=sys.stderr)
    return 3


if __name__ == "__main__":
    sys.exit(main())
