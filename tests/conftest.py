"""Shared fixtures: every test starts with a fresh pipeline that has no sinks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from emitters import configure


@pytest.fixture(autouse=True)
def fresh_pipeline() -> Iterator[None]:
    """Give each test a pipeline of its own, with no sinks and default options."""
    configure(emitters=[])
    yield
    configure(emitters=[])
