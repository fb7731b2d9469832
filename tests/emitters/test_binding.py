"""Payload hooks get the arguments Signature.bind would give, cheaper."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from emitters._pipeline.binding import Binder


class Target:
    def plain(self, path: str, mode: str = "r", *, size: int = 0) -> None: ...

    def required_kw(self, path: str, *, where: str) -> None: ...

    def variadic(self, *paths: str, **options: Any) -> None: ...

    def positional_only(self, path: str, /, mode: str = "r") -> None: ...

    def options(self, op: str, params: Any = None, **options: Any) -> None: ...


CALLS = [
    ("plain", ("a.txt",), {}),
    ("plain", ("a.txt", "w"), {}),
    ("plain", (), {"path": "a.txt"}),
    ("plain", ("a.txt",), {"size": 3}),
    ("plain", ("a.txt",), {"mode": "w", "size": 3}),
    ("required_kw", ("a.txt",), {"where": "x"}),
    ("variadic", ("a", "b"), {"k": 1}),
    ("positional_only", ("a.txt",), {}),
    ("options", ("select 1",), {}),
    ("options", ("select 1",), {"params": {}, "timeout": 3}),
    ("options", (), {"op": "select 1", "stream": True, "params": None}),
    ("options", ("select 1",), {"options": 1}),
]


@pytest.mark.parametrize(("method", "args", "kwargs"), CALLS)
def test_binder_agrees_with_signature_bind(
    method: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    """Every call shape binds to the same arguments, in the same order."""
    signature = inspect.signature(getattr(Target, method))
    target = Target()
    expected = signature.bind(target, *args, **kwargs)
    expected.apply_defaults()
    got = Binder(signature).bind(target, args, kwargs)
    assert list(got.arguments.items()) == list(expected.arguments.items())
    assert got.args == expected.args
    assert got.kwargs == expected.kwargs


@pytest.mark.parametrize(
    ("method", "args", "kwargs"),
    [
        ("plain", (), {}),  # a required argument missing
        ("plain", ("a.txt",), {"path": "b.txt"}),  # given twice
        ("plain", ("a.txt",), {"colour": "red"}),  # unknown
        ("plain", ("a", "b", "c"), {}),  # too many
        ("required_kw", ("a.txt",), {}),
        ("options", ("select 1",), {"op": "select 2"}),  # given twice
        ("options", (), {"timeout": 3}),  # a required argument missing
    ],
)
def test_binder_refuses_what_bind_refuses(
    method: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    """A call that does not fit raises TypeError, as Signature.bind does."""
    signature = inspect.signature(getattr(Target, method))
    with pytest.raises(TypeError):
        Binder(signature).bind(Target(), args, kwargs)
