"""Cost of the secret registry as it grows: building a block, masking 1 KB, memory.

Run: ``python benchmarks/bench_secrets.py [--sizes 0,1000,100000] [--repeats R]
[--json]``

For each size N, N distinct secrets are registered (held by N live blocks, as an
application holding N connections would), then:

- build: building one more block with a ``SecretStr`` field (its secret is
  registered), median microseconds over R builds;
- mask: ``redact_text`` on a 1 KB message holding one registered secret, median
  microseconds over R maskings;
- memory: bytes the registry holds per registered secret (tracemalloc, the blocks'
  own objects included);
- release: the registry's size after every block is collected, which must come
  back to where it started.

Ratios compare each size with ``--base`` (1,000 by default): flat means close
to 1. Times are medians in one process on a shared machine; compare
ratios, not absolute figures.
"""

from __future__ import annotations

import argparse
import gc
import json
import secrets
import statistics
import time
import tracemalloc
from typing import Any

from pydantic import SecretStr

from blocks import Block
from emitters._redact import redact_text
from emitters._registry import registered_count


class BenchHolder(Block):
    """A block with one secret field."""

    events_enabled = False
    token: SecretStr


def _token() -> str:
    return f"bench-{secrets.token_hex(12)}"


def _median_us(samples: list[int]) -> float:
    return round(statistics.median(samples) / 1000, 2)


def measure(size: int, repeats: int) -> dict[str, Any]:
    """Return the figures at ``size`` registered secrets."""
    gc.collect()
    start_count = registered_count()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    held = [BenchHolder(token=SecretStr(_token())) for _ in range(size)]
    registered_count()  # settle the matcher before measuring memory
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    # One registered secret in the message (none with no secrets registered).
    secret = held[size // 2].token.get_secret_value() if size else _token()
    words = " ".join(f"word{i:03d} value={i * 7919 % 1000:03d}" for i in range(60))
    message = words[: 1024 - len(secret) - 2] + f" {secret} "
    masks: list[int] = []
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        out = redact_text(message)
        masks.append(time.perf_counter_ns() - t0)
    assert (secret not in out) == bool(size)
    builds: list[int] = []
    extra = []
    for _ in range(repeats):
        token = _token()
        t0 = time.perf_counter_ns()
        extra.append(BenchHolder(token=SecretStr(token)))
        builds.append(time.perf_counter_ns() - t0)
    per_secret = (after - before) / size if size else 0.0
    del held, extra
    gc.collect()
    released = registered_count() == start_count
    return {
        "size": size,
        "build_us": _median_us(builds),
        "mask_1kb_us": _median_us(masks),
        "message_chars": len(message),
        "bytes_per_secret": round(per_secret),
        "released": released,
    }


def main() -> None:
    """Measure every size and print the figures and ratios."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="0,1000,100000")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--base", type=int, default=1000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = [measure(size, args.repeats) for size in sizes]
    base = next(
        (r for r in rows if r["size"] == args.base),
        next((r for r in rows if r["size"]), rows[0]),
    )
    ratios = {}
    for row in rows:
        if row is base or row["size"] <= base["size"]:
            continue
        ratios[str(row["size"])] = {
            "build": round(row["build_us"] / base["build_us"], 2),
            "mask_1kb": round(row["mask_1kb_us"] / base["mask_1kb_us"], 2),
            "bytes_per_secret": round(
                row["bytes_per_secret"] / max(base["bytes_per_secret"], 1), 2
            ),
        }
    result = {"rows": rows, "base_size": base["size"], "ratios_vs_base": ratios}
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"{'secrets':>9} {'build us':>9} {'mask 1KB us':>12} {'B/secret':>9} released"
    )
    for row in rows:
        print(
            f"{row['size']:>9} {row['build_us']:>9} {row['mask_1kb_us']:>12} "
            f"{row['bytes_per_secret']:>9} {row['released']}"
        )
    for size, ratio in ratios.items():
        print(
            f"{size} vs {base['size']}: build x{ratio['build']}, "
            f"mask x{ratio['mask_1kb']}, memory per secret x{ratio['bytes_per_secret']}"
        )


if __name__ == "__main__":
    main()
