"""The web process's database calls run side by side in a pool, not one after another."""

from __future__ import annotations

import asyncio
import threading

import pytest

from infra import db_threads


@pytest.fixture
def pool_of(settings, monkeypatch):
    def make(threads: int) -> None:
        settings.DATABASE_THREADS = threads
        monkeypatch.setattr(db_threads, "_executor", None)

    yield make
    if db_threads._executor is not None:
        db_threads._executor.shutdown(wait=False)


def _meet(barrier: threading.Barrier) -> str:
    barrier.wait()  # returns only once both calls are running at the same time
    return threading.current_thread().name


async def test_calls_of_two_sockets_run_at_the_same_time(pool_of):
    pool_of(2)
    barrier = threading.Barrier(2, timeout=5)
    names = await asyncio.gather(db_async_meet(barrier), db_async_meet(barrier))
    assert len(set(names)) == 2
    assert all(name.startswith("database") for name in names)


async def test_one_thread_runs_them_one_after_another(pool_of):
    """What SQLite gets by default; with it, the meeting above cannot happen."""
    pool_of(1)
    barrier = threading.Barrier(2, timeout=0.5)
    results = await asyncio.gather(
        db_async_meet(barrier), db_async_meet(barrier), return_exceptions=True
    )
    assert all(isinstance(r, threading.BrokenBarrierError) for r in results)


db_async_meet = db_threads.db_async(_meet)


def _in_thread(name: str, work) -> object:
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(work()), name=name)
    thread.start()
    thread.join()
    return result[0]


@pytest.mark.django_db(transaction=True)
@pytest.mark.real_backends
def test_a_requests_thread_closes_its_connection_when_the_request_ends():
    """Left open, each request's connection outlived its thread (PostgreSQL ran out)."""
    from django.db import connection

    def request(thread_kind: str):
        def work():
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            db_threads.request_connections_close()
            closed = connection.connection is None
            connection.close()
            return closed

        return _in_thread(thread_kind, work)

    assert request("ThreadSensitiveContext-1") is True
    # The pool's threads keep theirs for the next call.
    assert request("database_0") is False


@pytest.mark.django_db
def test_a_connection_in_a_transaction_is_left_open():
    from django.db import connection, transaction

    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        db_threads.request_connections_close()
        assert connection.connection is not None
