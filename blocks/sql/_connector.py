"""The ``SqlAlchemyConnector`` block: statements and fetches through a sync engine."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, ClassVar, Literal, Self, overload

from pydantic import Field, PrivateAttr, model_validator
from sqlalchemy.engine import Connection, CursorResult, Engine, Row

from blocks._block import Block
from blocks._instrument import event_payload, no_events
from blocks.sql._credentials import DatabaseCredentials
from blocks.sql._payload import OpenResults, call_payload, fetch_page
from blocks.sql._redact import bound_values, scrub_db_error
from blocks.sql._statements import (
    Operation,
    as_statement,
    connection_info_spelling,
    result_key,
)

__all__ = ["SqlAlchemyConnector", "scrubbed"]


@contextmanager
def scrubbed(credentials: DatabaseCredentials, parameters: Any) -> Iterator[None]:
    """Clean the message of any error raised inside, in place, then let it go.

    The error stays the same object; its message loses the statement, the bound
    values in ``parameters`` and the credentials' secrets.
    """
    try:
        yield
    except BaseException as exc:
        scrub_db_error(exc, [*bound_values(parameters), *credentials._secret_values()])
        if isinstance(exc, OSError):
            # asyncpg raises socket errors as they are, which name no server.
            target = credentials._target()
            where = target.get("server.address", "the database")
            if "server.port" in target:
                where = f"{where}:{target['server.port']}"
            exc.add_note(f"Connecting to {where} failed.")
        raise


@contextmanager
def _transaction(connection: Connection) -> Iterator[Connection]:
    """Commit on success, roll back on error, close the connection either way."""
    try:
        with connection.begin():
            yield connection
    finally:
        connection.close()


class SqlAlchemyConnector(Block):
    """Run statements against a database with a sync SQLAlchemy driver.

    ``execute`` and ``execute_many`` run a statement in a transaction of its own,
    committed when it succeeds. ``fetch_one``, ``fetch_many`` and ``fetch_all``
    page through one result: repeated calls with the same statement and
    parameters continue where the last one stopped, on a connection kept open for
    that result until ``reset_connections()`` or ``close()``. Use the connector as
    a context manager to close everything on exit.

    Statements are SQL strings, with bound parameters written ``:name``, or
    SQLAlchemy executables (``select(...)``, ``insert(...)``). Each call's event
    records the database (``db.system.name``, ``db.namespace``,
    ``server.address``, ``server.port``), the statement's verb
    (``db.operation.name``) and the rows returned or affected; never the
    statement's text or a bound value. Errors are SQLAlchemy's own exceptions,
    their messages cut to the driver's first line with bound values and the
    password masked.

    Attributes:
        credentials: The database and the login; a saved ``DatabaseCredentials``
            is related to every event (role ``nested-block``). Prefect's
            ``connection_info`` (a URL, URL parts or the block) and
            ``connect_args`` are accepted when the connector is built.
        fetch_size: Rows returned by ``fetch_many`` when no ``size`` is given.
        max_open_results: How many results fetch calls may hold partly read,
            each on a pooled connection (SQLAlchemy's default pool lends 15).
    """

    block_type_slug: ClassVar[str] = "sqlalchemy-connector"

    credentials: DatabaseCredentials
    fetch_size: int = Field(default=1, ge=1)
    max_open_results: int = Field(default=8, ge=1)

    _open: OpenResults = PrivateAttr(default_factory=OpenResults)

    @model_validator(mode="before")
    @classmethod
    def _prefect_spelling(cls, data: Any) -> Any:
        return connection_info_spelling(data)

    @model_validator(mode="after")
    def _sync_driver(self) -> Self:
        if self.credentials.is_async:
            raise ValueError(
                f"the driver {self.credentials.drivername} is an asyncio driver: use "
                "AsyncSqlAlchemyConnector, or a sync driver such as "
                "postgresql+psycopg"
            )
        return self

    def _engine(self) -> Engine:
        engine: Engine = self.credentials._engine()
        return engine

    # -- engine and connections --------------------------------------------------

    @event_payload(call_payload("connection"))
    def get_engine(self, **create_engine_kwargs: Any) -> Engine:
        """Return the credentials' engine, made on first use; see
        :meth:`DatabaseCredentials.get_engine`.

        Args:
            **create_engine_kwargs: Options of ``create_engine`` (``pool_size``,
                ``pool_pre_ping``, ``echo``...), used when the engine is made.
        """
        with scrubbed(self.credentials, None):
            engine: Engine = self.credentials._engine(**create_engine_kwargs)
            return engine

    @event_payload(call_payload("connection"))
    def get_client(
        self, client_type: Literal["engine", "connection"], **get_client_kwargs: Any
    ) -> Any:
        """Return the engine or a connection, as Prefect's ``get_client`` does.

        Args:
            client_type: ``"engine"`` for :meth:`get_engine` (the keyword
                arguments are its options), ``"connection"`` for
                :meth:`get_connection` (the keyword argument is ``begin``).

        Raises:
            ValueError: Another ``client_type``.
        """
        if client_type == "engine":
            return self.get_engine(**get_client_kwargs)
        if client_type == "connection":
            return self.get_connection(**get_client_kwargs)
        raise ValueError(
            f"client_type must be 'engine' or 'connection', not {client_type!r}"
        )

    @overload
    def get_connection(
        self, begin: Literal[True] = ...
    ) -> AbstractContextManager[Connection]: ...

    @overload
    def get_connection(self, begin: Literal[False]) -> Connection: ...

    @event_payload(call_payload("connection"))
    def get_connection(
        self, begin: bool = True
    ) -> Connection | AbstractContextManager[Connection]:
        """Open a connection now and return it.

        Args:
            begin: True (the default) returns a context manager that runs a
                transaction on the connection, committed when the block exits
                normally and rolled back on an error, and then closes it:
                ``with connector.get_connection() as conn: ...``. False returns
                the open ``Connection`` itself, for you to close.

        Either way the connection is opened during this call, so a login that
        fails, fails here; ``close()`` closes any connection still open.
        """
        with scrubbed(self.credentials, None):
            connection = self._engine().connect()
        self._open.track(connection)
        return _transaction(connection) if begin else connection

    @no_events
    def reset_connections(self) -> None:
        """Close the results that fetch calls page through, and their connections,
        and any connection from ``get_connection`` still open; fetch calls then
        start afresh."""
        results, connections = self._open.take()
        for result in results:
            result.close()
        for connection in connections:
            connection.close()

    @no_events
    def close(self) -> None:
        """Close every open result and connection and let go of the engine, which
        is disposed unless equal credentials still hold it.

        The connector remains usable: a later call takes an engine again.
        """
        try:
            self.reset_connections()
        finally:
            self.credentials.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- statements --------------------------------------------------------------

    def _run(
        self, operation: Operation, parameters: Any, options: Mapping[str, Any]
    ) -> CursorResult[Any]:
        """Run one statement in its own transaction, committed when it succeeds."""
        statement = as_statement(operation)
        with scrubbed(self.credentials, parameters), self._engine().connect() as conn:
            result = conn.execute(
                statement, parameters, execution_options=dict(options) or None
            )
            conn.commit()
        return result

    @event_payload(call_payload("execute"))
    def execute(
        self,
        operation: Operation,
        parameters: Mapping[str, Any] | None = None,
        **execution_options: Any,
    ) -> CursorResult[Any]:
        """Run a statement in a transaction of its own and commit it.

        Args:
            operation: A SQL string (bound parameters written ``:name``) or a
                SQLAlchemy executable.
            parameters: The bound values, by name.
            **execution_options: Passed to ``Connection.execute``.

        Returns:
            SQLAlchemy's result, whose ``rowcount`` says how many rows changed.

        Raises:
            sqlalchemy.exc.SQLAlchemyError: The database refused the statement or
                the connection (``OperationalError``, ``IntegrityError``...).
            ImportError: The driver is not installed; the message names the extra.
        """
        return self._run(operation, parameters, execution_options)

    @event_payload(call_payload("execute_many"))
    def execute_many(
        self,
        operation: Operation,
        seq_of_parameters: Sequence[Mapping[str, Any]],
        **execution_options: Any,
    ) -> CursorResult[Any]:
        """Run a statement once per parameter set, in one transaction, and commit.

        Args:
            operation: A SQL string or a SQLAlchemy executable.
            seq_of_parameters: One mapping of bound values per execution.
            **execution_options: Passed to ``Connection.execute``.
        """
        return self._run(operation, list(seq_of_parameters), execution_options)

    def _result(
        self,
        key: tuple[Any, ...],
        operation: Operation,
        parameters: Any,
        options: Mapping[str, Any],
    ) -> Any:
        """The open result for this key (run on first use), or ``EXHAUSTED``."""
        with self._open.lock:
            found = self._open.find(key)
            if found is not None:
                return found
            self._open.check_room(self.max_open_results, type(self).__name__)
            statement = as_statement(operation)
            with scrubbed(self.credentials, parameters):
                connection = self._engine().connect()
                try:
                    result = connection.execute(
                        statement, parameters, execution_options=dict(options) or None
                    )
                except BaseException:
                    connection.close()
                    raise
            if not result.returns_rows:
                # Fetching raises SQLAlchemy's ResourceClosedError; nothing to keep.
                connection.close()
                return result
            return self._open.add(key, connection, result, operation)

    def _release(self, key: tuple[Any, ...]) -> None:
        """The result of ``key`` is read to the end: give its connection back."""
        taken = self._open.release(key)
        if taken is not None:
            result, connection = taken
            result.close()
            connection.close()

    def _page(
        self,
        operation: Operation,
        parameters: Any,
        options: Mapping[str, Any],
        size: int | None,
    ) -> list[Row[Any]]:
        """Fetch ``size`` rows (all when None) of the statement's result; release
        its connection when the result has no more."""
        key = result_key(operation, parameters, options)
        result = self._result(key, operation, parameters, options)
        rows, ended = fetch_page(result, size)
        if ended:
            self._release(key)
        return rows

    @event_payload(call_payload("fetch_one"))
    def fetch_one(
        self,
        operation: Operation,
        parameters: Mapping[str, Any] | None = None,
        **execution_options: Any,
    ) -> Row[Any] | None:
        """Return the next row of the statement's result, or None past the end.

        Repeated fetch calls (any of them) with the same statement and parameters
        page through one result; ``reset_connections()`` starts over. The result
        holds a pooled connection until a fetch finds its end.
        """
        rows = self._page(operation, parameters, execution_options, 1)
        return rows[0] if rows else None

    @event_payload(call_payload("fetch_many"))
    def fetch_many(
        self,
        operation: Operation,
        parameters: Mapping[str, Any] | None = None,
        size: int | None = None,
        **execution_options: Any,
    ) -> list[Row[Any]]:
        """Return the next ``size`` rows (``fetch_size`` by default) of the result.

        An empty list, or fewer rows than asked, means the result is exhausted
        (and its connection back in the pool); see :meth:`fetch_one` for paging.
        """
        return self._page(
            operation, parameters, execution_options, size or self.fetch_size
        )

    @event_payload(call_payload("fetch_all"))
    def fetch_all(
        self,
        operation: Operation,
        parameters: Mapping[str, Any] | None = None,
        **execution_options: Any,
    ) -> list[Row[Any]]:
        """Return every remaining row of the result, and give its connection back
        to the pool; see :meth:`fetch_one`."""
        return self._page(operation, parameters, execution_options, None)
