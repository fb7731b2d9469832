"""Binding a call's arguments for a payload hook, without ``Signature.bind``'s cost.

``inspect.Signature.bind`` followed by ``apply_defaults`` costs several
microseconds a call, most of it checking what the call itself has already
checked: the method ran with these arguments. :class:`Binder` reads the
signature once and, for a method whose parameters are plain (positional or
keyword, keyword-only, with or without defaults, and a last ``**kwargs``), maps
the arguments straight into a :class:`inspect.BoundArguments` in the signature's
order. Anything else (``*args``, positional-only parameters, or a call that does
not fit) goes through ``Signature.bind`` as before, so the result is always the
same ``BoundArguments`` a hook would get from it.
"""

from __future__ import annotations

import inspect
from typing import Any

__all__ = ["Binder"]

_PLAIN = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
_MISSING = inspect.Parameter.empty


class Binder:
    """Binds ``(instance, *args, **kwargs)`` to one method's signature.

    Args:
        signature: The method's signature, ``self`` included.
    """

    __slots__ = (
        "_defaults",
        "_fast",
        "_index",
        "_more",
        "_names",
        "_needed",
        "_positional",
        "_signature",
        "_tails",
    )

    def __init__(self, signature: inspect.Signature) -> None:
        self._signature = signature
        params = list(signature.parameters.values())
        # The name of a last **kwargs parameter, which takes unknown keywords.
        self._more: str | None = None
        if params and params[-1].kind is inspect.Parameter.VAR_KEYWORD:
            self._more = params.pop().name
        self._fast = all(p.kind in _PLAIN for p in params)
        self._names = tuple(p.name for p in params)
        # How many parameters may be given by position.
        self._positional = sum(
            1 for p in params if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
        )
        self._defaults = tuple(p.default for p in params)
        self._index = {name: i for i, name in enumerate(self._names)}
        # For each number of positional values given, the parameters after them
        # with their defaults (_MISSING for a required one).
        self._tails = [
            tuple(zip(self._names[i:], self._defaults[i:], strict=True))
            for i in range(len(self._names) + 1)
        ]
        # ... and those of them without a default, which keywords must give.
        self._needed = [
            tuple(n for n, d in tail if d is _MISSING) for tail in self._tails
        ]

    def bind(
        self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> inspect.BoundArguments:
        """Return the call's arguments, defaults applied, as ``bind`` would."""
        given = len(args) + 1
        if self._fast and given <= self._positional:
            names = self._names
            # Positional values, then the defaults of the rest, in signature
            # order; keywords replace defaults in place, so the order holds.
            # No strict=: a keyword argument to zip costs more than the rest of
            # this line, and given <= len(names) is checked above.
            arguments = dict(zip(names, (instance, *args)))  # noqa: B905
            if given < len(names):
                arguments.update(self._tails[given])
            more = self._more
            extra: dict[str, Any] | None = {} if more is not None else None
            ok = True
            for name, value in kwargs.items():
                if name in self._index:
                    if self._index[name] < given:
                        ok = False  # given twice: let bind() say so
                        break
                    arguments[name] = value
                elif extra is not None:
                    extra[name] = value
                else:
                    ok = False  # unknown: let bind() say so
                    break
            # By identity: comparing a block with == runs pydantic's __eq__.
            if ok and all(
                arguments[name] is not _MISSING for name in self._needed[given]
            ):
                if more is not None:
                    arguments[more] = extra
                return inspect.BoundArguments(self._signature, arguments)
        bound = self._signature.bind(instance, *args, **kwargs)
        bound.apply_defaults()
        return bound
