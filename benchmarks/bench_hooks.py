"""What a method's payload hook costs the caller, per call.

A block method with an ``event_payload`` hook pays, on the caller's thread and
after the call, for binding the call's arguments to the method's signature and
for the hook itself. This script times exactly that work (the binder and the
hook, as the call wrapper runs them) for the connectors' hooks, each against the
floor of ``bench_calls.py`` (a pass-through wrapt wrapper, two timestamps and two
list appends) measured in the same run:

- ``HttpEndpoint.get`` with a path and query parameters, on an endpoint whose
  parameters hold a secret (the URL in the event is masked), with its response;
- ``SqlAlchemyConnector.execute`` and ``fetch_all`` on SQLite, with their results.

    python benchmarks/bench_hooks.py            # --calls, --repeats, --json
"""

from __future__ import annotations

import argparse
import inspect
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_calls import FloorModel, _loop_unbound

from blocks.http import HttpEndpoint
from blocks.http._request import request_payload
from blocks.sql import DatabaseCredentials, SqlAlchemyConnector
from blocks.sql._payload import call_payload
from emitters import configure
from emitters._pipeline.binding import Binder

# The most a hook may add to a call, as a multiple of the floor measured in the
# same run: "microseconds, not tens of them", about 5 us where the floor costs
# its reference 1.3 us.
BUDGET_VS_FLOOR = 4.0


def _hook_case(
    function: Callable[..., Any],
    hook: Callable[[inspect.BoundArguments, Any], Any],
    instance: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    outcome: Any,
) -> Callable[[int], int]:
    """A loop of ``n`` hook runs as the call wrapper does them after a call."""
    binder = Binder(inspect.signature(function))

    def loop(n: int) -> int:
        bind = binder.bind
        t0 = time.perf_counter_ns()
        for _ in range(n):
            hook(bind(instance, args, kwargs), outcome)
        return time.perf_counter_ns() - t0

    return loop


def cases() -> dict[str, Callable[[int], int]]:
    endpoint = HttpEndpoint(
        base_url="https://api.example.com/v1",
        params={"api_key": "bench-hook-secret-value"},
    )
    request = httpx.Request("GET", "https://api.example.com/v1/items?page=2")
    response = httpx.Response(200, content=b"x" * 512, request=request)
    get = HttpEndpoint.__dict__["get"].__wrapped__
    connector = SqlAlchemyConnector(credentials=DatabaseCredentials(url="sqlite://"))
    connector.execute("CREATE TABLE t (x INTEGER)")
    connector.execute("INSERT INTO t VALUES (1)")
    result = [(1,)]
    execute = SqlAlchemyConnector.__dict__["execute"].__wrapped__
    fetch_all = SqlAlchemyConnector.__dict__["fetch_all"].__wrapped__

    class Affected:
        returns_rows = False
        rowcount = 1

    return {
        "http_get": _hook_case(
            get,
            request_payload("GET"),
            endpoint,
            ("items",),
            {"params": {"page": 2}},
            response,
        ),
        "sql_execute": _hook_case(
            execute,
            call_payload("execute"),
            connector,
            ("UPDATE t SET x = 2",),
            {},
            Affected(),
        ),
        "sql_fetch_all": _hook_case(
            fetch_all,
            call_payload("fetch_all"),
            connector,
            ("SELECT x FROM t",),
            {},
            result,
        ),
    }


def measure(n: int, repeats: int) -> dict[str, Any]:
    configure(emitters=[], enabled=False)
    loops = cases()
    floor_model = FloorModel()
    samples: dict[str, list[int]] = {name: [] for name in ("floor", *loops)}
    for _ in range(repeats):
        samples["floor"].append(_loop_unbound(floor_model, n))
        for name, loop in loops.items():
            samples[name].append(loop(n))
    ns = {name: statistics.median(v) / n for name, v in samples.items()}
    return {
        "calls": n,
        "repeats": repeats,
        "ns_per_call": ns,
        "vs_floor": {name: ns[name] / ns["floor"] for name in loops},
        "budget_vs_floor": BUDGET_VS_FLOOR,
    }


def report(result: dict[str, Any]) -> str:
    ns = result["ns_per_call"]
    lines = [
        f"hook runs per loop: {result['calls']:,}, repetitions: "
        f"{result['repeats']} (medians)",
        "",
        "hook (binder + hook)      us/call   x floor   budget   holds",
    ]
    for name, ratio in result["vs_floor"].items():
        us = ns[name] / 1000
        lines.append(
            f"  {name:22s} {us:8.2f} {ratio:8.2f}x {BUDGET_VS_FLOOR:6.1f}x   "
            f"{'yes' if ratio <= BUDGET_VS_FLOOR else 'NO'}"
        )
    lines.append(f"  {'floor (a call)':22s} {ns['floor'] / 1000:8.2f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = measure(args.calls, args.repeats)
    print(json.dumps(result, indent=2) if args.json else report(result))


if __name__ == "__main__":
    main()
