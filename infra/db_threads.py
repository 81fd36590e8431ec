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

import asyncio
import functools
import logging
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.db import close_old_connections, connections, transaction

logger = logging.getLogger(__name__)

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
    Channels' `database_sync_to_async` does. What `func` handed to
    `after_commit_on_loop` runs on the caller's event loop, in order, before
    this returns.
    """

    def run(*args: P.args, **kwargs: P.kwargs) -> tuple[R, list[AfterCommit]]:
        close_old_connections()
        _local.after_commit = collected = []
        try:
            return func(*args, **kwargs), collected
        finally:
            _local.after_commit = None
            close_old_connections()

    @functools.wraps(func)
    async def call(*args: P.args, **kwargs: P.kwargs) -> R:
        result, collected = await sync_to_async(run, thread_sensitive=False, executor=_pool())(
            *args, **kwargs
        )
        for coroutine_function in collected:
            try:
                await coroutine_function()
            except Exception:  # committed already: log, never undo or interrupt
                logger.exception("Work after a commit failed")
        return result

    return call


AfterCommit = Callable[[], Awaitable[None]]
_local = threading.local()


def after_commit_on_loop(coroutine_function: AfterCommit) -> None:
    """Run `coroutine_function()` on the web process's event loop once the current
    transaction commits (never if it rolls back), for work like telling sockets.

    In a `db_async` call it runs on the calling loop right after the call, with no
    extra hop (a send's three broadcasts cost a blocked thread and a loop trip
    each when sent from the thread: +5 ms at p50, +20 ms at p99 on the time to
    first token at 200 streams). Elsewhere (a view's thread, a task) it runs
    there and then, through `async_to_sync`, which waits for it.
    """

    def on_commit() -> None:
        collected = getattr(_local, "after_commit", None)
        if collected is not None:
            collected.append(coroutine_function)
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            async_to_sync(coroutine_function)()
            return
        # An event loop's own thread (a test's) cannot block: schedule it.
        task = asyncio.ensure_future(coroutine_function())
        _pending.add(task)
        task.add_done_callback(_pending.discard)

    transaction.on_commit(on_commit, robust=True)


# Strong references to work scheduled on a running loop (it keeps weak ones).
_pending: set[asyncio.Future] = set()


def request_connections_close(**kwargs: object) -> None:
    """At the end of an HTTP request, close the connections its thread opened.

    Under ASGI each request's synchronous code runs in a thread of its own that
    ends with the request. A persistent connection (CONN_MAX_AGE) opened there is
    left to the garbage collector, which the web process runs rarely (see
    chatsite/asgi.py), so PostgreSQL ran out of connections: 99 of 100 held by
    one web process after 100 uploads whose status was polled (measured,
    bench/uploads.py). The pool's threads live on and keep theirs. A connection
    inside an atomic block (a test's transaction) is not this request's to close.
    """
    if threading.current_thread().name.startswith("database"):
        return
    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            connection.close()
