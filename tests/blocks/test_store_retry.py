"""The document store runs a transaction again when the database broke a deadlock.

Two threads lock two rows in opposite orders, so PostgreSQL or MariaDB must abort
one of them; ``DocumentStore.run`` runs the aborted one again and both succeed.
"""

from __future__ import annotations

import threading
import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from blocks import BlockStoreError, DocumentStore


@pytest.fixture
def server_url(store_url: str) -> str:
    """PostgreSQL and MariaDB only: SQLite serialises writers and cannot deadlock."""
    if store_url.startswith("sqlite"):
        pytest.skip("SQLite takes the write lock up front: no deadlock to break")
    return store_url


def _deadlock(
    store: DocumentStore, table: str
) -> tuple[list[int], list[BaseException]]:
    barrier = threading.Barrier(2, timeout=30)
    attempts = [0, 0]
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        first, second = (1, 2) if index == 0 else (2, 1)

        def work(conn: Connection) -> None:
            attempts[index] += 1
            conn.exec_driver_sql(f"UPDATE {table} SET n = n + 1 WHERE id = {first}")
            if attempts[index] == 1:
                barrier.wait()  # both hold their first row: a cycle is certain
            conn.exec_driver_sql(f"UPDATE {table} SET n = n + 1 WHERE id = {second}")

        try:
            store.run(work)
        except BaseException as exc:  # reported to the test thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return attempts, errors


def test_a_deadlocked_transaction_runs_again_and_both_succeed(server_url: str) -> None:
    """One of two deadlocked transactions is aborted, run again, and commits."""
    store = DocumentStore(server_url)
    table = f"deadlock_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(server_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, n INTEGER)"
            )
            conn.exec_driver_sql(f"INSERT INTO {table} VALUES (1, 0), (2, 0)")
        attempts, errors = _deadlock(store, table)
        assert errors == []
        assert sorted(attempts) == [1, 2]  # the aborted one ran a second time
        with engine.connect() as conn:
            counts = conn.exec_driver_sql(f"SELECT n FROM {table} ORDER BY id").all()
        assert [n for (n,) in counts] == [2, 2]
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
        engine.dispose()


def test_a_permanent_error_is_not_run_again(store_url: str) -> None:
    """An error that is not a deadlock is raised at once, as a BlockStoreError."""
    store = DocumentStore(store_url)
    calls = []

    def work(conn: Connection) -> None:
        calls.append(1)
        conn.exec_driver_sql("SELECT * FROM no_such_table_anywhere")

    with pytest.raises(BlockStoreError) as caught:
        store.run(work)
    assert caught.value.transient is False
    assert calls == [1]
