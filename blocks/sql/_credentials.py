"""The ``DatabaseCredentials`` block: where a database is and how to log in."""

from __future__ import annotations

import inspect
import re
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Self

import sqlalchemy as sa
from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from blocks._block import Block
from blocks._instrument import event_payload, no_events
from blocks._secrets import fingerprint
from blocks.sql._engines import EngineSlot, missing_driver_error
from blocks.sql._redact import error_detail
from emitters._sdk import is_secret_name, mask_url, register_named

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["AsyncDriver", "DatabaseCredentials", "SyncDriver"]


class SyncDriver(StrEnum):
    """Common SQLAlchemy drivers that connect synchronously (``dialect+driver``)."""

    POSTGRESQL_PSYCOPG = "postgresql+psycopg"
    POSTGRESQL_PSYCOPG2 = "postgresql+psycopg2"
    POSTGRESQL_PG8000 = "postgresql+pg8000"
    MYSQL_PYMYSQL = "mysql+pymysql"
    MYSQL_MYSQLDB = "mysql+mysqldb"
    MYSQL_MYSQLCONNECTOR = "mysql+mysqlconnector"
    MARIADB_PYMYSQL = "mariadb+pymysql"
    MARIADB_MARIADBCONNECTOR = "mariadb+mariadbconnector"
    SQLITE_PYSQLITE = "sqlite+pysqlite"
    MSSQL_PYODBC = "mssql+pyodbc"
    MSSQL_PYMSSQL = "mssql+pymssql"
    ORACLE_ORACLEDB = "oracle+oracledb"


class AsyncDriver(StrEnum):
    """Common SQLAlchemy drivers that connect with asyncio (``dialect+driver``)."""

    POSTGRESQL_ASYNCPG = "postgresql+asyncpg"
    POSTGRESQL_PSYCOPG_ASYNC = "postgresql+psycopg_async"
    MYSQL_AIOMYSQL = "mysql+aiomysql"
    MYSQL_ASYNCMY = "mysql+asyncmy"
    SQLITE_AIOSQLITE = "sqlite+aiosqlite"


_DRIVER = re.compile(r"^[A-Za-z0-9_]+(?:\+[A-Za-z0-9_]+)?$")
_KNOWN_DRIVERS: dict[str, SyncDriver | AsyncDriver] = {
    **{member.value: member for member in SyncDriver},
    **{member.value: member for member in AsyncDriver},
}
_PARTS = ("driver", "username", "password", "host", "port", "database", "query")
# OpenTelemetry's db.system.name for SQLAlchemy's backend names, where they differ.
_SYSTEMS = {"mssql": "microsoft.sql_server", "oracle": "oracle.db"}
_DEFAULT_PORTS = {
    "postgresql": 5432,
    "mysql": 3306,
    "mariadb": 3306,
    "mssql": 1433,
    "oracle": 1521,
}


def _engine_payload(args: inspect.BoundArguments, outcome: Any) -> dict[str, Any]:
    credentials: DatabaseCredentials = args.arguments["self"]
    detail = credentials._target()
    options = args.arguments.get("create_engine_kwargs")
    if options:
        # Their names only: a value (a creator, a URL) could hold anything.
        detail["engine_options"] = sorted(options)
    if isinstance(outcome, BaseException):
        detail.update(error_detail(outcome))
    return detail


def _url_passwords(url: SecretStr) -> list[str]:
    """The passwords in a whole URL: user-info, and secret-named query options."""
    parsed = make_url(url.get_secret_value())
    found = [parsed.password] if parsed.password else []
    for name, value in parsed.query.items():
        if is_secret_name(name):
            values = (value,) if isinstance(value, str) else value
            found.extend(item for item in values if item)
    return [str(item) for item in found]


class DatabaseCredentials(Block):
    """Where a database is and how to log in: a driver and URL parts, or a URL.

    Give either the parts (``driver`` with ``username``, ``password``, ``host``,
    ``port``, ``database``, ``query``) or a whole ``url``, not both. The password
    and the URL are secret: masked in ``repr`` and dumps, encrypted when saved,
    never in an event or an error message. ``rendered_url`` shows the URL with the
    password masked. Blocks with equal fields are equal and hash alike.

    ``get_engine()`` returns the block's SQLAlchemy engine (an ``AsyncEngine`` for
    an async driver), made on first use with ``hide_parameters=True`` and a
    connection pool, and reused by every later call, every connector that holds
    this block and every equal block. ``close()`` (``await aclose()`` for an async
    engine) lets go of it, and disposes it when no equal block holds it any more.
    The connection fields cannot change after the block is built: make a new
    block, and save it over the old document, to rotate a password.

    Attributes:
        driver: ``dialect+driver``: a :class:`SyncDriver`, an :class:`AsyncDriver`
            or any such string (``"snowflake"``).
        username: The user to log in as.
        password: The user's password.
        host: The server's host name or address.
        port: The server's port; the dialect's default when None.
        database: The database (for SQLite, the file's path).
        query: Options passed in the URL's query string, as text.
        connect_args: Keyword arguments for the driver's ``connect()``; values may
            be ``SecretStr``, and those whose names carry secrets (``sslpassword``,
            ``token``...) become ``SecretStr`` automatically.
        url: A whole SQLAlchemy URL instead of the parts.
    """

    block_type_slug: ClassVar[str] = "database-credentials"

    driver: SyncDriver | AsyncDriver | str | None = Field(default=None, frozen=True)
    username: str | None = Field(default=None, frozen=True)
    password: SecretStr | None = Field(default=None, frozen=True)
    host: str | None = Field(default=None, frozen=True)
    port: int | None = Field(default=None, ge=1, le=65535, frozen=True)
    database: str | None = Field(default=None, frozen=True)
    query: dict[str, str | SecretStr] | None = Field(default=None, frozen=True)
    connect_args: dict[str, Any] = Field(default_factory=dict, frozen=True)
    url: SecretStr | None = Field(default=None, frozen=True)

    _engines: EngineSlot = PrivateAttr(default_factory=EngineSlot)
    _target_base: dict[str, Any] | None = PrivateAttr(default=None)
    _engine_options: dict[str, Any] = PrivateAttr(default_factory=dict)
    _async_driver: tuple[bool | None] | None = PrivateAttr(default=None)
    _key: str | None = PrivateAttr(default=None)

    @field_validator("driver")
    @classmethod
    def _valid_driver(
        cls, value: SyncDriver | AsyncDriver | str | None
    ) -> SyncDriver | AsyncDriver | str | None:
        if value is None or isinstance(value, SyncDriver | AsyncDriver):
            return value
        if not _DRIVER.match(value):
            raise ValueError(
                "must be dialect+driver, such as postgresql+psycopg or sqlite"
            )
        return _KNOWN_DRIVERS.get(value, value)

    @field_validator("url")
    @classmethod
    def _valid_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        try:
            url = make_url(value.get_secret_value())
        except (ArgumentError, ValueError, TypeError):
            # The errors of make_url can repeat the URL, password and all.
            url = None
        if url is None or not url.drivername:
            raise ValueError(
                "must be a SQLAlchemy URL such as "
                "postgresql+psycopg://user:password@host:5432/database"
            )
        return value

    @field_validator("query")
    @classmethod
    def _secret_query(
        cls, value: dict[str, str | SecretStr] | None
    ) -> dict[str, str | SecretStr] | None:
        if value is None:
            return None
        return {
            name: SecretStr(item)
            if isinstance(item, str) and is_secret_name(name)
            else item
            for name, item in value.items()
        }

    @field_validator("connect_args")
    @classmethod
    def _secret_args(cls, value: dict[str, Any]) -> dict[str, Any]:
        return {
            name: SecretStr(item)
            if isinstance(item, str) and is_secret_name(name)
            else item
            for name, item in value.items()
        }

    @model_validator(mode="after")
    def _url_or_parts(self) -> Self:
        given = [name for name in _PARTS if getattr(self, name) is not None]
        if self.url is not None and given:
            raise ValueError(
                f"give either url or the URL parts, not both (url and "
                f"{', '.join(given)} were given)"
            )
        if self.url is None and self.driver is None:
            raise ValueError("give a driver (with the other URL parts) or a url")
        return self

    def model_post_init(self, context: Any, /) -> None:
        super().model_post_init(context)
        if self.url is not None:
            # The URL is secret as a whole; its passwords (user-info and query
            # options such as ?password=) are secret on their own too.
            register_named(
                self,
                self.block_type_slug,
                [("url", value) for value in _url_passwords(self.url)],
            )

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return bool(self.__dict__ == other.__dict__)

    def __hash__(self) -> int:
        return hash(self._fingerprint())

    def __copy__(self) -> Self:
        return self._forget_caches(super().__copy__())

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> Self:
        return self._forget_caches(super().__deepcopy__(memo))

    def _forget_caches(self, copied: Self) -> Self:
        # pydantic's shallow copy shares the private attributes, and what they
        # cache depends on the fields, which model_copy(update=...) may change:
        # the copy starts without them and takes its own hold on an engine.
        copied._engines = EngineSlot()
        copied._target_base = None
        copied._async_driver = None
        copied._key = None
        copied._engine_options = dict(self._engine_options)
        return copied

    def _fingerprint(self) -> str:
        """The digest of the fields: equal blocks share it, and their engine."""
        key = self._key
        if key is None:
            key = self._key = fingerprint(self)
        return key

    # -- the URL -----------------------------------------------------------------

    def _url(self) -> URL:
        """The connection URL, password included: never shown."""
        if self.url is not None:
            return make_url(self.url.get_secret_value())
        return URL.create(
            drivername=str(self.driver),
            username=self.username,
            password=self.password.get_secret_value() if self.password else None,
            host=self.host,
            port=self.port,
            database=self.database,
            query={
                name: value.get_secret_value()
                if isinstance(value, SecretStr)
                else value
                for name, value in (self.query or {}).items()
            },
        )

    @event_payload(_engine_payload)
    def create_url(self) -> URL:
        """Return the connection URL as a SQLAlchemy ``URL`` (Prefect's
        ``ConnectionComponents.create_url``).

        The URL holds the password, but its ``repr`` and ``str`` mask it; pass it
        to SQLAlchemy, never to a log. The call's events carry only where it
        points (system, database, server).
        """
        return self._url()

    @property
    def rendered_url(self) -> str:
        """The connection URL with the password shown as ``***``, for display."""
        return mask_url(self._url())

    @property
    def drivername(self) -> str:
        """The ``dialect+driver`` name, from ``driver`` or from ``url``."""
        return self._url().drivername

    def _secret_values(self) -> list[str]:
        """What no error message may show: the password and the URL."""
        found: list[str] = []
        if self.password is not None:
            found.append(self.password.get_secret_value())
        if self.url is not None:
            found.append(self.url.get_secret_value())
            found.extend(_url_passwords(self.url))
        found.extend(
            value.get_secret_value()
            for value in (self.query or {}).values()
            if isinstance(value, SecretStr)
        )
        found.extend(
            value.get_secret_value()
            for value in self.connect_args.values()
            if isinstance(value, SecretStr)
        )
        return [value for value in found if value]

    @property
    def is_async(self) -> bool | None:
        """Whether the driver is an asyncio one; None if its dialect is unknown here.

        A driver that is neither a :class:`SyncDriver` nor an :class:`AsyncDriver`
        is looked up among SQLAlchemy's installed dialects.
        """
        cached = self._async_driver
        if cached is not None:
            return cached[0]
        known = _KNOWN_DRIVERS.get(self.drivername)
        answer: bool | None
        if known is not None:
            answer = isinstance(known, AsyncDriver)
        else:
            try:
                answer = bool(self._url().get_dialect().is_async)
            except (NoSuchModuleError, ImportError):
                answer = None  # not cached: the dialect may be installed later
                return answer
        self._async_driver = (answer,)
        return answer

    def _target(self) -> dict[str, Any]:
        """What the events say about the database: system, namespace, server."""
        # The private-attribute dict directly: pydantic's attribute access for
        # private names costs microseconds, and this runs once per call.
        private = self.__pydantic_private__
        assert private is not None
        base = private.get("_target_base")
        if base is None:
            url = self._url()
            backend = url.get_backend_name()
            base = {"db.system.name": _SYSTEMS.get(backend, backend)}
            if url.database:
                base["db.namespace"] = url.database
            if url.host:
                base["server.address"] = url.host
                port = url.port or _DEFAULT_PORTS.get(backend)
                if port is not None:
                    base["server.port"] = port
            private["_target_base"] = base
        detail = dict(base)
        engines: EngineSlot | None = private.get("_engines")
        engine = engines.current if engines is not None else None
        # SQLAlchemy learns that a mysql:// server is MariaDB on first connect.
        if engine is not None and getattr(engine.dialect, "is_mariadb", False):
            detail["db.system.name"] = "mariadb"
        return detail

    # -- the engine --------------------------------------------------------------

    def _make_engine(self, engine_options: dict[str, Any]) -> Engine | AsyncEngine:
        url = self._url()
        is_async = self.is_async
        options: dict[str, Any] = {
            **engine_options,
            "hide_parameters": True,
            "connect_args": {
                name: value.get_secret_value()
                if isinstance(value, SecretStr)
                else value
                for name, value in self.connect_args.items()
            },
        }
        try:
            if is_async:
                from sqlalchemy.ext.asyncio import create_async_engine

                return create_async_engine(url, **options)
            return sa.create_engine(url, **options)
        except NoSuchModuleError:
            raise ImportError(
                f"No SQLAlchemy dialect is installed for the driver {url.drivername}: "
                "install the package that provides it, or check the driver's name."
            ) from None
        except ImportError as exc:
            error = missing_driver_error(exc, url.drivername)
            if error is None:
                raise
            raise error from exc

    def _engine(self, **options: Any) -> Any:
        """The block's engine, held on first use (no events: the callers have).

        Equal blocks share one engine. Options of ``create_engine`` given here are
        used for this engine and the ones made after a ``close()``; without them,
        the engine held or shared is returned whatever its options.
        """
        if not options:
            kept = self._engine_options
            return self._engines.get(
                self._fingerprint(),
                lambda: self._make_engine(kept),
                kept,
                is_async=bool(self.is_async),
                insist=False,
            )
        refused = sorted({"hide_parameters", "connect_args", "url"} & set(options))
        if refused:
            raise ValueError(
                f"get_engine does not take {', '.join(refused)}: parameters stay "
                "hidden from errors and logs, driver arguments go in the "
                "credentials' connect_args, and the URL is the credentials'"
            )
        engine = self._engines.get(
            self._fingerprint(),
            lambda: self._make_engine(options),
            options,
            is_async=bool(self.is_async),
            insist=True,
        )
        self._engine_options = dict(options)
        return engine

    @event_payload(_engine_payload)
    def get_engine(self, **create_engine_kwargs: Any) -> Engine | AsyncEngine:
        """Return the block's SQLAlchemy engine, made on first use and then reused.

        The engine is an ``AsyncEngine`` for an async driver. It hides bound
        parameters from its error messages and logs (``hide_parameters=True``)
        and pools its connections; an async engine belongs to the event loop that
        first used it.

        Args:
            **create_engine_kwargs: Options of SQLAlchemy's ``create_engine``
                (``pool_size``, ``max_overflow``, ``pool_timeout``,
                ``pool_pre_ping``, ``pool_recycle``, ``echo``...), used when the
                engine is made and kept for the engines made after ``close()``.
                Without them, the engine made so far is returned, whatever its
                options.

        Raises:
            ValueError: Options that differ from those of the engine made
                already (``close()`` it first), or ``hide_parameters``,
                ``connect_args`` or ``url``, which the credentials set.
            TypeError: An option ``create_engine`` does not know.
            ImportError: The driver's package is not installed; the message names
                the eventblocks extra (``postgres``, ``mysql``, ``async``) or the
                package to install.
        """
        engine: Engine | AsyncEngine = self._engine(**create_engine_kwargs)
        return engine

    @no_events
    def close(self) -> None:
        """Let go of a sync engine, and dispose it and its pooled connections
        unless an equal block still holds it; a later call makes or shares one
        again. An async engine needs ``await aclose()``."""
        if isinstance(self._engines.current, sa.Engine):
            last = self._engines.release()
            if last is not None:
                last.dispose()

    @no_events
    async def aclose(self) -> None:
        """Let go of the engine, sync or async, and dispose it and its pooled
        connections unless an equal block still holds it."""
        last = self._engines.release()
        if last is None:
            return
        if isinstance(last, sa.Engine):
            last.dispose()
        else:
            await last.dispose()
