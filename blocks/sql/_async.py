"""The ``AsyncSqlAlchemyConnector`` block: the connector's API, awaitable.

``sqlalchemy.ext.asyncio`` needs greenlet, which the ``async`` extra installs; it is
imported only when an async connector runs, so ``blocks.sql`` imports without it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self, overload

from pydantic import Field, PrivateAttr, model_validator
from sqlalchemy.engine import CursorResult, Row

from blocks._block import Block
from blocks._instrument import event_payload, no_events
from blocks.sql._connector import scrubbed
from blocks.sql._credentials import DatabaseCredentials
from blocks.sql._payload import OpenResults, call_payload, fetch_page
from blocks.sql._statements import (
    Operation,
    as_statement,
    connection_info_spelling,
    result_key,
)

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

__all__ = ["AsyncSqlAlchemyConnector"]


@asynccontextmanager
async def _transaction(connection: AsyncConnection) -> AsyncIterator[AsyncConnection]:
    """Commit on success, roll back on error, close the connection either way."""
    try:
        async with connection.begin():
            yield connection
    finally:
        await connection.close()


class AsyncSqlAlchemyConnector(Block):
    """Run statements against a database with an asyncio SQLAlchemy driver.

    The API of :class:`SqlAlchemyConnector`, awaitable: ``await
    connector.execute(...)``, ``await connector.fetch_many(...)``, ``async with
    connector: ...``, ``await connector.close()``. The credentials' driver must be
    an asyncio one (``postgresql+asyncpg``, ``sqlite+aiosqlite``). Its engine
    belongs to the event loop that first used it: close the connector before that
    loop ends.

    Attributes:
        credentials: The database and the login; a saved ``DatabaseCredentials``
            is related to every event (role ``nested-block``). Prefect's
            ``connection_info`` (a URL, URL parts or the block) and
            ``connect_args`` are accepted when the connector is built.
        fetch_size: Rows returned by ``fetch_many`` when no ``size`` is given.
        max_open_results: How many results fetch calls may hold partly read,
            each on a pooled connection; see :class:`SqlAlchemyConnector`.
    """

    block_type_slug: ClassVar[str] = "async-sqlalchemy-connector"

    credentials: DatabaseCredentials
    fetch_size: int = Field(default=1, ge=1)
    max_open_results: int = Field(default=8, ge=1)

    _open: OpenResults = PrivateAttr(default_factory=OpenResults)

    @model_validator(mode="before")
    @classmethod
    def _prefect_spelling(cls, data: Any) -> Any:
        return connection_info_spelling(data)

    @model_validator(mode="after")
    def _async_driver(self) -> Self:
        if self.credentials.is_async is False:
            raise ValueError(
                f"the driver {self.credentials.drivername} is not an asyncio driver: "
                "use SqlAlchemyConnector, or an asyncio driver such as "
                "postgresql+asyncpg or sqlite+aiosqlite"
            )
        return self

    def _engine(self) -> AsyncEngine:
        engine: AsyncEngine = self.credentials._engine()
        return engine

    # -- engine and connections --------------------------------------------------

    @event_payload(call_payload("connection"))
    async def get_engine(self, **create_engine_kwargs: Any) -> AsyncEngine:
        """Return the credentials' ``AsyncEngine``, made on first use; see
        :meth:`DatabaseCredentials.get_engine` for ``create_engine_kwargs``."""
        with scrubbed(self.credentials, None):
            engine: AsyncEngine = self.credentials._engine(**create_engine_kwargs)
            return engine

    @event_payload(call_payload("connection"))
    async def get_client(
        self, client_type: Literal["engine", "connection"], **get_client_kwargs: Any
    ) -> Any:
        """Return the engine or a connection: ``await get_client("engine")`` is
        :meth:`get_engine`, ``await get_client("connection")``
        :meth:`get_connection` (keyword argument ``begin``).

        Raises:
            ValueError: Another ``client_type``.
        """
        if client_type == "engine":
            return await self.get_engine(**get_client_kwargs)
        if client_type == "connection":
            return await self.get_connection(**get_client_kwargs)
        raise ValueError(
            f"client_type must be 'engine' or 'connection', not {client_type!r}"
        )

    @overload
    async def get_connection(
        self, begin: Literal[True] = ...
    ) -> AbstractAsyncContextManager[AsyncConnection]: ...

    @overload
    async def get_connection(self, begin: Literal[False]) -> AsyncConnection: ...

    @event_payload(call_payload("connection"))
    async def get_connection(
        self, begin: bool = True
    ) -> AsyncConnection | AbstractAsyncContextManager[AsyncConnection]:
        """Open a connection now and return it.

        Args:
            begin: True (the default) returns an async context manager that runs a
                transaction, committed when the block exits normally and rolled
                back on an error, and then closes the connection:
                ``async with await connector.get_connection() as conn: ...``.
                False returns the open ``AsyncConnection``, for you to close.
        """
        with scrubbed(self.credentials, None):
            connection = await self._engine().connect()
        self._open.track(connection)
        return _transaction(connection) if begin else connection

    @no_events
    async def reset_connections(self) -> None:
        """Close the results that fetch calls page through, their connections, and
        any connection from ``get_connection`` still open."""
        results, connections = self._open.take()
        for result in results:
            result.close()
        for connection in connections:
            await connection.close()

    @no_events
    async def reset_async_connections(self) -> None:
        """Prefect's name for :meth:`reset_connections`."""
        await self.reset_connections()

    @no_events
    async def close(self) -> None:
        """Close every open result and connection and let go of the engine, which
        is disposed unless equal credentials still hold it."""
        try:
            await self.reset_connections()
        finally:
            await self.credentials.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- statements --------------------------------------------------------------

    async def _run(
        self, operation: Operation, parameters: Any, options: Mapping[str, Any]
    ) -> CursorResult[Any]:
        statement = as_statement(operation)
        with scrubbed(self.credentials, parameters):
            async with self._engine().connect() as conn:
                result = await conn.execute(
                    statement, parameters, execution_options=dict(options) or None
                )
                await conn.commit()
        return result

    @event_payload(call_payload("execute"))
    async def execute(
        self,
        operation: Operation,
        parameters: Mapping[str, Any] | None = None,
        **execution_options: Any,
    ) -> CursorResult[Any]:
        """Run a statement in a transaction of its own and commit it; see
        :meth:`SqlAlchemyConnector.execute`."""
        return await self._run(operation, parameters, execution_options)

    @event_payload(call_payload("execute_many"))
    async def execute_many(
        self,
        operation: Operation,
        seq_of_parameters: Sequence[Mapping[str, Any]],
        **execution_options: Any,
    ) -> CursorResult[Any]:
        """Run a statement once per parameter set, in one transaction, and commit."""
        return await self._run(operation, list(seq_of_parameters), execution_options)

    async def _result(
        self,
        key: tuple[Any, ...],
        operation: Operation,
        parameters: Any,
        options: Mapping[str, Any],
    ) -> Any:
        """The open result for this key (run on first use), or ``EXHAUSTED``."""
        found = self._open.find(key)
        if found is not None:
            return found
        self._open.check_room(self.max_open_results, type(self).__name__)
        statement = as_statement(operation)
        with scrubbed(self.credentials, parameters):
            connection = await self._engine().connect()
            try:
                # The async driver's rows are buffered: fetching needs no await.
                result = await connection.execute(
                    statement, parameters, execution_options=dict(options) or None
                )
            except BaseException:
                await connection.close()
                raise
        if not result.returns_rows:
            await connection.close()
            return result
        kept = self._open.add(key, connection, result, operation)
        if kept is not result:  # another task opened it meanwhile
            result.close()
            await connection.close()
        return kept

    async def _page(
        self,
        operation: Operation,
        parameters: Any,
        options: Mapping[str, Any],
        size: int | None,
    ) -> list[Row[Any]]:
        """Fetch ``size`` rows (all when None) of the statement's result; release
        its connection when the result has no more."""
        key = result_key(operation, parameters, options)
        result = await self._result(key, operation, parameters, options)
        rows, ended = fetch_page(result, size)
        if ended:
            taken = self._open.release(key)
            if taken is not None:
                taken[0].close()
                await taken[1].close()
        return rows

    @event_payload(call_payload("fetch_one"))
    async def fetch_one(
        self,
        operation: Operation,
        parameters: Mapping[str, Any] | None = None,
        **execution_options: Any,
    ) -> Row[Any] | None:
        """Return the next row of the result, or None past the end; see
        :meth:`SqlAlchemyConnector.fetch_one`."""
        rows = await self._page(operation, parameters, execution_options, 1)
        return rows[0] if rows else None

    @event_payload(call_payload("fetch_many"))
    async def fetch_many(
        self,
        operation: Operation,
        parameters: Mapping[str, Any] | None = None,
        size: int | None = None,
        **execution_options: Any,
    ) -> list[Row[Any]]:
        """Return the next ``size`` rows (``fetch_size`` by default) of the result."""
        return await self._page(
            operation, parameters, execution_options, size or self.fetch_size
        )

    @event_payload(call_payload("fetch_all"))
    async def fetch_all(
        self,
        operation: Operation,
        parameters: Mapping[str, Any] | None = None,
        **execution_options: Any,
    ) -> list[Row[Any]]:
        """Return every remaining row of the result and give its connection back."""
        return await self._page(operation, parameters, execution_options, None)
