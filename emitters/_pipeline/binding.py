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
        "_more",
        "_names",
        "_positional",
        "_signature",
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

    def bind(
        self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> inspect.BoundArguments:
        """Return the call's arguments, defaults applied, as ``bind`` would."""
        given = len(args) + 1
        if self._fast and given <= self._positional:
            names = self._names
            values = dict(zip(names, (instance, *args), strict=False))
            more = self._more
            extra: dict[str, Any] = {}
            for name, value in kwargs.items():
                if name in values:
                    break  # given twice: let bind() say so
                if name in names:
                    values[name] = value
                elif more is not None:
                    extra[name] = value
                else:
                    break  # unknown: let bind() say so
            else:
                defaults = self._defaults
                arguments: dict[str, Any] = {}
                for i, name in enumerate(names):
                    if name in values:
                        arguments[name] = values[name]
                    elif defaults[i] is not _MISSING:
                        arguments[name] = defaults[i]
                    else:
                        break  # a required argument is missing
                else:
                    if more is not None:
                        arguments[more] = extra
                    return inspect.BoundArguments(self._signature, arguments)
        bound = self._signature.bind(instance, *args, **kwargs)
        bound.apply_defaults()
        return bound
