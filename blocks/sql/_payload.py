"""The outcome detail of the SQL connectors' calls, and the results they keep open.

Events say which database was called and how (``db.system.name``,
``db.namespace``, ``server.address``, ``server.port``, ``db.operation.name``) and
how many rows came back or changed; on failure, the driver's error class and its
SQLSTATE or errno. Never the statement's text, a bound value or a literal.
"""

from __future__ import annotations

import inspect
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from blocks._errors import BlockError
from blocks.sql._redact import error_detail
from blocks.sql._statements import operation_name

__all__ = [
    "EXHAUSTED",
    "EXHAUSTED_KEPT",
    "OpenResults",
    "TooManyOpenResultsError",
    "call_payload",
    "fetch_page",
]

Hook = Callable[[inspect.BoundArguments, Any], dict[str, Any]]


def _rows_affected(result: Any) -> int | None:
    """The rows a DML statement changed, when the driver reports them."""
    try:
        if result.returns_rows:
            return None
        count = result.rowcount
    except Exception:
        return None  # a closed or unusual result: no count
    return count if isinstance(count, int) and count >= 0 else None


def call_payload(kind: str) -> Hook:
    """Return the payload hook of a connector method.

    Args:
        kind: ``execute``, ``execute_many``, ``fetch_one``, ``fetch_many``,
            ``fetch_all`` or ``connection``.
    """

    def payload(args: inspect.BoundArguments, outcome: Any) -> dict[str, Any]:
        arguments = args.arguments
        detail: dict[str, Any] = arguments["self"].credentials._target()
        if "operation" in arguments:
            verb = operation_name(arguments["operation"])
            if verb is not None:
                detail["db.operation.name"] = verb
        options = arguments.get("create_engine_kwargs")
        if options:
            detail["engine_options"] = sorted(options)
        client_type = arguments.get("client_type")
        if isinstance(client_type, str):
            detail["client_type"] = client_type
        if kind == "execute_many":
            batch = arguments.get("seq_of_parameters")
            if isinstance(batch, list | tuple):
                detail["db.operation.batch.size"] = len(batch)
        if isinstance(outcome, BaseException):
            detail.update(error_detail(outcome))
        elif kind == "fetch_one":
            detail["rows_returned"] = 0 if outcome is None else 1
        elif kind in ("fetch_many", "fetch_all"):
            detail["rows_returned"] = len(outcome)
        elif kind in ("execute", "execute_many"):
            affected = _rows_affected(outcome)
            if affected is not None:
                detail["rows_affected"] = affected
        return detail

    return payload


EXHAUSTED_KEPT = 4096
"""How many exhausted results a connector remembers (to answer them empty)."""


class TooManyOpenResultsError(BlockError, RuntimeError):
    """A SQL connector holds as many partly read results as ``max_open_results``
    allows; the message names the remedies (read them to the end,
    ``reset_connections()``, a larger ``max_open_results``)."""


class OpenResults:
    """The results that fetch calls page through, each on its own connection, and
    the connections handed out by ``get_connection``.

    A result holds its pooled connection only while it has rows left: once a fetch
    finds the end, the connection goes back to the pool, and the key is
    remembered as exhausted (so that fetching it again returns nothing, as
    before), up to :data:`EXHAUSTED_KEPT` keys. A copy of the holder starts
    empty, so copies of a connector never share or close each other's results.
    """

    __slots__ = ("_connections", "_exhausted", "_lock", "_results")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # key -> (connection, result, statement kept alive for its identity key)
        self._results: dict[tuple[Any, ...], tuple[Any, Any, Any]] = {}
        # Keys of results read to the end; the statement is kept for the same reason.
        self._exhausted: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self._connections: list[Any] = []

    def __copy__(self) -> OpenResults:
        return OpenResults()

    def __deepcopy__(self, memo: dict[int, Any]) -> OpenResults:
        return OpenResults()

    def __reduce__(self) -> tuple[type[OpenResults], tuple[()]]:
        return OpenResults, ()

    @property
    def lock(self) -> threading.Lock:
        """Held while a sync fetch looks up or opens its result."""
        return self._lock

    def find(self, key: tuple[Any, ...]) -> Any:
        """The open result for ``key``, :data:`EXHAUSTED` if it was read to the
        end, or None."""
        entry = self._results.get(key)
        if entry is not None:
            return entry[1]
        if key in self._exhausted:
            return EXHAUSTED
        return None

    def check_room(self, limit: int, owner: str) -> None:
        """Raise ``TooManyOpenResultsError`` if ``limit`` results are open already."""
        count = len(self._results)
        if count >= limit:
            results = "result" if count == 1 else "results"
            raise TooManyOpenResultsError(
                f"This {owner} already holds {count} {results} that fetch "
                f"calls have not read to the end, each on a pooled connection "
                f"(max_open_results={limit}). Read them to the end (fetch_all), "
                "call reset_connections() to close them, or raise max_open_results "
                "(with a larger pool: get_engine(pool_size=...))."
            )

    def add(self, key: tuple[Any, ...], connection: Any, result: Any, keep: Any) -> Any:
        """Keep ``result`` open under ``key``; return the result to use.

        If another task opened one under the same key meanwhile, that one is
        returned and the caller must close its own ``connection``.
        """
        self._exhausted.pop(key, None)
        existing = self._results.setdefault(key, (connection, result, keep))
        return existing[1]

    def release(self, key: tuple[Any, ...]) -> tuple[Any, Any] | None:
        """Forget the open result of ``key``, remembering it as exhausted; return
        its result and connection, for the caller to close."""
        with self._lock:
            entry = self._results.pop(key, None)
            if entry is None:
                return None
            self._exhausted[key] = entry[2]
            self._exhausted.move_to_end(key)
            while len(self._exhausted) > EXHAUSTED_KEPT:
                self._exhausted.popitem(last=False)
        connection, result, _ = entry
        return result, connection

    def track(self, connection: Any) -> None:
        """Remember a connection handed out, to close it with the others."""
        with self._lock:
            self._connections = [c for c in self._connections if not c.closed]
            self._connections.append(connection)

    def take(self) -> tuple[list[Any], list[Any]]:
        """Forget everything; return the results and the connections to close."""
        with self._lock:
            entries = list(self._results.values())
            self._results.clear()
            self._exhausted.clear()
            connections, self._connections = self._connections, []
        results = [result for _, result, _ in entries]
        connections = [connection for connection, _, _ in entries] + connections
        return results, connections

    def __len__(self) -> int:
        return len(self._results)


class _Exhausted:
    """The stand-in for a result read to the end: it has no rows left."""

    __slots__ = ()

    def fetchone(self) -> None:
        return None

    def fetchmany(self, size: int | None = None) -> list[Any]:
        return []

    def fetchall(self) -> list[Any]:
        return []

    def __repr__(self) -> str:
        return "EXHAUSTED"


EXHAUSTED: Any = _Exhausted()
"""What ``OpenResults.find`` returns for a result read to the end."""


def fetch_page(result: Any, size: int | None) -> tuple[list[Any], bool]:
    """Fetch ``size`` rows (all when None) of a result that fetch calls page
    through, and say whether this found its end, so that its connection can go
    back to the pool (a result already known as read to the end has none)."""
    rows = list(result.fetchall() if size is None else result.fetchmany(size))
    return rows, result is not EXHAUSTED and (size is None or len(rows) < size)
