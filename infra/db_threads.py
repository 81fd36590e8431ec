"""Where the web process runs its blocking database calls: a pool of threads.

asgiref runs every "thread-sensitive" call of a process (Channels'
`database_sync_to_async`, `sync_to_async` by default) in one shared thread. On
PostgreSQL a send holds that thread for 6.5 ms at 50 streams and 13-17 ms at
200 (2-3 ms of it CPU; the rest is waiting on round trips and the commit's WAL
flush), and every other socket's and reply's database call waits behind it: the
thread, not the CPU, caps how many replies a process can start. The socket's
and the reply's database calls run here instead, in `DATABASE_THREADS` threads,
each with its own connection (so a process holds up to that many).

On SQLite the default is one thread: it takes one writer at a time whatever
happens, and writers in parallel only wait in its busy handler, sleeping."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections

P = ParamSpec("P")
R = TypeVar("R")

_executor: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(
            max_workers=settings.DATABASE_THREADS, thread_name_prefix="database"
        )
    return _executor


def db_async(func: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """`func`, blocking database work, as a coroutine function run in the pool.

    Connections past their age or broken are closed before and after, as
    Channels' `database_sync_to_async` does.
    """

    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        close_old_connections()
        try:
            return func(*args, **kwargs)
        finally:
            close_old_connections()

    @functools.wraps(func)
    async def call(*args: P.args, **kwargs: P.kwargs) -> R:
        return await sync_to_async(run, thread_sensitive=False, executor=_pool())(*args, **kwargs)

    return call
